// Polygon and box rasterisation to RLE, bit-exact with maskApi's rleFrPoly / rleFrBbox, and the
// segmentation -> RLE conversion of pycocotools (frPyObjects + merge, COCO.annToRLE).
import {
  rleDecodeRowMajor, rleFrString, rleFrUncompressed, rleMerge,
  type CompressedRLE, type RLE, type UncompressedRLE,
} from './rle.js';

/** A COCO segmentation: polygons (flat [x0, y0, x1, y1, ...] rings) or an RLE object. */
export type Segmentation = number[][] | CompressedRLE | UncompressedRLE;

/**
 * Rasterises one polygon given as flat [x0, y0, x1, y1, ...] (k = floor(len / 2) points) into an
 * h x w mask, exactly as maskApi's rleFrPoly: vertices upsampled x5 and rounded with (int)(v+.5),
 * boundary traced per upsampled column, pixels whose centres lie inside the boundary are set.
 * Edges reaching outside the image are clipped to its columns (same mask; `clip: false` traces
 * every point as maskApi does, for tests).
 */
// scratch buffers reused across calls (typed-array allocation dominates for small polygons)
let bufX = new Int32Array(64), bufY = new Int32Array(64), bufU = new Int32Array(1024), bufV = new Int32Array(1024);
let bufPx = new Int32Array(1024), bufPy = new Int32Array(1024), bufA = new Uint32Array(1024), bufB = new Uint32Array(1024);
const grow = (n: number, have: number) => Math.max(n, have * 2);

