// The model zoo's torchvision parity suite, shared by one test file per preset: a compact fixture
// made by tools/make-parity-fixture.py (test/fixtures/<preset>/expected.safetensors: torchvision 0.14
// with the formula weights on one tiny_coco image at a small size) against our model with the same
// formula weights. Checks: the state dict (every torchvision name and shape), FPN features (first
// channels), RPN head outputs, proposals (matched set) and their scores, box-head outputs for
// torchvision's proposals, detections (matched both ways), mask logits of the detections' classes,
// training losses (deterministic sampling) and the fixture's gradient rows (with torch's float64
// gradients where the fixture has them: grad_f64.*, the measure of float32's conditioning). Every check logs its
// figure and counts what it compared; tolerances are the caller's (about 10x the measured error).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { ready } from './gpu.js';
import type { Tensor } from '../../engine/tensor.js';
import { tensor } from '../../engine/ops/create.js';
import { add } from '../../engine/ops/elementwise.js';
import { noGrad } from '../../engine/autograd.js';
import { tidy } from '../../engine/scope.js';
import { Rng } from '../../engine/random.js';
import { loadSafetensors, type HostTensor } from '../../engine/safetensors.js';
import { MaskRCNN, type PreparedBatch } from '../../model/maskrcnn.js';
import { getPreset } from '../../model/presets.js';
import { fixtureStateDict } from '../../model/fixture-weights.js';
import { rescaleBoxes } from '../../model/postprocess.js';
import type { TrainTarget } from '../../model/rpn.js';
import type { MaskTarget } from '../../model/roi-heads.js';
import { boxPairs, scaledError } from '../../tools/compare-dump.js';

export interface ZooTolerances {
  /** Scaled error (max |ours - ref| / max |ref|) of FPN features and RPN head outputs. */
  features: number;
  /** Of box-head outputs, proposal and detection scores. */
  heads: number;
  /** Of the mask logits. */
  mask: number;
  /** Relative error of each loss. */
  loss: number;
  /** Scaled error of each gradient. */
  grad: number;
}

export interface ZooSuiteOptions {
  preset: string;
  tol: ZooTolerances;
  /** Run the training-mode check (losses and gradients); false for models too slow to train here. */
  train: boolean;
  /** Compare the fixture's gradients too (default true). */
  gradients?: boolean;
}

function expectScaled(what: string, a: ArrayLike<number>, b: ArrayLike<number>, tol: number): void {
  assert.is(a.length, b.length, `${what}: length`);
  assert.ok(b.length > 0, `${what}: nothing to compare`);
  const e = scaledError(a, b).scaled;
  console.log(`    ${what}: scaled error ${e.toExponential(2)} over ${b.length} values (tolerance ${tol})`);
  assert.ok(e <= tol, `${what}: scaled error ${e} > ${tol}`);
}

/** Channels [0, c) of an [1, C, H, W] map, row-major. */
function firstChannels(data: Float32Array, shape: readonly number[], c: number): Float32Array {
  return data.slice(0, c * shape[2]! * shape[3]!);
}

/** Loads the formula weights for the model's own state-dict names and shapes; returns them. */
export function loadFixtureWeights(model: MaskRCNN): Record<string, HostTensor> {
  const weights = fixtureStateDict(Object.entries(model.stateDict()).map(([k, t]) => [k, t.shape] as const));
  model.loadStateDict(weights);
  return weights;
}

/** A one-image batch from a fixture's normalised, padded input.tensor. */
export function fixtureBatch(input: HostTensor, imageSize: [number, number], originalSize: [number, number]): PreparedBatch {
  return {
    images: tensor(input.data as Float32Array, input.shape),
    info: { paddedSize: [input.shape[2]!, input.shape[3]!], imageSizes: [imageSize] },
    originalSizes: [originalSize],
  };
}

