// Weights files as users have them, written by Python's own torch.save and pickle
// (tools/make-checkpoint-fixtures.py, from the tiny-cpu preset's formula weights with 3 classes):
// torch.save's zip and legacy formats (stride-0, transposed and shared-storage tensors, every
// dtype, a wrapper dict), torchvision's pre-0.13 names, Detectron2 model-zoo pickles (names and class
// layout mapped to ours; protocols 2 and 4; Fortran-ordered float64; an 80-class COCO model's class
// rows, labels and category ids: tools/make-detectron2-coco80-fixture.py), and files that must be refused.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { ready } from './helpers/gpu.js';
import type { HostTensor } from '../engine/safetensors.js';
import { describeLoadReport } from '../engine/nn/module.js';
import { nodeIO } from '../cli/node-io.js';
import { decodeCheckpoint, detectWeightsFormat, loadCheckpoint } from '../model/checkpoint.js';
import { detectron2Key } from '../model/checkpoint-keys.js';
import { fixtureValues } from '../model/fixture-weights.js';
import { MaskRCNN } from '../model/maskrcnn.js';
import { getPreset } from '../model/presets.js';
import { resolveLabelTable } from '../cli/infer-inputs.js';

await ready;

const DIR = 'test/fixtures/checkpoints/';
const read = (f: string): Uint8Array => new Uint8Array(readFileSync(DIR + f));
const model = new MaskRCNN(getPreset('tiny-cpu', { numClasses: 3 }));
const shapes = Object.fromEntries(Object.entries(model.stateDict()).map(([k, t]) => [k, [...t.shape]]));
// Stored whole in tiny-cpu.pth (the others are their first row broadcast).
const WHOLE = new Set(['rpn.head.cls_logits.weight', 'rpn.head.bbox_pred.weight', 'rpn.head.cls_logits.bias', 'rpn.head.bbox_pred.bias']);

function expectValues(what: string, t: HostTensor, want: ArrayLike<number>): void {
  assert.is(t.data.length, want.length, `${what}: element count`);
  for (let i = 0; i < want.length; i++) {
    if (t.data[i] !== Math.fround(want[i]!)) assert.unreachable(`${what}[${i}] = ${t.data[i]}, expected ${want[i]}`);
  }
}

for (const file of ['tiny-cpu.pth', 'tiny-cpu-legacy.pth']) {
  test(`${file}: every tensor of the preset, values exact, loads into the model with a clean report`, () => {
    const c = decodeCheckpoint(read(file), file);
    assert.equal(Object.keys(c.model).sort(), Object.keys(shapes).sort());
    for (const [k, shape] of Object.entries(shapes)) {
      const t = c.model[k]!;
      assert.equal(t.shape, shape, `${k} shape`);
      const full = fixtureValues(k, shape);
      const last = shape[shape.length - 1]!;
      expectValues(k, t, WHOLE.has(k) ? full : Array.from(full, (_, i) => full[i % last]!));
    }
    const report = model.loadStateDict(c.model, { strict: false });
    assert.is(describeLoadReport(report), '', 'load report');
  });
}

test('torchvision < 0.13 names are renamed as torchvision itself does', () => {
  const c = decodeCheckpoint(read('torchvision-legacy-names.pth'), 'old.pth');
  assert.equal(Object.keys(c.model).sort(), ['backbone.fpn.inner_blocks.0.0.weight', 'roi_heads.mask_head.0.0.bias', 'rpn.head.conv.0.0.weight']);
  assert.is(c.metadata.keyStyle, 'torchvision-legacy');
  expectValues('mask_fcn1.bias', c.model['roi_heads.mask_head.0.0.bias']!, fixtureValues('roi_heads.mask_head.0.0.bias', [32]));
});

test('dtypes.pth: float64/16/bf16 to float32, int64 to int32, bool, nn.Parameter, a {state_dict, epoch} wrapper', () => {
  const c = decodeCheckpoint(read('dtypes.pth'), 'dtypes.pth');
  const x = [0.5, -1.25, 3.0, 1e-3, 2.0, -0.0];
  expectValues('f64', c.model.f64!, x);
  assert.is(c.model.f64!.sourceDtype, 'F64');
  assert.equal(c.model.f16!.shape, [2, 3]);
  assert.ok(Math.abs(c.model.f16!.data[3]! - 1e-3) < 1e-6 && c.model.f16!.sourceDtype === 'F16');
  assert.ok(Math.abs(c.model.bf16!.data[3]! - 1e-3) < 1e-5 && c.model.bf16!.sourceDtype === 'BF16');
  assert.equal([c.model.i64!.dtype, Array.from(c.model.i64!.data)], ['int32', [-3, 0, 2147483647]]);
  assert.equal([c.model.bool!.dtype, Array.from(c.model.bool!.data)], ['bool', [1, 0, 1]]);
  expectValues('param', c.model.param!, [0, 1, 2, 3, 4, 5]);
  assert.is(c.metadata.arch, 'test');
  assert.is(c.state, null);
});