export function rleFrPoly(xy: ArrayLike<number>, h: number, w: number, opts: { clip?: boolean } = {}): RLE {
  const k = Math.floor(xy.length / 2);
  const scale = 5;
  if (k + 1 > bufX.length) { bufX = new Int32Array(grow(k + 1, bufX.length)); bufY = new Int32Array(bufX.length); }
  const x = bufX, y = bufY;
  for (let j = 0; j < k; j++) x[j] = Math.trunc(scale * xy[j * 2] + 0.5);
  x[k] = x[0];
  for (let j = 0; j < k; j++) y[j] = Math.trunc(scale * xy[j * 2 + 1] + 0.5);
  y[k] = y[0];
  // Only boundary points in upsampled columns [lo, hi] can make a crossing below (both points of a
  // crossing pair lie in [2, 5(w-1)+3]); with clipping, an edge reaching outside keeps just those,
  // and of each run of equal columns only its first and last point (the only ones a crossing
  // reads). The points kept are the same values in the same order, and a pair that becomes
  // adjacent by dropping points has columns lo and hi, whose crossing falls outside the image: the
  // mask is exactly the unclipped one, at a cost bounded by the image width, not the coordinates.
  const lo = 1, hi = 5 * (w - 1) + 4, span = 2 * (hi - lo + 2);
  const clip = opts.clip ?? true;
  let m = 0;
  for (let j = 0; j < k; j++) {
    const n = Math.max(Math.abs(x[j] - x[j + 1]), Math.abs(y[j] - y[j + 1]));
    m += clip ? Math.min(n + 1, span) : n + 1;
  }
  if (m > bufU.length) {
    const c = grow(m, bufU.length);
    bufU = new Int32Array(c); bufV = new Int32Array(c); bufPx = new Int32Array(c); bufPy = new Int32Array(c);
    bufA = new Uint32Array(c + 1); bufB = new Uint32Array(c + 1);
  }
  const u = bufU, v = bufV;
  m = 0;
  for (let j = 0; j < k; j++) {
    let xs = x[j], xe = x[j + 1], ys = y[j], ye = y[j + 1];
    const dx = Math.abs(xe - xs), dy = Math.abs(ys - ye);
    const flip = (dx >= dy && xs > xe) || (dx < dy && ys > ye);
    if (flip) { let t = xs; xs = xe; xe = t; t = ys; ys = ye; ye = t; }
    const s = dx >= dy ? (ye - ys) / dx : (xe - xs) / dy;
    const n = dx >= dy ? dx : dy;
    const inside = x[j] >= lo && x[j] <= hi && x[j + 1] >= lo && x[j + 1] <= hi && n + 1 <= span;
    if (!clip || inside) {
      if (dx >= dy) {
        for (let d = 0; d <= dx; d++) {
          const t = flip ? dx - d : d;
          u[m] = t + xs; v[m] = Math.trunc(ys + s * t + 0.5); m++; // NaN (a repeated vertex) stores 0 and is never read
        }
      } else {
        for (let d = 0; d <= dy; d++) {
          const t = flip ? dy - d : d;
          v[m] = t + ys; u[m] = Math.trunc(xs + s * t + 0.5); m++;
        }
      }
      continue;
    }
    // The same points as the loops above, as functions of d (columns are monotone in d).
    const xMajor = dx >= dy;
    const colAt = (d: number): number => { const t = flip ? n - d : d; return xMajor ? t + xs : Math.trunc(xs + s * t + 0.5); };
    const rowAt = (d: number): number => { const t = flip ? n - d : d; return xMajor ? Math.trunc(ys + s * t + 0.5) : t + ys; };
    const rising = colAt(n) >= colAt(0);
    let d = firstTrue(0, n, rising ? (q) => colAt(q) >= lo : (q) => colAt(q) <= hi);
    while (d <= n) {
      const c = colAt(d);
      if (c < lo || c > hi) break;
      const e = firstTrue(d, n, (q) => colAt(q) !== c) - 1; // the run of column c ends at e
      u[m] = c; v[m] = rowAt(d); m++;
      if (e > d) { u[m] = c; v[m] = rowAt(e); m++; }
      d = e + 1;
    }
  }
  // points where the upsampled boundary crosses a pixel-centre column, downsampled
  const kk = m;
  const px = bufPx, py = bufPy;
  m = 0;
  for (let j = 1; j < kk; j++) {
    if (u[j] === u[j - 1]) continue;
    // maskApi: xd = (xr + .5) / 5 - .5, kept when it is an integer in [0, w-1]; that is exactly
    // xr = 5 * xd + 2 (the other residues land 0.2 or 0.4 away from an integer)
    const xr = u[j] < u[j - 1] ? u[j] : u[j] - 1;
    if (xr < 2 || xr > 5 * (w - 1) + 2 || xr % 5 !== 2) continue;
    const xd = (xr - 2) / 5;
    let yd = v[j] < v[j - 1] ? v[j] : v[j - 1];
    yd = (yd + 0.5) / scale - 0.5;
    if (yd < 0) yd = 0; else if (yd > h) yd = h;
    yd = Math.ceil(yd);
    px[m] = xd; py[m] = yd; m++;
  }
  // RLE from the sorted boundary positions
  let n = m;
  const a = bufA;
  sortedPositions(px, py, n, h, a);
  a[n++] = h * w;
  let p = 0;
  for (let j = 0; j < n; j++) { const t = a[j]; a[j] -= p; p = t; }
  const b = bufB;
  let j = 0;
  m = 0;
  b[m++] = a[j++];
  while (j < n) {
    if (a[j] > 0) b[m++] = a[j++];
    else { j++; if (j < n) b[m - 1] += a[j++]; }
  }
  return { h, w, counts: b.slice(0, m) };
}

/** The least q in [a, b] where the monotone (false..., true...) pred holds; b + 1 if none. */
function firstTrue(a: number, b: number, pred: (q: number) => boolean): number {
  let l = a, r = b + 1;
  while (l < r) {
    const mid = l + Math.floor((r - l) / 2);
    if (pred(mid)) r = mid; else l = mid + 1;
  }
  return l;
}

let bucket = new Int32Array(1024);

