// The fixture's weight formula against the check values published in its README (they come from
// the fixture's author, i.e. from the Python side that produced torchvision's tensors).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fixtureStateDict, fixtureTensorKind, fixtureValues, fnv1a32, formulaUniform } from '../model/fixture-weights.js';

test('fnv1a32: README check value and the FNV-1a reference vectors', () => {
  assert.is(fnv1a32('backbone.body.conv1.weight'), 1598278937);
  // Published FNV-1a 32-bit test vectors (Noll's fnv test suite).
  assert.is(fnv1a32(''), 0x811c9dc5);
  assert.is(fnv1a32('a'), 0xe40c292c);
  assert.is(fnv1a32('foobar'), 0xbf9cf968);
});

test('formulaUniform: README check values (seed 0), to the 8 digits given', () => {
  const u = formulaUniform('backbone.body.conv1.weight', 4, 0);
  const want = [-0.37435877, -0.2628338, 0.71186287, 0.67570414];
  for (let i = 0; i < 4; i++) assert.ok(Math.abs(u[i]! - want[i]!) < 5e-9, `u[${i}] = ${u[i]}, README ${want[i]}`);
  // Another seed moves every value.
  const v = formulaUniform('backbone.body.conv1.weight', 4, 1);
  for (let i = 0; i < 4; i++) assert.ok(v[i] !== u[i]);
});

test('formulaUniform: values in [-1, 1) with mean ~0 on a large tensor', () => {
  const u = formulaUniform('backbone.body.layer4.2.conv3.weight', 100_000);
  let lo = Infinity, hi = -Infinity, sum = 0;
  for (const x of u) { lo = Math.min(lo, x); hi = Math.max(hi, x); sum += x; }
  assert.ok(lo >= -1 && hi < 1);
  assert.ok(lo < -0.999 && hi > 0.999);
  assert.ok(Math.abs(sum / u.length) < 0.01, `mean ${sum / u.length}`);
});

test('kinds: frozen BN regex, bias, weight', () => {
  assert.is(fixtureTensorKind('backbone.body.bn1.weight'), 'bn_weight');
  assert.is(fixtureTensorKind('backbone.body.layer1.0.bn3.weight'), 'bn_weight_bn3');
  assert.is(fixtureTensorKind('backbone.body.layer1.0.downsample.1.running_var'), 'bn_running_var');
  assert.is(fixtureTensorKind('backbone.body.layer3.5.bn2.running_mean'), 'bn_running_mean');
  assert.is(fixtureTensorKind('backbone.body.layer2.0.bn2.bias'), 'bn_bias');
  // downsample.0 is the 1x1 conv, not a norm.
  assert.is(fixtureTensorKind('backbone.body.layer1.0.downsample.0.weight'), 'weight');
  assert.is(fixtureTensorKind('backbone.fpn.inner_blocks.0.0.bias'), 'bias');
  assert.is(fixtureTensorKind('rpn.head.conv.0.0.weight'), 'weight');
  assert.is(fixtureTensorKind('roi_heads.box_head.fc6.weight'), 'weight');
  // 'bn' must be a whole name component followed by one digit.
  assert.is(fixtureTensorKind('x.abn1.bias'), 'bias');
  assert.throws(() => fixtureTensorKind('anchor_generator.cell_anchors'), /neither a weight/);
});

test('fixtureValues: scaling by kind', () => {
  const name = 'backbone.body.conv1.weight';
  const w = fixtureValues(name, [64, 3, 7, 7]);
  const u = formulaUniform(name, 4);
  const s = Math.sqrt(3 / 147);
  for (let i = 0; i < 4; i++) assert.is(w[i], Math.fround(u[i]! * s));
  const check = (n: string, f: (v: number) => number): void => {
    const got = fixtureValues(n, [5]);
    const uu = formulaUniform(n, 5);
    for (let i = 0; i < 5; i++) assert.is(got[i], Math.fround(f(uu[i]!)), `${n}[${i}]`);
  };
  check('backbone.body.layer1.0.bn3.weight', (v) => 0.2 + 0.05 * v);
  check('backbone.body.layer1.0.bn2.weight', (v) => 1 + 0.1 * v);
  check('backbone.body.layer1.0.downsample.1.weight', (v) => 1 + 0.1 * v);
  check('backbone.body.bn1.bias', (v) => 0.1 * v);
  check('backbone.body.bn1.running_mean', (v) => 0.1 * v);
  check('backbone.body.bn1.running_var', (v) => 1 + 0.25 * (v + 1));
  check('rpn.head.cls_logits.bias', (v) => 0.01 * v);
  // A 1-D weight has fan_in 1 (product of no dims).
  check('roi_heads.mask_head.0.1.weight', (v) => v * Math.sqrt(3));
  // Linear weight [out, in]: fan_in = in.
  const fc = fixtureValues('roi_heads.box_head.fc7.weight', [3, 10]);
  const ufc = formulaUniform('roi_heads.box_head.fc7.weight', 30);
  assert.is(fc[29], Math.fround(ufc[29]! * Math.sqrt(3 / 10)));
});

test('fixtureStateDict: shapes, dtypes and counters', () => {
  const sd = fixtureStateDict([
    ['a.conv.weight', [4, 2, 3, 3]],
    ['a.bn1.num_batches_tracked', []],
  ]);
  assert.equal(sd['a.conv.weight']!.shape, [4, 2, 3, 3]);
  assert.is(sd['a.conv.weight']!.data.length, 72);
  assert.is(sd['a.bn1.num_batches_tracked']!.dtype, 'int32');
  assert.is(sd['a.bn1.num_batches_tracked']!.data[0], 0);
});

test('fixtureStateDict: a batch norm outside the trunk (a module with running_mean) takes the batch-norm rules', () => {
  // torchvision v2's FPN norm 'backbone.fpn.inner_blocks.0.1' (BatchNorm2d); its GN twin (no running
  // statistics) stays a plain 1-D weight, as the existing GN presets' fixture weights are.
  const bn = 'backbone.fpn.inner_blocks.0.1';
  const sd = fixtureStateDict([
    [`${bn}.weight`, [6]], [`${bn}.bias`, [6]], [`${bn}.running_mean`, [6]], [`${bn}.running_var`, [6]], [`${bn}.num_batches_tracked`, []],
    ['roi_heads.mask_head.0.1.weight', [6]], ['roi_heads.mask_head.0.1.bias', [6]],
  ]);
  const u = (name: string): Float64Array => formulaUniform(name, 6);
  const expect = (name: string, f: (v: number) => number): void => {
    assert.equal(Array.from(sd[name]!.data), Array.from(u(name), (v) => Math.fround(f(v))), name);
  };
  expect(`${bn}.weight`, (v) => 1 + 0.1 * v);
  expect(`${bn}.bias`, (v) => 0.1 * v);
  expect(`${bn}.running_mean`, (v) => 0.1 * v);
  expect(`${bn}.running_var`, (v) => 1 + 0.25 * (v + 1));
  assert.is(sd[`${bn}.num_batches_tracked`]!.dtype, 'int32');
  expect('roi_heads.mask_head.0.1.weight', (v) => v * Math.sqrt(3));
  expect('roi_heads.mask_head.0.1.bias', (v) => 0.01 * v);
  assert.is(fixtureTensorKind(`${bn}.weight`), 'weight', 'by name alone it is a plain weight');
  assert.is(fixtureTensorKind(`${bn}.weight`, true), 'bn_weight');
  assert.is(fixtureTensorKind(`${bn}.running_var`, true), 'bn_running_var');
});

test.run();
