// torchvision parity of the `torchvision-r50-fpn-v2` preset on its compact fixture (test/fixtures/torchvision-r50-fpn-v2,
// made by tools/make-parity-fixture.py --grad-f64); the checks: test/helpers/zoo-parity.ts. Tolerances are about
// 10x the errors measured on lavapipe (README.md, parity section).
import { test } from 'uvu';
import { zooParitySuite } from './helpers/zoo-parity.js';

// The whole file with the training-mode check takes 9.4 min on 2 lavapipe cores (35 min under heavy load; most of it the
// backward of the 4conv box head over all ~600 proposals): it runs with MASKRCNN_ZOO_TRAIN=1; the
// default suite checks inference parity (features, RPN, proposals, heads, detections, masks).
const SLOW_TRAIN = process.env.MASKRCNN_ZOO_TRAIN === '1';
if (!SLOW_TRAIN) console.log('    training-mode parity skipped (set MASKRCNN_ZOO_TRAIN=1 to run it)');

// Gradients: with BatchNorm2d on batch statistics (trunk, FPN, box and mask heads) float32 fixes the
// gradients upstream of the box head's BN chain only to ~1e-2: torch's own float32 gradients differ
// from its float64 ones by up to 1.04e-2 (fpn.inner_blocks.0.0), 9.8e-3 for layer2.0.bn2.weight, where
// ours differ from torch's float32 by 1.6e-2 (from float64: 2.4e-2; elsewhere within 1.2x of torch's). The fixture carries the float64 gradients, and each
// gradient's tolerance is max(grad, 3x torch's float32-vs-float64 spread) (helpers/zoo-parity.ts).
await zooParitySuite({ preset: 'torchvision-r50-fpn-v2', train: SLOW_TRAIN, tol: { features: 2e-5, heads: 3e-5, mask: 2e-5, loss: 3e-5, grad: 1e-3 } });
test.run();
