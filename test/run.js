#!/usr/bin/env node
// Runs the uvu suites compiled under dist/test (or $TEST_DIST/test) in one process and ends with
// the plain "N passed, N failed" line. Usage: node test/run.js [file-pattern]
import { spawn } from 'node:child_process';
import { mkdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

if (!process.env.XDG_RUNTIME_DIR) {
  const dir = join(tmpdir(), `xdg-runtime-${process.getuid?.() ?? 'user'}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  process.env.XDG_RUNTIME_DIR = dir;
}
// Tests (and the CLIs they start) run the fixed kernel table, not the autotuner's timed choices.
process.env.MASKRCNN_NO_TUNE ??= '1';
const dist = process.env.TEST_DIST ?? 'dist';
const filter = process.argv[2];
const pattern = filter ? `(${filter})[^/]*\\.test\\.js$` : '\\.test\\.js$';
const child = spawn(process.execPath, ['node_modules/uvu/bin.js', join(dist, 'test'), pattern, '--color', 'false'], {
  stdio: ['ignore', 'pipe', 'inherit'],
});
let out = '';
child.stdout.on('data', (chunk) => { process.stdout.write(chunk); out += chunk.toString(); });
child.on('close', (code) => {
  const num = (label) => Number((out.match(new RegExp(`${label}:\\s+(\\d+)`)) ?? [])[1] ?? 0);
  const total = num('Total'), passed = num('Passed'), skipped = num('Skipped');
  const failed = Math.max(0, total - passed - skipped);
  if (total === 0) console.log('no tests ran');
  console.log(`${passed} passed, ${code !== 0 && failed === 0 ? 1 : failed} failed, ${skipped} skipped`);
  process.exit(code ?? 1);
});
