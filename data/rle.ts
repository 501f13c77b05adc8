// Run-length encoded binary masks, a bit-exact port of the RLE functions of pycocotools'
// common/maskApi.c (rleEncode, rleDecode, rleMerge, rleArea, rleIou, bbIou, rleToBbox,
// rleToString, rleFrString, rleNms, bbNms).
//
// Conventions (as in pycocotools): masks are column-major (index = x * h + y), `counts` holds
// alternating run lengths starting with a run of zeros (which may be 0), and the compressed string
// form is the LEB128-like 6-bits-per-character encoding of maskApi's rleToString.

/** An RLE mask in memory: `counts` are the run lengths (first run is zeros). */
export interface RLE {
  h: number;
  w: number;
  counts: Uint32Array;
}

/** The JSON form with compressed counts, as written by pycocotools (`{"size": [h, w], "counts": "..."}`). */
export interface CompressedRLE {
  size: [number, number];
  counts: string;
}

/** The JSON form with uncompressed counts (typical of crowd annotations in COCO files). */
export interface UncompressedRLE {
  size: [number, number];
  counts: number[];
}

/** A box as [x, y, width, height]. */
export type BBox = [number, number, number, number];

// ---------------------------------------------------------------------------------------------
// encode / decode

/** Encodes a column-major mask (index x*h + y; nonzero = foreground) of size h x w. */
export function rleEncode(mask: ArrayLike<number>, h: number, w: number): RLE {
  const a = h * w;
  if (mask.length < a) throw new Error(`rleEncode: mask has ${mask.length} values, expected ${a} (${h}x${w})`);
  const cnts = new Uint32Array(a + 1);
  let k = 0, p = 0, c = 0;
  for (let j = 0; j < a; j++) {
    const v = mask[j] ? 1 : 0;
    if (v !== p) { cnts[k++] = c; c = 0; p = v; }
    c++;
  }
  cnts[k++] = c;
  return { h, w, counts: cnts.slice(0, k) };
}

/** Encodes a row-major mask (index y*w + x, the usual image layout). */
export function rleEncodeRowMajor(mask: ArrayLike<number>, h: number, w: number): RLE {
  const a = h * w;
  if (mask.length < a) throw new Error(`rleEncodeRowMajor: mask has ${mask.length} values, expected ${a} (${h}x${w})`);
  const cnts = new Uint32Array(a + 1);
  let k = 0, p = 0, c = 0;
  for (let x = 0; x < w; x++) {
    for (let y = 0, j = x; y < h; y++, j += w) {
      const v = mask[j] ? 1 : 0;
      if (v !== p) { cnts[k++] = c; c = 0; p = v; }
      c++;
    }
  }
  cnts[k++] = c;
  return { h, w, counts: cnts.slice(0, k) };
}

/** Decodes to a column-major Uint8Array of 0/1 (index x*h + y), like maskApi's rleDecode. */
export function rleDecode(R: RLE): Uint8Array {
  const M = new Uint8Array(R.h * R.w);
  let p = 0, v = 0;
  for (let j = 0; j < R.counts.length; j++) {
    const n = R.counts[j];
    if (v) M.fill(1, p, Math.min(p + n, M.length));
    p += n;
    v = v ? 0 : 1;
  }
  return M;
}

/** Decodes to a row-major Uint8Array of 0/1 (index y*w + x). */
export function rleDecodeRowMajor(R: RLE): Uint8Array {
  const { h, w } = R;
  const M = new Uint8Array(h * w);
  let p = 0, v = 0;
  for (let j = 0; j < R.counts.length; j++) {
    const n = R.counts[j];
    if (v) {
      const end = Math.min(p + n, h * w);
      for (let q = p; q < end; q++) {
        const x = (q / h) | 0;
        M[(q - x * h) * w + x] = 1;
      }
    }
    p += n;
    v = v ? 0 : 1;
  }
  return M;
}

// ---------------------------------------------------------------------------------------------
// area / bbox / merge

/** Number of foreground pixels. */
export function rleArea(R: RLE): number {
  let a = 0;
  const c = R.counts;
  for (let j = 1; j < c.length; j += 2) a += c[j];
  return a >>> 0; // maskApi accumulates in a uint
}

/** Bounding box [x, y, w, h] of the foreground (all zeros when empty), exactly as rleToBbox. */
export function rleToBbox(R: RLE): BBox {
  const out = new Float64Array(4);
  rleToBboxInto(R, out, 0);
  return [out[0], out[1], out[2], out[3]];
}

