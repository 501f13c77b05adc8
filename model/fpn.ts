// Feature Pyramid Network (Lin et al. 2017) as torchvision.ops.FeaturePyramidNetwork (0.14): a 1x1
// lateral conv per input level (inner_blocks.i) and a 3x3 output conv (layer_blocks.i), each a
// Conv2dNormActivation without activation, i.e. a Sequential whose conv is child '0' (norm, if
// any, child '1'), hence the `inner_blocks.0.0.weight` keys. Top-down: the coarser merged map is
// nearest-upsampled to the lateral's exact size (not x2, so odd sizes work) and added. Extra block
// LastLevelMaxPool: P6 = max_pool2d(P5, kernel 1, stride 2), named 'pool'.
import { add, interpolate, maxPool2d, tidy, nn, type Tensor } from '../engine/index.js';
import { makeHeadNorm } from './norm.js';
import type { FpnConfig } from './config.js';

// torchvision FPN.__init__: kaiming_uniform_(weight, a=1), bias 0, for every conv.
const FPN_INIT: nn.ConvInit = { kind: 'kaiming_uniform', a: 1 };

/** torchvision Conv2dNormActivation(in, out, k, norm_layer=None|GN|BN, activation_layer=None). */
function convNorm(inC: number, outC: number, k: number, cfg: FpnConfig): nn.Sequential {
  const norm = makeHeadNorm(cfg.norm, cfg.gnGroups, outC);
  // torchvision: bias defaults to (norm_layer is None).
  const conv = new nn.Conv2d(inC, outC, k, { padding: (k - 1) >> 1, bias: !norm, init: FPN_INIT });
  return norm ? new nn.Sequential(conv, norm) : new nn.Sequential(conv);
}

export class FeaturePyramidNetwork extends nn.Module {
  /** ModuleLists in torchvision: Sequentials here, used only as indexed containers. */
  readonly innerBlocks: nn.Sequential;
  readonly layerBlocks: nn.Sequential;
  readonly outChannels: number;

  constructor(readonly inChannelsList: readonly number[], cfg: FpnConfig) {
    super();
    if (inChannelsList.length === 0) throw new Error('FeaturePyramidNetwork: in_channels_list is empty');
    for (const c of inChannelsList) if (!Number.isInteger(c) || c <= 0) throw new Error(`FeaturePyramidNetwork: in_channels must be positive integers, got ${inChannelsList.join(', ')}`);
    this.outChannels = cfg.outChannels;
    this.innerBlocks = this.registerModule('inner_blocks', new nn.Sequential(...inChannelsList.map((c) => convNorm(c, cfg.outChannels, 1, cfg))));
    this.layerBlocks = this.registerModule('layer_blocks', new nn.Sequential(...inChannelsList.map(() => convNorm(cfg.outChannels, cfg.outChannels, 3, cfg))));
  }

  /**
   * features: [C2..C5] (finest first) -> ordered map '0'..'3' (P2..P5) and 'pool' (P6), as
   * torchvision's OrderedDict.
   */
  forward(features: readonly Tensor[]): Map<string, Tensor> {
    const L = this.inChannelsList.length;
    if (features.length !== L) throw new Error(`FeaturePyramidNetwork: got ${features.length} feature maps, built for ${L}`);
    features.forEach((f, i) => {
      if (f.ndim !== 4 || f.shape[1] !== this.inChannelsList[i]) {
        throw new Error(`FeaturePyramidNetwork: feature ${i} is [${f.shape.join(',')}], expected [N, ${this.inChannelsList[i]}, H, W]`);
      }
    });
    return tidy(() => {
      let lastInner = this.innerBlocks.at(L - 1).forward(features[L - 1]!);
      const results: Tensor[] = [this.layerBlocks.at(L - 1).forward(lastInner)];
      for (let idx = L - 2; idx >= 0; idx--) {
        const lateral = this.innerBlocks.at(idx).forward(features[idx]!);
        const topDown = interpolate(lastInner, { size: [lateral.shape[2]!, lateral.shape[3]!], mode: 'nearest' });
        lastInner = add(lateral, topDown);
        results.unshift(this.layerBlocks.at(idx).forward(lastInner));
      }
      const out = new Map<string, Tensor>();
      results.forEach((r, i) => out.set(String(i), r));
      // LastLevelMaxPool on the last FPN output.
      out.set('pool', maxPool2d(results[L - 1]!, 1, 2, 0));
      return out;
    });
  }
}
