// The data-movement kernels (kernels/copy.ts). Fill: one element per invocation and the vec4 form,
// whose first and last vec4 may hold elements outside the range (read, merged, written back); every
// range offset mod 4 and odd lengths, from inside one vec4 to more than one grid stride, float32 /
// int32 / bool, against a float64 reference that changes exactly [offset, offset + n) of a patterned
// buffer. Strided copy: one element per invocation and runs of the last dim, between strided views
// at offsets (padded rows, transposes, broadcasts), against stridedCopyReference.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import * as F from '../engine/index.js';
import { fillInPlace, setFillScalarOnly, copyInto, setCopyRun } from '../engine/ops/copy.js';
import { fillVec4Invocations, FILL_VEC4S, stridedCopyReference } from '../kernels/copy.js';
import { ref } from './helpers/check.js';

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

test('strided copy: runs of the last dim and one element per invocation, strided views at offsets', async () => {
  // [shape, src strides + offset, dst strides + offset] over buffers of srcLen / dstLen elements.
  const cases: { shape: number[]; src: [number[], number]; dst: [number[], number]; srcLen: number; dstLen: number }[] = [
    // A level into a padded multi-level buffer (rows of 33, planes of 49 x 33), as the RPN head's.
    { shape: [2, 3, 5, 7], src: [[105, 35, 7, 1], 0], dst: [[3 * 9 * 11, 9 * 11, 11, 1], 13], srcLen: 210, dstLen: 13 + 2 * 297 },
    // Transposed source (last dim strided), odd sizes, run tails of 1..3.
    { shape: [3, 9], src: [[1, 3], 0], dst: [[9, 1], 2], srcLen: 27, dstLen: 29 },
    { shape: [5, 6], src: [[1, 5], 1], dst: [[6, 1], 0], srcLen: 31, dstLen: 30 },
    { shape: [4, 3, 2, 5], src: [[30, 10, 5, 1], 0], dst: [[1, 4, 12, 24], 0], srcLen: 120, dstLen: 120 },
    // Broadcast source (stride 0) and a 1-D copy longer than a workgroup's runs.
    { shape: [3, 11], src: [[0, 1], 4], dst: [[11, 1], 0], srcLen: 15, dstLen: 33 },
    { shape: [1031], src: [[2], 1], dst: [[1], 0], srcLen: 2063, dstLen: 1031 },
    { shape: [2, 3], src: [[3, 1], 0], dst: [[3, 1], 0], srcLen: 6, dstLen: 6 },
  ];
  for (const run of [4, 1]) {
    setCopyRun(run);
    try {
      for (const [k, c] of cases.entries()) {
        const src = ref([c.srcLen], 200 + k);
        const dstInit = ref([c.dstLen], 300 + k);
        const want = stridedCopyReference(src, dstInit, c.shape, { offset: c.src[1], strides: c.src[0] }, { offset: c.dst[1], strides: c.dst[0] });
        const s = F.tensor(Float32Array.from(src.data), [c.srcLen]);
        const d = F.tensor(Float32Array.from(dstInit.data), [c.dstLen]);
        const sv = s.view(c.shape, c.src[0], c.src[1]);
        const dv = d.view(c.shape, c.dst[0], c.dst[1]);
        copyInto(dv, sv);
        assert.equal(Array.from(await d.data()), Array.from(want.data, Math.fround), `copy ${JSON.stringify(c.shape)} run ${run}`);
        for (const t of [sv, dv, s, d]) t.dispose();
      }
    } finally {
      setCopyRun(4);
    }
  }
});

test.run();
