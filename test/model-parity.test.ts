// The whole Mask R-CNN against torchvision 0.14 (shared/fixtures/torchvision-maskrcnn): with the
// fixture's formula weights, our FPN features, RPN head outputs, proposals (as a matched set), box-branch outputs
// for torchvision's own proposals, detections, mask logits, pasted masks, the five training losses
// (deterministic sampling) and the listed parameter gradients. Tolerances are stated per check.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { ready } from './helpers/gpu.js';
import type { Tensor } from '../engine/tensor.js';
import { tensor } from '../engine/ops/create.js';
import { add } from '../engine/ops/elementwise.js';
import { noGrad } from '../engine/autograd.js';
import { tidy } from '../engine/scope.js';
import { Rng } from '../engine/random.js';
import { loadSafetensors, type HostTensor } from '../engine/safetensors.js';
import { MaskRCNN, type PreparedBatch } from '../model/maskrcnn.js';
import { getPreset } from '../model/presets.js';
import { fixtureBatch, loadFixtureWeights } from './helpers/zoo-parity.js';
import { resizeNearestPlanes } from '../data/transforms.js';
import { rescaleBoxes } from '../model/postprocess.js';

await ready;

const CASE = '../shared/fixtures/torchvision-maskrcnn/case-000000555705/expected.safetensors';
const fx = loadSafetensors(new Uint8Array(readFileSync(CASE))).tensors;
const get = (k: string): HostTensor => {
  const t = fx[k];
  if (!t) throw new Error(`fixture has no tensor '${k}'`);
  return t;
};
const f32 = (k: string): Float32Array => Float32Array.from(get(k).data);

/** max |a - b| / max |b|: error relative to the reference's scale. */
function scaledError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.is(a.length, b.length, 'length');
  let d = 0, m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / (m || 1);
}

function expectScaled(what: string, a: ArrayLike<number>, b: ArrayLike<number>, tol: number): void {
  const e = scaledError(a, b);
  console.log(`    ${what}: scaled error ${e.toExponential(2)} (tolerance ${tol})`);
  assert.ok(e <= tol, `${what}: scaled error ${e} > ${tol}`);
}

/** Fraction of reference boxes that have a box of ours with every coordinate within `tol`. */
function matchedFraction(ours: Float32Array, ref: Float32Array, tol: number): { fraction: number; pairs: [number, number][] } {
  const pairs: [number, number][] = [];
  const used = new Uint8Array(ours.length / 4);
  for (let i = 0; i < ref.length / 4; i++) {
    for (let j = 0; j < ours.length / 4; j++) {
      if (used[j]) continue;
      let ok = true;
      for (let k = 0; k < 4 && ok; k++) ok = Math.abs(ours[4 * j + k]! - ref[4 * i + k]!) <= tol;
      if (ok) {
        used[j] = 1;
        pairs.push([i, j]);
        break;
      }
    }
  }
  return { fraction: pairs.length / (ref.length / 4), pairs };
}

const imageSize = Array.from(get('input.image_size').data) as [number, number];
// The original image size (the pasted masks are at it).
const [origH, origW] = [get('det.masks[0:5]').shape[1]!, get('det.masks[0:5]').shape[2]!];
const cfg = getPreset('torchvision-r50-fpn', {
  numClasses: 91,
  roiHeads: { scoreThresh: 0 },
  // The fixture's training mode uses every labelled anchor and proposal (no random sampling).
  rpn: { batchSizePerImage: 1e9 },
});
const cfgTrain = getPreset('torchvision-r50-fpn', { numClasses: 91, rpn: { batchSizePerImage: 1e9 }, roiHeads: { batchSizePerImage: 1e9 } });
const model = new MaskRCNN(cfg);
const weights = loadFixtureWeights(model);
model.eval();

const input = get('input.tensor');
const batch = (): PreparedBatch => fixtureBatch(input, imageSize, [origH, origW]);

test('the model has torchvision 0.14 state-dict keys (307 tensors)', () => {
  assert.is(Object.keys(model.stateDict()).length, 307);
  for (const k of Object.keys(fx).filter((k) => k.startsWith('grad.'))) {
    const name = k.slice(5).replace(/\[.*\]$/, '');
    assert.ok(model.stateDict()[name], `model has ${name}`);
  }
});

