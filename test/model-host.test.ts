// Host-side detection glue: box arithmetic and NMS in float32 (kernels/box-math.ts's boxes32),
// matcher and sampler, on cases worked by hand from torchvision's definitions.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { boxes32, argsortDesc, topKDesc, BBOX_XFORM_CLIP } from '../kernels/box-math.js';
import { matchPredictions, labelsFromMatches, sampleBalanced, BELOW_LOW_THRESHOLD, BETWEEN_THRESHOLDS } from '../model/matcher.js';
import { Rng } from '../engine/random.js';

const B = (...v: number[]): Float32Array => Float32Array.from(v);
const W = [10, 10, 5, 5] as const;
const { boxIou, encodeBoxes, decodeBoxes, nms, batchedNms, keepLargeBoxes, clipBoxes } = boxes32;

test('box IoU: overlap 1 of union 7; disjoint 0; identical 1', () => {
  const iou = boxIou(B(0, 0, 2, 2), B(1, 1, 3, 3, 5, 5, 6, 6, 0, 0, 2, 2));
  assert.equal(Array.from(iou), [Math.fround(1 / 7), 0, 1]);
});

test('box coder: encode known values, decode inverts, dw clamped at log(1000/16)', () => {
  const t = encodeBoxes(B(5, 5, 15, 25), B(0, 0, 10, 10), W);
  // centres (10, 15) vs (5, 5); sizes (10, 20) vs (10, 10)
  assert.equal(Array.from(t), [5, 10, 0, 5 * Math.log(2)].map(Math.fround));
  const back = decodeBoxes(t, B(0, 0, 10, 10), W);
  Array.from(back).forEach((v, i) => assert.ok(Math.abs(v - [5, 5, 15, 25][i]!) < 1e-4));
  const big = decodeBoxes(B(0, 0, 100, 0), B(0, 0, 10, 10), W);
  const w = Math.exp(BBOX_XFORM_CLIP) * 10;
  assert.ok(Math.abs(big[2]! - big[0]! - w) < 1e-3);
});

test('nms: IoU exactly at the threshold is kept; ties keep the lower index first', () => {
  // IoU([0,0,1,1],[0,0,1,2]) = 1/2.
  assert.equal(nms(B(0, 0, 1, 1, 0, 0, 1, 2), [0.9, 0.8], 0.5), [0, 1]);
  assert.equal(nms(B(0, 0, 1, 1, 0, 0, 1, 2), [0.9, 0.8], 0.49), [0]);
  assert.equal(nms(B(0, 0, 1, 1, 0, 0, 1, 1, 5, 5, 6, 6), [0.5, 0.5, 0.7], 0.5), [2, 0]);
  // zero-area boxes have IoU 0 (0/0 is NaN, never > threshold) and are all kept
  assert.equal(nms(B(1, 1, 1, 1, 1, 1, 1, 1), [0.2, 0.1], 0.5), [0, 1]);
});

test('batched nms: groups never suppress each other; result by descending score', () => {
  const boxes = B(0, 0, 1, 1, 0, 0, 1, 1, 0, 0, 1, 1);
  assert.equal(batchedNms(boxes, [0.3, 0.9, 0.5], [0, 1, 0], 0.5), [1, 2]);
});

test('topKDesc is the first k of argsortDesc over the range (ties, odd sizes, k >= count, NaN)', () => {
  const rng = new Rng(7);
  for (let trial = 0; trial < 40; trial++) {
    const n = 1 + Math.floor(rng.uniform(0, 3000));
    // Quantised scores: many ties, so the tie order (ascending index) is exercised.
    const scores = Float32Array.from({ length: n }, () => Math.round(rng.uniform(-4, 4) * 8) / 8);
    const start = Math.floor(rng.uniform(0, n));
    const count = Math.floor(rng.uniform(0, n - start + 1));
    const k = Math.floor(rng.uniform(0, count * 1.2 + 2));
    const idx = Array.from({ length: count }, (_, i) => start + i);
    assert.equal(topKDesc(scores, start, count, k), argsortDesc(scores, idx).slice(0, k), `trial ${trial}: n ${n} start ${start} count ${count} k ${k}`);
  }
  const withNaN = Float32Array.from([0.5, NaN, 0.7, 0.1, NaN, 0.9]);
  assert.equal(argsortDesc(withNaN), [1, 4, 5, 2, 0, 3]);
  for (let k = 0; k <= 6; k++) assert.equal(topKDesc(withNaN, 0, 6, k), argsortDesc(withNaN).slice(0, k), `NaN case, k ${k}`);
  assert.equal(topKDesc(Float32Array.from([0, -0, 0]), 0, 3, 2), [0, 1]);
});

