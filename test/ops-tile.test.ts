// tile2d and flattenWindows: forward against float64 host references on odd sizes, finite-difference
// gradients, clear errors; and the RPN's canvas layout keeps a zero gap around every level.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { checkOp, ref } from './helpers/check.js';
import * as F from '../engine/index.js';
import type { RefTensor } from '../kernels/common.js';
import { packLevels } from '../model/rpn.js';

await ready;

const N = 2, C = 3;
const SIZES: [number, number][] = [[5, 7], [3, 4], [1, 2]];
const { windows, height, width } = packLevels(SIZES);

function tileReference(maps: RefTensor[]): RefTensor {
  const out = new Float64Array(N * C * height * width);
  maps.forEach((m, i) => {
    const w = windows[i]!;
    for (let nc = 0; nc < N * C; nc++) for (let y = 0; y < w.height; y++) for (let x = 0; x < w.width; x++) {
      out[(nc * height + w.top + y) * width + w.left + x] = m.data[(nc * w.height + y) * w.width + x]!;
    }
  });
  return { shape: [N, C, height, width], data: out };
}

function flattenReference(canvas: RefTensor): RefTensor {
  const out: number[] = [];
  for (let nc = 0; nc < N * C; nc++) {
    for (const w of windows) for (let y = 0; y < w.height; y++) for (let x = 0; x < w.width; x++) out.push(canvas.data[(nc * height + w.top + y) * width + w.left + x]!);
  }
  return { shape: [N, C, out.length / (N * C)], data: Float64Array.from(out) };
}

test('packLevels: every window inside the canvas, one zero row/column between any two', () => {
  assert.equal([height, width], [5 + 1 + 3, 7]);
  const near = (w: (typeof windows)[number], y: number, x: number): boolean => y >= w.top - 1 && y <= w.top + w.height && x >= w.left - 1 && x <= w.left + w.width;
  windows.forEach((w, i) => {
    assert.ok(w.top + w.height <= height && w.left + w.width <= width, `window ${i} inside`);
    // No pixel of another window within one pixel of this one.
    windows.forEach((o, j) => {
      if (j === i) return;
      for (let y = o.top; y < o.top + o.height; y++) for (let x = o.left; x < o.left + o.width; x++) assert.not.ok(near(w, y, x), `window ${j} touches window ${i}`);
    });
  });
});

test('tile2d: maps placed on a zero canvas; gradient = each window of the canvas gradient', async () => {
  const maps = SIZES.map(([h, w], i) => ref([N, C, h, w], 1 + i));
  await checkOp({ name: 'tile2d', inputs: maps, gpu: (xs) => F.tile2d(xs, windows, height, width), ref: tileReference });
});

test('flattenWindows: windows flattened and joined; gradient back into the canvas, zero in the gaps', async () => {
  const canvas = ref([N, C, height, width], 7);
  await checkOp({ name: 'flattenWindows', inputs: [canvas], gpu: ([x]) => F.flattenWindows(x!, windows), ref: ([x]) => flattenReference(x!) });
  // Through a permuted (strided) output gradient too, as the RPN reads it.
  await checkOp({
    name: 'flattenWindows, permuted',
    inputs: [canvas],
    gpu: ([x]) => F.permute(F.flattenWindows(x!, windows), [0, 2, 1]),
    ref: ([x]) => {
      const f = flattenReference(x!);
      const P = f.shape[2]!;
      const data = new Float64Array(f.data.length);
      for (let n = 0; n < N; n++) for (let c = 0; c < C; c++) for (let p = 0; p < P; p++) data[(n * P + p) * C + c] = f.data[(n * C + c) * P + p]!;
      return { shape: [N, P, C], data };
    },
  });
});

test('clear errors: a map that does not fit its window, a window outside the canvas', () => {
  assert.throws(() => F.tile2d([F.zeros([N, C, 5, 6])], [windows[0]!], height, width), /tile2d: map 0 float32\[2,3,5,6\] does not fit window 5x7/);
  assert.throws(() => F.flattenWindows(F.zeros([N, C, 4, 4]), [{ top: 2, left: 0, height: 3, width: 2 }]), /flatten_windows: window 0 \(top 2, left 0, 3x2\) lies outside the 4x4 canvas/);
});

test.run();