test('Detectron2 .pkl: names and class layout mapped to ours, buffers dropped, loads without unexpected keys', () => {
  const c = decodeCheckpoint(read('detectron2.pkl'), 'model_final.pkl');
  assert.is(c.metadata.keyStyle, 'detectron2');
  assert.is(c.metadata.__author__, 'maskrcnn-webgpu test fixture');
  assert.not.ok('pixel_mean' in c.model);
  assert.is(Object.keys(c.model).length, 27);
  for (const [k, t] of Object.entries(c.model)) {
    assert.ok(shapes[k], `${k} is one of our names`);
    assert.equal(t.shape, shapes[k], `${k} shape`);
    const want = fixtureValues(k, shapes[k]!);
    // Detectron2 has no background row in bbox_pred (4 rows) and the mask predictor (1 channel): zeros.
    const zeroRows = k.startsWith('roi_heads.box_predictor.bbox_pred.') ? 4 : k.startsWith('roi_heads.mask_predictor.mask_fcn_logits.') ? 1 : 0;
    const rowLen = want.length / shapes[k]![0]!;
    want.fill(0, 0, zeroRows * rowLen);
    expectValues(k, t, want);
  }
  const report = model.loadStateDict(c.model, { strict: false });
  assert.equal([report.unexpectedKeys, report.shapeMismatches], [[], []]);
  assert.is(report.loaded.length, 27);
});

test('Detectron2 .pkl at pickle protocol 4 with a Fortran-ordered float64 array', () => {
  const c = decodeCheckpoint(read('detectron2-p4.pkl'), 'p4.pkl');
  const k = 'backbone.body.layer1.0.conv1.weight';
  expectValues(k, c.model[k]!, fixtureValues(k, shapes[k]!));
  assert.is(c.model[k]!.sourceDtype, 'F64');
  expectValues('cls_score.bias', c.model['roi_heads.box_predictor.cls_score.bias']!, fixtureValues('roi_heads.box_predictor.cls_score.bias', [3]));
});

test('Detectron2 COCO .pkl (80 classes): class k is our label k + 1, with its weight rows, COCO category id and name', async () => {
  const c = decodeCheckpoint(read('detectron2-coco80.pkl'), 'model_final.pkl');
  const m = c.model;
  const rows = (k: string, r: number, len: number): number[] => Array.from(m[k]!.data.subarray(r * len, (r + 1) * len));
  assert.equal(m['roi_heads.box_predictor.cls_score.weight']!.shape, [81, 2]);
  assert.equal(m['roi_heads.box_predictor.bbox_pred.weight']!.shape, [324, 2]);
  assert.equal(m['roi_heads.mask_predictor.mask_fcn_logits.weight']!.shape, [81, 2, 1, 1]);
  // The fixture's values name Detectron2's rows: cls_score row k = [k, -k] (background: row 80),
  // bbox_pred row 4k + j = [100k + j, 0.5], mask channel k = [k, k + 0.25].
  assert.equal(rows('roi_heads.box_predictor.cls_score.weight', 0, 2), [80, -80], 'background row first');
  assert.equal(Array.from(m['roi_heads.box_predictor.bbox_pred.bias']!.data.subarray(0, 4)), [0, 0, 0, 0], 'zero background box rows');
  assert.equal(rows('roi_heads.mask_predictor.mask_fcn_logits.weight', 0, 2), [0, 0], 'zero background mask channel');
  const table = await resolveLabelTable(undefined, undefined, 81, nodeIO, c.metadata.keyStyle);
  // Detectron2's COCO classes 0 (person), 16 (dog: COCO id 18, after the unused id 12), 79 (toothbrush: id 90).
  for (const [k, id, name] of [[0, 1, 'person'], [16, 18, 'dog'], [79, 90, 'toothbrush']] as const) {
    const label = k + 1;
    assert.equal([table.catIds[label], table.names[label]], [id, name], `Detectron2 class ${k}`);
    assert.equal(rows('roi_heads.box_predictor.cls_score.weight', label, 2), [k, -k], `cls_score row of label ${label}`);
    assert.is(m['roi_heads.box_predictor.cls_score.bias']!.data[label], k);
    for (let j = 0; j < 4; j++) {
      assert.equal(rows('roi_heads.box_predictor.bbox_pred.weight', 4 * label + j, 2), [100 * k + j, 0.5], `bbox_pred row ${4 * label + j}`);
      assert.is(m['roi_heads.box_predictor.bbox_pred.bias']!.data[4 * label + j], 100 * k + j);
    }
    assert.equal(rows('roi_heads.mask_predictor.mask_fcn_logits.weight', label, 2), [k, k + 0.25], `mask channel of label ${label}`);
    assert.is(m['roi_heads.mask_predictor.mask_fcn_logits.bias']!.data[label], k);
  }
  // The whole table: 80 distinct COCO ids, none of the 11 unused ones; `--classes coco` gives it too.
  assert.is(new Set(table.catIds.subarray(1)).size, 80);
  assert.not.ok([12, 26, 29, 30, 45, 66, 68, 69, 71, 83].some((id) => table.catIds.includes(id)));
  assert.equal((await resolveLabelTable('coco', undefined, 81, nodeIO)).catIds, table.catIds);
  // Without the Detectron2 layout an 81-class model's labels are not assumed to be COCO's.
  assert.is((await resolveLabelTable(undefined, undefined, 81, nodeIO, 'ours')).names[17], 'class 17');
});

