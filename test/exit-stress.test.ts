// The GPU CLIs' exit paths under CPU starvation: usage errors (exit 2), an error after the GPU is
// up (exit 1) and a tiny success (exit 0) run again and again, three at a time, at nice 19 beside
// one busy-looping process per core (also at nice 19). Every run must end by itself (per-run timeout) with exactly its code: before
// releaseDevice() kept Dawn's GPU object alive and waited for the device's `lost` event, a
// collected instance under a queued Dawn poll ended such runs in SIGSEGV, SIGABRT
// ("std::system_error: Invalid argument") or an endless poll. Bounded to STRESS_SECONDS of wall
// time (default 30); EXIT_STRESS_CLI=DIR runs another build's dist/cli (to measure a baseline).
// No run may print Dawn's "artificially reduced" limit warnings either (stderr is a file here).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, mkdtempSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { encodePng } from '../data/image.js';
import { encodeSafetensors } from '../engine/safetensors.js';

const CLI = process.env.EXIT_STRESS_CLI ?? fileURLToPath(new URL('../cli/', import.meta.url));
const STRESS_SECONDS = Number(process.env.STRESS_SECONDS ?? 30);
/** A run that takes longer than this under starvation counts as hung. */
const RUN_TIMEOUT_MS = 25_000;
/** Runs in flight at once (they starve each other as well). */
const PARALLEL = 3;

const dir = mkdtempSync(join(tmpdir(), 'exit-stress-'));
const image = join(dir, 'tiny.png');
writeFileSync(image, encodePng(new Uint8Array(8 * 8 * 3).fill(90), 8, 8));
const weights = join(dir, 'bare.safetensors'); // no stored config: --preset decides, after the GPU is up
writeFileSync(weights, encodeSafetensors({ x: { dtype: 'float32', shape: [1], data: new Float32Array(1) } }));

// The bare teardown: the device made and released at once (what a CLI does on an early error).
const probe = join(dir, 'init-shutdown.mjs');
writeFileSync(probe, `import '${pathToFileURL(join(CLI, 'node-gpu.js')).href}';
import { init, setQuiet, shutdown } from '${pathToFileURL(join(CLI, '../engine/index.js')).href}';
setQuiet(true);
await init();
await shutdown();
process.exitCode = 3;
`);

interface Case { name: string; args: string[]; code: number }
const CASES: Case[] = [
  { name: 'init then shutdown (GPU up)', args: [probe], code: 3 },
  { name: 'infer, no arguments', args: ['infer.js'], code: 2 },
  { name: 'infer, missing weights (GPU up)', args: ['infer.js', '--weights', join(dir, 'missing.safetensors'), image], code: 1 },
  { name: 'infer, unknown preset (GPU up)', args: ['infer.js', '--weights', weights, '--preset', 'nope', image], code: 2 },
  { name: 'eval, no arguments', args: ['eval.js'], code: 2 },
  { name: 'spiral, 3 steps', args: ['spiral.js', '--steps', '3', '--points', '8', '--every', '3'], code: 0 },
];

const ONLY = process.env.EXIT_STRESS_ONLY; // a regex on the case names (measurements)
const RUN_CASES = ONLY ? CASES.filter((c) => new RegExp(ONLY).test(c.name)) : CASES;

interface Outcome { c: Case; code: number | null; signal: string | null; hung: boolean; ms: number; stderr: string }

let runCount = 0;

function runNiced(c: Case): Promise<Outcome> {
  return new Promise((resolve) => {
    const t0 = performance.now();
    const [script, ...rest] = c.args;
    // stderr goes to a file: Node's 'pipe' is a socket, where Dawn's warnings cannot be silenced
    const errFile = join(dir, `stderr-${runCount++}.txt`);
    const errFd = openSync(errFile, 'w');
    const child = spawn('nice', ['-n', '19', process.execPath, script === probe ? probe : join(CLI, script!), ...rest], { stdio: ['ignore', 'ignore', errFd] });
    closeSync(errFd);
    let hung = false;
    const timer = setTimeout(() => { hung = true; child.kill('SIGKILL'); }, RUN_TIMEOUT_MS);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ c, code, signal, hung, ms: performance.now() - t0, stderr: readFileSync(errFile, 'utf8') });
    });
  });
}

/** Busy loops at the CLIs' own niceness: together they keep every core full, yet each run still progresses. */
function busyLoops(n: number): ChildProcess[] {
  return Array.from({ length: n }, () => spawn('nice', ['-n', '19', process.execPath, '-e', 'for (;;) {}'], { stdio: 'ignore' }));
}

test(`CLIs exit with their own code, never hang or crash, under CPU starvation (${STRESS_SECONDS} s)`, async () => {
  const busy = busyLoops(availableParallelism());
  const outcomes: Outcome[] = [];
  try {
    const deadline = performance.now() + STRESS_SECONDS * 1000;
    let next = 0;
    const worker = async () => {
      while (performance.now() < deadline) outcomes.push(await runNiced(RUN_CASES[next++ % RUN_CASES.length]!));
    };
    await Promise.all(Array.from({ length: PARALLEL }, worker));
  } finally {
    for (const b of busy) b.kill('SIGKILL');
  }
  const bad = outcomes.filter((o) => o.hung || o.code !== o.c.code);
  // Dawn's two "artificially reduced" limit warnings are silenced (cli/node-gpu.ts).
  const noisy = outcomes.filter((o) => o.stderr.includes('artificially reduced'));
  const slowest = Math.max(...outcomes.map((o) => o.ms));
  console.log(`  exit-stress: ${outcomes.length} runs (${RUN_CASES.map((c) => `${outcomes.filter((o) => o.c === c).length} ${c.name}`).join(', ')}), ` +
    `${bad.length} wrong, slowest ${(slowest / 1000).toFixed(1)} s`);
  for (const o of bad) {
    console.log(`  ${o.c.name}: ${o.hung ? `hung (killed after ${RUN_TIMEOUT_MS / 1000} s)` : `exit ${o.code}${o.signal ? ` signal ${o.signal}` : ''}, expected ${o.c.code}`}\n    ${o.stderr.trim().split('\n').slice(-3).join('\n    ')}`);
  }
  // Every case must have been exercised, and none may have gone wrong.
  for (const c of RUN_CASES) assert.ok(outcomes.some((o) => o.c === c), `${c.name} never ran within ${STRESS_SECONDS} s`);
  assert.is(bad.length, 0, `${bad.length} of ${outcomes.length} runs ended wrongly`);
  assert.is(noisy.length, 0, `${noisy.length} runs printed Dawn's limit warnings`);
});

// The temp folder goes with the suite (it held up to ~50 MB per run when left behind).
test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
