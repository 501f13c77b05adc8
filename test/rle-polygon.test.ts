// Polygon / box rasterisation (data/polygon.ts): known answers traced by hand through maskApi's
// rleFrPoly (x5 upsampling, boundary points per pixel-centre column, ceil of the downsampled y).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { annToMask, annToRLE, frPolygons, rleFrBbox, rleFrPoly } from '../data/polygon.js';
import { rleArea, rleDecodeRowMajor, rleToString } from '../data/rle.js';
import { Rng } from '../engine/random.js';

const rows = (m: Uint8Array, h: number, w: number) => {
  const out: string[] = [];
  for (let y = 0; y < h; y++) out.push(Array.from(m.subarray(y * w, y * w + w)).join(''));
  return out;
};

test('rectangle (1,1)-(4,3) on a 5x6 grid covers x=1..3, y=1..2', () => {
  // boundary points: top edge crosses pixel columns at x=1,2,3 with y=ceil(0.6)=1, bottom edge at
  // y=ceil(2.6)=3: positions x*h+y = 6,11,16 and 8,13,18 -> runs 6,2,3,2,3,2,12
  const R = rleFrPoly([1, 1, 4, 1, 4, 3, 1, 3], 5, 6);
  assert.equal(Array.from(R.counts), [6, 2, 3, 2, 3, 2, 12]);
  assert.equal(rows(rleDecodeRowMajor(R), 5, 6), ['000000', '011100', '011100', '000000', '000000']);
  // the same box as [x, y, w, h]
  assert.equal(Array.from(rleFrBbox([1, 1, 3, 2], 5, 6).counts), [6, 2, 3, 2, 3, 2, 12]);
});

test('triangle (0,0),(4,0),(0,4) on 5x5 covers the pixels with x+y <= 2', () => {
  // top edge: (0,0),(1,0),(2,0),(3,0); hypotenuse: (3,0),(2,1),(1,2),(0,3); the two (3,0) cancel
  const R = rleFrPoly([0, 0, 4, 0, 0, 4], 5, 5);
  assert.equal(Array.from(R.counts), [0, 3, 2, 2, 3, 1, 14]);
  assert.equal(rows(rleDecodeRowMajor(R), 5, 5), ['11100', '11000', '10000', '00000', '00000']);
  assert.is(rleArea(R), 6);
});

test('vertex order and direction do not matter', () => {
  const a = rleFrPoly([1, 1, 4, 1, 4, 3, 1, 3], 5, 6);
  const b = rleFrPoly([1, 3, 4, 3, 4, 1, 1, 1], 5, 6);
  const c = rleFrPoly([4, 3, 1, 3, 1, 1, 4, 1], 5, 6);
  assert.equal(Array.from(b.counts), Array.from(a.counts));
  assert.equal(Array.from(c.counts), Array.from(a.counts));
});

test('clipping to the image and fractional vertices', () => {
  // a box larger than the 3x3 image fills it
  assert.equal(Array.from(rleFrBbox([-5, -5, 20, 20], 3, 3).counts), [0, 9]);
  // a box [0.5, 0.5, 1, 1]: pixel centre (1,1) is inside -> only that pixel
  const R = rleFrBbox([0.5, 0.5, 1, 1], 3, 3);
  assert.equal(rows(rleDecodeRowMajor(R), 3, 3), ['000', '010', '000']);
  // a sliver thinner than a pixel centre spacing draws nothing
  assert.is(rleArea(rleFrPoly([0.1, 0, 0.3, 0, 0.3, 3, 0.1, 3], 3, 3)), 0);
});

