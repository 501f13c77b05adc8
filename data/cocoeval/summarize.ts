// COCOeval.summarize(): the 12 standard numbers and their printed lines, plus a per-category table.
import type { Accumulated } from './accumulate.js';
import type { EvalParams } from './params.js';

export const STAT_NAMES = ['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR1', 'AR10', 'AR100', 'ARs', 'ARm', 'ARl'] as const;

/** numpy's pairwise summation (as in np.add.reduce over a contiguous float64 array). */
export function pairwiseSum(a: ArrayLike<number>, start = 0, n = a.length - start): number {
  if (n < 8) {
    let res = 0;
    for (let i = 0; i < n; i++) res += a[start + i];
    return res;
  }
  if (n <= 128) {
    const r = [a[start], a[start + 1], a[start + 2], a[start + 3], a[start + 4], a[start + 5], a[start + 6], a[start + 7]];
    let i = 8;
    for (; i < n - (n % 8); i += 8) for (let j = 0; j < 8; j++) r[j] += a[start + i + j];
    let res = ((r[0] + r[1]) + (r[2] + r[3])) + ((r[4] + r[5]) + (r[6] + r[7]));
    for (; i < n; i++) res += a[start + i];
    return res;
  }
  let n2 = Math.floor(n / 2);
  n2 -= n2 % 8;
  return pairwiseSum(a, start, n2) + pairwiseSum(a, start + n2, n - n2);
}

/** np.mean(values) with numpy's summation order; -1 when empty (pycocotools' convention). */
export function meanOrMinus1(values: number[]): number {
  if (values.length === 0) return -1;
  return (0 + pairwiseSum(values)) / values.length;
}

/** Python's '{:0.Nf}'.format(x): like toFixed, but exact ties (e.g. 0.0625 at 3 digits) round half to even. */
export function pyFixed(x: number, digits: number): string {
  const s = x.toFixed(digits);
  if (!Number.isFinite(x) || Math.abs(x) >= 1e21) return s;
  const full = Math.abs(x).toFixed(100); // the exact decimal expansion (every tie is a short dyadic fraction)
  const dot = full.indexOf('.');
  if (!/^50*$/.test(full.slice(dot + 1 + digits))) return s;
  const last = digits === 0 ? full[dot - 1] : full[dot + digits];
  if (Number(last) % 2 !== 0) return s; // toFixed rounded away from zero, to the even neighbour
  return (x < 0 ? '-' : '') + full.slice(0, digits === 0 ? dot : dot + 1 + digits);
}

export interface SummaryEntry {
  name: string;
  ap: boolean;
  iouThr: number | null;
  areaRng: string;
  maxDets: number;
  value: number;
  line: string;
}

/**
 * One _summarize() call: mean of precision (ap) or recall over the selected thresholds, area range
 * and maxDets, ignoring -1 entries; optionally for a single category slot k.
 */
export function summarizeOne(acc: Accumulated, p: EvalParams, ap: boolean, iouThr: number | null,
  areaRng: string, maxDets: number, k: number | null = null): number {
  const [T, R, K, A, M] = acc.counts;
  const tIdx: number[] = [];
  for (let t = 0; t < T; t++) if (iouThr === null || p.iouThrs[t] === iouThr) tIdx.push(t);
  const aIdx: number[] = [], mIdx: number[] = [];
  p.areaRngLbl.forEach((l, i) => { if (l === areaRng && i < A) aIdx.push(i); });
  p.maxDets.forEach((d, i) => { if (d === maxDets && i < M) mIdx.push(i); });
  const vals: number[] = [];
  // numpy advanced indexing s[..., aind, mind] pairs aind[j] with mind[j] (broadcast when one has length 1)
  const pairs: [number, number][] = [];
  const nPairs = Math.max(aIdx.length, mIdx.length);
  if (aIdx.length && mIdx.length && (aIdx.length === mIdx.length || aIdx.length === 1 || mIdx.length === 1)) {
    for (let j = 0; j < nPairs; j++) pairs.push([aIdx[aIdx.length === 1 ? 0 : j], mIdx[mIdx.length === 1 ? 0 : j]]);
  }
  const k0 = k === null ? 0 : k, k1 = k === null ? K : k + 1;
  if (ap) {
    for (const t of tIdx) for (let r = 0; r < R; r++) for (let kk = k0; kk < k1; kk++) for (const [a, m] of pairs) {
      const v = acc.precision[(((t * R + r) * K + kk) * A + a) * M + m];
      if (v > -1) vals.push(v);
    }
  } else {
    for (const t of tIdx) for (let kk = k0; kk < k1; kk++) for (const [a, m] of pairs) {
      const v = acc.recall[((t * K + kk) * A + a) * M + m];
      if (v > -1) vals.push(v);
    }
  }
  return meanOrMinus1(vals);
}

