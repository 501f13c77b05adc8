// The engine's public API, every name listed: tensors, autodiff, memory scopes, the functional ops
// (PyTorch names and argument order), nn, optim and safetensors. Everything else under engine/ is
// internal (kernel caches, op dispatchers, gradient wiring, matmul/conv tuning entry points): tests
// and benchmarks that exercise those import the internal module itself. README's "Public API"
// section lists this surface; test/public-api.test.ts checks that the list there matches.
//
// Tensor methods (x.add(y), x.T, ...) are installed by ./install.js, which every public entry
// (this file, nn/index.ts, optim/index.ts) imports first: importing any of them, alone or in any
// order, or from a code-split bundle, leaves a working Tensor before user code runs.
import './install.js';

// Device, backend and memory.
export { init, getBackend, shutdown } from './backend.js';
export { setGPUProvider, setHostPause, setQuiet, adapterReport, type GPUProvider, type HostPause, type AdapterReport } from './device.js';
export type { PoolStats } from './pool.js';
export { memory, counters } from './memory.js';
export type { Counters } from './backend.js';
export { setKernelTiering, type TieringMode, type TierStatus } from './tiering.js';
export { setAutotune, memoryTuneStore, type AutotuneOptions, type TuneStore } from './autotune.js';

// Tensors, scopes, autodiff, random numbers.
export { Tensor, type DType, type PendingData } from './tensor.js';
export { tidy, tidyAsync, keep } from './scope.js';
export { noGrad, isGradEnabled, backward, type BackwardOptions } from './autograd.js';
export { autocast, autocastAsync, isAutocastEnabled } from './autocast.js';
export { withRowCapacity, persistent, type RowCapacity } from './alloc-hints.js';
export { manualSeed, mixSeed, Rng } from './random.js';

// Creation (torch.tensor, torch.zeros, ...).
export { tensor, scalar, arange, rand, randn } from './ops/create.js';
export { full, zeros, ones, zerosLike, onesLike, pad, cat } from './ops/copy.js';

// Pointwise math, comparisons and casts.
export {
  neg, abs, exp, log, sqrt, rsqrt, square, reciprocal, relu, sigmoid, tanh, sign, floor, ceil, clamp,
  add, sub, mul, div, pow, maximum, minimum, eq, ne, lt, le, gt, ge, logicalAnd, logicalOr, logicalNot,
  where, cast, contiguous, type Operand,
} from './ops/elementwise.js';

// Views, joins, reductions, linear algebra.
export { reshape, permute, transpose, slice, narrow, expand, unsqueeze, squeeze, flatten } from './ops/view.js';
export { stack, split, chunk } from './ops/join.js';
export { tile2d, flattenWindows, type Window } from './ops/tile.js';
export { sum, mean, max, min, argmax, argmin, type Dims } from './ops/reduce.js';
export { matmul } from './ops/matmul.js';
export { sort, argsort, topk, type SortResult } from './ops/sort.js';
export { segmentedTopk, argsortRuns } from './ops/segmented-topk.js';

// Indexing (torch.gather, index_select, scatter_add, ...).
export { indexSelect, gather, take, scatterAdd, indexAdd, maskedFill, maskedSelect, nonzero } from './ops/indexing.js';

// Neural-network functions (torch.nn.functional).
export { softmax, logSoftmax } from './ops/softmax.js';
export { conv2d, convTranspose2d, type ConvOptions, type Activation } from './ops/conv.js';
export { conv1x1Select } from './ops/conv1x1-select.js';
export { batchNorm, channelSum, frozenBatchNorm2d, frozenBatchNormScaleShift, frozenBatchNormApply, groupNorm, type NormEpilogue } from './ops/norm.js';
export { maxPool2d, maxPool2dWithIndices } from './ops/pool.js';
export { interpolate, type InterpolateOptions } from './ops/resize.js';
export { binaryCrossEntropyWithLogits, smoothL1Loss, l1Loss, crossEntropy } from './ops/losses.js';

// Vision ops (torchvision.ops and torchvision's BoxCoder).
export { roiAlign, multiScaleRoiAlign, inferScales, type RoiAlignOptions, type MultiScaleRoiAlignOptions } from './ops/roi_align.js';
export { boxArea, boxIou, encodeBoxes, decodeBoxes, clipBoxesToImage, removeSmallBoxes, nms, batchedNms, batchedNmsPadded } from './ops/detection.js';
export type { BoxWeights } from '../kernels/boxes.js';

// torch.nn, torch.optim, safetensors files, torch.save / numpy pickle files (read only).
export * as nn from './nn/index.js';
export * as optim from './optim/index.js';
export { encodeSafetensors, saveSafetensors, loadSafetensors, toTensors, type HostTensor, type Safetensors } from './safetensors.js';
export { loadPickledCheckpoint, findStateDict } from './torch-format.js';
