// COCOeval edge cases with expected numbers worked out by hand from pycocotools' definitions
// (101-point interpolated precision, greedy matching, crowd rule, inclusive area ranges, maxDets).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cocoEvaluate, COCOeval, prepareResults } from '../data/cocoeval/index.js';
import type { CocoResult } from '../data/coco-json.js';

type Box = [number, number, number, number];
interface G { img: number; box: Box; cat?: number; crowd?: number; area?: number }

function makeGt(anns: G[], imgIds: number[], size = 200, cats = [1, 2]) {
  return {
    images: imgIds.map((id) => ({ id, width: size, height: size, file_name: `${id}.jpg` })),
    categories: cats.map((id) => ({ id, name: `c${id}` })),
    annotations: anns.map((a, i) => ({
      id: i + 1, image_id: a.img, category_id: a.cat ?? 1, bbox: a.box, area: a.area ?? a.box[2] * a.box[3],
      iscrowd: a.crowd ?? 0,
      segmentation: [[a.box[0], a.box[1], a.box[0] + a.box[2], a.box[1], a.box[0] + a.box[2], a.box[1] + a.box[3], a.box[0], a.box[1] + a.box[3]]],
    })),
  };
}
const det = (img: number, box: Box, score: number, cat = 1): CocoResult => ({ image_id: img, category_id: cat, bbox: box, score });

function close(got: number[], want: number[], msg = '') {
  assert.is(got.length, want.length);
  for (let i = 0; i < want.length; i++) {
    assert.ok(Math.abs(got[i] - want[i]) <= 1e-12, `${msg} stat ${i}: got ${got[i]}, want ${want[i]}`);
  }
}
const N = -1;

test('a perfect detection: 1 where there is gt, -1 elsewhere', () => {
  const E = cocoEvaluate(makeGt([{ img: 1, box: [0, 0, 10, 10] }], [1]), [det(1, [0, 0, 10, 10], 0.9)], 'bbox');
  close(E.stats, [1, 1, 1, 1, N, N, 1, 1, 1, 1, N, N]);
});

test('ties in score keep file order within an image (stable mergesort)', () => {
  const gt = makeGt([{ img: 1, box: [0, 0, 10, 10] }, { img: 1, box: [20, 20, 10, 10] }], [1]);
  // equal scores: the false positive is listed first -> ranks FP, TP: recall 0 then 0.5,
  // precision envelope 0.5 up to recall 0.5 -> AP = 0.5 * 51 / 101
  const fpFirst = cocoEvaluate(gt, [det(1, [40, 0, 5, 5], 0.5), det(1, [20, 20, 10, 10], 0.5)], 'bbox');
  close(fpFirst.stats, [25.5 / 101, 25.5 / 101, 25.5 / 101, 25.5 / 101, N, N, 0, 0.5, 0.5, 0.5, N, N]);
  // listed the other way: TP first -> precision 1 up to recall 0.5 -> AP = 51 / 101, AR1 = 0.5
  const tpFirst = cocoEvaluate(gt, [det(1, [20, 20, 10, 10], 0.5), det(1, [40, 0, 5, 5], 0.5)], 'bbox');
  close(tpFirst.stats, [51 / 101, 51 / 101, 51 / 101, 51 / 101, N, N, 0.5, 0.5, 0.5, 0.5, N, N]);
});

test('ties across images follow image id order, not file order', () => {
  const gt = makeGt([{ img: 1, box: [0, 0, 10, 10] }, { img: 2, box: [0, 0, 10, 10] }], [1, 2]);
  // image 2's false positive comes first in the file, but image 1's TP sorts first -> 51/101
  const E = cocoEvaluate(gt, [det(2, [50, 50, 10, 10], 0.7), det(1, [0, 0, 10, 10], 0.7)], 'bbox');
  close(E.stats.slice(0, 3), [51 / 101, 51 / 101, 51 / 101]);
});

