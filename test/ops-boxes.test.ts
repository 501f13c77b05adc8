// Box ops vs torchvision's definitions: box_iou, BoxCoder encode/decode (weights (10,10,5,5), dw/dh
// clamped at log(1000/16)), clip_boxes_to_image, remove_small_boxes. Known answers by hand, then
// GPU vs float64 references on odd sizes (tolerance 1e-5 relative + 1e-5 absolute: float32 math).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { assertClose } from './helpers/check.js';
import * as F from '../engine/index.js';
import { boxes64, BBOX_XFORM_CLIP } from '../kernels/box-math.js';
import { Rng } from '../engine/random.js';

await ready;

const TOL = { atol: 1e-5, rtol: 1e-5 };

function randomBoxes(n: number, seed: number, span = 50, lo = 0.5, hi = 30): number[][] {
  const rng = new Rng(seed);
  return Array.from({ length: n }, () => {
    const x = Math.fround(-10 + span * rng.uniform()), y = Math.fround(-10 + span * rng.uniform());
    return [x, y, Math.fround(x + lo + (hi - lo) * rng.uniform()), Math.fround(y + lo + (hi - lo) * rng.uniform())];
  });
}

test('box_iou: known answers, NaN for two zero-area boxes, random [7,4] x [13,4] vs reference', async () => {
  // [0,2]^2 and [1,3]^2: intersection 1, union 7.
  const got = await F.boxIou(F.tensor([[0, 0, 2, 2], [1, 1, 1, 1]]), F.tensor([[1, 1, 3, 3], [5, 5, 6, 6], [1, 1, 1, 1]])).data();
  assertClose(Array.from(got).slice(0, 5), [1 / 7, 0, 0, 0, 0], TOL, 'known');
  assert.ok(Number.isNaN(got[5]), `zero-area pair gives NaN, got ${got[5]}`);
  const a = randomBoxes(7, 1), b = randomBoxes(13, 2);
  assertClose(await F.boxIou(F.tensor(a), F.tensor(b)).data(), boxes64.boxIou(a.flat(), b.flat()), TOL, 'random');
  assert.equal(F.boxIou(F.zeros([0, 4]), F.tensor(b)).shape, [0, 13]);
  assertClose(await F.boxArea(F.tensor(a)).data(), a.map((r) => (r[2]! - r[0]!) * (r[3]! - r[1]!)), TOL, 'box_area');
  assert.throws(() => F.boxIou(F.zeros([3, 5]), F.zeros([2, 4])), /box_iou: boxes1 must be float32 \[N,4\], got float32\[3,5\]/);
});

test('encode/decode: known answers from the BoxCoder formulas, the dw clamp, round trip', async () => {
  // proposal [0,0,10,10] (centre 5,5, size 10), gt [1,2,11,12] (centre 6,7, size 10):
  // dx = 10 * 1/10, dy = 10 * 2/10, dw = dh = 5 * log(1) = 0.
  const p = F.tensor([[0, 0, 10, 10], [0, 0, 4, 2]]);
  const gt = F.tensor([[1, 2, 11, 12], [0, 0, 8, 1]]);
  // Second: centre (2,1) -> (4, 0.5), widths 4 -> 8, heights 2 -> 1.
  const w = [10, 10, 5, 5] as const; // torchvision's box head
  assertClose(await F.encodeBoxes(gt, p, w).data(), [1, 2, 0, 0, 10 * 2 / 4, 10 * -0.5 / 2, 5 * Math.log(2), 5 * Math.log(0.5)], TOL, 'encode');
  assertClose(await F.decodeBoxes(F.encodeBoxes(gt, p, w), p, w).data(), [1, 2, 11, 12, 0, 0, 8, 1], TOL, 'round trip');
  // dw = 100 is clamped to log(1000/16): width 2 * 62.5 = 125 about centre 1.
  const clamped = await F.decodeBoxes(F.tensor([[0, 0, 100, 0]]), F.tensor([[0, 0, 2, 2]]), [1, 1, 1, 1]).data();
  assertClose(clamped, [1 - 62.5, 0, 1 + 62.5, 2], TOL, 'clamp');
  assert.ok(Math.abs(BBOX_XFORM_CLIP - Math.log(62.5)) < 1e-15);
});

test('encode/decode: random boxes, 3 classes per row, vs float64 reference', async () => {
  const props = randomBoxes(11, 3), gts = randomBoxes(11, 4);
  const w = [10, 10, 5, 5] as const;
  assertClose(await F.encodeBoxes(F.tensor(gts), F.tensor(props), w).data(), boxes64.encodeBoxes(gts.flat(), props.flat(), w), { atol: 1e-4, rtol: 1e-5 }, 'encode');
  const rng = new Rng(5);
  const codes = Array.from({ length: 11 }, () => Array.from({ length: 12 }, () => Math.fround(-30 + 60 * rng.uniform())));
  const want = boxes64.decodeBoxes(codes.flat(), props.flat(), w, 3);
  assertClose(await F.decodeBoxes(F.tensor(codes), F.tensor(props), w).data(), want, { atol: 1e-3, rtol: 1e-5 }, 'decode');
  assert.equal(F.decodeBoxes(F.zeros([0, 8]), F.zeros([0, 4]), w).shape, [0, 8]);
  assert.throws(() => F.decodeBoxes(F.zeros([3, 6]), F.zeros([3, 4]), w), /decode_boxes: rel_codes must be float32 \[N,4C\]/);
});

test('clip_boxes_to_image and remove_small_boxes', async () => {
  const boxes = [[-3, -1, 5, 9], [2, 3, 12, 4], [1, 1, 1.5, 8], [0, 0, 7, 7]];
  // image height 6, width 10: x in [0, 10], y in [0, 6].
  assertClose(await F.clipBoxesToImage(F.tensor(boxes), [6, 10]).data(), [0, 0, 5, 6, 2, 3, 10, 4, 1, 1, 1.5, 6, 0, 0, 7, 6], { atol: 0, rtol: 0 }, 'clip');
  const r = randomBoxes(9, 6);
  assertClose(await F.clipBoxesToImage(F.tensor(r), [13, 7]).data(), boxes64.clipBoxes(Float64Array.from(r.flat()), 13, 7), { atol: 0, rtol: 0 }, 'clip random');
  // widths 8, 10, 0.5, 7; heights 10, 1, 7, 7: min size 1 drops the third (width 0.5); size exactly 1 is kept.
  assert.equal(Array.from(await (await F.removeSmallBoxes(F.tensor(boxes), 1)).data()), [0, 1, 3]);
  assert.equal(boxes64.keepLargeBoxes(boxes.flat(), 1), [0, 1, 3]);
  assert.equal(Array.from(await (await F.removeSmallBoxes(F.tensor(r), 10)).data()), boxes64.keepLargeBoxes(r.flat(), 10));
  assert.equal((await F.removeSmallBoxes(F.zeros([0, 4]), 1)).shape, [0]);
});

test.run();
