// COCOeval.accumulate(): precision / recall / score arrays from the per-image matches, exactly as
// pycocotools (stable sort by score across images, cumulative TP/FP, precision envelope,
// searchsorted on the recall thresholds, -1 where a setting has no ground truth).
import { FP, IGNORED, stableArgsortDesc, type EvalResult } from './evaluate.js';

/** np.spacing(1) */
const EPS = 2.220446049250313e-16;

export interface Accumulated {
  /** [T, R, K, A, M]: T IoU thresholds, R recall thresholds, K categories, A area ranges, M maxDets. */
  counts: [number, number, number, number, number];
  /** Precision, row-major [T][R][K][A][M]; -1 where the category has no gt in that setting. */
  precision: Float64Array;
  /** Max recall, row-major [T][K][A][M]; -1 likewise. */
  recall: Float64Array;
  /** Score at each recall threshold, [T][R][K][A][M]. */
  scores: Float64Array;
}

/** Index helpers for the row-major layouts. */
export function precisionIndex(c: Accumulated['counts'], t: number, r: number, k: number, a: number, m: number): number {
  const [, R, K, A, M] = c;
  return (((t * R + r) * K + k) * A + a) * M + m;
}
export function recallIndex(c: Accumulated['counts'], t: number, k: number, a: number, m: number): number {
  const [, , K, A, M] = c;
  return ((t * K + k) * A + a) * M + m;
}

export function accumulate(ev: EvalResult): Accumulated {
  const p = ev.params;
  const { I, K, A, T } = ev;
  const R = p.recThrs.length, M = p.maxDets.length;
  const counts: Accumulated['counts'] = [T, R, K, A, M];
  const precision = new Float64Array(T * R * K * A * M).fill(-1);
  const recall = new Float64Array(T * K * A * M).fill(-1);
  const scores = new Float64Array(T * R * K * A * M).fill(-1);
  const recThrs = p.recThrs;
  const { dtScore, dtRank, dtFlags, dtKind } = ev;
  let sel = new Int32Array(1024), tpPos = new Int32Array(T * 1025), tpFp = new Float64Array(T * 1025);
  let tpPr = new Float64Array(1024), order = new Int32Array(1024), scratch = new Int32Array(1024);
  const q = new Float64Array(R), ss = new Float64Array(R), cFor = new Int32Array(R);
  const fpT = new Float64Array(T), nTpT = new Int32Array(T);

  // pycocotools builds rc = tp / npig and pr = tp / (fp + tp + eps) for every detection, takes the
  // precision envelope (suffix max) and looks the recall thresholds up with searchsorted. The same
  // numbers come from the TP positions alone: rc only changes at a TP, so searchsorted(rc, thr) is
  // the position of the c-th TP for the smallest c with c / npig >= thr (the same float division),
  // and pr falls between TPs, so the suffix max over all positions is the suffix max over TPs.
  for (let k = 0; k < K; k++) {
    const s0 = ev.dtStart[k * I], s1 = ev.dtStart[k * I + I];
    const n = s1 - s0;
    if (n > sel.length) {
      const c = Math.max(n, 2 * sel.length);
      sel = new Int32Array(c); tpPos = new Int32Array(T * (c + 1)); tpFp = new Float64Array(T * (c + 1));
      tpPr = new Float64Array(c); order = new Int32Array(c); scratch = new Int32Array(c);
    }
    const cap = sel.length + 1; // per-threshold stride (one spare slot for the branchless writes)
    // np.argsort(-scores, kind='mergesort') over the images' detections concatenated in image order
    for (let j = 0; j < n; j++) order[j] = s0 + j;
    stableArgsortDesc(order, 0, n, dtScore, scratch);
    for (let a = 0; a < A; a++) {
      const npig = ev.npig[k * A + a];
      if (npig === 0) continue;
      for (let r = 0; r < R; r++) {
        const th = recThrs[r];
        let lo = 0, hi = npig + 1;
        while (lo < hi) { const mid = Math.floor((lo + hi) / 2); if (mid / npig < th) lo = mid + 1; else hi = mid; }
        cFor[r] = lo <= npig ? lo : -1;
      }
      let prevNd = -1;
      for (let mi = M - 1; mi >= 0; mi--) {
        const maxDet = p.maxDets[mi];
        let nd = 0;
        for (let j = 0; j < n; j++) if (dtRank[order[j]] < maxDet) sel[nd++] = order[j];
        if (nd === prevNd) {
          // same detections as the larger maxDets (no image had more): same numbers
          for (let t = 0; t < T; t++) {
            const ri = ((t * K + k) * A + a) * M;
            recall[ri + mi] = recall[ri + mi + 1];
            for (let r = 0; r < R; r++) {
              const o = (((t * R + r) * K + k) * A + a) * M + mi;
              precision[o] = precision[o + 1];
              scores[o] = scores[o + 1];
            }
          }
          continue;
        }
        prevNd = nd;
        // one pass for all thresholds; detections ignored or FP at every threshold take the short paths
        fpT.fill(0); nTpT.fill(0);
        let fpAll = 0;
        for (let j = 0; j < nd; j++) {
          const kind = dtKind[sel[j] * A + a];
          if (kind === IGNORED) continue;
          if (kind === FP) { fpAll++; continue; }
          const base = (sel[j] * A + a) * T;
          for (let t = 0; t < T; t++) {
            const f = dtFlags[base + t];
            if (f === FP) fpT[t]++;
            else if (f !== IGNORED) { const w = t * cap + nTpT[t]++; tpPos[w] = j; tpFp[w] = fpT[t] + fpAll; }
          }
        }
        for (let t = 0; t < T; t++) {
          const nTp = nTpT[t], off = t * cap;
          for (let i = 0; i < nTp; i++) { const tp = i + 1; tpPr[i] = tp / (tpFp[off + i] + tp + EPS); }
          recall[((t * K + k) * A + a) * M + mi] = nd ? nTp / npig : 0;
          for (let j = nTp - 2; j >= 0; j--) if (tpPr[j + 1] > tpPr[j]) tpPr[j] = tpPr[j + 1];
          q.fill(0); ss.fill(0);
          for (let r = 0; r < R; r++) {
            // the first index past the end stops the loop (pycocotools' try/except)
            const c = cFor[r];
            if (c < 0 || c > nTp) break;
            const idx = c === 0 ? 0 : tpPos[off + c - 1];
            if (idx >= nd) break;
            q[r] = c === 0 ? (nTp ? tpPr[0] : 0) : tpPr[c - 1];
            ss[r] = dtScore[sel[idx]];
          }
          for (let r = 0; r < R; r++) {
            const o = (((t * R + r) * K + k) * A + a) * M + mi;
            precision[o] = q[r];
            scores[o] = ss[r];
          }
        }
      }
    }
  }
  return { counts, precision, recall, scores };
}
