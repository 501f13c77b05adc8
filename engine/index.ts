// The engine's public API: tensors, autodiff, ops (PyTorch names), nn, optimizers, serialization.
import './tensor-methods.js';
import './tensor-methods-extra.js';

export { init, getBackend, shutdown } from './backend.js';
export { setGPUProvider, setQuiet, adapterReport } from './device.js';
export { Tensor, type DType } from './tensor.js';
export { tidy, tidyAsync, keep } from './scope.js';
export { noGrad, isGradEnabled, backward } from './autograd.js';
export { manualSeed, Rng } from './random.js';
export * from './ops/index.js';
export * as nn from './nn/index.js';
export * as optim from './optim/index.js';
export * from './safetensors.js';

import { getBackend } from './backend.js';
import type { PoolStats } from './pool.js';

/** GPU memory held by tensors and by the pool. */
export function memory(): PoolStats {
  return getBackend().memory();
}
