// torchvision parity of the `torchvision-x101-32x8d-fpn` preset on its compact fixture (test/fixtures/torchvision-x101-32x8d-fpn,
// made by tools/make-parity-fixture.py); the checks: test/helpers/zoo-parity.ts. Tolerances are about
// 10x the errors measured on lavapipe (README.md, parity section).
import { test } from 'uvu';
import { zooParitySuite } from './helpers/zoo-parity.js';

await zooParitySuite({ preset: 'torchvision-x101-32x8d-fpn', train: true, tol: { features: 3e-5, heads: 4e-5, mask: 3e-5, loss: 1e-5, grad: 1e-3 } });
test.run();