test('clipping to the image gives exactly the unclipped mask on random polygons, in range and outside', () => {
  const rng = new Rng(7);
  let compared = 0, clippedEdges = 0;
  for (let trial = 0; trial < 3000; trial++) {
    const h = 1 + Math.floor(rng.uniform() * 40), w = 1 + Math.floor(rng.uniform() * 40);
    // reach: 0 = inside the image, up to 4x its size outside it (moderately outside)
    const reach = [0, 0.5, 1, 4][trial % 4]!;
    const k = 3 + Math.floor(rng.uniform() * 8);
    const xy: number[] = [];
    for (let j = 0; j < k; j++) {
      xy.push((rng.uniform() * (1 + 2 * reach) - reach) * w, (rng.uniform() * (1 + 2 * reach) - reach) * h);
    }
    if (xy.some((c, i) => c < 0 || c > (i % 2 ? h : w))) clippedEdges++;
    const want = rleFrPoly(xy, h, w, { clip: false });
    const got = rleFrPoly(xy, h, w);
    assert.equal(Array.from(got.counts), Array.from(want.counts), `polygon ${JSON.stringify(xy)} on ${h}x${w}`);
    compared++;
  }
  assert.is(compared, 3000);
  assert.ok(clippedEdges > 1500, `${clippedEdges} polygons reach outside the image`);
});

test('a polygon with coordinates of 1e7 rasterises in well under a second', () => {
  const t0 = performance.now();
  const R = rleFrPoly([-1e7, -1e7, 1e7, -1e7, 1e7, 1e7, 20, 30, -1e7, 1e7], 480, 640);
  const ms = performance.now() - t0;
  assert.ok(ms < 1000, `${ms.toFixed(0)} ms`);
  // it covers the image but for the wedge below the inward vertex (20, 30), whose sides have slope
  // 1 to within 1e-5: pixels with y - 30 > |x - 20| (give or take one pixel per row per side).
  // With clip: false the same call traced 1.4e8 boundary points (2 minutes and 1.2 GB).
  let expected = 0;
  for (let y = 0; y < 480; y++) for (let x = 0; x < 640; x++) if (y - 30 <= Math.abs(x - 20)) expected++;
  const area = rleArea(R);
  assert.ok(Math.abs(area - expected) <= 2 * 480, `area ${area}, expected about ${expected}`);
  const small = rleFrPoly([-1e4, -1e4, 1e4, -1e4, 1e4, 1e4, 20, 30, -1e4, 1e4], 48, 64);
  assert.equal(Array.from(small.counts), Array.from(rleFrPoly([-1e4, -1e4, 1e4, -1e4, 1e4, 1e4, 20, 30, -1e4, 1e4], 48, 64, { clip: false }).counts));
});

test('several polygons of one object are merged (union)', () => {
  const segm = [[0, 0, 2, 0, 2, 2, 0, 2], [3, 3, 5, 3, 5, 5, 3, 5], [1, 1, 3, 1, 3, 3, 1, 3]];
  const R = annToRLE(segm, 6, 6);
  // squares x,y in {0,1}, {3,4} and {1,2}; overlap of the first and third at (1,1)
  assert.is(rleArea(R), 4 + 4 + 4 - 1);
  const m = annToMask(segm, 6, 6);
  assert.equal(rows(m, 6, 6), ['110000', '111000', '011000', '000110', '000110', '000000']);
});

test('a list starting with a 4-number entry is read as boxes (frPyObjects)', () => {
  const R = frPolygons([[1, 1, 3, 2]], 5, 6);
  assert.equal(Array.from(R[0].counts), [6, 2, 3, 2, 3, 2, 12]);
  assert.equal(Array.from(annToRLE([[1, 1, 3, 2]], 5, 6).counts), [6, 2, 3, 2, 3, 2, 12]);
});

test('RLE segmentations keep their own size', () => {
  const R = annToRLE({ size: [3, 2], counts: [2, 3, 1] }, 100, 100);
  assert.is(R.h, 3); assert.is(R.w, 2); assert.is(rleArea(R), 3);
  const S = annToRLE({ size: [9, 2], counts: '52:O' }, 1, 1);
  assert.equal(Array.from(S.counts), [5, 2, 10, 1]);
  assert.is(rleToString(S), '52:O');
});

test.run();
