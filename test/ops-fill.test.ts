// The fill kernels (kernels/copy.ts): one element per invocation and the vec4 form, whose first and
// last vec4 may hold elements outside the range (read, merged, written back). Every range offset
// mod 4 and odd lengths, from inside one vec4 to more than one grid stride, float32 / int32 / bool,
// against a float64 reference that changes exactly [offset, offset + n) of a patterned buffer.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import * as F from '../engine/index.js';
import { fillInPlace, setFillScalarOnly } from '../engine/ops/copy.js';
import { fillVec4Invocations, FILL_VEC4S } from '../kernels/copy.js';

await ready;

/** The float64 reference: base with [offset, offset + n) set to value. */
function fillReference(base: readonly number[], offset: number, n: number, value: number): number[] {
  return base.map((v, i) => (i >= offset && i < offset + n ? value : v));
}

const pattern = (len: number, dtype: 'float32' | 'int32' | 'bool'): number[] =>
  Array.from({ length: len }, (_, i) => (dtype === 'bool' ? i % 3 === 0 ? 1 : 0 : dtype === 'int32' ? i * 7 - 50 : i * 0.25 - 3.5));

async function check(dtype: 'float32' | 'int32' | 'bool', offset: number, n: number, value: number, scalar: boolean): Promise<void> {
  const len = offset + n + 6; // elements after the range must stay
  const base = pattern(len, dtype);
  const t = dtype === 'bool' ? F.tensor(base.map((v) => v !== 0), [len], 'bool') : F.tensor(dtype === 'int32' ? Int32Array.from(base) : Float32Array.from(base), [len], dtype);
  const region = t.view([n], [1], offset);
  setFillScalarOnly(scalar);
  try {
    fillInPlace(region, value);
  } finally {
    setFillScalarOnly(false);
  }
  const got = Array.from(await t.data(), Number);
  const want = fillReference(base, offset, n, dtype === 'bool' ? (value ? 1 : 0) : value);
  assert.equal(got, want, `${scalar ? 'scalar' : 'vec4'} fill ${dtype} offset ${offset} n ${n}`);
  region.dispose();
  t.dispose();
}

test('fill: every offset mod 4, lengths within one vec4 to several grid strides, both forms', async () => {
  for (const scalar of [false, true]) {
    for (const offset of [0, 1, 2, 3, 4, 5, 7]) {
      for (const n of [1, 2, 3, 4, 5, 6, 9, 63, 257, 4099]) await check('float32', offset, n, -2.5, scalar);
    }
  }
});

test('fill: int32 and bool, odd ranges', async () => {
  for (const [offset, n] of [[0, 1], [1, 2], [3, 5], [2, 130], [5, 1027]] as const) {
    await check('int32', offset, n, 123456, false);
    await check('bool', offset, n, 1, false);
    await check('bool', offset, n, 0, false);
  }
});

test('fill: a range longer than one grid stride of the vec4 form (the grid-stride loop)', async () => {
  // Two workgroups of invocations cover 2 * 64 * FILL_VEC4S vec4s; this range needs more than that.
  const n = 2 * 64 * FILL_VEC4S * 4 + 13;
  assert.ok(fillVec4Invocations(n, 3) > 64, 'more than one workgroup');
  await check('float32', 3, n, 7, false);
  // Dense tensors through the public API.
  const z = await F.full([3, 5, 7], 1.5).data();
  assert.equal(Array.from(z), new Array(105).fill(1.5));
});

test.run();