export async function zooParitySuite(o: ZooSuiteOptions): Promise<void> {
  await ready;
  const file = `test/fixtures/${o.preset}/expected.safetensors`;
  const { tensors: fx, metadata } = loadSafetensors(new Uint8Array(readFileSync(file)));
  const get = (k: string): HostTensor => {
    const t = fx[k];
    if (!t) throw new Error(`${file} has no tensor '${k}'`);
    return t;
  };
  const f32 = (k: string): Float32Array => Float32Array.from(get(k).data);
  const refStateDict = JSON.parse(metadata.state_dict ?? '{}') as Record<string, number[]>;
  const imageSize = Array.from(get('input.image_size').data) as [number, number];
  const [origH, origW] = (metadata.original_size ?? '').split(',').map(Number) as [number, number];
  const maskOn = 'mask.logits_of_label[0:5]' in fx;

  const model = new MaskRCNN(getPreset(o.preset, { roiHeads: { scoreThresh: 0 } }));
  const weights = loadFixtureWeights(model);
  model.eval();
  const input = get('input.tensor');
  const batch = (): PreparedBatch => fixtureBatch(input, imageSize, [origH, origW]);

  test(`${o.preset}: the state dict has torchvision's names and shapes`, () => {
    const ours = Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, [...t.shape]]));
    const n = Object.keys(refStateDict).length;
    assert.ok(n > 0, 'the fixture lists torchvision state-dict names');
    console.log(`    ${n} torchvision tensors, ${Object.keys(ours).length} ours`);
    assert.equal(Object.keys(ours).sort(), Object.keys(refStateDict).sort());
    for (const [k, s] of Object.entries(refStateDict)) assert.equal(ours[k], s, `shape of ${k}`);
  });

  test(`${o.preset}: FPN, RPN, proposals, box head and mask logits match torchvision`, async () => {
    const b = batch();
    const features = noGrad(() => model.features(b.images));
    let compared = 0;
    for (const [l, name] of ['0', '1', '2', '3', 'pool'].entries()) {
      const key = Object.keys(fx).find((k) => k.startsWith(`fpn.${name}[`))!;
      const ref = f32(key);
      expectScaled(key, firstChannels(await features[l]!.floatData(), features[l]!.shape, get(key).shape[1]!), ref, o.tol.features);
      compared++;
    }
    const raw: { objectness?: Tensor[]; deltas?: Tensor[] } = {};
    const rpn = await noGrad(() => model.rpn.forward(features, b.info, undefined, undefined, raw));
    for (let l = 0; l < 5; l++) {
      expectScaled(`rpn.objectness.${l}`, await raw.objectness![l]!.floatData(), f32(`rpn.objectness.${l}`), o.tol.features);
      expectScaled(`rpn.deltas.${l}`, await raw.deltas![l]!.floatData(), f32(`rpn.deltas.${l}`), o.tol.features);
      compared += 2;
    }
    const refProps = f32('rpn.proposals');
    const pairs = boxPairs(rpn.proposals[0]!, refProps, 1e-2);
    const nOurs = rpn.proposals[0]!.length / 4, nRef = refProps.length / 4;
    console.log(`    proposals: ${nOurs} ours, ${nRef} torchvision, ${pairs.length} matched within 0.01 px`);
    assert.ok(pairs.length >= 0.99 * nRef && pairs.length >= 0.99 * nOurs, `only ${pairs.length} proposals matched`);
    const refScores = f32('rpn.proposal_scores');
    expectScaled('rpn.proposal_scores (matched)', pairs.map(([, j]) => rpn.scores[0]![j]!), pairs.map(([i]) => refScores[i]!), o.tol.heads);

    const scales = model.roiScales(features, b.info);
    const logitsKey = Object.keys(fx).find((k) => k.startsWith('box.class_logits['))!;
    const rows = get(logitsKey).shape[0]!;
    const out = noGrad(() => model.roiHeads.boxBranch(features.slice(0, 4), [refProps.slice(0, 4 * rows)], scales));
    expectScaled(logitsKey, await out.classLogits.floatData(), f32(logitsKey), o.tol.heads);
    const regKey = logitsKey.replace('class_logits', 'box_regression');
    expectScaled(regKey, await out.boxRegression.floatData(), f32(regKey), o.tol.heads);
    compared += 2;
    if (maskOn) {
      // Mask logits of torchvision's first five detections (boxes taken back to the resized image), each of its own class.
      const det5 = rescaleBoxes(f32('det.boxes').slice(0, 20), [origH, origW], imageSize);
      const logits = noGrad(() => model.roiHeads.maskBranch(features.slice(0, 4), [det5], scales));
      const [R, C, M] = logits.shape as [number, number, number];
      const all = await logits.floatData();
      const labels = get('det.labels').data;
      const own = new Float32Array(R * M * M);
      for (let r = 0; r < R; r++) own.set(all.subarray((r * C + labels[r]!) * M * M, (r * C + labels[r]! + 1) * M * M), r * M * M);
      expectScaled('mask.logits_of_label[0:5]', own, f32('mask.logits_of_label[0:5]'), o.tol.mask);
      logits.dispose();
      compared++;
    } else {
      assert.throws(() => model.roiHeads.maskBranch(features.slice(0, 4), [new Float32Array(4)], scales), /maskOn false/);
    }
    console.log(`    ${compared} tensors compared besides the proposals`);
    [out.classLogits, out.boxRegression, b.images, ...features, ...raw.objectness!, ...raw.deltas!].forEach((t) => t.dispose());
  });

  test(`${o.preset}: detections match torchvision both ways`, async () => {
    const b = batch();
    const [det] = await model.detect(b);
    b.images.dispose();
    const refBoxes = f32('det.boxes');
    const pairs = boxPairs(det!.boxes, refBoxes, 0.05);
    const D = det!.scores.length, R = refBoxes.length / 4;
    console.log(`    detections: ${D} ours, ${R} torchvision, ${pairs.length} matched within 0.05 px`);
    assert.ok(R > 0, 'the fixture has detections');
    assert.ok(pairs.length >= 0.95 * R && pairs.length >= 0.95 * D, `only ${pairs.length} of ${D} / ${R} detections matched`);
    const refScores = f32('det.scores');
    const refLabels = get('det.labels').data;
    expectScaled('det.scores (matched)', pairs.map(([, j]) => det!.scores[j]!), pairs.map(([i]) => refScores[i]!), o.tol.heads);
    assert.ok(pairs.every(([i, j]) => det!.labels[j] === refLabels[i]), 'labels of matched detections');
    assert.is(det!.masks.length, maskOn ? D * origH * origW : 0, 'pasted masks (none without a mask branch)');
  });

  if (!o.train) return;
  test(`${o.preset}: training losses and gradients match torchvision (deterministic sampling)`, async () => {
    const trainModel = new MaskRCNN(getPreset(o.preset, { rpn: { batchSizePerImage: 1e9 }, roiHeads: { batchSizePerImage: 1e9 } }));
    trainModel.loadStateDict(weights);
    trainModel.train();
    const b = batch();
    const boxes = f32('target.resized_boxes');
    const G = boxes.length / 4;
    const labels = Int32Array.from(get('target.labels').data);
    let target: TrainTarget | MaskTarget = { boxes, labels };
    if (maskOn) {
      const m = get('target.resized_masks');
      assert.equal(m.shape, [G, imageSize[0], imageSize[1]], 'torchvision resized the masks to the image size');
      target = { boxes, labels, masks: tensor(Float32Array.from(m.data), m.shape) };
    }
    const losses = await trainModel.losses(b, [target], new Rng(0));
    const refKeys = Object.keys(fx).filter((k) => k.startsWith('loss.')).map((k) => k.slice(5));
    assert.equal(Object.keys(losses).sort(), refKeys.sort(), 'the loss terms');
    for (const [k, v] of Object.entries(losses)) {
      const ref = f32(`loss.${k}`)[0]!;
      const ours = await v!.item();
      const rel = Math.abs(ours - ref) / Math.abs(ref);
      console.log(`    loss.${k}: ours ${ours}, torchvision ${ref}, relative error ${rel.toExponential(2)} (tolerance ${o.tol.loss})`);
      assert.ok(rel <= o.tol.loss, `loss.${k} relative error ${rel}`);
    }
    if (o.gradients === false) {
      console.log(`    ${refKeys.length} losses compared; gradients not compared for this preset`);
      return;
    }
    const total = tidy(() => Object.values(losses).reduce((a, c) => add(a!, c!))!);
    total.backward();
    const params = Object.fromEntries(trainModel.namedParameters());
    const grads = Object.keys(fx).filter((k) => k.startsWith('grad.'));
    assert.ok(grads.length >= 8, 'the fixture lists gradients');
    // Every gradient's figure is logged before the first failure is reported.
    const failures: string[] = [];
    for (const k of grads) {
      // grad.<param> or grad.<param>[a:b] (output rows a..b-1).
      const [, name, a] = /^grad\.([^[]+)(?:\[(\d+):(\d+)\])?$/.exec(k)!;
      const g = params[name!]?.grad;
      assert.ok(g, `${name} has a gradient`);
      const ref = f32(k);
      if (!ref.some((v) => v !== 0)) {
        failures.push(`${k}: the reference rows are all zero`);
        continue;
      }
      const row = g!.size / g!.shape[0]!;
      const from = Number(a ?? 0) * row;
      const ours = (await g!.floatData()).slice(from, from + ref.length);
      // Where the fixture has torch's float64 gradient too (v2), float32 determines the gradient
      // only as well as torch's float32 result agrees with it: ours and torch's are two float32
      // computations each that far from the exact value, so the tolerance is 3x that spread.
      let tol = o.tol.grad;
      const exact = fx[`grad_f64.${k.slice(5)}`];
      if (exact) {
        const spread = scaledError(ref, exact.data).scaled;
        tol = Math.max(tol, 3 * spread);
        console.log(`    ${k}: torch float32 vs float64 ${spread.toExponential(2)}, ours vs float64 ${scaledError(ours, exact.data).scaled.toExponential(2)}`);
      }
      try {
        expectScaled(k, ours, ref, tol);
      } catch (e) {
        failures.push((e as Error).message);
      }
    }
    assert.equal(failures, [], 'gradients within tolerance');
    console.log(`    ${refKeys.length} losses and ${grads.length} gradients compared`);
  });
}
