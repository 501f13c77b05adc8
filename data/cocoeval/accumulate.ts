// COCOeval.accumulate(): precision / recall / score arrays from the per-image matches, exactly as
// pycocotools (stable sort by score across images, cumulative TP/FP, precision envelope,
// searchsorted on the recall thresholds, -1 where a setting has no ground truth).
import { FP, TP, type EvalResult } from './evaluate.js';

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
  const { dtScore, dtRank, dtFlags } = ev;
  let rc = new Float64Array(1024), pr = new Float64Array(1024), sel = new Int32Array(1024);
  const q = new Float64Array(R), ss = new Float64Array(R);

  for (let k = 0; k < K; k++) {
    const s0 = ev.dtStart[k * I], s1 = ev.dtStart[k * I + I];
    const n = s1 - s0;
    // np.argsort(-scores, kind='mergesort') over the images' detections concatenated in image order
    const order: number[] = new Array(n);
    for (let j = 0; j < n; j++) order[j] = s0 + j;
    order.sort((x, y) => dtScore[y] - dtScore[x]);
    if (n > sel.length) { sel = new Int32Array(n); rc = new Float64Array(n); pr = new Float64Array(n); }
    for (let a = 0; a < A; a++) {
      const npig = ev.npig[k * A + a];
      if (npig === 0) continue;
      for (let mi = 0; mi < M; mi++) {
        const maxDet = p.maxDets[mi];
        let nd = 0;
        for (let j = 0; j < n; j++) if (dtRank[order[j]] < maxDet) sel[nd++] = order[j];
        for (let t = 0; t < T; t++) {
          let tp = 0, fp = 0;
          for (let j = 0; j < nd; j++) {
            const f = dtFlags[(sel[j] * A + a) * T + t];
            if (f === TP) tp++; else if (f === FP) fp++;
            rc[j] = tp / npig;
            pr[j] = tp / (fp + tp + EPS);
          }
          recall[((t * K + k) * A + a) * M + mi] = nd ? rc[nd - 1] : 0;
          for (let j = nd - 1; j > 0; j--) if (pr[j] > pr[j - 1]) pr[j - 1] = pr[j];
          q.fill(0); ss.fill(0);
          for (let r = 0; r < R; r++) {
            // np.searchsorted(rc, recThrs, side='left'); the first index past the end stops (try/except)
            const th = recThrs[r];
            let lo = 0, hi = nd;
            while (lo < hi) { const mid = (lo + hi) >>> 1; if (rc[mid] < th) lo = mid + 1; else hi = mid; }
            const idx = lo;
            if (idx >= nd) break;
            q[r] = pr[idx];
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
