// torchvision parity of the `torchvision-faster-r50-fpn` preset on its compact fixture (test/fixtures/torchvision-faster-r50-fpn,
// made by tools/make-parity-fixture.py); the checks: test/helpers/zoo-parity.ts. Tolerances are about
// 10x the errors measured on lavapipe (README.md, parity section).
import { test } from 'uvu';
import { zooParitySuite } from './helpers/zoo-parity.js';

await zooParitySuite({ preset: 'torchvision-faster-r50-fpn', train: true, tol: { features: 2e-5, heads: 3e-5, mask: 3e-5, loss: 1e-5, grad: 1e-4 } });
test.run();