/** rleToBbox writing into out[o..o+3]. */
export function rleToBboxInto(R: RLE, out: Float64Array, o: number): void {
  const h = R.h >>> 0, w = R.w >>> 0, cnts = R.counts;
  const m = ((cnts.length / 2) | 0) * 2;
  if (m === 0 || h === 0) { out[o] = out[o + 1] = out[o + 2] = out[o + 3] = 0; return; }
  let xs = w, ys = h, xe = 0, ye = 0, cc = 0, xp = 0;
  for (let j = 0; j < m; j++) {
    cc = (cc + cnts[j]) >>> 0;
    const t = (cc - (j % 2)) >>> 0;
    const y = t % h;
    const x = (t - y) / h;
    if (j % 2 === 0) xp = x;
    else if (xp < x) { ys = 0; ye = h - 1; }
    if (x < xs) xs = x;
    if (x > xe) xe = x;
    if (y < ys) ys = y;
    if (y > ye) ye = y;
  }
  out[o] = xs; out[o + 2] = ((xe - xs) >>> 0) + 1;
  out[o + 1] = ys; out[o + 3] = ((ye - ys) >>> 0) + 1;
}

/** Union (intersect=false) or intersection of masks of one size; size mismatch gives an empty 0x0 RLE as in maskApi. */
export function rleMerge(R: readonly RLE[], intersect = false): RLE {
  const n = R.length;
  if (n === 0) return { h: 0, w: 0, counts: new Uint32Array(0) };
  let h = R[0].h, w = R[0].w;
  if (n === 1) return { h, w, counts: R[0].counts.slice() };
  let A = R[0].counts.slice();
  let m = A.length;
  for (let i = 1; i < n; i++) {
    const B = R[i];
    if (B.h !== h || B.w !== w) { h = w = m = 0; break; }
    const Bc = B.counts, Am = A.length, Bm = Bc.length;
    const cnts = new Uint32Array(Am + Bm + 1); // every output run ends where a run of A or B ends
    let ca = A[0], cb = Bc[0];
    let v = 0, va = 0, vb = 0, a = 1, b = 1, cc = 0, ct = 1;
    m = 0;
    while (ct > 0) {
      const c = ca < cb ? ca : cb;
      cc += c; ct = 0;
      ca -= c; if (!ca && a < Am) { ca = A[a++]; va = va ? 0 : 1; } ct += ca;
      cb -= c; if (!cb && b < Bm) { cb = Bc[b++]; vb = vb ? 0 : 1; } ct += cb;
      const vp = v;
      v = intersect ? (va && vb ? 1 : 0) : (va || vb ? 1 : 0);
      if (v !== vp || ct === 0) { cnts[m++] = cc; cc = 0; }
    }
    A = cnts.slice(0, m);
  }
  return { h, w, counts: m === 0 ? new Uint32Array(0) : A.slice(0, m) };
}

/** Complement of a mask (maskApi's rleInvert). */
export function rleInvert(R: RLE): RLE {
  const c = R.counts;
  if (c.length === 0) return { h: R.h, w: R.w, counts: new Uint32Array(0) };
  if (c[0] === 0) return { h: R.h, w: R.w, counts: c.slice(1) };
  const out = new Uint32Array(c.length + 1);
  out.set(c, 1);
  return { h: R.h, w: R.w, counts: out };
}

// ---------------------------------------------------------------------------------------------
// IoU

function crowdAt(iscrowd: ArrayLike<number | boolean> | null | undefined, g: number): boolean {
  return iscrowd != null && g < iscrowd.length && !!iscrowd[g];
}

/**
 * Box IoU (maskApi bbIou) for boxes given flat as [x, y, w, h, x, y, w, h, ...]. Returns the m x n
 * matrix row-major (index d * n + g). For a crowd gt the denominator is the detection's area.
 */
