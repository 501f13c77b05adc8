// A NaN loss stops training: the error names the iteration and the loss term, the weights are not
// updated with it, and the last good checkpoint (from before the NaN) stays on disk untouched.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync, rmSync } from 'node:fs';
import { join } from 'node:path';
import { ready } from './helpers/gpu.js';
import { nodeIO } from '../cli/node-io.js';
import { loadCheckpoint } from '../model/checkpoint.js';
import { readMetrics } from '../train/progress.js';
import { runTraining, CHECKPOINT_FILE, METRICS_FILE } from '../train/run.js';
import { microConfig, microDataset } from './train-fixture.js';

await ready;

test('an injected NaN stops training at that iteration, naming the term; the last good checkpoint is kept', async () => {
  const d = await microDataset(2);
  try {
    const cfg = microConfig(d, { iters: 6, checkpointEvery: 2 });
    const lines: string[] = [];
    const out = await runTraining(cfg, { io: nodeIO, cacheDir: d.dir, print: (l) => lines.push(l), injectNaN: { iter: 3, term: 'loss_box_reg' } });
    assert.is(out.status, 'diverged');
    assert.is(out.iter, 2, 'two iterations completed');
    const msg = lines.find((l) => l.startsWith('error:')) ?? '';
    console.log(`    ${msg}`);
    assert.match(msg, /NaN at iteration 3 in loss_box_reg/);
    assert.match(msg, /last good checkpoint \(iteration 2\)/);
    const ckptPath = join(cfg.out, CHECKPOINT_FILE);
    const ck = await loadCheckpoint(nodeIO, ckptPath);
    assert.is(ck.state!.iter, 2);
    assert.is(ck.state!.optimizer.step, 2, 'the optimizer did not step on the NaN iteration');
    for (const t of Object.values(ck.model)) assert.ok(Array.from(t.data).every(Number.isFinite), 'checkpoint weights are finite');
    const iters = (await readMetrics(nodeIO, join(cfg.out, METRICS_FILE))).filter((r) => r.type === 'iter').map((r) => r.iter);
    assert.equal(iters, [1, 2]);
    assert.ok(readFileSync(join(cfg.out, 'plot.png')).length > 100, 'plot written');
  } finally {
    rmSync(d.dir, { recursive: true, force: true });
  }
});

test.run();
