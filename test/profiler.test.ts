// The kernel profiler (engine/profiler.ts): with timestamp queries on, every dispatch is counted
// under its kernel entry point and op, times are non-negative and finite, and results are unchanged.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { getBackend } from '../engine/backend.js';
import { tensor } from '../engine/ops/create.js';
import { add } from '../engine/ops/elementwise.js';
import { matmul } from '../engine/ops/matmul.js';

await ready;

// Without timestamp queries the test is reported as skipped (uvu's Skipped count), never passed.
const hasTimestamps = getBackend().device.features.has('timestamp-query');
if (!hasTimestamps) console.log('profiler.test: SKIPPED, this adapter has no timestamp-query');

(hasTimestamps ? test : test.skip)('profile: dispatches counted per entry and op; values as without profiling', async () => {
  const b = getBackend();
  const x = tensor([1, 2, 3, 4, 5], [5]);
  const m = tensor([1, 2, 3, 4, 5, 6], [2, 3]);
  const n = tensor([1, 0, 0, 1, 1, 1], [3, 2]);
  b.startProfile();
  const y = add(add(x, x), x);
  const p = matmul(m, n);
  const rows = await b.stopProfile();
  assert.equal(Array.from(await y.data()), [3, 6, 9, 12, 15]);
  assert.equal(Array.from(await p.data()), [4, 5, 10, 11]);
  const adds = rows.filter((r) => r.op === 'add');
  assert.is(adds.reduce((a, r) => a + r.count, 0), 2, JSON.stringify(rows));
  // One matmul kernel; the texture variants (lavapipe) also pack A first, under the same op.
  const mm = rows.filter((r) => r.op === 'matmul');
  assert.is(mm.filter((r) => !r.entry.startsWith('matmul_pack')).reduce((a, r) => a + r.count, 0), 1, JSON.stringify(rows));
  assert.ok(mm.every((r) => r.count === 1), JSON.stringify(rows));
  for (const r of rows) assert.ok(Number.isFinite(r.ms) && r.ms >= 0, `${r.entry}: ${r.ms} ms`);
  for (const t of [x, m, n, y, p]) t.dispose();
  // Profiling is off again: nothing is recorded, and stopping twice is an error naming the cause.
  try {
    await b.stopProfile();
    assert.unreachable('a second stop should throw');
  } catch (e) {
    assert.match((e as Error).message, /no profile was started/);
  }
});

test.run();
