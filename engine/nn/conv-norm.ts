// A convolution followed by its normalisation layer (and a block's residual add and ReLU) as one
// call: norm(conv(x)) with the norm's epilogue, relu(norm(conv(x)) + residual). Where the norm is
// a FrozenBatchNorm2d its fixed per-channel affine folds into the convolution's epilogue
// (ConvOptions.scale / residual): one dispatch where conv and norm took two (the ResNet trunk of
// torchvision's presets: issue #13). Other norms (BatchNorm2d's batch statistics, GroupNorm) need
// the whole conv output first and keep their own kernel. The modules, and so the checkpoint keys,
// are the caller's as they were.
import type { Tensor } from '../tensor.js';
import { conv2d } from '../ops/conv.js';
import type { NormEpilogue } from '../ops/norm.js';
import type { Conv2d } from './conv-layers.js';
import { FrozenBatchNorm2d, type NormLayer } from './norm-layers.js';

/** relu?(norm(conv(x)) + residual?): conv2d with a FrozenBatchNorm2d fused into its epilogue, else conv then norm. */
export function convNorm(conv: Conv2d, norm: NormLayer, x: Tensor, epilogue: NormEpilogue = {}): Tensor {
  // A conv bias would need folding into the shift (shift + bias * scale): one more dispatch, and no
  // trunk conv has one, so such a pair keeps the two layers.
  if (!(norm instanceof FrozenBatchNorm2d) || conv.bias || norm.numFeatures !== conv.outChannels) {
    return norm.forward(conv.forward(x), epilogue);
  }
  const { scale, shift } = norm.affine();
  // The shift is the bias that the epilogue adds after the scale.
  const activation = epilogue.relu ? 'relu' : 'none';
  return conv2d(x, conv.weight, shift, conv.stride, conv.padding, conv.dilation, conv.groups, { activation, scale, residual: epilogue.residual ?? null });
}