test('FPN features, RPN head outputs, proposals and box-branch outputs match torchvision', async () => {
  const b = batch();
  const features = noGrad(() => model.features(b.images));
  for (const [l, name] of ['0', '1', '2', '3', 'pool'].entries()) {
    assert.equal([...features[l]!.shape], get(`fpn.${name}`).shape, `fpn.${name} shape`);
    expectScaled(`fpn.${name}`, await features[l]!.floatData(), f32(`fpn.${name}`), 1e-4);
  }
  const raw: { objectness?: Tensor[]; deltas?: Tensor[] } = {};
  const rpn = await noGrad(() => model.rpn.forward(features, b.info, undefined, undefined, raw));
  for (let l = 0; l < 5; l++) {
    expectScaled(`rpn.objectness.${l}`, await raw.objectness![l]!.floatData(), f32(`rpn.objectness.${l}`), 1e-4);
    expectScaled(`rpn.deltas.${l}`, await raw.deltas![l]!.floatData(), f32(`rpn.deltas.${l}`), 1e-4);
  }
  const refProps = f32('rpn.proposals');
  const m = matchedFraction(rpn.proposals[0]!, refProps, 1e-2);
  console.log(`    proposals: ${rpn.proposals[0]!.length / 4} ours, ${refProps.length / 4} torchvision, ${(100 * m.fraction).toFixed(2)}% matched within 0.01 px`);
  assert.ok(m.fraction >= 0.99, `only ${m.fraction} of the proposals matched`);
  const refScores = f32('rpn.proposal_scores');
  expectScaled('rpn.proposal_scores (matched)', m.pairs.map(([, j]) => rpn.scores[0]![j]!), m.pairs.map(([i]) => refScores[i]!), 1e-4);

  const scales = model.roiScales(features, b.info);
  const out = noGrad(() => model.roiHeads.boxBranch(features.slice(0, 4), [refProps], scales));
  expectScaled('box.class_logits', await out.classLogits.floatData(), f32('box.class_logits'), 1e-4);
  expectScaled('box.box_regression', await out.boxRegression.floatData(), f32('box.box_regression'), 1e-4);

  // Mask logits of torchvision's first five detections (boxes taken back to the resized image).
  const det5 = rescaleBoxes(f32('det.boxes').slice(0, 20), [origH, origW], imageSize);
  const logits = noGrad(() => model.roiHeads.maskBranch(features.slice(0, 4), [det5], scales));
  expectScaled('mask.logits[0:5]', await logits.floatData(), f32('mask.logits[0:5]'), 1e-3);
  [out.classLogits, out.boxRegression, logits, b.images, ...features, ...raw.objectness!, ...raw.deltas!].forEach((t) => t.dispose());
});

test('detections and pasted masks match torchvision', async () => {
  const b = batch();
  const [det] = await model.detect(b);
  b.images.dispose();
  const refBoxes = f32('det.boxes');
  const m = matchedFraction(det!.boxes, refBoxes, 0.05);
  console.log(`    detections: ${det!.scores.length} ours, ${refBoxes.length / 4} torchvision, ${(100 * m.fraction).toFixed(1)}% matched within 0.05 px`);
  assert.ok(m.fraction >= 0.95, `only ${m.fraction} of the detections matched`);
  const refScores = f32('det.scores');
  const refLabels = get('det.labels').data;
  expectScaled('det.scores (matched)', m.pairs.map(([, j]) => det!.scores[j]!), m.pairs.map(([i]) => refScores[i]!), 1e-4);
  assert.ok(m.pairs.every(([i, j]) => det!.labels[j] === refLabels[i]), 'labels of matched detections');
  // Pasted masks of the first five: probabilities agree except where a box edge rounds differently.
  const refMasks = f32('det.masks[0:5]');
  const plane = origH * origW;
  for (const [i, j] of m.pairs.filter(([i]) => i < 5)) {
    let bad = 0;
    for (let p = 0; p < plane; p++) if (Math.abs(det!.masks[j * plane + p]! - refMasks[i * plane + p]!) > 1e-3) bad++;
    console.log(`    det.masks[${i}]: ${bad} of ${plane} pixels differ by more than 1e-3`);
    assert.ok(bad / plane < 0.01, `mask ${i}: ${bad} pixels differ`);
  }
});

test('training losses and gradients match torchvision (deterministic sampling)', async () => {
  const trainModel = new MaskRCNN(cfgTrain);
  trainModel.loadStateDict(weights);
  trainModel.train();
  const b = batch();
  const gtBoxes = rescaleBoxes(f32('target.boxes'), [origH, origW], imageSize);
  const G = gtBoxes.length / 4;
  const masks = resizeNearestPlanes(Uint8Array.from(get('target.masks').data), G, origH, origW, imageSize[0], imageSize[1]);
  const target = {
    boxes: gtBoxes,
    labels: Int32Array.from(get('target.labels').data),
    masks: tensor(Float32Array.from(masks), [G, imageSize[0], imageSize[1]]),
  };
  const losses = await trainModel.losses(b, [target], new Rng(0));
  for (const [k, v] of Object.entries(losses)) {
    const ref = f32(`loss.${k}`)[0]!;
    const ours = await v.item();
    const rel = Math.abs(ours - ref) / Math.abs(ref);
    console.log(`    loss.${k}: ours ${ours}, torchvision ${ref}, relative error ${rel.toExponential(2)}`);
    assert.ok(rel <= 1e-4, `loss.${k} relative error ${rel}`);
  }
  const total = tidy(() => Object.values(losses).reduce((a, c) => add(a, c)));
  total.backward();
  const params = Object.fromEntries(trainModel.namedParameters());
  for (const k of Object.keys(fx).filter((k) => k.startsWith('grad.'))) {
    const sliced = /\[0:(\d+)\]$/.exec(k);
    const name = k.slice(5).replace(/\[.*\]$/, '');
    const g = params[name]!.grad;
    assert.ok(g, `${name} has a gradient`);
    const ours = await g!.floatData();
    const ref = f32(k);
    expectScaled(k, sliced ? ours.slice(0, ref.length) : ours, ref, 1e-3);
  }
});

test.run();
