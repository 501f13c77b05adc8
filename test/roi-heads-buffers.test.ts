// After warm-up, a training step of the RoI heads creates no GPU buffer and no bind group whatever
// the number of positive RoIs or of gt instances per image: the mask branch's padded rows are
// allocated for the batch's capacity of positives (engine/alloc-hints.ts withRowCapacity), the gt
// masks for the source's most instances (train/batch.ts), the mask loss takes one path, and the pool
// hands out buffers by creation order so that the same requests get the same buffers (and the
// backend's kept bind groups). Small shapes: 2 images of 64 px, 16-channel FPN levels, 16 positives
// per image at most; the steps below go from 2 positives per image to the capacity and back.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { add, counters, getBackend, optim, randn, tensor, tidy, withRowCapacity, Rng, type Tensor } from '../engine/index.js';
import { getPreset } from '../model/presets.js';
import { RoIHeads, type MaskTarget } from '../model/roi-heads.js';

await ready;

const SIZE = 64;
const N = 2;
const MAX_INSTANCES = 3;
const cfg = getPreset('tiny', {
  numClasses: 3,
  fpn: { outChannels: 16 },
  roiHeads: { batchSizePerImage: 32, positiveFraction: 0.5, boxHead: { kind: 'two_mlp', representationSize: 32 }, maskHead: { convChannels: [16], predictorChannels: 16, gnGroups: 4 } },
});
const scales = [1 / 4, 1 / 8, 1 / 16, 1 / 32];

/** G gt boxes per image (a row of squares), their labels and masks (filled boxes), masks sized for MAX_INSTANCES. */
function targetsOf(instances: number[]): MaskTarget[] {
  return instances.map((G) => {
    const boxes = new Float32Array(G * 4);
    const masks = new Float32Array(G * SIZE * SIZE);
    for (let g = 0; g < G; g++) {
      const [x1, y1, x2, y2] = [2 + 20 * g, 8 + 6 * g, 18 + 20 * g, 30 + 6 * g];
      boxes.set([x1, y1, x2, y2], 4 * g);
      for (let y = y1; y < y2; y++) masks.fill(1, g * SIZE * SIZE + y * SIZE + x1, g * SIZE * SIZE + y * SIZE + x2);
    }
    const m = withRowCapacity({ rows: G, capacity: MAX_INSTANCES }, () => tensor(masks, [G, SIZE, SIZE]));
    return { boxes, labels: Int32Array.from({ length: G }, (_, g) => 1 + (g % 2)), masks: m };
  });
}

/** `near` shifted copies of each gt box (positives: IoU >= 0.5) and 40 background boxes. */
function proposalsOf(targets: MaskTarget[], near: number): Float32Array[] {
  return targets.map((t) => {
    const out: number[] = [];
    for (let g = 0; g < t.boxes.length / 4; g++) {
      for (let k = 0; k < near; k++) out.push(t.boxes[4 * g]! + (k % 3), t.boxes[4 * g + 1]! + (k % 2), t.boxes[4 * g + 2]! + (k % 3), t.boxes[4 * g + 3]! + (k % 2));
    }
    for (let k = 0; k < 40; k++) out.push(40 + (k % 8), 40 + (k % 5), 50 + (k % 8) + (k % 3), 48 + (k % 5) + (k % 4));
    return Float32Array.from(out);
  });
}

test('RoI heads step: no buffer and no bind group created after warm-up as positives and gt instances vary', () => {
  // Bind groups are kept only with the pool's stable order (CPU adapters take the cache-warm one).
  const order = getBackend().pool.order;
  getBackend().pool.order = 'stable';
  // Idle buffers left by earlier suites in this process would be lent for requests of smaller
  // classes (the pool's popLarger) in an order that depends on each step's sizes: start from none,
  // as a training run does.
  getBackend().pool.trim();
  const heads = new RoIHeads(cfg);
  const sgd = new optim.SGD(heads.parameters(), { lr: 1e-3, momentum: 0.9 });
  const features = [16, 8, 4, 2].map((s) => randn([N, 16, s, s]).requiresGrad_());
  const rng = new Rng(0);
  // [gt instances per image, shifted copies per gt]: positives per image = min(16, G x (copies + 1)).
  const step = (instances: number[], near: number): void => {
    tidy(() => {
      sgd.zeroGrad();
      for (const f of features) f.grad?.dispose(), (f.grad = null);
      const targets = targetsOf(instances);
      const l = heads.losses(features, proposalsOf(targets, near), targets, scales, rng);
      add(add(l.loss_classifier, l.loss_box_reg), l.loss_mask!).backward();
      sgd.step();
    });
  };
  step([1, 1], 1); // 2 positives per image, 4 in all
  step([2, 1], 1);
  const c0 = counters();
  for (const [instances, near] of [[[3, 2], 6], [[1, 1], 0], [[3, 3], 5], [[2, 3], 2], [[1, 2], 9]] as [number[], number][]) step(instances, near);
  const c1 = counters();
  assert.is(c1.buffersCreated - c0.buffersCreated, 0, 'GPU buffers created after warm-up');
  assert.is(c1.bindGroupsCreated - c0.bindGroupsCreated, 0, 'bind groups created after warm-up');
  // Scratch and kept textures (CPU adapters' packed conv weights and matmul operands): none either.
  assert.is(c1.texturesCreated - c0.texturesCreated, 0, 'textures created after warm-up');
  assert.ok(c1.dispatches - c0.dispatches > 100, 'the steps ran');
  sgd.zeroGrad();
  features.forEach((f: Tensor) => (f.grad?.dispose(), f.dispose()));
  heads.dispose();
  getBackend().pool.order = order;
});

test.run();
