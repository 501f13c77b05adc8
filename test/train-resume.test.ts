// Resume equals uninterrupted: `node cli/train.js` run to the end, and the same run SIGKILLed after
// its first checkpoint then continued with --resume, must log the same loss at every iteration.
// (Same seeds: initialisation, data order, augmentation and anchor / RoI sampling are all seeded,
// and the checkpoint carries the loader position and the sampler's RNG state.)
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { existsSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ready } from './helpers/gpu.js';
import { readMetrics, LOSS_TERMS, type IterRecord } from '../cli/progress.js';
import { MICRO_MODEL, microDataset } from './train-fixture.js';

await ready;

const TRAIN = fileURLToPath(new URL('../cli/train.js', import.meta.url));
const ITERS = 6;

/** Runs the CLI; with `killAfterIter`, SIGKILLs it once that iteration is in the log. */
function train(args: string[], out: string, killAfterIter?: number): Promise<{ code: number | null; signal: string | null; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [TRAIN, ...args], { stdio: ['ignore', 'ignore', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    let timer: NodeJS.Timeout | undefined;
    if (killAfterIter !== undefined) {
      timer = setInterval(() => {
        const log = join(out, 'metrics.jsonl');
        if (existsSync(log) && readMetrics(log).some((r) => r.iter >= killAfterIter)) {
          child.kill('SIGKILL');
          clearInterval(timer);
        }
      }, 20);
    }
    child.on('error', reject);
    child.on('exit', (code, signal) => {
      if (timer) clearInterval(timer);
      resolve({ code, signal, stderr });
    });
  });
}

const losses = (out: string): IterRecord[] => readMetrics(join(out, 'metrics.jsonl')).filter((r): r is IterRecord => r.type === 'iter');

test('a run killed with SIGKILL and resumed gives the same loss curve as an uninterrupted run', async () => {
  const d = await microDataset(4);
  try {
    const config = join(d.dir, 'config.json');
    writeFileSync(config, JSON.stringify({
      preset: 'tiny', model: MICRO_MODEL, trainImages: d.images, trainAnn: d.ann,
      iters: ITERS, batch: 2, lr: 0.02, warmupIters: 2, stepFractions: [0.5], checkpointEvery: 2, workers: 0, seed: 7,
    }));
    const full = join(d.dir, 'full');
    const r1 = await train(['--config', config, '--out', full], full);
    assert.is(r1.code, 0, r1.stderr);
    const killed = join(d.dir, 'killed');
    // Iteration 3 logged means the checkpoint of iteration 2 is complete; the kill lands in 3 or 4.
    const r2 = await train(['--config', config, '--out', killed], killed, 3);
    assert.is(r2.signal, 'SIGKILL', `the run was killed (exit ${r2.code}): ${r2.stderr}`);
    const before = losses(killed).length;
    assert.ok(before < ITERS, `killed before the end (${before} iterations logged)`);
    const r3 = await train(['--resume', killed], killed);
    assert.is(r3.code, 0, r3.stderr);
    const a = losses(full);
    const b = losses(killed);
    assert.equal(b.map((r) => r.iter), a.map((r) => r.iter), 'each iteration logged once');
    assert.is(a.length, ITERS);
    let maxDiff = 0;
    for (let i = 0; i < a.length; i++) {
      for (const k of LOSS_TERMS) maxDiff = Math.max(maxDiff, Math.abs(a[i]!.losses[k] - b[i]!.losses[k]));
      assert.is(b[i]!.lr, a[i]!.lr, `lr at iteration ${i + 1}`);
    }
    console.log(`    killed after ${before} logged iterations; max |loss difference| over ${ITERS} iterations: ${maxDiff}`);
    // Bit-identical: same kernels on the same inputs in the same order.
    assert.is(maxDiff, 0);
    assert.ok(readFileSync(join(killed, 'model_final.safetensors')).length > 0);
  } finally {
    rmSync(d.dir, { recursive: true, force: true });
  }
});

test.run();
