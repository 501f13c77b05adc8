// COCOeval.evaluate(): per image and category, IoUs between the top detections and the ground
// truth, then greedy matching at every IoU threshold for every area range (pycocotools
// computeIoU + evaluateImg), stored in flat typed arrays for accumulate().
import { GroupIou } from './iou.js';
import { copyParams, uniqueSorted, type EvalParams } from './params.js';
import type { DtTable, GtTable } from './prepare.js';

/** Per-detection outcome codes in EvalResult.dtFlags (bit 0 = TP, bit 1 = FP). */
export const IGNORED = 0, TP = 1, FP = 2, MIXED = 3;

export interface EvalResult {
  /** The parameters used (normalised: sorted unique imgIds / catIds, sorted maxDets). */
  params: EvalParams;
  /** Category ids of the K slots ([-1] when useCats is false). */
  catIds: number[];
  I: number; K: number; A: number; T: number;
  /** Groups are (k, i) with index g = k * I + i, like pycocotools' evalImgs order. */
  gtStart: Int32Array; gtSel: Int32Array;
  /** Top detections of each group (score order, at most maxDets[-1]): dtSel[dtStart[g] .. dtStart[g+1]). */
  dtStart: Int32Array; dtSel: Int32Array;
  /** Whether the group has any gt or detection (pycocotools' evalImgs entry is not None). */
  hasEval: Uint8Array;
  /** FP / TP / IGNORED per selected detection p, area range a and threshold t at (p * A + a) * T + t. */
  dtFlags: Uint8Array;
  /** Summary of dtFlags per (p, a) at p * A + a: IGNORED at every threshold, FP at every threshold, or MIXED. */
  dtKind: Uint8Array;
  /** Number of non-ignored gts per (k, a) at k * A + a. */
  npig: Float64Array;
  /** Scores of the selected detections (dtScore[p]). */
  dtScore: Float64Array;
  /** Rank of a selected detection within its image (0 = best). */
  dtRank: Int32Array;
}

/**
 * Sorts idx[s..e) by key[idx] descending, ties in their current order (np.argsort(-key,
 * kind='mergesort') on that slice): insertion sort for short runs, bottom-up merge otherwise.
 */
export function stableArgsortDesc(idx: Int32Array, s: number, e: number, key: Float64Array, scratch: Int32Array): void {
  const n = e - s;
  if (n < 2) return;
  const RUN = 16;
  for (let r = s; r < e; r += RUN) {
    const re = Math.min(r + RUN, e);
    for (let i = r + 1; i < re; i++) {
      const v = idx[i], kv = key[v];
      let j = i - 1;
      while (j >= r && key[idx[j]] < kv) { idx[j + 1] = idx[j]; j--; }
      idx[j + 1] = v;
    }
  }
  let src = idx, dst = scratch;
  for (let width = RUN; width < n; width *= 2) {
    for (let lo = s; lo < e; lo += 2 * width) {
      const mid = Math.min(lo + width, e), hi = Math.min(lo + 2 * width, e);
      let i = lo, j = mid, o = lo;
      while (i < mid && j < hi) dst[o++] = key[src[j]] > key[src[i]] ? src[j++] : src[i++];
      while (i < mid) dst[o++] = src[i++];
      while (j < hi) dst[o++] = src[j++];
    }
    const t = src; src = dst; dst = t;
  }
  if (src !== idx) idx.set(src.subarray(s, e), s);
}

/** Stable counting sort of the items with key >= 0 into buckets 0..nb-1. */
function bucket(keys: Int32Array, nb: number): { start: Int32Array; order: Int32Array } {
  const start = new Int32Array(nb + 1);
  let n = 0;
  for (let j = 0; j < keys.length; j++) if (keys[j] >= 0) { start[keys[j] + 1]++; n++; }
  for (let b = 0; b < nb; b++) start[b + 1] += start[b];
  const fill = start.slice(0, nb), order = new Int32Array(n);
  for (let j = 0; j < keys.length; j++) if (keys[j] >= 0) order[fill[keys[j]]++] = j;
  return { start, order };
}

