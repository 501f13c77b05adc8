// The spiral demo's training loop (cli/spiral.ts) learns: the loss goes down and the accuracy is
// well above chance (1/3) after 200 full-batch steps; its memory stays flat meanwhile.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { settleGarbage } from './helpers/gc.js';
import { memory } from '../engine/index.js';
import { makeSpiral, trainSpiral } from '../cli/spiral.js';

await ready;


test('spiral data: seeded, three arms of equal size, radius in [0, 1]', () => {
  const a = makeSpiral({ pointsPerClass: 20, seed: 3 });
  const b = makeSpiral({ pointsPerClass: 20, seed: 3 });
  assert.equal([...a.x], [...b.x]);
  assert.is(a.n, 60);
  assert.equal([0, 1, 2].map((k) => a.y.filter((c) => c === k).length), [20, 20, 20]);
  for (let i = 0; i < a.n; i++) assert.ok(Math.hypot(a.x[2 * i]!, a.x[2 * i + 1]!) <= 1 + 1e-6);
});

test('the spiral MLP loss goes down over 200 steps, with flat memory', async () => {
  await settleGarbage();
  const start = memory().liveBytes;
  const { history, accuracy } = await trainSpiral({ steps: 200, every: 40, pointsPerClass: 40, seed: 1 });
  const losses = history.map((p) => p.loss);
  assert.is(history.length, 5);
  for (let i = 1; i < losses.length; i++) assert.ok(losses[i]! < losses[i - 1]!, `loss decreases: ${losses.map((l) => l.toFixed(3)).join(' ')}`);
  assert.ok(losses[losses.length - 1]! < 0.6 * losses[0]!, `loss ${losses[0]} -> ${losses[losses.length - 1]}`);
  assert.ok(accuracy > 0.8, `accuracy ${accuracy}`);
  assert.ok(history.every((p) => p.liveBytes === history[0]!.liveBytes), 'live bytes flat across reports');
  assert.is(memory().liveBytes, start, 'everything freed');
});

test.run();