test('nms equals a plain greedy NMS on random overlapping boxes (thresholds 0, 0.3, 0.7, 1)', () => {
  // The textbook loop over the original arrays, as torchvision's CPU kernel runs it.
  const naive = (boxes: Float32Array, scores: Float32Array, thr: number): number[] => {
    const f = Math.fround;
    const order = argsortDesc(scores);
    const removed = new Uint8Array(scores.length);
    const keep: number[] = [];
    const area = (i: number): number => f(f(boxes[4 * i + 2]! - boxes[4 * i]!) * f(boxes[4 * i + 3]! - boxes[4 * i + 1]!));
    for (let a = 0; a < order.length; a++) {
      const i = order[a]!;
      if (removed[i]) continue;
      keep.push(i);
      for (let b = a + 1; b < order.length; b++) {
        const j = order[b]!;
        const w = Math.max(f(Math.min(boxes[4 * i + 2]!, boxes[4 * j + 2]!) - Math.max(boxes[4 * i]!, boxes[4 * j]!)), 0);
        const h = Math.max(f(Math.min(boxes[4 * i + 3]!, boxes[4 * j + 3]!) - Math.max(boxes[4 * i + 1]!, boxes[4 * j + 1]!)), 0);
        const inter = f(w * h);
        if (f(inter / f(f(area(i) + area(j)) - inter)) > thr) removed[j] = 1;
      }
    }
    return keep;
  };
  const rng = new Rng(11);
  for (const n of [1, 2, 37, 301, 1000]) {
    const boxes = new Float32Array(4 * n);
    for (let i = 0; i < n; i++) {
      const x = rng.uniform(0, 100), y = rng.uniform(0, 100);
      // Some boxes are empty (zero width or height), like clipped proposals.
      const w = rng.uniform(0, 1) < 0.05 ? 0 : rng.uniform(1, 40), h = rng.uniform(1, 40);
      boxes.set([x, y, x + w, y + h], 4 * i);
    }
    const scores = Float32Array.from({ length: n }, () => Math.round(rng.uniform(0, 1) * 50) / 50);
    for (const thr of [0, 0.3, 0.7, 1]) assert.equal(nms(boxes, scores, thr), naive(boxes, scores, thr), `n ${n} threshold ${thr}`);
  }
});

test('clip and small-box removal', () => {
  const b = clipBoxes(B(-5, -5, 50, 50, 3, 3, 3.0005, 9), 20, 30);
  assert.equal(Array.from(b), [0, 0, 30, 20, 3, 3, Math.fround(3.0005), 9]);
  assert.equal(keepLargeBoxes(b, 1e-3), [0]);
});

test('matcher: thresholds, ties to the lowest gt, low-quality restoration (torchvision and detectron2)', () => {
  // G=2 gts x P=4 predictions
  const iou = B(
    0.8, 0.5, 0.1, 0.0,
    0.8, 0.6, 0.2, 0.0,
  );
  const strict = matchPredictions(iou, 2, 4, { high: 0.7, low: 0.3, allowLowQualityMatches: false });
  assert.equal(Array.from(strict), [0, BETWEEN_THRESHOLDS, BELOW_LOW_THRESHOLD, BELOW_LOW_THRESHOLD]);
  // gt 1's best is 0.8 at p0 (already matched); gt 0's best also p0: nothing new restored.
  const lq = matchPredictions(B(0.2, 0.5, 0.0, 0.0, 0.1, 0.1, 0.0, 0.0), 2, 4, { high: 0.7, low: 0.3, allowLowQualityMatches: true });
  // gt0 best 0.5 at p1 -> restored to its argmax (gt0); gt1 best 0.1 at p0 and p1 (ties): p0 restored to its argmax gt0
  assert.equal(Array.from(lq), [0, 0, BELOW_LOW_THRESHOLD, BELOW_LOW_THRESHOLD]);
  const zero = B(0.0, 0.0, 0.9, 0.0);
  // gt0 overlaps nothing: torchvision restores every prediction tied at IoU 0 to its own argmax.
  assert.equal(Array.from(matchPredictions(zero, 2, 2, { high: 0.7, low: 0.3, allowLowQualityMatches: true })), [1, 0]);
  assert.equal(Array.from(matchPredictions(zero, 2, 2, { high: 0.7, low: 0.3, allowLowQualityMatches: true, style: 'detectron2' })), [1, BELOW_LOW_THRESHOLD]);
  assert.equal(Array.from(labelsFromMatches(Int32Array.from([1, -1, -2]), [0, 7])), [7, 0, -1]);
  assert.throws(() => matchPredictions(new Float32Array(0), 0, 5, { high: 0.7, low: 0.3, allowLowQualityMatches: true }), /no ground-truth/);
});

test('balanced sampler: fraction of positives, fills with negatives, seeded', () => {
  const labels = Int32Array.from({ length: 100 }, (_, i) => (i < 10 ? 1 : i < 90 ? 0 : -1));
  const s = sampleBalanced(labels, 16, 0.25, new Rng(1));
  assert.is(s.positive.length, 4);
  assert.is(s.negative.length, 12);
  assert.ok(s.positive.every((i) => i < 10) && s.negative.every((i) => i >= 10 && i < 90));
  assert.equal(sampleBalanced(labels, 16, 0.25, new Rng(1)), s);
  const all = sampleBalanced(labels, 1e9, 0.5, new Rng(1));
  assert.is(all.positive.length + all.negative.length, 90);
});

test.run();