function groupKeys(n: number, imageId: Float64Array, categoryId: Float64Array,
  imgIndex: Map<number, number>, catIndex: Map<number, number>, C: number): Int32Array {
  const keys = new Int32Array(n);
  for (let j = 0; j < n; j++) {
    const i = imgIndex.get(imageId[j]), c = catIndex.get(categoryId[j]);
    keys[j] = i === undefined || c === undefined ? -1 : C === 1 ? c * imgIndex.size + i : i * C + c;
  }
  return keys;
}

/**
 * Runs the per-image evaluation. `params` defaults come from the caller (see index.ts); imgIds /
 * catIds are sorted and de-duplicated (catIds only when useCats) and maxDets sorted, as pycocotools does.
 */
export function evaluate(gt: GtTable, dt: DtTable, params: EvalParams): EvalResult {
  const p = copyParams(params);
  p.imgIds = uniqueSorted(p.imgIds);
  if (p.useCats) p.catIds = uniqueSorted(p.catIds);
  p.maxDets = p.maxDets.slice().sort((a, b) => a - b);
  if (p.maxDets.length === 0) throw new Error('params.maxDets must not be empty');
  const maxDet = p.maxDets[p.maxDets.length - 1];
  const I = p.imgIds.length, A = p.areaRng.length, T = p.iouThrs.length;
  const catIds = p.useCats ? p.catIds : [-1];
  const K = catIds.length;
  const imgIndex = new Map<number, number>();
  p.imgIds.forEach((id, i) => imgIndex.set(id, i));
  // useCats: key = k * I + i. Otherwise one group per image, gts ordered by the position of their
  // category in catIds (pycocotools concatenates _gts[img, cId] for cId in catIds): key = i * C + c.
  const catIndex = new Map<number, number>();
  p.catIds.forEach((id, c) => { if (!catIndex.has(id)) catIndex.set(id, c); });
  const C = p.useCats ? 1 : Math.max(1, p.catIds.length);
  const NG = K * I;
  const gb = bucket(groupKeys(gt.n, gt.imageId, gt.categoryId, imgIndex, catIndex, C), I * (p.useCats ? K : C));
  const db = bucket(groupKeys(dt.n, dt.imageId, dt.categoryId, imgIndex, catIndex, C), I * (p.useCats ? K : C));
  const gtStart = new Int32Array(NG + 1), dtStart = new Int32Array(NG + 1);
  for (let g = 0; g <= NG; g++) { gtStart[g] = gb.start[g * C]; }
  const gtSel = gb.order;

  // top maxDet detections of each group, by score (stable: ties keep file order)
  const dtSelList = new Int32Array(db.order.length);
  const dtRank = new Int32Array(db.order.length);
  let nSel = 0;
  const score = dt.score;
  const tmp = db.order.slice(), scratch = new Int32Array(tmp.length);
  for (let g = 0; g < NG; g++) {
    dtStart[g] = nSel;
    const s = db.start[g * C], e = db.start[(g + 1) * C];
    stableArgsortDesc(tmp, s, e, score, scratch);
    const D = Math.min(e - s, maxDet);
    for (let d = 0; d < D; d++) { dtRank[nSel] = d; dtSelList[nSel++] = tmp[s + d]; }
  }
  dtStart[NG] = nSel;
  const dtSel = dtSelList.slice(0, nSel);

  const dtFlags = new Uint8Array(nSel * A * T);
  const dtKind = new Uint8Array(nSel * A);
  const npig = new Float64Array(K * A);
  const hasEval = new Uint8Array(NG);
  const dtScore = new Float64Array(nSel), dtArea = new Float64Array(nSel);
  for (let q = 0; q < nSel; q++) { dtScore[q] = score[dtSel[q]]; dtArea[q] = dt.area[dtSel[q]]; }

  const thr = p.iouThrs.map((t) => Math.min(t, 1 - 1e-10));
  const iou = new GroupIou(gt, dt, p.iouType);
  let dMax = new Float64Array(128);
  let gCrowd = new Uint8Array(128), gIg = new Uint8Array(128), gOrder = new Int32Array(128);
  let gtm = new Uint8Array(T * 128);
  let iouS = new Float64Array(128 * 128);

  for (let g = 0; g < NG; g++) {
    const gs = gtStart[g], G = gtStart[g + 1] - gs, ds = dtStart[g], D = dtStart[g + 1] - ds;
    if (G === 0 && D === 0) continue;
    hasEval[g] = 1;
    const k = (g / I) | 0, i = g - k * I;
    if (G > gCrowd.length) {
      const n = G * 2;
      gCrowd = new Uint8Array(n); gIg = new Uint8Array(n); gOrder = new Int32Array(n);
      gtm = new Uint8Array(T * n);
    }
    if (D > dMax.length) dMax = new Float64Array(2 * D);
    if (D * G > iouS.length) iouS = new Float64Array(2 * D * G);
    for (let q = 0; q < G; q++) gCrowd[q] = gt.crowd[gtSel[gs + q]];
    // IoU matrix [d][g] (gt in group order), as pycocotools' computeIoU
    const ious = D > 0 && G > 0 ? iou.compute(p.imgIds[i], gtSel, gs, G, dtSel, ds, D, gCrowd) : null;
    for (let a = 0; a < A; a++) {
      const lo = p.areaRng[a][0], hi = p.areaRng[a][1];
      // gt ignore flags; order non-ignored first (stable)
      let nOk = 0;
      for (let q = 0; q < G; q++) {
        const j = gtSel[gs + q], ar = gt.area[j];
        gIg[q] = gt.ignore[j] || ar < lo || ar > hi ? 1 : 0;
        if (!gIg[q]) nOk++;
      }
      npig[k * A + a] += nOk;
      let o0 = 0, o1 = nOk;
      for (let q = 0; q < G; q++) { if (gIg[q]) gOrder[o1++] = q; else gOrder[o0++] = q; }
      if (!ious) {
        // nothing to match: every detection is a FP, or ignored when outside the area range
        for (let d = 0; d < D; d++) {
          const pos = ds + d, ar = dtArea[pos], code = ar < lo || ar > hi ? IGNORED : FP;
          for (let f = (pos * A + a) * T, fe = f + T; f < fe; f++) dtFlags[f] = code;
          dtKind[pos * A + a] = code;
        }
        continue;
      }
      for (let d = 0; d < D; d++) {
        let mx = -Infinity;
        for (let q = 0; q < G; q++) { const v = ious[d * G + gOrder[q]]; iouS[d * G + q] = v; if (v > mx) mx = v; }
        dMax[d] = mx;
      }
      gtm.fill(0, 0, T * G);
      for (let t = 0; t < T; t++) {
        const th = thr[t];
        for (let d = 0; d < D; d++) {
          const pos = ds + d, fo = (pos * A + a) * T + t;
          let m = -1, iou = th;
          // a match needs an IoU >= th: skip the scan when no gt reaches it
          if (dMax[d] >= th) for (let q = 0; q < G; q++) {
            const oq = gOrder[q];
            if (gtm[t * G + q] && !gCrowd[oq]) continue;
            if (m > -1 && gIg[gOrder[m]] === 0 && gIg[oq] === 1) break;
            const v = iouS[d * G + q];
            if (v < iou) continue;
            iou = v; m = q;
          }
          let ig = 0, mid = 0;
          if (m !== -1) {
            const om = gOrder[m];
            ig = gIg[om]; mid = gt.id[gtSel[gs + om]];
            gtm[t * G + m] = 1;
          }
          if (mid === 0 && !ig) {
            const ar = dtArea[pos];
            if (ar < lo || ar > hi) ig = 1;
          }
          dtFlags[fo] = ig ? IGNORED : mid !== 0 ? TP : FP;
        }
      }
      for (let d = 0; d < D; d++) {
        const b = ((ds + d) * A + a) * T;
        let or = 0, and = 0xff;
        for (let t = 0; t < T; t++) { const f = dtFlags[b + t]; or |= f; and &= f; }
        dtKind[(ds + d) * A + a] = or === 0 ? IGNORED : and === FP ? FP : MIXED;
      }
    }
  }
  return { params: p, catIds, I, K, A, T, gtStart, gtSel, dtStart, dtSel, hasEval, dtFlags, dtKind, npig, dtScore, dtRank };
}