test('crowd gt: detections inside it are ignored (IoU over the detection area)', () => {
  const gt = makeGt([{ img: 1, box: [0, 0, 10, 10] }, { img: 1, box: [20, 0, 20, 20], crowd: 1 }], [1]);
  // two high-scoring detections inside the crowd region (plain IoU 25/400 and 16/400, crowd IoU 1)
  const dts = [det(1, [25, 5, 5, 5], 0.95), det(1, [22, 2, 4, 4], 0.9), det(1, [0, 0, 10, 10], 0.8)];
  const E = cocoEvaluate(gt, dts, 'bbox');
  // AR1: the top detection of the image is an ignored one, so nothing is recalled with 1 det
  close(E.stats, [1, 1, 1, 1, N, N, 0, 1, 1, 1, N, N]);
  // without iscrowd they would be false positives ahead of the TP: precision 1/3 at recall 1/2
  const gt2 = makeGt([{ img: 1, box: [0, 0, 10, 10] }, { img: 1, box: [20, 0, 20, 20] }], [1]);
  const E2 = cocoEvaluate(gt2, dts, 'bbox');
  assert.ok(Math.abs(E2.stats[1] - (1 / 3) * 51 / 101) <= 1e-12, `AP50 ${E2.stats[1]}`);
});

test('a detection half outside a crowd region matches it only at IoU 0.5', () => {
  const gt = makeGt([{ img: 1, box: [0, 100, 10, 10] }, { img: 1, box: [20, 0, 20, 20], crowd: 1 }], [1]);
  // crowd IoU = 100 / 200 = 0.5: ignored at t = 0.5, a false positive (ahead of the TP) above
  const E = cocoEvaluate(gt, [det(1, [30, 0, 20, 10], 0.9), det(1, [0, 100, 10, 10], 0.8)], 'bbox');
  // t = 0.5: AP 1; t >= 0.55: TP at rank 2 -> precision 1/2 everywhere (rc = [0, 1])
  close([E.stats[1], E.stats[2], E.stats[0]], [1, 0.5, (1 + 9 * 0.5) / 10]);
});

test('areas of exactly 32^2 and 96^2 fall in both neighbouring ranges', () => {
  const gt = makeGt([
    { img: 1, box: [0, 0, 32, 32] }, // area 1024: small and medium
    { img: 2, box: [0, 0, 96, 96] }, // area 9216: medium and large
  ], [1, 2, 3]);
  const E = cocoEvaluate(gt, [
    det(3, [0, 0, 32, 32], 0.99), // unmatched, area 1024: FP for small / medium / all, ignored for large
    det(1, [0, 0, 32, 32], 0.9),
    det(2, [0, 0, 96, 96], 0.8),
  ], 'bbox');
  // all / medium: FP, TP, TP -> precision envelope 2/3; small: FP, TP (image 2's det matches an
  // ignored gt) -> 1/2; large: only image 2's TP counts -> 1
  close(E.stats, [2 / 3, 2 / 3, 2 / 3, 0.5, 2 / 3, 1, 1, 1, 1, 1, 1, 1]);
});

test('more than 100 detections: only the top 100 per image are kept', () => {
  const gt = makeGt([{ img: 1, box: [0, 0, 10, 10] }], [1]);
  const fps = (n: number) => Array.from({ length: n }, (_, i) => det(1, [100 + (i % 50), 100 + Math.floor(i / 50), 1, 1], 0.9 - i * 1e-3));
  // TP at rank 100: precision 1/100 at recall 1
  const at100 = cocoEvaluate(gt, [...fps(99), det(1, [0, 0, 10, 10], 0.5), ...fps(50).map((d) => ({ ...d, score: 0.1 }))], 'bbox');
  close(at100.stats, [0.01, 0.01, 0.01, 0.01, N, N, 0, 0, 1, 1, N, N]);
  // TP at rank 101: dropped -> AP 0, AR 0
  const at101 = cocoEvaluate(gt, [...fps(100), det(1, [0, 0, 10, 10], 0.5), ...fps(50).map((d) => ({ ...d, score: 0.1 }))], 'bbox');
  close(at101.stats, [0, 0, 0, 0, N, N, 0, 0, 0, 0, N, N]);
});

test('empty categories and images do not count; detections of a category without gt do not count', () => {
  const gt = makeGt([{ img: 1, box: [0, 0, 10, 10] }], [1, 2, 3], 200, [1, 2, 3]);
  const E = cocoEvaluate(gt, [det(1, [0, 0, 10, 10], 0.9), det(2, [5, 5, 10, 10], 0.99, 2), det(3, [0, 0, 5, 5], 0.3, 2)], 'bbox');
  close(E.stats, [1, 1, 1, 1, N, N, 1, 1, 1, 1, N, N]);
  const [, R, K, A, M] = E.eval!.counts;
  // category 2 (slot 1) has no gt: precision -1 everywhere
  for (let r = 0; r < R; r++) assert.is(E.eval!.precision[((r * K + 1) * A + 0) * M + 2], -1);
  const rows = E.perCategory();
  close(rows.map((r) => r.ap), [1, -1, -1]); // 1 is 1/(1+eps) in pycocotools' precision
});

