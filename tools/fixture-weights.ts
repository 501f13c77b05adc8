// Writes the parity fixture's formula weights (model/fixture-weights.ts) for a preset's state dict
// to a safetensors file, torchvision key names, so the same weights can be loaded by our CLI or by a
// torchvision script (safetensors.torch.load_file + model.load_state_dict).
//
//   node dist/tools/fixture-weights.js --preset torchvision-r50-fpn --out W.safetensors [--seed 0] [--num-classes 91]
//
// The (name, shape) pairs come from our MaskRCNN module itself. headStateShapes() lists the heads'
// keys independently, from torchvision 0.14's RPNHead, TwoMLPHead / FastRCNNConvFCHead,
// FastRCNNPredictor, MaskRCNNHeads and MaskRCNNPredictor, so tests can hold the modules to them.
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import '../cli/node-gpu.js';
import { init, setQuiet } from '../engine/index.js';
import { encodeSafetensors } from '../engine/safetensors.js';
import { parseArgs, ArgsError, type OptionSpec } from '../cli/args.js';
import { MaskRCNN } from '../model/maskrcnn.js';
import { anchorsPerLocation } from '../model/anchors.js';
import { getPreset, presetNames } from '../model/presets.js';
import type { MaskRCNNConfig } from '../model/config.js';
import { fixtureStateDict } from '../model/fixture-weights.js';

type Shapes = [string, number[]][];

/** torchvision Conv2dNormActivation keys: conv at '.0' (bias only without norm), norm at '.1'. */
function convNormShapes(prefix: string, inC: number, outC: number, k: number, norm: boolean): Shapes {
  const s: Shapes = [[`${prefix}.0.weight`, [outC, inC, k, k]]];
  if (norm) s.push([`${prefix}.1.weight`, [outC]], [`${prefix}.1.bias`, [outC]]);
  else s.push([`${prefix}.0.bias`, [outC]]);
  return s;
}

/** State-dict (name, shape) pairs of the RPN and RoI heads of a config. */
export function headStateShapes(cfg: MaskRCNNConfig): Shapes {
  const C = cfg.fpn.outChannels, K = cfg.numClasses;
  const A = anchorsPerLocation(cfg.anchors)[0]!;
  const s: Shapes = [];
  for (let i = 0; i < cfg.rpn.convDepth; i++) s.push(...convNormShapes(`rpn.head.conv.${i}`, C, C, 3, false));
  s.push(['rpn.head.cls_logits.weight', [A, C, 1, 1]], ['rpn.head.cls_logits.bias', [A]]);
  s.push(['rpn.head.bbox_pred.weight', [4 * A, C, 1, 1]], ['rpn.head.bbox_pred.bias', [4 * A]]);
  const h = cfg.roiHeads, P = h.boxPooler.outputSize;
  let rep: number;
  if (h.boxHead.kind === 'two_mlp') {
    rep = h.boxHead.representationSize;
    s.push(['roi_heads.box_head.fc6.weight', [rep, C * P * P]], ['roi_heads.box_head.fc6.bias', [rep]]);
    s.push(['roi_heads.box_head.fc7.weight', [rep, rep]], ['roi_heads.box_head.fc7.bias', [rep]]);
  } else {
    // FastRCNNConvFCHead: convs 0..n-1, then Flatten (n), then Linear/ReLU pairs (n+1, n+3, ...).
    const b = h.boxHead;
    let prev = C, idx = 0;
    for (let i = 0; i < b.numConvs; i++, idx++) {
      s.push(...convNormShapes(`roi_heads.box_head.${idx}`, prev, b.convChannels, 3, b.norm === 'gn'));
      prev = b.convChannels;
    }
    idx++; // Flatten
    let inF = prev * P * P;
    for (let i = 0; i < b.numFcs; i++, idx += 2) {
      s.push([`roi_heads.box_head.${idx}.weight`, [b.representationSize, inF]], [`roi_heads.box_head.${idx}.bias`, [b.representationSize]]);
      inF = b.representationSize;
    }
    rep = inF;
  }
  s.push(['roi_heads.box_predictor.cls_score.weight', [K, rep]], ['roi_heads.box_predictor.cls_score.bias', [K]]);
  s.push(['roi_heads.box_predictor.bbox_pred.weight', [4 * K, rep]], ['roi_heads.box_predictor.bbox_pred.bias', [4 * K]]);
  const m = h.maskHead;
  let prev = C;
  m.convChannels.forEach((c, i) => {
    s.push(...convNormShapes(`roi_heads.mask_head.${i}`, prev, c, 3, m.norm === 'gn'));
    prev = c;
  });
  // ConvTranspose2d weight is [in, out, kh, kw].
  s.push(['roi_heads.mask_predictor.conv5_mask.weight', [prev, m.predictorChannels, 2, 2]], ['roi_heads.mask_predictor.conv5_mask.bias', [m.predictorChannels]]);
  s.push(['roi_heads.mask_predictor.mask_fcn_logits.weight', [K, m.predictorChannels, 1, 1]], ['roi_heads.mask_predictor.mask_fcn_logits.bias', [K]]);
  return s;
}

