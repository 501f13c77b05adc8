// Fine-tuning as in Detectron2's custom-dataset recipe: initial weights trained for another number of
// classes load everywhere except the class-specific layers, which are re-initialised and reported;
// a checkpoint of another architecture is refused naming the tensors; --freeze-at K is FREEZE_AT.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { ready } from './helpers/gpu.js';
import { MaskRCNN } from '../model/maskrcnn.js';
import { getPreset } from '../model/presets.js';
import { checkpointInfo, decodeCheckpoint } from '../model/checkpoint.js';
import { isClassSpecificKey } from '../model/checkpoint-keys.js';
import { loadInitialWeights } from '../train/checkpoint.js';
import { modelConfigFor, resolveConfig } from '../train/config.js';

await ready;

// The demo's trained shapes model: tiny-cpu with 5 classes (4 shapes + background).
const SHAPES = 'web/models/shapes-tiny-cpu.safetensors';
const shapes = decodeCheckpoint(new Uint8Array(readFileSync(SHAPES)), SHAPES).model;

test('weights of another number of classes: all but the class-specific layers load, those are re-initialised', async () => {
  const model = new MaskRCNN(getPreset('tiny-cpu', { numClasses: 3 }));
  try {
    const before = await model.stateDict()['roi_heads.box_predictor.cls_score.weight']!.floatData();
    const lines = loadInitialWeights(model, shapes, SHAPES, 3);
    console.log(`    ${lines.join('\n    ')}`);
    const own = model.stateDict();
    const specific = Object.keys(own).filter(isClassSpecificKey);
    assert.equal(specific.sort(), [
      'roi_heads.box_predictor.bbox_pred.bias', 'roi_heads.box_predictor.bbox_pred.weight',
      'roi_heads.box_predictor.cls_score.bias', 'roi_heads.box_predictor.cls_score.weight',
      'roi_heads.mask_predictor.mask_fcn_logits.bias', 'roi_heads.mask_predictor.mask_fcn_logits.weight',
    ]);
    assert.match(lines[0]!, new RegExp(`${Object.keys(own).length - specific.length} tensors loaded`));
    assert.match(lines[1]!, /fine-tuning for 3 classes including background \(the checkpoint has 5\): re-initialised .*cls_score\.weight/);
    // The re-initialised classifier keeps its fresh values; a shared layer took the checkpoint's.
    assert.equal(Array.from(await own['roi_heads.box_predictor.cls_score.weight']!.floatData()), Array.from(before));
    const fc = 'roi_heads.box_head.fc6.weight' in own ? 'roi_heads.box_head.fc6.weight' : Object.keys(own).find((k) => k.startsWith('backbone.body.conv1'))!;
    assert.equal(Array.from(await own[fc]!.floatData()).slice(0, 8), Array.from(shapes[fc]!.data).slice(0, 8), fc);
  } finally {
    model.dispose();
  }
});

test('the same number of classes: everything loads, nothing re-initialised', () => {
  const model = new MaskRCNN(getPreset('tiny-cpu', { numClasses: 5 }));
  try {
    const lines = loadInitialWeights(model, shapes, SHAPES, 5);
    assert.is(lines.length, 1);
    assert.match(lines[0]!, new RegExp(`^initial weights ${SHAPES}: ${Object.keys(model.stateDict()).length} tensors loaded$`));
  } finally {
    model.dispose();
  }
});

test('a checkpoint of another architecture is refused, naming the tensors', () => {
  const model = new MaskRCNN(getPreset('tiny', { numClasses: 5 }));
  try {
    assert.throws(() => loadInitialWeights(model, shapes, SHAPES, 5), (e: Error) =>
      /--weights web\/models\/shapes-tiny-cpu\.safetensors: \d+ tensor\(s\) outside the class-specific layers have other shapes/.test(e.message) && /backbone\./.test(e.message));
  } finally {
    model.dispose();
  }
});

test('--freeze-at K freezes the stem and the first K-1 stages (Detectron2 FREEZE_AT)', () => {
  const base = { preset: 'tiny-cpu' };
  for (const [k, frozen, trainable] of [[0, [], ['conv1', 'layer1']], [1, ['conv1'], ['layer1', 'layer2']], [2, ['conv1', 'layer1'], ['layer2', 'layer4']], [5, ['layer4'], []]] as const) {
    const cfg = modelConfigFor(resolveConfig({ ...base, freezeAt: k }), 5);
    assert.is(cfg.backbone.trainableLayers, 5 - k, `freezeAt ${k}`);
    const model = new MaskRCNN(cfg);
    try {
      const grads = new Map(model.namedParameters().map(([n, p]) => [n, p.requiresGrad]));
      for (const stage of frozen) assert.ok([...grads].filter(([n]) => n.startsWith(`backbone.body.${stage}.`)).every(([, g]) => !g), `freezeAt ${k}: ${stage} frozen`);
      for (const stage of trainable) assert.ok([...grads].filter(([n]) => n.startsWith(`backbone.body.${stage}.`)).every(([, g]) => g), `freezeAt ${k}: ${stage} trains`);
    } finally {
      model.dispose();
    }
  }
  assert.throws(() => resolveConfig({ ...base, freezeAt: 6 }), /freezeAt must be an integer in 0\.\.5/);
});

test('a weights file stored before maskOn and ResNeXt groups existed builds its model and loads strictly', () => {
  const raw = decodeCheckpoint(new Uint8Array(readFileSync(SHAPES)), SHAPES);
  const stored = JSON.parse(raw.metadata.info!) as { model: Record<string, unknown> };
  assert.is(stored.model.maskOn, undefined, 'the committed demo model predates maskOn');
  const info = checkpointInfo(raw)!;
  assert.is(info.model.maskOn, true);
  assert.is(info.model.backbone.groups, 1);
  assert.is(info.model.backbone.widthPerGroup, 64);
  const model = new MaskRCNN(info.model);
  try {
    const report = model.loadStateDict(raw.model);
    assert.is(report.loaded.length, Object.keys(raw.model).length);
  } finally {
    model.dispose();
  }
});

test.run();