export function bboxIouFlat(dt: ArrayLike<number>, gt: ArrayLike<number>, m: number, n: number,
  iscrowd?: ArrayLike<number | boolean> | null, out?: Float64Array): Float64Array {
  const o = out ?? new Float64Array(m * n);
  for (let g = 0; g < n; g++) {
    const G0 = gt[g * 4], G1 = gt[g * 4 + 1], G2 = gt[g * 4 + 2], G3 = gt[g * 4 + 3];
    const ga = G2 * G3;
    const crowd = crowdAt(iscrowd, g);
    for (let d = 0; d < m; d++) {
      const D0 = dt[d * 4], D1 = dt[d * 4 + 1], D2 = dt[d * 4 + 2], D3 = dt[d * 4 + 3];
      const da = D2 * D3;
      o[d * n + g] = 0;
      const w = Math.min(D2 + D0, G2 + G0) - Math.max(D0, G0); if (w <= 0) continue;
      const h = Math.min(D3 + D1, G3 + G1) - Math.max(D1, G1); if (h <= 0) continue;
      const i = w * h;
      const u = crowd ? da : da + ga - i;
      o[d * n + g] = i / u;
    }
  }
  return o;
}

/** Box IoU for arrays of [x, y, w, h]; returns the m x n matrix row-major (index d * n + g). */
export function bboxIou(dt: readonly ArrayLike<number>[], gt: readonly ArrayLike<number>[],
  iscrowd?: ArrayLike<number | boolean> | null): Float64Array {
  return bboxIouFlat(flattenBoxes(dt), flattenBoxes(gt), dt.length, gt.length, iscrowd);
}

function flattenBoxes(b: readonly ArrayLike<number>[]): Float64Array {
  const f = new Float64Array(b.length * 4);
  for (let i = 0; i < b.length; i++) {
    if (b[i].length !== 4) throw new Error(`box ${i} has ${b[i].length} numbers, expected 4 (x, y, w, h)`);
    for (let j = 0; j < 4; j++) f[i * 4 + j] = b[i][j];
  }
  return f;
}

/** Number of pixels set in both masks (same size); stops once either has no foreground left. */
export function rleIntersection(A: Uint32Array, B: Uint32Array): number {
  const ka = A.length, kb = B.length;
  if (ka < 2 || kb < 2) return 0;
  const lastA = (ka - 1) % 2 === 1 ? ka - 1 : ka - 2, lastB = (kb - 1) % 2 === 1 ? kb - 1 : kb - 2;
  let ca = A[0], cb = B[0], va = 0, vb = 0, a = 1, b = 1, i = 0;
  for (;;) {
    const c = ca < cb ? ca : cb;
    if (va && vb) i += c;
    ca -= c;
    if (!ca) { if (a > lastA) break; ca = A[a++]; va ^= 1; }
    cb -= c;
    if (!cb) { if (b > lastB) break; cb = B[b++]; vb ^= 1; }
  }
  return i;
}

/**
 * Exact IoU of two masks of the same size (the inner loop of maskApi's rleIou): intersection over
 * union, or over the detection's area for a crowd gt; 0 when they do not intersect. The masks'
 * areas may be passed when known (the union is |dt| + |gt| - intersection, as the loop counts it).
 */
export function rleIouPair(dt: RLE, gt: RLE, crowd: boolean, dtArea = -1, gtArea = -1): number {
  const i = rleIntersection(dt.counts, gt.counts);
  if (i === 0) return 0;
  const ad = dtArea >= 0 ? dtArea : rleArea(dt);
  if (crowd) return i / ad;
  const ag = gtArea >= 0 ? gtArea : rleArea(gt);
  return i / (ad + ag - i);
}

/**
 * Mask IoU (maskApi rleIou): boxes first (bbIou with the crowd rule), then the exact mask IoU
 * where the boxes overlap; -1 where sizes differ. Returns the m x n matrix row-major (d * n + g).
 * `dtBoxes`/`gtBoxes` (flat, from rleToBboxInto) may be passed when already known.
 */
export function rleIou(dt: readonly RLE[], gt: readonly RLE[], iscrowd?: ArrayLike<number | boolean> | null,
  dtBoxes?: Float64Array, gtBoxes?: Float64Array): Float64Array {
  const m = dt.length, n = gt.length;
  const db = dtBoxes ?? boxesOf(dt), gb = gtBoxes ?? boxesOf(gt);
  const o = bboxIouFlat(db, gb, m, n, iscrowd);
  for (let g = 0; g < n; g++) {
    const crowd = crowdAt(iscrowd, g);
    for (let d = 0; d < m; d++) {
      const k = d * n + g;
      if (o[k] > 0) {
        if (dt[d].h !== gt[g].h || dt[d].w !== gt[g].w) { o[k] = -1; continue; }
        o[k] = rleIouPair(dt[d], gt[g], crowd);
      }
    }
  }
  return o;
}