/** (name, shape) of every state-dict tensor of a preset's model (built on the GPU, then freed). */
export function presetStateShapes(cfg: MaskRCNNConfig): Shapes {
  const model = new MaskRCNN(cfg);
  const s: Shapes = Object.entries(model.stateDict()).map(([k, t]) => [k, [...t.shape]]);
  model.dispose();
  return s;
}

const SPECS: OptionSpec[] = [
  { name: 'preset', type: 'string', help: 'model preset', default: 'torchvision-r50-fpn', choices: presetNames(), metavar: 'NAME' },
  { name: 'out', type: 'string', help: 'output safetensors file', metavar: 'FILE' },
  { name: 'seed', type: 'number', help: 'formula seed (the fixture uses 0)', default: 0 },
  { name: 'num-classes', type: 'number', help: 'classes including background (default: the preset\'s)', metavar: 'N' },
  { name: 'help', type: 'boolean', short: 'h', help: 'show this help' },
];

const USAGE = 'node dist/tools/fixture-weights.js --out W.safetensors [--preset NAME] [--seed S] [--num-classes N]';

export async function main(argv: string[]): Promise<number> {
  let values: Record<string, unknown>;
  try {
    ({ values } = parseArgs(argv, SPECS));
  } catch (e) {
    if (e instanceof ArgsError) {
      console.error(`fixture-weights: ${e.message}\nusage: ${USAGE}`);
      return 2;
    }
    throw e;
  }
  if (values.help) {
    console.log(`usage: ${USAGE}\npresets: ${presetNames().join(', ')}`);
    return 0;
  }
  const out = values.out as string | undefined;
  if (!out) {
    console.error(`fixture-weights: --out is required\nusage: ${USAGE}`);
    return 2;
  }
  const seed = values.seed as number;
  if (!Number.isInteger(seed) || seed < 0) {
    console.error(`fixture-weights: --seed must be a non-negative integer, got ${seed}`);
    return 2;
  }
  const nc = values['num-classes'] as number | undefined;
  const cfg = getPreset(values.preset as string, nc === undefined ? {} : { numClasses: nc });
  setQuiet(true);
  await init();
  const shapes = presetStateShapes(cfg);
  const dict = fixtureStateDict(shapes, seed);
  const bytes = encodeSafetensors(dict, { format: 'pt', preset: cfg.name, seed: String(seed), weights: 'torchvision-maskrcnn fixture formula' });
  writeFileSync(out, bytes);
  console.log(`wrote ${shapes.length} tensors (${(bytes.length / 2 ** 20).toFixed(1)} MiB) for preset ${cfg.name}, seed ${seed}, to ${out}`);
  return 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  main(process.argv.slice(2)).then(
    (code) => process.exit(code),
    (e) => {
      console.error(`fixture-weights: ${(e as Error).message}`);
      process.exit(1);
    },
  );
}
