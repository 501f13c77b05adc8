// torchvision BackboneWithFPN: `body` (the ResNet trunk up to layer4, IntermediateLayerGetter) and
// `fpn` (FeaturePyramidNetwork over C2..C5 + LastLevelMaxPool), so the state dict keys come out as
// `backbone.body.*` / `backbone.fpn.*` once the detector registers this module as 'backbone'.
import { tidy, nn, type Tensor } from '../engine/index.js';
import { ResNetBody } from './resnet.js';
import { FeaturePyramidNetwork } from './fpn.js';
import type { MaskRCNNConfig } from './config.js';

/** Names of the pyramid levels in output order (P2..P5, P6). */
export const FEATURE_NAMES = ['0', '1', '2', '3', 'pool'] as const;

export class BackboneWithFPN extends nn.Module {
  readonly body: ResNetBody;
  readonly fpn: FeaturePyramidNetwork;
  /** Channels of every output level. */
  readonly outChannels: number;

  constructor(cfg: Pick<MaskRCNNConfig, 'backbone' | 'fpn'>) {
    super();
    this.body = this.registerModule('body', new ResNetBody(cfg.backbone));
    this.fpn = this.registerModule('fpn', new FeaturePyramidNetwork(this.body.outChannels, cfg.fpn));
    this.outChannels = cfg.fpn.outChannels;
  }

  /** Normalised, padded images [N, 3, H, W] -> ordered map '0','1','2','3','pool' of [N, C, H/s, W/s]. */
  forward(images: Tensor): Map<string, Tensor> {
    if (images.ndim !== 4 || images.shape[1] !== 3) throw new Error(`BackboneWithFPN: images must be [N, 3, H, W], got [${images.shape.join(',')}]`);
    return tidy(() => this.fpn.forward(this.body.forward(images)));
  }
}
