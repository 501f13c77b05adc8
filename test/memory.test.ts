// THE LEAK TEST: a training loop (forward, backward, SGD update) run step after step inside tidy()
// must hold exactly the same GPU memory after step 1 and after step 200, and disposing the model
// and the optimizer must give back everything.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { settleGarbage } from './helpers/gc.js';
import { nn, optim, tensor, tidy, noGrad, memory, Rng, mean, square, sub, type Tensor } from '../engine/index.js';

await ready;

function setup() {
  const rng = new Rng(5);
  const model = new nn.Sequential(new nn.Linear(4, 9, { rng }), new nn.ReLU(), new nn.Linear(9, 3, { rng }));
  const opt = new optim.SGD(model.parameters(), { lr: 0.05, momentum: 0.9, weightDecay: 1e-4, nesterov: true });
  const x = tensor(Float32Array.from({ length: 7 * 4 }, () => rng.uniform() * 2 - 1), [7, 4]);
  const y = tensor(Float32Array.from({ length: 7 * 3 }, () => rng.uniform()), [7, 3]);
  const step = (): Tensor =>
    tidy(() => {
      opt.zeroGrad();
      const loss = mean(square(sub(model.forward(x), y)));
      loss.backward();
      opt.step();
      return loss;
    });
  return { model, opt, x, y, step };
}

test('200 training steps inside tidy(): live GPU bytes stay exactly flat; dispose returns to start', async () => {
  await settleGarbage();
  const start = memory();
  const { model, opt, x, y, step } = setup();
  const first = step();
  const loss1 = await first.item();
  first.dispose();
  const after1 = memory();
  let lossN = 0;
  for (let i = 2; i <= 200; i++) {
    const l = step();
    if (i === 200) lossN = await l.item();
    l.dispose();
  }
  const after200 = memory();
  assert.is(after200.liveBytes, after1.liveBytes, `live bytes after step 1 (${after1.liveBytes}) vs step 200 (${after200.liveBytes})`);
  assert.is(after200.liveBuffers, after1.liveBuffers, 'live buffer count');
  assert.ok(lossN < loss1, `the loop really trains (loss ${loss1} -> ${lossN})`);
  // Parameters (4*9+9+9*3+3 floats), their gradients and momentum buffers are what stays live.
  assert.ok(after1.liveBytes > start.liveBytes);
  opt.zeroGrad();
  opt.dispose();
  model.dispose();
  x.dispose();
  y.dispose();
  const end = memory();
  assert.is(end.liveBytes, start.liveBytes, `live bytes at the end (${end.liveBytes}) vs start (${start.liveBytes})`);
  assert.is(end.liveBuffers, start.liveBuffers);
});

test('the measurement sees a leak of one tensor per step (the check above can fail)', async () => {
  await settleGarbage();
  const { model, opt, x, y, step } = setup();
  step().dispose();
  const before = memory().liveBytes;
  const leaked: Tensor[] = [];
  for (let i = 0; i < 3; i++) {
    step().dispose();
    leaked.push(noGrad(() => model.forward(x))); // outside tidy, never disposed: a leak
  }
  assert.ok(memory().liveBytes > before, 'leaked outputs show up in liveBytes');
  for (const t of leaked) t.dispose();
  assert.is(memory().liveBytes, before);
  opt.dispose();
  model.dispose();
  x.dispose();
  y.dispose();
});

test.run();
