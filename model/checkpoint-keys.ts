// State-dict names of other Mask R-CNN implementations -> ours (torchvision 0.14's), so their files
// load as they are:
// - torchvision before 0.13 (its model-zoo .pth, e.g. maskrcnn_resnet50_fpn_coco-bf2d0c1e.pth): the
//   renames torchvision's own _load_from_state_dict hooks do (rpn.head.conv, FPN blocks, mask_fcnN).
// - Detectron2 model-zoo .pkl (GeneralizedRCNN with ResNet-FPN, StandardROIHeads): its names, and its
//   class layout (background LAST in cls_score, no background row in bbox_pred and the mask
//   predictor) turned into torchvision's (background first, with a zero background row).
import type { HostTensor } from '../engine/index.js';

export type KeyStyle = 'ours' | 'torchvision-legacy' | 'detectron2';

/** Which naming a state dict uses (by its keys). */
export function keyStyle(names: Iterable<string>): KeyStyle {
  let legacy = false;
  for (const k of names) {
    if (k.startsWith('backbone.bottom_up.') || k.startsWith('proposal_generator.')) return 'detectron2';
    if (legacyTorchvisionKey(k) !== k) legacy = true;
  }
  return legacy ? 'torchvision-legacy' : 'ours';
}

/** torchvision < 0.13 names -> 0.14 names (identity for anything else). */
export function legacyTorchvisionKey(k: string): string {
  return k
    .replace(/^rpn\.head\.conv\.(weight|bias)$/, 'rpn.head.conv.0.0.$1')
    .replace(/^backbone\.fpn\.(inner|layer)_blocks\.(\d+)\.(weight|bias)$/, 'backbone.fpn.$1_blocks.$2.0.$3')
    .replace(/^roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)$/, (_, i: string, p: string) => `roi_heads.mask_head.${Number(i) - 1}.0.${p}`);
}

/** Detectron2 buffers that are not weights (and old files' BN counters): dropped. */
const D2_DROPPED = /^(pixel_mean|pixel_std)$|anchor_generator\.|num_batches_tracked$/;

/**
 * One Detectron2 name -> ours; null for a dropped buffer; the name unchanged if it is not a
 * Detectron2 weight we know (the load report then lists it as unexpected). `boxConvs` is the
 * number of convs in the box head (FastRCNNConvFCHead: fcK sits at index boxConvs + 2K - 1).
 */
export function detectron2Key(k: string, boxConvs: number): string | null {
  if (D2_DROPPED.test(k)) return null;
  const rules: [RegExp, (...m: string[]) => string][] = [
    [/^backbone\.bottom_up\.stem\.conv1\.weight$/, () => 'backbone.body.conv1.weight'],
    [/^backbone\.bottom_up\.stem\.conv1\.norm\.(\w+)$/, (p) => `backbone.body.bn1.${p}`],
    [/^backbone\.bottom_up\.res(\d)\.(\d+)\.conv(\d)\.weight$/, (r, i, c) => `backbone.body.layer${Number(r) - 1}.${i}.conv${c}.weight`],
    [/^backbone\.bottom_up\.res(\d)\.(\d+)\.conv(\d)\.norm\.(\w+)$/, (r, i, c, p) => `backbone.body.layer${Number(r) - 1}.${i}.bn${c}.${p}`],
    [/^backbone\.bottom_up\.res(\d)\.(\d+)\.shortcut\.weight$/, (r, i) => `backbone.body.layer${Number(r) - 1}.${i}.downsample.0.weight`],
    [/^backbone\.bottom_up\.res(\d)\.(\d+)\.shortcut\.norm\.(\w+)$/, (r, i, p) => `backbone.body.layer${Number(r) - 1}.${i}.downsample.1.${p}`],
    [/^backbone\.fpn_(lateral|output)(\d)\.(weight|bias)$/, (t, l, p) => `backbone.fpn.${t === 'lateral' ? 'inner' : 'layer'}_blocks.${Number(l) - 2}.0.${p}`],
    [/^backbone\.fpn_(lateral|output)(\d)\.norm\.(\w+)$/, (t, l, p) => `backbone.fpn.${t === 'lateral' ? 'inner' : 'layer'}_blocks.${Number(l) - 2}.1.${p}`],
    [/^proposal_generator\.rpn_head\.conv\.(weight|bias)$/, (p) => `rpn.head.conv.0.0.${p}`],
    [/^proposal_generator\.rpn_head\.objectness_logits\.(weight|bias)$/, (p) => `rpn.head.cls_logits.${p}`],
    [/^proposal_generator\.rpn_head\.anchor_deltas\.(weight|bias)$/, (p) => `rpn.head.bbox_pred.${p}`],
    [/^roi_heads\.box_head\.conv(\d+)\.weight$/, (i) => `roi_heads.box_head.${Number(i) - 1}.0.weight`],
    [/^roi_heads\.box_head\.conv(\d+)\.norm\.(\w+)$/, (i, p) => `roi_heads.box_head.${Number(i) - 1}.1.${p}`],
    [/^roi_heads\.box_head\.fc(\d)\.(weight|bias)$/, (i, p) => (boxConvs === 0 ? `roi_heads.box_head.fc${Number(i) + 5}.${p}` : `roi_heads.box_head.${boxConvs + 2 * Number(i) - 1}.${p}`)],
    [/^roi_heads\.box_predictor\.(cls_score|bbox_pred)\.(weight|bias)$/, (t, p) => `roi_heads.box_predictor.${t}.${p}`],
    [/^roi_heads\.mask_head\.mask_fcn(\d+)\.(weight|bias)$/, (i, p) => `roi_heads.mask_head.${Number(i) - 1}.0.${p}`],
    [/^roi_heads\.mask_head\.mask_fcn(\d+)\.norm\.(\w+)$/, (i, p) => `roi_heads.mask_head.${Number(i) - 1}.1.${p}`],
    [/^roi_heads\.mask_head\.deconv\.(weight|bias)$/, (p) => `roi_heads.mask_predictor.conv5_mask.${p}`],
    [/^roi_heads\.mask_head\.predictor\.(weight|bias)$/, (p) => `roi_heads.mask_predictor.mask_fcn_logits.${p}`],
  ];
  for (const [re, to] of rules) {
    const m = re.exec(k);
    if (m) return to(...m.slice(1));
  }
  return k;
}

