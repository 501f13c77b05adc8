// The conv+fc box head (torchvision FastRCNNConvFCHead, Detectron2's 4conv1fc of the GN recipes):
// its state-dict names, and its forward against the float64 composition of the references
// (conv2d -> group norm -> ReLU per conv, flatten, Linear -> ReLU per fc), on odd sizes.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { expectRef } from './helpers/check.js';
import { noGrad } from '../engine/autograd.js';
import { randn } from '../engine/ops/create.js';
import { conv2dReference } from '../kernels/conv.js';
import { groupNormReference } from '../kernels/norm.js';
import type { RefTensor } from '../kernels/common.js';
import { FastRCNNConvFCHead } from '../model/heads.js';
import { RoIHeads } from '../model/roi-heads.js';
import { flattenPredictions } from '../model/rpn.js';
import { mul, sum, tensor, type Tensor } from '../engine/index.js';
import { getPreset } from '../model/presets.js';

await ready;

const host = async (t: { data(): Promise<ArrayLike<number>>; shape: readonly number[] }): Promise<RefTensor> => ({ shape: [...t.shape], data: Float64Array.from(await t.data()) });
const relu = (t: RefTensor): RefTensor => ({ shape: t.shape, data: t.data.map((v) => Math.max(v, 0)) });

test('conv_fc box head: torchvision FastRCNNConvFCHead names (convs at 0..n-1, Flatten at n, Linears after)', () => {
  const cfg = getPreset('detectron2-r50-fpn-gn-scratch', { numClasses: 3 });
  const heads = new RoIHeads(cfg);
  const keys = heads.namedParameters().map(([k]) => k).filter((k) => k.startsWith('box_head.'));
  assert.equal(keys, [
    ...[0, 1, 2, 3].flatMap((i) => [`box_head.${i}.0.weight`, `box_head.${i}.1.weight`, `box_head.${i}.1.bias`]),
    'box_head.5.weight',
    'box_head.5.bias',
  ]);
  const shapes = Object.fromEntries(heads.namedParameters().map(([k, p]) => [k, [...p.shape]]));
  assert.equal(shapes['box_head.0.0.weight'], [256, 256, 3, 3]);
  assert.equal(shapes['box_head.5.weight'], [1024, 256 * 7 * 7]);
  assert.equal(shapes['box_predictor.cls_score.weight'], [3, 1024]);
  heads.dispose();
});

test('conv_fc box head: forward equals conv -> GN -> ReLU (x2), flatten, fc -> ReLU (x2) in float64', async () => {
  const [C, R, res, mid, rep, groups] = [6, 5, 3, 4, 7, 2];
  const head = new FastRCNNConvFCHead(C, res, { kind: 'conv_fc', numConvs: 2, convChannels: mid, numFcs: 2, representationSize: rep, norm: 'gn', gnGroups: groups });
  const params = Object.fromEntries(await Promise.all(head.namedParameters().map(async ([k, p]) => [k, await host(p)] as const)));
  assert.equal(Object.keys(params), ['0.0.weight', '0.1.weight', '0.1.bias', '1.0.weight', '1.1.weight', '1.1.bias', '3.weight', '3.bias', '5.weight', '5.bias']);
  const x = randn([R, C, res, res]);
  let ref = await host(x);
  const conv = { stride: [1, 1] as [number, number], padding: [1, 1] as [number, number], dilation: [1, 1] as [number, number], groups: 1 };
  for (const i of [0, 1]) {
    ref = relu(groupNormReference(conv2dReference(ref, params[`${i}.0.weight`]!, null, conv), groups, params[`${i}.1.weight`]!, params[`${i}.1.bias`]!));
  }
  for (const i of [3, 5]) {
    const w = params[`${i}.weight`]!, b = params[`${i}.bias`]!;
    const [O, I] = w.shape as [number, number];
    const out = new Float64Array(R * O);
    for (let r = 0; r < R; r++) for (let o = 0; o < O; o++) {
      let s = b.data[o]!;
      for (let k = 0; k < I; k++) s += ref.data[r * I + k]! * w.data[o * I + k]!;
      out[r * O + o] = Math.max(s, 0);
    }
    ref = { shape: [R, O], data: out };
  }
  const y = noGrad(() => head.forward(x));
  await expectRef(y, ref, { atol: 1e-4, rtol: 1e-4 }, 'conv_fc head');
  y.dispose();
  x.dispose();
  head.dispose();
});

/** torchvision's permute_and_flatten + cat on the host: [N, A*K, H, W] levels -> [N, sum(H*W*A), K]. */
function flattenReference(levels: { shape: number[]; data: Float32Array }[], K: number): number[] {
  const N = levels[0]!.shape[0]!;
  const out: number[] = [];
  for (let n = 0; n < N; n++) {
    for (const { shape, data } of levels) {
      const [, AK, H, W] = shape as [number, number, number, number];
      for (let p = 0; p < H * W; p++) for (let a = 0; a < AK / K; a++) for (let k = 0; k < K; k++) out.push(data[((n * AK + a * K + k) * H * W) + p]!);
    }
  }
  return out;
}

test('RPN flattenPredictions: torchvision order (level, pixel, anchor), gradient back to each level', async () => {
  const sizes = [[5, 7], [3, 4], [1, 2]];
  const N = 2, A = 3;
  const obj = sizes.map(([H, W]) => randn([N, A, H!, W!]).requiresGrad_());
  const del = sizes.map(([H, W]) => randn([N, 4 * A, H!, W!]).requiresGrad_());
  const host = async (ts: Tensor[]) => Promise.all(ts.map(async (t) => ({ shape: [...t.shape], data: (await t.data()) as Float32Array })));
  const { objectness, deltas } = flattenPredictions(obj, del);
  const total = sizes.reduce((a, [H, W]) => a + H! * W! * A, 0);
  assert.equal([...objectness.shape], [N, total]);
  assert.equal([...deltas.shape], [N, total, 4]);
  assert.equal([...(await objectness.data())], flattenReference(await host(obj), 1));
  assert.equal([...(await deltas.data())], flattenReference(await host(del), 4));
  // d(sum(out * ramp))/d(level) is the ramp scattered back: flattening the gradients gives the ramp.
  const ramp = (shape: number[]): Tensor => tensor(Float32Array.from({ length: shape.reduce((a, b) => a * b, 1) }, (_, i) => i), shape);
  sum(mul(objectness, ramp([N, total]))).add(sum(mul(deltas, ramp([N, total, 4])))).backward();
  assert.equal(flattenReference(await host(obj.map((t) => t.grad!)), 1), [...(await ramp([N, total]).data())]);
  assert.equal(flattenReference(await host(del.map((t) => t.grad!)), 4), [...(await ramp([N, total, 4]).data())]);
});

test.run();