test('empty results: 0 where there is gt', () => {
  const gt = makeGt([{ img: 1, box: [0, 0, 10, 10] }, { img: 1, box: [0, 0, 50, 50] }], [1]);
  close(cocoEvaluate(gt, [], 'bbox').stats, [0, 0, 0, 0, 0, N, 0, 0, 0, 0, 0, N]);
  close(cocoEvaluate(gt, [], 'segm').stats, [0, 0, 0, 0, 0, N, 0, 0, 0, 0, 0, N]);
});

test('useCats = false matches across categories; imgIds restricts the images', () => {
  const gt = makeGt([{ img: 1, box: [0, 0, 10, 10], cat: 1 }, { img: 2, box: [0, 0, 10, 10], cat: 1 }], [1, 2]);
  const dts = [det(1, [0, 0, 10, 10], 0.9, 2)];
  close(cocoEvaluate(gt, dts, 'bbox').stats.slice(0, 1), [0]);
  const E = cocoEvaluate(gt, dts, 'bbox', (p) => { p.useCats = false; });
  // one of two gts found, at rank 1 -> precision 1 up to recall 0.5
  close(E.stats.slice(0, 1), [51 / 101]);
  const E2 = cocoEvaluate(gt, dts, 'bbox', (p) => { p.useCats = false; p.imgIds = [1]; });
  close(E2.stats.slice(0, 1), [1]);
});

test('segm: polygon gt vs RLE detections, mask area decides the area range', () => {
  // gt: the 32x32 square polygon -> pixels 0..31 (area by the json field: 1024)
  const gt = makeGt([{ img: 1, box: [0, 0, 32, 32] }], [1], 64);
  // a detection covering columns 0..31 rows 0..15: IoU 0.5; as uncompressed column-major RLE
  const counts: number[] = [];
  for (let x = 0; x < 32; x++) counts.push(x === 0 ? 0 : 48, 16);
  counts.push(64 * 64 - 31 * 64 - 16);
  const E = new COCOeval(gt, [{ image_id: 1, category_id: 1, score: 1, segmentation: { size: [64, 64], counts } }], 'segm');
  assert.is(E.dt.area[0], 512);
  assert.equal(Array.from(E.dt.bbox), [0, 0, 32, 16]);
  E.evaluate(); E.accumulate(); E.summarize();
  close([E.stats[1], E.stats[2]], [1, 0]);
});

test('loadRes: ids 1..N, box area w*h, boxes turned into polygons for segm', () => {
  const gt = makeGt([{ img: 1, box: [0, 0, 10, 10] }], [1]);
  const E = new COCOeval(gt, [det(1, [1, 2, 3, 4], 0.5), det(1, [0, 0, 10, 10], 0.4)], 'segm');
  const dt = E.dt;
  assert.equal(Array.from(dt.id), [1, 2]);
  assert.equal(Array.from(dt.area), [12, 100]);
  assert.equal(dt.segm[0], [[1, 2, 1, 6, 4, 6, 4, 2]]);
  E.evaluate(); E.accumulate(); E.summarize();
  // the small box (IoU 12/100) ranks first as a FP, then the TP: precision 1/2 at every threshold
  close([E.stats[0]], [0.5]);
});

test('validation names the record and field', () => {
  const gt = makeGt([{ img: 1, box: [0, 0, 10, 10] }], [1]);
  const g = new COCOeval(gt, [], 'bbox').gt;
  assert.throws(() => prepareResults([det(1, [0, 0, 1, 1], 0.5), det(1, [0, 0, 1, 1], NaN)], g), /results\[1\]\.score is NaN/);
  assert.throws(() => prepareResults([det(1, [0, 0, 1, 1], 0.5), { image_id: 1, category_id: 1, score: 1 }], g), /results\[1\]\.bbox is missing/);
  assert.throws(() => prepareResults([det(7, [0, 0, 1, 1], 0.5)], g), /results\[0\]\.image_id 7 is not an image/);
  assert.throws(() => prepareResults({}, g), /results must be an array/);
  const bad = makeGt([{ img: 1, box: [0, 0, 10, 10] }], [1]);
  (bad.annotations[0] as Record<string, unknown>).area = 'x';
  assert.throws(() => new COCOeval(bad, [], 'bbox'), /annotations\[0\]\.area must be a number/);
});

test.run();
