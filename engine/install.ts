// The engine's wiring, in one module that every public entry (index.ts, nn/index.ts,
// optim/index.ts) imports before anything else, so no import order can leave it undone: the Tensor
// methods (x.add(y), x.T, ...) go onto the prototype, and the lower layers get the pieces of ops
// they need without import cycles (gradient arithmetic for autograd, dense copies for tensor.ts,
// sumToShape for the views' backward, registered by reduce.ts itself).
import { registerGradMath } from './autograd.js';
import { registerContiguousCopy } from './tensor.js';
import { add, elementwise } from './ops/elementwise.js';
import { onesLike } from './ops/copy.js';
import './ops/reduce.js';
import './tensor-methods.js';
import './tensor-methods-extra.js';

registerGradMath({ add, add3: (a, b, c) => elementwise('add3', [a, b, c]), onesLike });
registerContiguousCopy((t) => elementwise('copy', [t]));
