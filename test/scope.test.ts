// Memory: tidy frees what it does not return, keep() escapes, views share storage, the pool
// reuses and shrinks, disposed tensors give clear errors, graphs die with their scope.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import * as F from '../engine/index.js';

const backend = await ready;
const live = (): number => F.memory().liveBytes;

test('tidy frees intermediates and keeps the result (nested, in objects)', () => {
  const before = live();
  const out = F.tidy(() => {
    const a = F.ones([100]);
    const b = F.tidy(() => F.add(F.mul(a, 2), 1));
    return { b, list: [F.exp(b)] };
  });
  assert.ok(live() > before);
  out.b.dispose();
  out.list[0]!.dispose();
  assert.is(live(), before);
});

test('keep() escapes the scope; dispose is idempotent', () => {
  const before = live();
  let kept!: F.Tensor;
  F.tidy(() => {
    kept = F.keep(F.zeros([64]));
    F.zeros([64]);
  });
  assert.ok(!kept.isDisposed);
  kept.dispose();
  kept.dispose();
  assert.is(live(), before);
});

test('views share storage: memory goes when the last view goes', () => {
  const before = live();
  const x = F.zeros([10, 10]);
  const v = F.slice(x, 0, 2, 5);
  x.dispose();
  assert.ok(live() > before);
  assert.throws(() => F.exp(x), /was disposed/);
  v.dispose();
  assert.is(live(), before);
});

test('a graph made inside tidy but not returned is freed with its saved tensors', () => {
  const before = live();
  const w = F.ones([32]).requiresGrad_();
  const afterW = live();
  F.tidy(() => {
    F.sum(F.mul(F.exp(w), w));
  });
  assert.is(live(), afterW);
  w.dispose();
  assert.is(live(), before);
});

test('a returned loss keeps its graph; backward frees it', async () => {
  const w = F.ones([16]).requiresGrad_();
  const afterW = live();
  const loss = F.tidy(() => F.sum(F.mul(F.exp(w), 2)));
  loss.backward();
  loss.dispose();
  // Only the gradient (16 floats, the pool's smallest 256-byte class) outlives the step.
  assert.is(live() - afterW, 256);
  assert.equal(Array.from(await w.grad!.data()).map((v) => Math.round(v * 1e4) / 1e4), new Array(16).fill(Math.round(2 * Math.E * 1e4) / 1e4));
  w.dispose();
});

test('the pool reuses buffers by size class and trim() empties it', () => {
  F.tidy(() => {
    F.zeros([1000]);
  });
  const stats = F.memory();
  F.tidy(() => {
    F.zeros([1000]);
  });
  assert.ok(F.memory().reused > stats.reused);
  backend.pool.trim();
  assert.is(F.memory().idleBytes, 0);
});

/**
 * Runs `step` three times under an idle limit far below its working set (4 kB) from an empty pool;
 * returns the buffers the second and third runs created (0 when the pool kept the first run's).
 */
function recreatedUnderSmallIdleLimit(step: () => void): number {
  const pool = backend.pool;
  const saved = pool.maxIdleBytes;
  pool.trim();
  pool.maxIdleBytes = 4096;
  try {
    step();
    const created = F.memory().created;
    assert.ok(F.memory().idleBytes > 4096, `idle ${F.memory().idleBytes} bytes`);
    step();
    step();
    return F.memory().created - created;
  } finally {
    pool.maxIdleBytes = saved;
    pool.trim();
  }
}

test('the idle limit grows to the working set: a repeated step reuses every buffer', () => {
  // 3 x 40 kB live at once.
  const recreated = recreatedUnderSmallIdleLimit(() => {
    F.tidy(() => {
      const a = F.ones([10000]);
      F.exp(F.add(a, 1));
    });
  });
  assert.is(recreated, 0, 'buffers were recreated');
  assert.is(F.memory().idleBytes, 0);
});

test('the working set counts the buffers idle at the live peak: a step whose early buffer is idle at its peak reuses it', () => {
  // 2 x 24 kB used and freed first (idle at the peak, another size class), then 2 x 80 kB live at
  // once, all freed at the end: idle 208 kB > the 160 kB live peak, within the pool's 208 kB then.
  const recreated = recreatedUnderSmallIdleLimit(() => {
    F.tidy(() => {
      F.exp(F.ones([6000]));
    });
    F.tidy(() => {
      const a = F.ones([20000]);
      F.exp(a);
    });
  });
  assert.is(recreated, 0, 'buffers were destroyed and recreated');
});

test.run();
