// RLE core (data/rle.ts) against hand-computed answers, and string round trips on real RLEs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import {
  bboxIou, bboxNms, rleArea, rleDecode, rleDecodeRowMajor, rleEncode, rleEncodeRowMajor, rleFrString,
  rleFrUncompressed, rleFromJson, rleInvert, rleIouPair, rleStringStats, rleIou, rleMerge, rleToBbox, rleToCompressed, rleToString, type RLE,
} from '../data/rle.js';

const arr = (c: Uint32Array) => Array.from(c);
const rle = (h: number, w: number, counts: number[]): RLE => ({ h, w, counts: Uint32Array.from(counts) });

test('encode is column-major and starts with a (possibly empty) run of zeros', () => {
  // h=2, w=3; columns: [0,1], [1,1], [0,0]
  const colMajor = [0, 1, 1, 1, 0, 0];
  assert.equal(arr(rleEncode(colMajor, 2, 3).counts), [1, 3, 2]);
  assert.equal(arr(rleEncode([1, 1, 1, 1], 2, 2).counts), [0, 4]);
  assert.equal(arr(rleEncode([0, 0, 0, 0], 2, 2).counts), [4]);
  // the same mask given row-major: row 0 = [0,1,0], row 1 = [1,1,0]
  assert.equal(arr(rleEncodeRowMajor([0, 1, 0, 1, 1, 0], 2, 3).counts), [1, 3, 2]);
});

test('decode inverts encode (column- and row-major)', () => {
  const R = rle(2, 3, [1, 3, 2]);
  assert.equal(Array.from(rleDecode(R)), [0, 1, 1, 1, 0, 0]);
  assert.equal(Array.from(rleDecodeRowMajor(R)), [0, 1, 0, 1, 1, 0]);
  const m = new Uint8Array(7 * 5);
  for (let i = 0; i < m.length; i++) m[i] = (i * 7919) % 5 < 2 ? 1 : 0;
  assert.equal(Array.from(rleDecode(rleEncode(m, 7, 5))), Array.from(m));
});

test('area and toBbox', () => {
  const R = rle(2, 3, [1, 3, 2]); // pixels (x0,y1) (x1,y0) (x1,y1)
  assert.is(rleArea(R), 3);
  assert.equal(rleToBbox(R), [0, 0, 2, 2]);
  // a run wrapping from the bottom of column 0 to the top of column 1: full height box
  assert.equal(rleToBbox(rle(3, 2, [2, 2, 2])), [0, 0, 2, 3]);
  assert.equal(rleToBbox(rle(3, 2, [6])), [0, 0, 0, 0]);
  assert.is(rleArea(rle(3, 2, [6])), 0);
  assert.equal(rleToBbox(rle(4, 4, [5, 2, 9])), [1, 1, 1, 2]);
});

test('merge: union and intersection', () => {
  const A = rle(4, 1, [1, 2, 1]); // [0,1,1,0]
  const B = rle(4, 1, [2, 2]); // [0,0,1,1]
  assert.equal(arr(rleMerge([A, B]).counts), [1, 3]);
  assert.equal(arr(rleMerge([A, B], true).counts), [2, 1, 1]);
  assert.equal(arr(rleMerge([A]).counts), [1, 2, 1]);
  const C = rle(2, 2, [4]);
  const bad = rleMerge([A, C]);
  assert.is(bad.h, 0); assert.is(bad.counts.length, 0);
  assert.equal(arr(rleInvert(A).counts), [0, 1, 2, 1]);
  assert.equal(arr(rleInvert(rle(4, 1, [0, 2, 2])).counts), [2, 2]);
});

test('mask IoU with the crowd rule and size mismatch', () => {
  const A = rle(4, 1, [1, 2, 1]);
  const B = rle(4, 1, [2, 2]);
  // |A n B| = 1, |A u B| = 3
  assert.equal(Array.from(rleIou([A], [B], [0])), [1 / 3]);
  // crowd gt: denominator is the detection's area (2)
  assert.equal(Array.from(rleIou([A], [B], [1])), [1 / 2]);
  // disjoint -> 0; different size -> -1 (boxes overlap first)
  const D = rle(4, 1, [0, 1, 3]);
  assert.equal(Array.from(rleIou([D], [B], [0])), [0]);
  const big = rle(5, 1, [1, 2, 2]);
  assert.equal(Array.from(rleIou([big], [A], [0])), [-1]);
  // layout: m x n row-major (d * n + g)
  const o = rleIou([A, D], [A, B, D], [0, 0, 0]);
  assert.equal(Array.from(o), [1, 1 / 3, 0, 0, 0, 1]);
});

test('box IoU with the crowd rule', () => {
  // intersection 1, union 4 + 4 - 1
  assert.equal(Array.from(bboxIou([[0, 0, 2, 2]], [[1, 1, 2, 2]], [0])), [1 / 7]);
  assert.equal(Array.from(bboxIou([[0, 0, 2, 2]], [[1, 1, 2, 2]], [1])), [1 / 4]);
  assert.equal(Array.from(bboxIou([[0, 0, 2, 2]], [[2, 0, 2, 2]], [0])), [0]); // touching edges
  assert.equal(Array.from(bboxIou([[0, 0, 2, 2], [5, 5, 1, 1]], [[0, 0, 2, 2]], null)), [1, 0]);
  assert.equal(Array.from(bboxNms([[0, 0, 10, 10], [1, 0, 10, 10], [20, 20, 5, 5]], 0.5)), [1, 0, 1]);
});

