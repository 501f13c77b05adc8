// The buffer pool's allocation hints (engine/alloc-hints.ts): withRowCapacity sizes the buffers of
// tensors with a data-dependent row count for their capacity, in the forward and in the backward,
// so a step with more rows than any before creates no buffer, and the values are those of the real
// rows; persistent() gives kept state new buffers instead of idle ones; capacityRows; the pool's
// choice among idle buffers (the oldest) does not depend on the order they were released in.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { counters, mul, persistent, relu, tensor, tidy, withRowCapacity, type RowCapacity } from '../engine/index.js';
import { getBackend } from '../engine/backend.js';
import { empty } from '../engine/tensor.js';
import { capacityRows } from '../engine/alloc-hints.js';

await ready;

const COLS = 1000; // rows of 4000 bytes: each row count lands in its own size class
const rowsData = (rows: number): Float32Array => Float32Array.from({ length: rows * COLS }, (_, i) => ((i * 7919) % 23) - 11);

/** One "step" on `rows` rows: y = relu(x * w), its gradient wrt w; returns the buffers created, y's sum and w's gradient. */
async function step(rows: number, bound: RowCapacity | null): Promise<{ created: number; y: number[]; grad: number[] }> {
  const before = counters().buffersCreated;
  const w = tensor(Float32Array.from({ length: COLS }, (_, i) => (i % 5) - 2), [1, COLS]).requiresGrad_();
  const y = withRowCapacity(bound, () =>
    tidy(() => {
      const x = tensor(rowsData(rows), [rows, COLS]);
      const out = relu(mul(x, w));
      out.sum().backward();
      return out.sum([1]);
    }),
  );
  const created = counters().buffersCreated - before;
  const result = { created, y: Array.from(await y.data()), grad: Array.from(await w.grad!.data()) };
  y.dispose();
  w.grad!.dispose();
  w.dispose();
  return result;
}

test('withRowCapacity: more rows than any step before create no buffer; values and gradients unchanged', async () => {
  getBackend().trim();
  const cap = 12;
  await step(3, { rows: 3, capacity: cap }); // warm-up: buffers for 12 rows
  for (const rows of [8, 5, 12]) {
    const hinted = await step(rows, { rows, capacity: cap });
    assert.is(hinted.created, 0, `${rows} rows after a 3-row step`);
    const plain = await step(rows, null);
    assert.equal(hinted.y, plain.y);
    assert.equal(hinted.grad, plain.grad);
  }
  // Without the hint a step with more rows than any before needs new buffers (the check can fail).
  getBackend().trim();
  await step(3, null);
  assert.ok((await step(9, null)).created > 0);
  getBackend().trim();
});

test('withRowCapacity: only tensors of the bounded row count are enlarged; a capacity below the rows is refused', () => {
  tidy(() => {
    withRowCapacity({ rows: 4, capacity: 64 }, () => {
      assert.ok(empty([4, 256]).storage.buffer.size >= 64 * 256 * 4);
      assert.ok(empty([5, 256]).storage.buffer.size < 64 * 256 * 4);
    });
  });
  assert.throws(() => withRowCapacity({ rows: 5, capacity: 4 }, () => 0), /capacity 4 is below the 5 rows/);
});

test('persistent: state made inside takes a new buffer, not an idle one a later step needs', () => {
  const b = getBackend();
  b.trim();
  const idle = empty([3000]);
  const buffer = idle.storage.buffer;
  idle.dispose(); // now idle in the pool
  const c0 = counters().buffersCreated;
  const kept = persistent(() => empty([3000]));
  assert.is.not(kept.storage.buffer, buffer);
  assert.is(counters().buffersCreated - c0, 1);
  const plain = empty([3000]);
  assert.is(plain.storage.buffer, buffer);
  kept.dispose();
  plain.dispose();
  b.trim();
});

test('capacityRows: a batch of the bounded row count counts at its capacity, others as they are', () => {
  assert.is(capacityRows(6), 6);
  withRowCapacity({ rows: 6, capacity: 40 }, () => {
    assert.is(capacityRows(6), 40);
    assert.is(capacityRows(7), 7);
  });
  assert.is(capacityRows(6), 6);
});

test("pool: order 'stable' hands out the oldest idle buffer of its class, whatever order they were released in; 'recent' the last released", () => {
  const b = getBackend();
  const saved = b.pool.order;
  b.pool.order = 'stable';
  b.trim();
  const make = (): GPUBuffer[] => [b.malloc(5000), b.malloc(5000), b.malloc(5000)];
  const [x, y, z] = make();
  for (const order of [[x, y, z], [z, x, y], [y, z, x]]) {
    order.forEach((buf) => b.free(buf!));
    b.flush();
    const again = make();
    assert.equal(again, [x, y, z], 'the same three buffers in creation order');
  }
  b.pool.order = 'recent';
  [z, x, y].forEach((buf) => b.free(buf!));
  b.flush();
  assert.equal([b.malloc(5000), b.malloc(5000), b.malloc(5000)], [y, x, z], "'recent': the last released first");
  [x, y, z].forEach((buf) => b.free(buf!));
  b.pool.order = saved;
  b.trim();
});

test.run();