/**
 * a[0..n) = the positions x*h + y of the boundary points in ascending order (maskApi: qsort), by a
 * counting sort on the column then an insertion sort on y within each (tiny) column.
 */
function sortedPositions(px: Int32Array, py: Int32Array, n: number, h: number, a: Uint32Array): void {
  if (n === 0) return;
  let x0 = px[0], x1 = px[0];
  for (let j = 1; j < n; j++) { const x = px[j]; if (x < x0) x0 = x; else if (x > x1) x1 = x; }
  const nb = x1 - x0 + 1;
  if (nb + 1 > bucket.length) bucket = new Int32Array(Math.max(nb + 1, bucket.length * 2));
  const start = bucket;
  start.fill(0, 0, nb + 1);
  for (let j = 0; j < n; j++) start[px[j] - x0 + 1]++;
  for (let b = 0; b < nb; b++) start[b + 1] += start[b];
  for (let j = 0; j < n; j++) a[start[px[j] - x0]++] = px[j] * h + py[j];
  // start[b] is now the end of column b; sort each column's few entries
  let s = 0;
  for (let b = 0; b < nb; b++) {
    const e = start[b];
    for (let i = s + 1; i < e; i++) {
      const v = a[i];
      let j = i - 1;
      while (j >= s && a[j] > v) { a[j + 1] = a[j]; j--; }
      a[j + 1] = v;
    }
    s = e;
  }
}

/** Rasterises a box [x, y, w, h] (maskApi rleFrBbox: the 4-corner polygon through rleFrPoly). */
export function rleFrBbox(bb: ArrayLike<number>, h: number, w: number): RLE {
  const xs = bb[0], xe = xs + bb[2], ys = bb[1], ye = ys + bb[3];
  return rleFrPoly([xs, ys, xs, ye, xe, ye, xe, ys], h, w);
}

/**
 * pycocotools' frPyObjects for a list of polygons: one RLE per polygon. As in _mask.pyx, when the
 * first entry has exactly 4 numbers the whole list is read as boxes [x, y, w, h] (rleFrBbox); a
 * later entry of any length is a polygon of floor(len / 2) points.
 */
export function frPolygons(polys: readonly ArrayLike<number>[], h: number, w: number): RLE[] {
  if (polys.length === 0) return [];
  if (polys[0].length === 4) {
    return polys.map((bb, i) => {
      if (bb.length !== 4) throw new Error(`segmentation[${i}] has ${bb.length} numbers; a list starting with a 4-number entry is read as boxes [x, y, w, h]`);
      return rleFrBbox(bb, h, w);
    });
  }
  return polys.map((p) => rleFrPoly(p, h, w));
}

/**
 * COCO.annToRLE: a segmentation as one RLE. Polygons (several parts merged by union) are
 * rasterised at the image size h x w; RLE objects keep their own `size`.
 */
export function annToRLE(segm: Segmentation, h: number, w: number): RLE {
  if (Array.isArray(segm)) {
    if (segm.length === 0) return { h, w, counts: new Uint32Array([h * w]) }; // nothing drawn
    const parts = frPolygons(segm, h, w);
    return parts.length === 1 ? parts[0] : rleMerge(parts, false);
  }
  if (segm == null || typeof segm !== 'object' || !Array.isArray(segm.size)) {
    throw new Error('segmentation must be a list of polygons or an RLE object {size, counts}');
  }
  const [rh, rw] = segm.size;
  if (typeof segm.counts === 'string') return rleFrString(segm.counts, rh, rw);
  if (Array.isArray(segm.counts)) return rleFrUncompressed(segm.counts, rh, rw);
  throw new Error('segmentation RLE counts must be a string or an array of numbers');
}

/** annToMask: the segmentation as a row-major 0/1 mask (index y * w + x). */
export function annToMask(segm: Segmentation, h: number, w: number): Uint8Array {
  return rleDecodeRowMajor(annToRLE(segm, h, w));
}
