#!/usr/bin/env node
// Runs the compiled benchmarks dist/bench/*.js (or $BENCH_DIST/bench) one after another, each in
// its own process (a fresh device; one crash does not stop the rest). Usage:
//   node bench/run.js [name-filter [flags...]]   e.g. node bench/run.js matmul; npm run bench -- train --json
// Flags after the filter go to each benchmark; the '=== name ===' headers go to stderr, so a
// benchmark's stdout (train.js --json: JSON lines) stays parseable.
// Modules that only provide helpers to the benchmarks are skipped.
import { spawnSync } from 'node:child_process';
import { mkdirSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const HELPERS = new Set(['harness.js', 'peer.js', 'train-session.js']);
if (!process.env.XDG_RUNTIME_DIR) {
  const dir = join(tmpdir(), `xdg-runtime-${process.getuid?.() ?? 'user'}`);
  mkdirSync(dir, { recursive: true, mode: 0o700 });
  process.env.XDG_RUNTIME_DIR = dir;
}
const dir = join(process.env.BENCH_DIST ?? 'dist', 'bench');
const filter = process.argv[2] ? new RegExp(process.argv[2]) : null;
const flags = process.argv.slice(3);
const files = readdirSync(dir).filter((f) => f.endsWith('.js') && !HELPERS.has(f) && (!filter || filter.test(f))).sort();
if (!files.length) {
  console.error(`no benchmarks in ${dir}${filter ? ` matching ${filter}` : ''}`);
  process.exit(1);
}
let failed = 0;
for (const f of files) {
  console.error(`=== ${f.replace(/\.js$/, '')} ===`);
  const r = spawnSync(process.execPath, [join(dir, f), ...flags], { stdio: 'inherit' });
  if (r.status !== 0) {
    failed++;
    console.error(`${f} failed (exit ${r.status ?? r.signal})`);
  }
}
process.exit(failed ? 1 : 0);