test('compressed strings: hand-encoded examples', () => {
  // 5, 2, 10 plain; 4th count is coded as 1 - 2 = -1 -> 31 -> 'O'
  assert.is(rleToString(rle(9, 2, [5, 2, 10, 1])), '52:O');
  assert.equal(arr(rleFrString('52:O', 9, 2).counts), [5, 2, 10, 1]);
  // 100 = 4 + 3*32 -> 'T' (4|0x20 + 48), '3'
  assert.is(rleToString(rle(10, 10, [100])), 'T3');
  // 16 has bit 4 set, so it needs a continuation: '`0'
  assert.is(rleToString(rle(4, 4, [16])), '`0');
  assert.equal(arr(rleFrString('`0', 4, 4).counts), [16]);
  assert.equal(arr(rleFrString('T3', 10, 10).counts), [100]);
  assert.throws(() => rleFrString('5~', 2, 2), /invalid character/);
});

test('string round trips on random masks and on real COCO results', () => {
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let it = 0; it < 200; it++) {
    const h = 1 + Math.floor(rnd() * 40), w = 1 + Math.floor(rnd() * 40), p = rnd();
    const m = new Uint8Array(h * w);
    for (let i = 0; i < m.length; i++) m[i] = rnd() < p ? 1 : 0;
    const R = rleEncode(m, h, w);
    const str = rleToString(R);
    const back = rleFrString(str, h, w);
    assert.equal(arr(back.counts), arr(R.counts));
    const box = new Float64Array(4);
    assert.is(rleStringStats(str, h, w, box, 0), rleArea(R));
    assert.equal(Array.from(box), rleToBbox(R));
    // odd number of counts (trailing zeros run dropped): toBbox ignores the unpaired last count
    if (R.counts.length > 2) {
      const cut = { h, w, counts: R.counts.slice(0, R.counts.length - 1 - (R.counts.length % 2)) };
      assert.is(rleStringStats(rleToString(cut), h, w, box, 0), rleArea(cut));
      assert.equal(Array.from(box), rleToBbox(cut));
    }
  }
  const res = JSON.parse(readFileSync('../shared/fixtures/cocoeval/val2014_100/results_segm.json', 'utf8')) as
    { segmentation: { size: [number, number]; counts: string } }[];
  for (const r of res) {
    const R = rleFromJson(r.segmentation);
    assert.is(rleToString(R), r.segmentation.counts);
    assert.equal(rleToCompressed(R), r.segmentation);
    const a = R.counts.reduce((s, c) => s + c, 0);
    assert.is(a, R.h * R.w);
    // the one-pass scanner agrees with rleArea / rleToBbox
    const box = new Float64Array(4);
    assert.is(rleStringStats(r.segmentation.counts, R.h, R.w, box, 0), rleArea(R));
    assert.equal(Array.from(box), rleToBbox(R));
  }
});

test('mask IoU equals pixel counting on random masks (plain and crowd)', () => {
  let seed = 777;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let it = 0; it < 300; it++) {
    const h = 1 + Math.floor(rnd() * 20), w = 1 + Math.floor(rnd() * 20);
    const pa = rnd(), pb = rnd();
    const ma = new Uint8Array(h * w), mb = new Uint8Array(h * w);
    let inter = 0, uni = 0, areaA = 0;
    for (let i = 0; i < h * w; i++) {
      ma[i] = rnd() < pa ? 1 : 0; mb[i] = rnd() < pb ? 1 : 0;
      inter += ma[i] & mb[i]; uni += ma[i] | mb[i]; areaA += ma[i];
    }
    const A = rleEncode(ma, h, w), B = rleEncode(mb, h, w);
    assert.is(rleIouPair(A, B, false), inter === 0 ? 0 : inter / uni);
    assert.is(rleIouPair(A, B, true), inter === 0 ? 0 : inter / areaA);
    assert.is(rleIou([A], [B], [0])[0], inter === 0 ? 0 : inter / uni);
  }
});

test('merge equals pixelwise OR / AND on random masks', () => {
  let seed = 4242;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32);
  for (let it = 0; it < 200; it++) {
    const h = 1 + Math.floor(rnd() * 15), w = 1 + Math.floor(rnd() * 15), n = 2 + Math.floor(rnd() * 3);
    const ms = Array.from({ length: n }, () => { const p = rnd(); return Uint8Array.from({ length: h * w }, () => (rnd() < p ? 1 : 0)); });
    const or = new Uint8Array(h * w), and = new Uint8Array(h * w).fill(1);
    for (const m of ms) for (let i = 0; i < h * w; i++) { or[i] |= m[i]; and[i] &= m[i]; }
    const rs = ms.map((m) => rleEncode(m, h, w));
    assert.equal(arr(rleMerge(rs).counts), arr(rleEncode(or, h, w).counts));
    assert.equal(arr(rleMerge(rs, true).counts), arr(rleEncode(and, h, w).counts));
  }
});

test('uncompressed RLE input', () => {
  const R = rleFrUncompressed([2, 3, 1], 3, 2);
  assert.is(rleArea(R), 3);
  assert.equal(rleToBbox(R), [0, 0, 2, 3]);
  assert.equal(arr(rleFromJson({ size: [3, 2], counts: [2, 3, 1] }).counts), [2, 3, 1]);
});

test.run();
