// The browser test bundle's entry: which of the engine's test files run in the page, in order.
// A representative subset of the core: elementwise ops with broadcasting (forward + gradients),
// reductions, softmax, views and data movement, matmul, the autodiff tape, tidy/memory, and JPEG
// decoding (the libjpeg-turbo WebAssembly loaded as the bundle does).
// The imports and SUITES must list the same files in the same order (the harness checks the count).
//
// Static imports, one bundle, no code splitting: esbuild's splitting does not keep module
// evaluation order across chunks, and the engine registers lazily-bound functions at import
// (view.ts <-> reduce.ts), so a split bundle ran them in the wrong order.
import '../ops-elementwise.test.js';
import '../ops-reduce.test.js';
import '../ops-softmax.test.js';
import '../ops-shape.test.js';
import './matmul.page.js';
import '../autograd.test.js';
import '../scope.test.js';
import './jpeg.page.js';
import { runSuites, type Suite } from './harness.js';

const SUITES: Suite[] = [
  { file: 'ops-elementwise' },
  { file: 'ops-reduce' },
  { file: 'ops-softmax' },
  { file: 'ops-shape' },
  { file: 'matmul.page' },
  { file: 'autograd' },
  { file: 'scope' },
  { file: 'jpeg.page' },
];

// ?only=REGEX narrows the run to "file > case name" matches.
const param = new URLSearchParams(location.search).get('only');
void runSuites(SUITES, param ? new RegExp(param) : undefined);
