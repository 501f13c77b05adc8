// ResNet (He et al. 2016) as torchvision.models.resnet builds it, without avgpool/fc (the detection
// backbone only needs C2..C5, as IntermediateLayerGetter keeps). Module and parameter names match
// torchvision's state dict: conv1, bn1, layer1..layer4, each block conv1/bn1/conv2/bn2[/conv3/bn3]
// and downsample.0 (1x1 conv) / downsample.1 (norm). The norm is selectable (FrozenBatchNorm2d for
// imported weights, BatchNorm2d, GroupNorm), as is Detectron2's "stride in the 1x1" Bottleneck.
// Each conv -> norm (-> + shortcut) (-> relu) runs through nn.convNorm: with FrozenBatchNorm2d
// (torchvision's presets) the norm, add and relu are the conv kernel's epilogue, one dispatch;
// other norms keep their own kernel, with the add and relu fused there.
import { maxPool2d, tidy, nn, type Tensor } from '../engine/index.js';
import { blockExpansion, bottleneckWidth, stageBlocks, type BackboneConfig } from './config.js';
import { makeNorm, type NormSpec } from './norm.js';

// torchvision ResNet.__init__ re-initialises every conv with kaiming_normal_(fan_out, relu)
// (norm layers start at weight 1, bias 0, which their constructors already do).
const RESNET_INIT: nn.ConvInit = { kind: 'kaiming_normal', mode: 'fan_out' };

function conv(inC: number, outC: number, k: number, stride = 1, groups = 1): nn.Conv2d {
  return new nn.Conv2d(inC, outC, k, { stride, padding: (k - 1) >> 1, groups, bias: false, init: RESNET_INIT });
}

/** The projection shortcut (torchvision's downsample: 1x1 conv, norm), a frozen norm fused into the conv. */
function shortcut(downsample: nn.Sequential | null, x: Tensor): Tensor {
  if (!downsample) return x;
  const [conv, norm] = [downsample.at(0) as nn.Conv2d, downsample.at(1) as nn.NormLayer];
  return norm instanceof nn.FrozenBatchNorm2d ? nn.convNorm(conv, norm, x) : downsample.forward(x);
}

/** A residual block: forward(x) = relu(branch(x) + shortcut(x)). */
export interface Block extends nn.Layer {
  readonly outChannels: number;
}

/** torchvision BasicBlock (ResNet-18/34): 3x3 (stride) -> norm -> relu -> 3x3 -> norm, + shortcut. */
export class BasicBlock extends nn.Module implements Block {
  static readonly expansion = 1;
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.NormLayer;
  readonly conv2: nn.Conv2d;
  readonly bn2: nn.NormLayer;
  readonly downsample: nn.Sequential | null;
  readonly outChannels: number;

  constructor(inplanes: number, planes: number, stride: number, norm: NormSpec, downsample: nn.Sequential | null) {
    super();
    this.outChannels = planes;
    this.conv1 = this.registerModule('conv1', conv(inplanes, planes, 3, stride));
    this.bn1 = this.registerModule('bn1', makeNorm(norm, planes));
    this.conv2 = this.registerModule('conv2', conv(planes, planes, 3));
    this.bn2 = this.registerModule('bn2', makeNorm(norm, planes));
    this.downsample = downsample ? this.registerModule('downsample', downsample) : null;
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      const out = nn.convNorm(this.conv1, this.bn1, x, { relu: true });
      const identity = shortcut(this.downsample, x);
      // relu(bn2(conv2(out)) + identity): the add and relu run in the conv's or the norm's kernel.
      return nn.convNorm(this.conv2, this.bn2, out, { residual: identity, relu: true });
    });
  }
}

/**
 * torchvision Bottleneck (ResNet-50/101, "ResNet V1.5"): 1x1 -> 3x3 (stride) -> 1x1 (4x planes), each
 * followed by a norm, relu between; with strideIn1x1 the stride sits in the first 1x1 instead
 * (the original MSRA / Detectron2 layout). ResNeXt: the 3x3 is a grouped conv of width
 * floor(planes * widthPerGroup / 64) * groups.
 */
export class Bottleneck extends nn.Module implements Block {
  static readonly expansion = 4;
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.NormLayer;
  readonly conv2: nn.Conv2d;
  readonly bn2: nn.NormLayer;
  readonly conv3: nn.Conv2d;
  readonly bn3: nn.NormLayer;
  readonly downsample: nn.Sequential | null;
  readonly outChannels: number;

