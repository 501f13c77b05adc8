// The norm layer after a conv, as torchvision's norm_layer(channels) (ResNet trunk: FrozenBatchNorm2d,
// BatchNorm2d or GroupNorm; FPN and RoI heads: none, GroupNorm or BatchNorm2d), shared by every
// component so a preset's norm choice means the same module everywhere.
import { nn } from '../engine/index.js';
import type { HeadNorm, NormKind } from './config.js';

export interface NormSpec {
  kind: NormKind;
  gnGroups: number;
  eps: number;
}

/** The norm layer after a conv with `channels` outputs (torchvision's norm_layer(channels)). */
export function makeNorm(spec: NormSpec, channels: number): nn.NormLayer {
  switch (spec.kind) {
    case 'frozen_bn': return new nn.FrozenBatchNorm2d(channels, spec.eps);
    case 'bn': return new nn.BatchNorm2d(channels, { eps: spec.eps });
    case 'gn': return new nn.GroupNorm(spec.gnGroups, channels, { eps: spec.eps });
  }
}

/** A head's norm (null for 'none'), with torch's default eps 1e-5 (torchvision passes none). */
export function makeHeadNorm(kind: HeadNorm, gnGroups: number, channels: number): nn.NormLayer | null {
  return kind === 'none' ? null : makeNorm({ kind, gnGroups, eps: 1e-5 }, channels);
}
