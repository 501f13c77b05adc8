// COCO detection evaluation, a TypeScript port of pycocotools' COCOeval for iouType bbox / segm.
//
//   const E = new COCOeval(gtJson, resultsJson, 'bbox');   // parsed JSON (validated here)
//   E.params.imgIds = [...];                               // optional, as in pycocotools
//   E.evaluate(); E.accumulate(); const lines = E.summarize();
//   E.stats  // the 12 numbers;  E.eval.precision  // [T,R,K,A,M]
import type { IouType } from '../coco-json.js';
import { accumulate, type Accumulated } from './accumulate.js';
import { evaluate, type EvalResult } from './evaluate.js';
import { defaultParams, type EvalParams } from './params.js';
import { prepareGroundTruth, prepareResults, type DtTable, type GtTable } from './prepare.js';
import { formatPerCategory, perCategory, summarize, type PerCategoryRow, type SummaryEntry } from './summarize.js';

export { accumulate, type Accumulated, precisionIndex, recallIndex } from './accumulate.js';
export { evaluate, type EvalResult, FP, TP, IGNORED } from './evaluate.js';
export { defaultParams, linspace, type EvalParams } from './params.js';
export { prepareGroundTruth, prepareResults, type DtTable, type GtTable } from './prepare.js';
export {
  formatLine, formatPerCategory, meanOrMinus1, pairwiseSum, perCategory, pyFixed, STAT_NAMES, summarize, summarizeOne,
  type PerCategoryRow, type SummaryEntry,
} from './summarize.js';

export class COCOeval {
  readonly gt: GtTable;
  readonly dt: DtTable;
  params: EvalParams;
  /** Per-image matching results (after evaluate()). */
  evalImgs: EvalResult | null = null;
  /** Precision / recall / scores (after accumulate()). */
  eval: Accumulated | null = null;
  stats: number[] = [];
  entries: SummaryEntry[] = [];

  /**
   * @param gtJson parsed COCO instances JSON (images, annotations, categories)
   * @param resultsJson parsed results list (loadRes format)
   */
  constructor(gtJson: unknown, resultsJson: unknown, iouType: IouType = 'segm') {
    if (iouType !== 'bbox' && iouType !== 'segm') throw new Error(`iouType must be 'bbox' or 'segm' (got ${String(iouType)})`);
    this.gt = prepareGroundTruth(gtJson, iouType);
    this.dt = prepareResults(resultsJson, this.gt, iouType);
    this.params = defaultParams(iouType);
    this.params.imgIds = this.gt.imgIds.slice().sort((a, b) => a - b);
    this.params.catIds = this.gt.catIds.slice().sort((a, b) => a - b);
  }

  evaluate(): EvalResult {
    this.evalImgs = evaluate(this.gt, this.dt, this.params);
    this.params = this.evalImgs.params;
    this.eval = null;
    return this.evalImgs;
  }

  accumulate(): Accumulated {
    if (!this.evalImgs) throw new Error('Please run evaluate() first');
    this.eval = accumulate(this.evalImgs);
    return this.eval;
  }

  /** Computes the 12 stats and returns the printed lines (pycocotools' output). */
  summarize(): string[] {
    if (!this.eval) throw new Error('Please run accumulate() first');
    const { stats, entries } = summarize(this.eval, this.params);
    this.stats = stats;
    this.entries = entries;
    return entries.map((e) => e.line);
  }

  /** Per-category AP numbers (after accumulate()). */
  perCategory(): PerCategoryRow[] {
    if (!this.eval || !this.evalImgs) throw new Error('Please run accumulate() first');
    return perCategory(this.eval, this.params, this.evalImgs.catIds, this.gt.catNames);
  }

  perCategoryTable(): string {
    return formatPerCategory(this.perCategory());
  }
}

/** evaluate + accumulate + summarize in one call. */
export function cocoEvaluate(gtJson: unknown, resultsJson: unknown, iouType: IouType,
  setup?: (p: EvalParams) => void): COCOeval {
  const E = new COCOeval(gtJson, resultsJson, iouType);
  setup?.(E.params);
  E.evaluate(); E.accumulate(); E.summarize();
  return E;
}
