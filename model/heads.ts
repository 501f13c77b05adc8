// The RoI heads' networks, named as torchvision 0.14: TwoMLPHead (box_head.fc6/fc7),
// FastRCNNConvFCHead (box_head.i.0/.1 convs with GN or BN, then Linear layers after a Flatten: the
// Detectron2 "4conv1fc" head of the GN recipes), FastRCNNPredictor (box_predictor.cls_score/bbox_pred), MaskRCNNHeads (mask_head.i.0: 3x3 convs
// wrapped in Conv2dNormActivation) and MaskRCNNPredictor (mask_predictor.conv5_mask/mask_fcn_logits).
import { conv1x1Select, flatten, relu, tidy, nn, type Tensor } from '../engine/index.js';
import { makeHeadNorm } from './norm.js';
import type { BoxHeadConfig, MaskHeadConfig } from './config.js';

// torchvision MaskRCNNHeads / MaskRCNNPredictor: kaiming_normal_(fan_out, relu), bias 0.
const MASK_INIT = { kind: 'kaiming_normal', mode: 'fan_out' } as const;

/** flatten -> fc6 -> relu -> fc7 -> relu. */
export class TwoMLPHead extends nn.Module {
  readonly fc6: nn.Linear;
  readonly fc7: nn.Linear;

  constructor(inChannels: number, representationSize: number) {
    super();
    this.fc6 = this.registerModule('fc6', new nn.Linear(inChannels, representationSize));
    this.fc7 = this.registerModule('fc7', new nn.Linear(representationSize, representationSize));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => relu(this.fc7.forward(relu(this.fc6.forward(flatten(x, 1))))));
  }
}

type ConvFcConfig = Extract<BoxHeadConfig, { kind: 'conv_fc' }>;

/** 1024-d RoI features from either box head. */
export interface BoxHead extends nn.Module {
  forward(x: Tensor): Tensor;
}

/**
 * torchvision FastRCNNConvFCHead: numConvs x Conv2dNormActivation(3x3, GN/BN or bias) at children
 * 0..numConvs-1, Flatten at numConvs, then numFcs x (Linear, ReLU) at numConvs+1, +3, ...
 * Convs use kaiming_normal_(fan_out, relu) with zero bias; the Linears torch's default init.
 */
export class FastRCNNConvFCHead extends nn.Module {
  private readonly convs: ConvNormReLU[] = [];
  private readonly fcs: nn.Linear[] = [];

  constructor(inChannels: number, resolution: number, cfg: ConvFcConfig) {
    super();
    let c = inChannels;
    for (let i = 0; i < cfg.numConvs; i++) {
      this.convs.push(this.registerModule(String(i), new ConvNormReLU(c, cfg.convChannels, { dilation: 1, norm: cfg.norm, gnGroups: cfg.gnGroups })));
      c = cfg.convChannels;
    }
    let f = c * resolution * resolution;
    for (let j = 0; j < cfg.numFcs; j++) {
      this.fcs.push(this.registerModule(String(cfg.numConvs + 1 + 2 * j), new nn.Linear(f, cfg.representationSize)));
      f = cfg.representationSize;
    }
  }

  forward(x: Tensor): Tensor {
    return tidy(() => {
      let y = x;
      for (const conv of this.convs) y = conv.forward(y);
      y = flatten(y, 1);
      for (const fc of this.fcs) y = relu(fc.forward(y));
      return y;
    });
  }
}

/** Class logits [R, C] and per-class box deltas [R, 4C]. */
export class FastRCNNPredictor extends nn.Module {
  readonly clsScore: nn.Linear;
  readonly bboxPred: nn.Linear;

  constructor(inChannels: number, numClasses: number) {
    super();
    this.clsScore = this.registerModule('cls_score', new nn.Linear(inChannels, numClasses));
    this.bboxPred = this.registerModule('bbox_pred', new nn.Linear(inChannels, numClasses * 4));
  }

  forward(x: Tensor): { classLogits: Tensor; boxRegression: Tensor } {
    return { classLogits: this.clsScore.forward(x), boxRegression: this.bboxPred.forward(x) };
  }
}

/** One Conv2dNormActivation(3x3, dilation) + ReLU, the conv as child '0' (and GN/BN as '1'). */
class ConvNormReLU extends nn.Sequential {
  private readonly norm: nn.NormLayer | null;

  constructor(inC: number, outC: number, cfg: Pick<MaskHeadConfig, 'dilation' | 'norm' | 'gnGroups'>) {
    const norm = makeHeadNorm(cfg.norm, cfg.gnGroups, outC);
    const conv = new nn.Conv2d(inC, outC, 3, { padding: cfg.dilation, dilation: cfg.dilation, bias: !norm, init: MASK_INIT });
    super(...(norm ? [conv, norm] : [conv]));
    this.norm = norm;
  }

  override forward(x: Tensor): Tensor {
    const conv = this.at(0) as nn.Conv2d;
    if (!this.norm) return conv.forward(x, 'relu');
    const norm = this.norm;
    // The ReLU runs in the norm's kernel.
    return tidy(() => norm.forward(conv.forward(x), { relu: true }));
  }
}

/** MaskRCNNHeads: the stack of 3x3 convs over the 14x14 pooled features. */
export class MaskRCNNHeads extends nn.Sequential {
  constructor(inChannels: number, cfg: MaskHeadConfig) {
    super(...cfg.convChannels.map((c, i) => new ConvNormReLU(i === 0 ? inChannels : cfg.convChannels[i - 1]!, c, cfg)));
  }
}

/** conv5_mask (2x2 stride-2 deconv) -> relu -> mask_fcn_logits (1x1): [R, C, 28, 28]. */
export class MaskRCNNPredictor extends nn.Module {
  readonly conv5Mask: nn.ConvTranspose2d;
  readonly maskFcnLogits: nn.Conv2d;

  constructor(inChannels: number, dimReduced: number, numClasses: number) {
    super();
    this.conv5Mask = this.registerModule('conv5_mask', new nn.ConvTranspose2d(inChannels, dimReduced, 2, { stride: 2, init: MASK_INIT }));
    this.maskFcnLogits = this.registerModule('mask_fcn_logits', new nn.Conv2d(dimReduced, numClasses, 1, { init: MASK_INIT }));
  }

  forward(x: Tensor): Tensor {
    return tidy(() => this.maskFcnLogits.forward(this.conv5Mask.forward(x, 'relu')));
  }

  /**
   * forward(x)[r, labels[r]]: each RoI's logits for its own class only, [R, 28, 28] (what the mask
   * loss and maskrcnn_inference read): mask_fcn_logits computes one channel per RoI instead of C.
   */
  forwardForLabels(x: Tensor, labels: ArrayLike<number>): Tensor {
    const f = this.maskFcnLogits;
    return tidy(() => conv1x1Select(this.conv5Mask.forward(x, 'relu'), f.weight, f.bias, labels));
  }
}