function padEnd(s: string, n: number): string { return s.length >= n ? s : s + ' '.repeat(n - s.length); }
function padStart(s: string, n: number): string { return s.length >= n ? s : ' '.repeat(n - s.length) + s; }

/** The printed line, pycocotools' iStr format. */
export function formatLine(p: EvalParams, ap: boolean, iouThr: number | null, areaRng: string, maxDets: number, value: number): string {
  const title = ap ? 'Average Precision' : 'Average Recall';
  const type = ap ? '(AP)' : '(AR)';
  const iou = iouThr === null
    ? `${pyFixed(p.iouThrs[0], 2)}:${pyFixed(p.iouThrs[p.iouThrs.length - 1], 2)}`
    : pyFixed(iouThr, 2);
  return ` ${padEnd(title, 18)} ${type} @[ IoU=${padEnd(iou, 9)} | area=${padStart(areaRng, 6)} | maxDets=${padStart(String(maxDets), 3)} ] = ${pyFixed(value, 3)}`;
}

/** The 12 detection stats (pycocotools _summarizeDets), with their lines. */
export function summarize(acc: Accumulated, p: EvalParams): { stats: number[]; entries: SummaryEntry[] } {
  const md = p.maxDets;
  const spec: [boolean, number | null, string, number][] = [
    [true, null, 'all', md[2]], [true, 0.5, 'all', md[2]], [true, 0.75, 'all', md[2]],
    [true, null, 'small', md[2]], [true, null, 'medium', md[2]], [true, null, 'large', md[2]],
    [false, null, 'all', md[0]], [false, null, 'all', md[1]], [false, null, 'all', md[2]],
    [false, null, 'small', md[2]], [false, null, 'medium', md[2]], [false, null, 'large', md[2]],
  ];
  // pycocotools' first call is _summarize(1) with its default maxDets=100
  spec[0][3] = 100;
  const entries = spec.map(([ap, iouThr, areaRng, maxDets], i) => {
    if (maxDets === undefined) throw new Error('summarize() needs at least 3 maxDets (pycocotools uses maxDets[0..2])');
    const value = summarizeOne(acc, p, ap, iouThr, areaRng, maxDets);
    return { name: STAT_NAMES[i], ap, iouThr, areaRng, maxDets, value, line: formatLine(p, ap, iouThr, areaRng, maxDets, value) };
  });
  return { stats: entries.map((e) => e.value), entries };
}

export interface PerCategoryRow {
  catId: number;
  name: string;
  /** AP, AP50, AP75, APs, APm, APl, AR100 for this category (-1 when it has no gt). */
  ap: number; ap50: number; ap75: number; aps: number; apm: number; apl: number; ar100: number;
}

/** Per-category numbers (precision[:, :, k, area, maxDets[-1]] means, as in Detectron's table). */
export function perCategory(acc: Accumulated, p: EvalParams, catIds: number[], names: Map<number, string>): PerCategoryRow[] {
  const md = p.maxDets[p.maxDets.length - 1];
  return catIds.map((catId, k) => ({
    catId, name: names.get(catId) ?? String(catId),
    ap: summarizeOne(acc, p, true, null, 'all', md, k),
    ap50: summarizeOne(acc, p, true, 0.5, 'all', md, k),
    ap75: summarizeOne(acc, p, true, 0.75, 'all', md, k),
    aps: summarizeOne(acc, p, true, null, 'small', md, k),
    apm: summarizeOne(acc, p, true, null, 'medium', md, k),
    apl: summarizeOne(acc, p, true, null, 'large', md, k),
    ar100: summarizeOne(acc, p, false, null, 'all', md, k),
  }));
}

/** The per-category table as text. */
export function formatPerCategory(rows: PerCategoryRow[]): string {
  const f = (v: number) => padStart(v < 0 ? 'nan' : pyFixed(v * 100, 1), 6);
  const w = Math.max(8, ...rows.map((r) => r.name.length));
  const head = `${padEnd('category', w)} | ${['AP', 'AP50', 'AP75', 'APs', 'APm', 'APl', 'AR100'].map((s) => padStart(s, 6)).join(' | ')}`;
  const lines = [head, '-'.repeat(head.length)];
  for (const r of rows) {
    lines.push(`${padEnd(r.name, w)} | ${[r.ap, r.ap50, r.ap75, r.aps, r.apm, r.apl, r.ar100].map(f).join(' | ')}`);
  }
  return lines.join('\n');
}
