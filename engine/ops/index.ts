// Every op module in one internal namespace, for the Tensor-method installers (tensor-methods*.ts)
// and for tests that reach internals. Not public: engine/index.ts lists the public ops by name.
export * from './elementwise.js';
export * from './view.js';
export * from './reduce.js';
export * from './matmul.js';
export * from './copy.js';
export * from './join.js';
export * from './tile.js';
export * from './create.js';
export * from './softmax.js';
export * from './indexing.js';
export * from './conv.js';
export * from './conv1x1-select.js';
export * from './norm.js';
export * from './pool.js';
export * from './resize.js';
export * from './roi_align.js';
export * from './detection.js';
export * from './sort.js';
export * from './segmented-topk.js';
export * from './losses.js';