/** Flat boxes [x, y, w, h, ...] of several masks. */
export function boxesOf(R: readonly RLE[]): Float64Array {
  const b = new Float64Array(R.length * 4);
  for (let i = 0; i < R.length; i++) rleToBboxInto(R[i], b, i * 4);
  return b;
}

/** Greedy NMS on masks (maskApi rleNms): keep[i] = 1 if kept; input assumed sorted by score. */
export function rleNms(dt: readonly RLE[], thr: number): Uint8Array {
  const n = dt.length, keep = new Uint8Array(n).fill(1);
  for (let i = 0; i < n; i++) if (keep[i]) {
    for (let j = i + 1; j < n; j++) if (keep[j]) {
      if (rleIou([dt[i]], [dt[j]])[0] > thr) keep[j] = 0;
    }
  }
  return keep;
}

/** Greedy NMS on [x, y, w, h] boxes (maskApi bbNms). */
export function bboxNms(dt: readonly ArrayLike<number>[], thr: number): Uint8Array {
  const n = dt.length, keep = new Uint8Array(n).fill(1), f = flattenBoxes(dt), o = new Float64Array(1);
  for (let i = 0; i < n; i++) if (keep[i]) {
    for (let j = i + 1; j < n; j++) if (keep[j]) {
      bboxIouFlat(f.subarray(i * 4, i * 4 + 4), f.subarray(j * 4, j * 4 + 4), 1, 1, null, o);
      if (o[0] > thr) keep[j] = 0;
    }
  }
  return keep;
}

// ---------------------------------------------------------------------------------------------
// compressed strings

/** maskApi rleToString: LEB128-like, 6 bits per char (chars 48..111), counts delta-coded from i > 2. */
export function rleToString(R: RLE): string {
  const cnts = R.counts, m = cnts.length;
  const s: number[] = [];
  for (let i = 0; i < m; i++) {
    let x = cnts[i];
    if (i > 2) x -= cnts[i - 2];
    let more = true;
    while (more) {
      let c = x & 0x1f; // low 5 bits (ToInt32 keeps them for any safe integer)
      x = Math.floor(x / 32);
      more = (c & 0x10) ? x !== -1 : x !== 0;
      if (more) c |= 0x20;
      s.push(c + 48);
    }
  }
  let out = '';
  for (let i = 0; i < s.length; i += 8192) out += String.fromCharCode.apply(null, s.slice(i, i + 8192));
  return out;
}

/** maskApi rleFrString: parses the compressed counts string of an h x w mask. */
let frScratch = new Uint32Array(4096);

export function rleFrString(s: string, h: number, w: number): RLE {
  if (frScratch.length < s.length) frScratch = new Uint32Array(Math.max(s.length, frScratch.length * 2));
  const m = rleStringToCountsInto(s, frScratch);
  return { h, w, counts: frScratch.slice(0, m) };
}

/**
 * Parses a compressed counts string into `cnts` from `offset` (room for s.length values) and returns
 * the number of counts, allocating nothing (for scanning many strings with one scratch buffer).
 */
export function rleStringToCountsInto(s: string, cnts: Uint32Array, offset = 0): number {
  const n = s.length;
  let m = offset, p = 0;
  while (p < n) {
    // one count: 5 bits per char, 0x20 = more chars follow, 0x10 on the last char = negative
    let c = s.charCodeAt(p++) - 48;
    if ((c & ~63) !== 0) throw badChar(s, p - 1);
    let x = c & 0x1f, k = 1;
    while (c & 0x20) {
      if (p >= n) throw new Error(`RLE string ends in the middle of a number (length ${n})`);
      c = s.charCodeAt(p++) - 48;
      if ((c & ~63) !== 0) throw badChar(s, p - 1);
      x |= (c & 0x1f) << (5 * k);
      k++;
    }
    if (c & 0x10) x |= -1 << (5 * k);
    if (m - offset > 2) x += cnts[m - 2];
    cnts[m++] = x; // Uint32Array stores modulo 2^32, like the (uint) cast
  }
  return m - offset;
}

function badChar(s: string, p: number): Error {
  return new Error(`RLE string has an invalid character ${JSON.stringify(s[p])} at ${p}`);
}