test('Detectron2 names of the R-50 and GN presets map to ours', () => {
  const cases: [string, number, string | null][] = [
    ['backbone.bottom_up.res5.2.conv3.norm.running_var', 0, 'backbone.body.layer4.2.bn3.running_var'],
    ['backbone.bottom_up.res4.0.shortcut.norm.bias', 0, 'backbone.body.layer3.0.downsample.1.bias'],
    ['backbone.fpn_output5.weight', 0, 'backbone.fpn.layer_blocks.3.0.weight'],
    ['backbone.fpn_lateral3.norm.weight', 4, 'backbone.fpn.inner_blocks.1.1.weight'],
    ['roi_heads.box_head.conv4.norm.bias', 4, 'roi_heads.box_head.3.1.bias'],
    ['roi_heads.box_head.fc1.weight', 4, 'roi_heads.box_head.5.weight'],
    ['roi_heads.box_head.fc2.weight', 0, 'roi_heads.box_head.fc7.weight'],
    ['roi_heads.mask_head.mask_fcn4.norm.weight', 4, 'roi_heads.mask_head.3.1.weight'],
    ['pixel_std', 0, null],
    ['proposal_generator.anchor_generator.cell_anchors.0', 0, null],
    ['backbone.bottom_up.res2.0.conv1.norm.num_batches_tracked', 0, null],
    ['something.else', 0, 'something.else'],
  ];
  for (const [d2, convs, ours] of cases) assert.is(detectron2Key(d2, convs), ours, d2);
});

test('refused: a pickle that would call os.system, unknown bytes, a truncated .pth', async () => {
  const err = (b: Uint8Array, name: string): string => {
    try {
      decodeCheckpoint(b, name);
    } catch (e) {
      return (e as Error).message;
    }
    return 'no error';
  };
  assert.match(err(read('hostile.pkl'), 'evil.pkl'), /^evil\.pkl: not a readable PyTorch \.pth or Detectron2 \.pkl file: refuses to load global posix\.system/);
  assert.match(err(new TextEncoder().encode('hello world, no weights'), 'x.bin'), /^x\.bin: not a safetensors, PyTorch \.pth or Detectron2 \.pkl file \(first bytes 68 65/);
  const pth = read('tiny-cpu.pth');
  assert.match(err(pth.subarray(0, pth.length - 200), 'cut.pth'), /^cut\.pth: not a readable PyTorch \.pth \(torch\.save zip\) file: .*truncated/);
  assert.equal([detectWeightsFormat(pth), detectWeightsFormat(read('detectron2.pkl'))], ['torch-zip', 'pickle']);
  // The loader the CLIs call (--weights) takes a .pth path as it is.
  const c = await loadCheckpoint(nodeIO, DIR + 'tiny-cpu.pth');
  assert.is(Object.keys(c.model).length, Object.keys(shapes).length);
});

test.run();
