// torchvision parity of the `torchvision-r50-fpn-v2` preset on its compact fixture (test/fixtures/torchvision-r50-fpn-v2,
// made by tools/make-parity-fixture.py); the checks and their logged figures: test/helpers/zoo-parity.ts.
import { test } from 'uvu';
import { zooParitySuite } from './helpers/zoo-parity.js';

await zooParitySuite({ preset: 'torchvision-r50-fpn-v2', train: true, tol: { features: 1e-4, heads: 1e-4, mask: 1e-3, loss: 1e-4, grad: 1e-3 } });
test.run();
