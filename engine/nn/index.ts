// Neural-network modules (PyTorch's torch.nn): the Module base with dotted parameter names and
// state dicts, and the layers built on it.
// Installs the Tensor methods and the engine wiring: this namespace also works imported alone.
import '../install.js';
export { Module, describeLoadReport, type LoadReport, type LoadOptions, type StateValue } from './module.js';
export { Linear, linear, type LinearOptions } from './linear.js';
export { Sequential, ReLU, type Layer } from './sequential.js';
export { Conv2d, ConvTranspose2d, type ConvInit, type Conv2dOptions, type ConvTranspose2dOptions } from './conv-layers.js';
export { convNorm } from './conv-norm.js';
export { BatchNorm2d, FrozenBatchNorm2d, GroupNorm, MaxPool2d, type NormLayer, type BatchNorm2dOptions, type GroupNormOptions, type MaxPool2dOptions } from './norm-layers.js';
