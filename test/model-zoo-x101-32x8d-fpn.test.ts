// torchvision parity of the `torchvision-x101-32x8d-fpn` preset on its compact fixture (test/fixtures/torchvision-x101-32x8d-fpn,
// made by tools/make-parity-fixture.py); the checks and their logged figures: test/helpers/zoo-parity.ts.
import { test } from 'uvu';
import { zooParitySuite } from './helpers/zoo-parity.js';

await zooParitySuite({ preset: 'torchvision-x101-32x8d-fpn', train: true, tol: { features: 1e-4, heads: 1e-4, mask: 1e-3, loss: 1e-4, grad: 1e-3 } });
test.run();
