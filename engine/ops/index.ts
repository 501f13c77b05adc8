// The functional API, PyTorch names and argument order. Also wires the pieces that lower layers
// need from ops (gradient arithmetic, dense copies) without import cycles.
import { registerGradMath } from '../autograd.js';
import { registerContiguousCopy } from '../tensor.js';
import { add, elementwise } from './elementwise.js';
import { onesLike } from './copy.js';

export * from './elementwise.js';
export * from './view.js';
export * from './reduce.js';
export * from './matmul.js';
export * from './copy.js';
export * from './join.js';
export * from './create.js';
export * from './softmax.js';
export * from './indexing.js';
export * from './conv.js';
export * from './norm.js';
export * from './pool.js';
export * from './resize.js';
export * from './roi_align.js';
export * from './detection.js';
export * from './sort.js';
export * from './losses.js';

registerGradMath({ add, onesLike });
registerContiguousCopy((t) => elementwise('copy', [t]));