  constructor(inplanes: number, planes: number, stride: number, norm: NormSpec, downsample: nn.Sequential | null, strideIn1x1 = false, cardinality = { groups: 1, widthPerGroup: 64 }) {
    super();
    const width = bottleneckWidth(cardinality, planes);
    this.outChannels = planes * Bottleneck.expansion;
    const [s1, s3] = strideIn1x1 ? [stride, 1] : [1, stride];
    this.conv1 = this.registerModule('conv1', conv(inplanes, width, 1, s1));
    this.bn1 = this.registerModule('bn1', makeNorm(norm, width));
    this.conv2 = this.registerModule('conv2', conv(width, width, 3, s3, cardinality.groups));
    this.bn2 = this.registerModule('bn2', makeNorm(norm, width));
    this.conv3 = this.registerModule('conv3', conv(width, this.outChannels, 1));
    this.bn3 = this.registerModule('bn3', makeNorm(norm, this.outChannels));
    this.downsample = downsample ? this.registerModule('downsample', downsample) : null;
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      let out = nn.convNorm(this.conv1, this.bn1, x, { relu: true });
      out = nn.convNorm(this.conv2, this.bn2, out, { relu: true });
      const identity = shortcut(this.downsample, x);
      // relu(bn3(conv3(out)) + identity): the add and relu run in the conv's or the norm's kernel.
      return nn.convNorm(this.conv3, this.bn3, out, { residual: identity, relu: true });
    });
  }
}

/**
 * The ResNet trunk: stem (conv1 7x7/2, bn1, relu, maxpool 3x3/2) and layer1..layer4. forward()
 * returns [C2, C3, C4, C5] (strides 4, 8, 16, 32), the outputs of layer1..layer4.
 */
export class ResNetBody extends nn.Module {
  readonly conv1: nn.Conv2d;
  readonly bn1: nn.NormLayer;
  readonly layers: nn.Sequential[];
  /** Channels of C2..C5. */
  readonly outChannels: number[];

  constructor(readonly cfg: BackboneConfig) {
    super();
    const norm: NormSpec = { kind: cfg.norm, gnGroups: cfg.gnGroups, eps: cfg.normEps };
    const blocks = stageBlocks(cfg.depth);
    const expansion = blockExpansion(cfg.depth);
    this.conv1 = this.registerModule('conv1', new nn.Conv2d(3, cfg.stemChannels, 7, { stride: 2, padding: 3, bias: false, init: RESNET_INIT }));
    this.bn1 = this.registerModule('bn1', makeNorm(norm, cfg.stemChannels));
    let inplanes = cfg.stemChannels;
    this.layers = [];
    this.outChannels = [];
    for (let s = 0; s < 4; s++) {
      const planes = cfg.stageWidths[s]!;
      const stride = s === 0 ? 1 : 2;
      const list: Block[] = [];
      for (let i = 0; i < blocks[s]!; i++) {
        const st = i === 0 ? stride : 1;
        // torchvision _make_layer: a projection shortcut when the shape changes.
        const needsProj = i === 0 && (st !== 1 || inplanes !== planes * expansion);
        const down = needsProj ? new nn.Sequential(conv(inplanes, planes * expansion, 1, st), makeNorm(norm, planes * expansion)) : null;
        list.push(expansion === 4 ? new Bottleneck(inplanes, planes, st, norm, down, cfg.strideIn1x1, cfg) : new BasicBlock(inplanes, planes, st, norm, down));
        inplanes = planes * expansion;
      }
      this.layers.push(this.registerModule(`layer${s + 1}`, new nn.Sequential(...list)));
      this.outChannels.push(inplanes);
    }
    freezeLayers(this, cfg.trainableLayers);
  }

  /** x [N, 3, H, W] -> [C2, C3, C4, C5]. */
  forward(x: Tensor): Tensor[] {
    return tidy(() => {
      const stem = maxPool2d(nn.convNorm(this.conv1, this.bn1, x, { relu: true }), 3, 2, 1);
      const outs: Tensor[] = [];
      let h = stem;
      for (const layer of this.layers) {
        h = layer.forward(h);
        outs.push(h);
      }
      return outs;
    });
  }
}

/**
 * torchvision _resnet_fpn_extractor: of layer4, layer3, layer2, layer1, conv1 the first
 * `trainable` train (5 adds the stem norm bn1); every other parameter gets requiresGrad false.
 */
export function freezeLayers(body: nn.Module, trainable: number): void {
  if (!Number.isInteger(trainable) || trainable < 0 || trainable > 5) throw new Error(`ResNet: trainable layers must be in 0..5, got ${trainable}`);
  const train = ['layer4', 'layer3', 'layer2', 'layer1', 'conv1'].slice(0, trainable);
  if (trainable === 5) train.push('bn1');
  for (const [name, p] of body.namedParameters()) {
    if (!train.some((prefix) => name.startsWith(prefix))) p.requiresGrad = false;
  }
}
