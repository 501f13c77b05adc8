// COCOeval parameters (pycocotools cocoeval.Params for iouType bbox / segm), with numpy's exact
// float values for the IoU and recall thresholds.
import type { IouType } from '../coco-json.js';

export interface EvalParams {
  iouType: IouType;
  /** Image ids to evaluate (default: every GT image); sorted and de-duplicated by evaluate(). */
  imgIds: number[];
  /** Category ids (default: every GT category); sorted and de-duplicated when useCats. */
  catIds: number[];
  /** T IoU thresholds, np.linspace(.5, .95, 10). */
  iouThrs: number[];
  /** R recall thresholds, np.linspace(0, 1, 101). */
  recThrs: number[];
  /** Max detections per image; sorted by evaluate(). */
  maxDets: number[];
  /** Inclusive [min, max] area ranges. */
  areaRng: [number, number][];
  areaRngLbl: string[];
  /** When false, categories are ignored (proposal-style evaluation). */
  useCats: boolean;
}

/**
 * numpy.linspace(start, stop, num) (endpoint=True): start + i * step with step = (stop - start) / (num - 1),
 * the last value set to stop exactly.
 */
export function linspace(start: number, stop: number, num: number): number[] {
  const out: number[] = [];
  if (num <= 0) return out;
  const div = num - 1;
  const delta = stop - start;
  const step = div > 0 ? delta / div : NaN;
  for (let i = 0; i < num; i++) {
    // numpy: when step == 0 it computes (i / div) * delta instead
    out.push(div === 0 ? start : step === 0 ? (i / div) * delta + start : i * step + start);
  }
  if (num > 1) out[num - 1] = stop;
  return out;
}

/** Python's round() / numpy's np.round for the threshold counts (round half to even). */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x - Math.trunc(x)) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Default parameters, as pycocotools' Params.setDetParams(). */
export function defaultParams(iouType: IouType = 'segm'): EvalParams {
  return {
    iouType,
    imgIds: [],
    catIds: [],
    iouThrs: linspace(0.5, 0.95, roundHalfEven((0.95 - 0.5) / 0.05) + 1),
    recThrs: linspace(0.0, 1.0, roundHalfEven((1.0 - 0.0) / 0.01) + 1),
    maxDets: [1, 10, 100],
    areaRng: [[0 ** 2, 1e5 ** 2], [0 ** 2, 32 ** 2], [32 ** 2, 96 ** 2], [96 ** 2, 1e5 ** 2]],
    areaRngLbl: ['all', 'small', 'medium', 'large'],
    useCats: true,
  };
}

/** A deep copy (evaluate() keeps one, like pycocotools' _paramsEval). */
export function copyParams(p: EvalParams): EvalParams {
  return {
    ...p,
    imgIds: p.imgIds.slice(), catIds: p.catIds.slice(), iouThrs: p.iouThrs.slice(), recThrs: p.recThrs.slice(),
    maxDets: p.maxDets.slice(), areaRng: p.areaRng.map((r) => [r[0], r[1]] as [number, number]),
    areaRngLbl: p.areaRngLbl.slice(),
  };
}

/** np.unique: sorted ascending, duplicates removed. */
export function uniqueSorted(a: readonly number[]): number[] {
  const s = Array.from(new Set(a)).sort((x, y) => x - y);
  return s;
}
