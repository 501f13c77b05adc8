// Mask R-CNN's loss pieces in model/losses.ts: the mask loss's per-RoI class-channel selection
// (torchvision maskrcnn_loss: mask_logits[arange(R), labels]) over public ops, exact against a
// host selection, then BCE with finite-difference gradients; bad labels rejected by name.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { checkOp, ref, assertClose } from './helpers/check.js';
import * as F from '../engine/index.js';
import { pointLossReference } from '../kernels/losses.js';
import type { RefTensor } from '../kernels/common.js';
import { selectClassChannel } from '../model/losses.js';

await ready;

const TOL = { atol: 1e-5, rtol: 1e-5 };

test('mask loss: per-RoI class channel selection then BCE, with gradients', async () => {
  // x [R=3, C=4, 2, 2]; labels pick channel 2, 0, 3.
  const labels = [2, 0, 3];
  const select = (x: RefTensor): number[] => {
    const out: number[] = [];
    for (let r = 0; r < 3; r++) for (let k = 0; k < 4; k++) out.push(x.data[(r * 4 + labels[r]!) * 4 + k]!);
    return out;
  };
  const xr = ref([3, 4, 2, 2], 9, -3, 3);
  const picked = selectClassChannel(F.tensor(Float32Array.from(xr.data), xr.shape), labels);
  assert.equal([...picked.shape], [3, 2, 2]);
  assertClose(await picked.data(), select(xr), { atol: 0, rtol: 0 }, 'selection');
  const targets = ref([3, 2, 2], 10, 0, 1).data.map((v) => (v > 0.5 ? 1 : 0));
  await checkOp({
    name: 'mask loss',
    inputs: [xr],
    gpu: ([x]) => F.binaryCrossEntropyWithLogits(selectClassChannel(x!, labels), F.tensor(Float32Array.from(targets), [3, 2, 2])),
    ref: ([x]) => ({ shape: [], data: Float64Array.from(pointLossReference('bce', select(x!), targets, 'mean')) }),
    forwardTol: TOL,
  });
});

test('selectClassChannel: a label outside [0, C) or a count mismatch names the fault', () => {
  const x = F.zeros([2, 3, 2, 2]);
  assert.throws(() => selectClassChannel(x, [0, 3]), /label 3 of RoI 1 is not a class index in \[0, 3\)/);
  assert.throws(() => selectClassChannel(x, [0]), /R = 1 labels, got \[2, 3, 2, 2\]/);
  x.dispose();
});

test.run();
