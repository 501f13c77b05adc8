// The torchvision parity fixture (../shared/fixtures/torchvision-maskrcnn) and its comparisons,
// shared by test/model-parity.test.ts (the model fed torchvision's input tensor) and
// test/model-parity-file.test.ts (the whole pipeline from the JPEG file).
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { loadSafetensors, type HostTensor } from '../../engine/safetensors.js';
import { boxPairs } from '../../tools/compare-dump.js';

export const CASE_DIR = '../shared/fixtures/torchvision-maskrcnn/case-000000555705/';
export const CASE = CASE_DIR + 'expected.safetensors';

/** The case's tensors, with accessors that name a missing tensor. */
export function loadFixture(file = CASE): { fx: Record<string, HostTensor>; metadata: Record<string, string>; get: (k: string) => HostTensor; f32: (k: string) => Float32Array } {
  const { tensors: fx, metadata } = loadSafetensors(new Uint8Array(readFileSync(file)));
  const get = (k: string): HostTensor => {
    const t = fx[k];
    if (!t) throw new Error(`fixture has no tensor '${k}'`);
    return t;
  };
  return { fx, metadata, get, f32: (k) => Float32Array.from(get(k).data) };
}

/** max |a - b| / max |b|: error relative to the reference's scale. */
export function scaledError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.is(a.length, b.length, 'length');
  let d = 0, m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / (m || 1);
}

export function expectScaled(what: string, a: ArrayLike<number>, b: ArrayLike<number>, tol: number): void {
  assert.ok(b.length > 0, `${what}: nothing to compare`);
  const e = scaledError(a, b);
  console.log(`    ${what}: scaled error ${e.toExponential(2)} (tolerance ${tol})`);
  assert.ok(e <= tol, `${what}: scaled error ${e} > ${tol}`);
}

/** Fraction of reference boxes that have a box of ours with every coordinate within `tol`, and
 *  the [reference row, our row] pairs (greedy, tools/compare-dump.ts's boxPairs). */
export function matchedFraction(ours: Float32Array, ref: Float32Array, tol: number): { fraction: number; pairs: [number, number][] } {
  const pairs = boxPairs(ours, ref, tol);
  return { fraction: pairs.length / (ref.length / 4), pairs };
}

/** Every box of each side matched one of the other's: equal counts, all paired (one to one). */
export function expectAllMatched(what: string, ours: number, ref: number, paired: number): void {
  assert.ok(ref > 0, `${what}: the reference has some`);
  assert.is(ours, ref, `${what}: ${ours} ours, ${ref} torchvision`);
  assert.is(paired, ref, `${what}: ${paired} of ${ref} matched`);
}

/** Tolerances of the detection check (about 10x the errors measured on lavapipe). */
export interface DetectionTolerances {
  /** Box coordinates, pixels. */
  box: number;
  /** Scaled error of matched scores. */
  score: number;
  /** A pasted-mask pixel "differs" beyond this probability difference... */
  maskPixel: number;
  /** ...and at most this many pixels of each of the first five masks may differ (0 measured). */
  maskPixels: number;
}
export const DETECTION_TOLERANCES: DetectionTolerances = { box: 0.05, score: 3e-5, maskPixel: 1e-3, maskPixels: 10 };

/** Our detections of the case's image against torchvision's: every detection of each side matched
 *  (equal counts), scores and labels of the matches, pasted masks of the first five (at the
 *  original size origH x origW). */
export function expectDetectionsMatch(
  det: { boxes: Float32Array; scores: Float32Array; labels: ArrayLike<number>; masks: Float32Array },
  fixture: Pick<ReturnType<typeof loadFixture>, 'get' | 'f32'>,
  [origH, origW]: [number, number],
  tol: DetectionTolerances = DETECTION_TOLERANCES,
): void {
  const { get, f32 } = fixture;
  const refBoxes = f32('det.boxes');
  const m = matchedFraction(det.boxes, refBoxes, tol.box);
  console.log(`    detections: ${det.scores.length} ours, ${refBoxes.length / 4} torchvision, ${(100 * m.fraction).toFixed(1)}% matched within ${tol.box} px`);
  expectAllMatched('detections', det.scores.length, refBoxes.length / 4, m.pairs.length);
  const refScores = f32('det.scores');
  const refLabels = get('det.labels').data;
  expectScaled('det.scores (matched)', m.pairs.map(([, j]) => det.scores[j]!), m.pairs.map(([i]) => refScores[i]!), tol.score);
  assert.ok(m.pairs.every(([i, j]) => det.labels[j] === refLabels[i]), 'labels of matched detections');
  // Pasted masks of the first five: probabilities agree except where a box edge rounds differently.
  const refMasks = f32('det.masks[0:5]');
  const plane = origH * origW;
  const firstFive = m.pairs.filter(([i]) => i < 5);
  assert.is(firstFive.length, 5, 'the first five detections are compared');
  assert.is(refMasks.length, 5 * plane, 'five reference masks');
  for (const [i, j] of firstFive) {
    let bad = 0;
    for (let p = 0; p < plane; p++) if (Math.abs(det.masks[j * plane + p]! - refMasks[i * plane + p]!) > tol.maskPixel) bad++;
    console.log(`    det.masks[${i}]: ${bad} of ${plane} pixels differ by more than ${tol.maskPixel}`);
    assert.ok(bad <= tol.maskPixels, `mask ${i}: ${bad} pixels differ by more than ${tol.maskPixel} (at most ${tol.maskPixels})`);
  }
}