/** Area (rleArea) of a compressed counts string in one pass without storing the counts. */
export function rleStringArea(s: string): number {
  const n = s.length;
  let p = 0, m = 0, c1 = 0, c2 = 0, area = 0;
  while (p < n) {
    let c = s.charCodeAt(p++) - 48;
    if ((c & ~63) !== 0) throw badChar(s, p - 1);
    let x = c & 0x1f, k = 1;
    while (c & 0x20) {
      if (p >= n) throw new Error(`RLE string ends in the middle of a number (length ${n})`);
      c = s.charCodeAt(p++) - 48;
      if ((c & ~63) !== 0) throw badChar(s, p - 1);
      x |= (c & 0x1f) << (5 * k);
      k++;
    }
    if (c & 0x10) x |= -1 << (5 * k);
    if (m > 2) x += c2;
    c2 = c1; c1 = x >>> 0;
    if (m & 1) area += c1;
    m++;
  }
  return area >>> 0;
}

/**
 * Area and box (exactly rleArea and rleToBbox) of a compressed counts string in one pass without
 * storing the counts. Writes [x, y, w, h] to out[o..o+3] and returns the area.
 */
export function rleStringStats(s: string, h: number, w: number, out: Float64Array, o: number): number {
  const n = s.length;
  h >>>= 0; w >>>= 0;
  let p = 0, m = 0, c1 = 0, c2 = 0, even = 0, area = 0;
  let px = 0, py = 0, xs = w, ys = h, xe = 0, ye = 0;
  while (p < n) {
    // one count: 5 bits per char, 0x20 = more chars follow, 0x10 on the last char = negative
    let c = s.charCodeAt(p++) - 48;
    if ((c & ~63) !== 0) throw badChar(s, p - 1);
    let x = c & 0x1f, k = 1;
    while (c & 0x20) {
      if (p >= n) throw new Error(`RLE string ends in the middle of a number (length ${n})`);
      c = s.charCodeAt(p++) - 48;
      if ((c & ~63) !== 0) throw badChar(s, p - 1);
      x |= (c & 0x1f) << (5 * k);
      k++;
    }
    if (c & 0x10) x |= -1 << (5 * k);
    if (m > 2) x += c2;
    const cnt = x >>> 0;
    c2 = c1; c1 = cnt;
    if (m & 1) {
      area += cnt;
      if (h > 0) {
        // rleToBbox on the pair (m-1, m) (an unpaired last count is never used, as there), with the
        // column/row of the running position tracked incrementally instead of t % h, t / h
        py += even;
        while (py >= h) { py -= h; px++; }
        const xp = px;
        if (px < xs) xs = px; if (px > xe) xe = px; if (py < ys) ys = py; if (py > ye) ye = py;
        py += cnt;
        while (py >= h) { py -= h; px++; }
        let tx: number, ty: number; // position cc - 1
        if (py > 0) { tx = px; ty = py - 1; } else if (px > 0) { tx = px - 1; ty = h - 1; } else { const t = 4294967295; ty = t % h; tx = (t - ty) / h; }
        if (xp < tx) { ys = 0; ye = h - 1; }
        if (tx < xs) xs = tx; if (tx > xe) xe = tx; if (ty < ys) ys = ty; if (ty > ye) ye = ty;
      }
    } else even = cnt;
    m++;
  }
  if (m < 2 || h === 0) { out[o] = out[o + 1] = out[o + 2] = out[o + 3] = 0; }
  else {
    out[o] = xs; out[o + 2] = ((xe - xs) >>> 0) + 1;
    out[o + 1] = ys; out[o + 3] = ((ye - ys) >>> 0) + 1;
  }
  return area >>> 0;
}

/** An RLE from uncompressed counts (pycocotools frUncompressedRLE). */
export function rleFrUncompressed(counts: ArrayLike<number>, h: number, w: number): RLE {
  return { h, w, counts: Uint32Array.from(counts as ArrayLike<number>) };
}

/** JSON form with a compressed counts string (what pycocotools' mask.encode returns). */
export function rleToCompressed(R: RLE): CompressedRLE {
  return { size: [R.h, R.w], counts: rleToString(R) };
}

/** JSON form with uncompressed counts. */
export function rleToUncompressed(R: RLE): UncompressedRLE {
  return { size: [R.h, R.w], counts: Array.from(R.counts) };
}

/** Reads either JSON form (`counts` as string or number array). */
export function rleFromJson(obj: CompressedRLE | UncompressedRLE): RLE {
  const [h, w] = obj.size;
  return typeof obj.counts === 'string' ? rleFrString(obj.counts, h, w) : rleFrUncompressed(obj.counts, h, w);
}