/** Rows of a [rows, ...] tensor rearranged: out row r = in row from[r], or zeros for -1. */
function takeRows(t: HostTensor, from: number[]): HostTensor {
  const row = t.data.length / t.shape[0]!;
  const data = new (t.data.constructor as Float32ArrayConstructor)(from.length * row) as HostTensor['data'];
  from.forEach((src, r) => {
    if (src >= 0) data.set(t.data.subarray(src * row, (src + 1) * row), r * row);
  });
  return { ...t, shape: [from.length, ...t.shape.slice(1)], data };
}

const range = (n: number, start = 0): number[] => Array.from({ length: n }, (_, i) => i + start);

/** A Detectron2 state dict under our names and class layout. */
export function fromDetectron2(src: Record<string, HostTensor>): Record<string, HostTensor> {
  const boxConvs = Object.keys(src).filter((k) => /^roi_heads\.box_head\.conv\d+\.weight$/.test(k)).length;
  const out: Record<string, HostTensor> = {};
  for (const [k, t] of Object.entries(src)) {
    const name = detectron2Key(k, boxConvs);
    if (name === null) continue;
    let v = t;
    // cls_score: [K+1] with background last -> background first.
    if (/^roi_heads\.box_predictor\.cls_score\./.test(name)) v = takeRows(t, [t.shape[0]! - 1, ...range(t.shape[0]! - 1)]);
    // bbox_pred: [4K] (no background) -> [4(K+1)] with four zero background rows first.
    else if (/^roi_heads\.box_predictor\.bbox_pred\./.test(name)) v = takeRows(t, [-1, -1, -1, -1, ...range(t.shape[0]!)]);
    // mask predictor: [K] -> [K+1] with a zero background channel first.
    else if (/^roi_heads\.mask_predictor\.mask_fcn_logits\./.test(name)) v = takeRows(t, [-1, ...range(t.shape[0]!)]);
    out[name] = v;
  }
  return out;
}

/** Any supported naming -> ours (the style found is returned for the caller's report). */
export function toOurKeys(src: Record<string, HostTensor>): { tensors: Record<string, HostTensor>; style: KeyStyle } {
  const style = keyStyle(Object.keys(src));
  if (style === 'detectron2') return { tensors: fromDetectron2(src), style };
  if (style === 'torchvision-legacy') {
    const out: Record<string, HostTensor> = {};
    for (const [k, t] of Object.entries(src)) out[legacyTorchvisionKey(k)] = t;
    return { tensors: out, style };
  }
  return { tensors: src, style };
}

/** The class-specific layers: their shapes follow the number of classes (re-initialised when fine-tuning). */
const CLASS_SPECIFIC = /^roi_heads\.(box_predictor\.(cls_score|bbox_pred)|mask_predictor\.mask_fcn_logits)\.(weight|bias)$/;

export function isClassSpecificKey(key: string): boolean {
  return CLASS_SPECIFIC.test(key);
}
