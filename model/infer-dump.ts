// `infer --dump`: one image's detection pass with every intermediate kept, under the names of the
// torchvision parity fixture (shared/fixtures/torchvision-maskrcnn/README.md), so a case made the
// same way can be compared with tools/compare-dump.js and no new code. It runs the same steps as
// MaskRCNN.detect() (features, RPN, RoI heads, rescale, paste) and returns that detection too.
// Differences from the fixture: integer tensors are int32 (the fixture's are int64), and
// box.* / mask.logits are computed for OUR proposals / detections (the fixture's for torchvision's).
import { noGrad, type HostTensor, type Tensor } from '../engine/index.js';
import type { Detection, MaskRCNN, PreparedBatch } from './maskrcnn.js';
import { pasteMasks, rescaleBoxes } from './postprocess.js';

/** How many detections' mask logits and pasted masks are kept (the fixture's [0:5]). */
export const DUMP_FIRST = 5;

async function host(t: Tensor): Promise<HostTensor> {
  return { dtype: 'float32', shape: [...t.shape], data: await t.floatData() };
}

const f32 = (data: Float32Array, shape: number[]): HostTensor => ({ dtype: 'float32', shape, data });

/** Detects on a one-image batch, returning the detection and the named intermediate tensors. */
export async function detectWithDump(model: MaskRCNN, batch: PreparedBatch): Promise<{ det: Detection; tensors: Record<string, HostTensor> }> {
  if (batch.info.imageSizes.length !== 1) throw new Error(`--dump: expects a batch of one image, got ${batch.info.imageSizes.length}`);
  const out: Record<string, HostTensor> = {};
  const owned: Tensor[] = [];
  try {
    out['input.tensor'] = await host(batch.images);
    out['input.image_size'] = { dtype: 'int32', shape: [2], data: Int32Array.from(batch.info.imageSizes[0]!) };
    const features = noGrad(() => model.features(batch.images));
    owned.push(...features);
    const fpnNames = ['fpn.0', 'fpn.1', 'fpn.2', 'fpn.3', 'fpn.pool'];
    for (let l = 0; l < features.length; l++) out[fpnNames[l] ?? `fpn.${l}`] = await host(features[l]!);

    const raw: { objectness?: Tensor[]; deltas?: Tensor[] } = {};
    const rpn = await noGrad(() => model.rpn.forward(features, batch.info, undefined, undefined, raw));
    owned.push(...(raw.objectness ?? []), ...(raw.deltas ?? []));
    for (let l = 0; l < (raw.objectness?.length ?? 0); l++) {
      out[`rpn.objectness.${l}`] = await host(raw.objectness![l]!);
      out[`rpn.deltas.${l}`] = await host(raw.deltas![l]!);
    }
    const proposals = rpn.proposals[0]!;
    out['rpn.proposals'] = f32(proposals, [proposals.length / 4, 4]);
    out['rpn.proposal_scores'] = f32(rpn.scores[0]!, [rpn.scores[0]!.length]);

    const levels = features.slice(0, 4);
    const scales = model.roiScales(features, batch.info);
    const box = noGrad(() => model.roiHeads.boxBranch(levels, [proposals], scales));
    owned.push(box.classLogits, box.boxRegression);
    out['box.class_logits'] = await host(box.classLogits);
    out['box.box_regression'] = await host(box.boxRegression);

    const [d] = await noGrad(() => model.roiHeads.detect(levels, rpn.proposals, batch.info.imageSizes, scales));
    const D = d!.labels.length;
    const first = Math.min(DUMP_FIRST, D);
    const maskOn = model.cfg.maskOn;
    if (first > 0 && maskOn) {
      const logits = noGrad(() => model.roiHeads.maskBranch(levels, [d!.boxes.slice(0, 4 * first)], scales));
      owned.push(logits);
      out[`mask.logits[0:${DUMP_FIRST}]`] = await host(logits);
    }

    // As MaskRCNN.detect(): boxes back to the original image, masks pasted at its size.
    const [h, w] = batch.originalSizes[0]!;
    const boxes = rescaleBoxes(d!.boxes, batch.info.imageSizes[0]!, [h, w]);
    // A model without a mask branch (Faster R-CNN) has no mask tensors, like torchvision's FasterRCNN.
    const masks = maskOn ? pasteMasks(d!.masks, d!.maskSize, boxes, h, w) : new Float32Array(0);
    const det: Detection = { boxes, scores: d!.scores, labels: d!.labels, masks, height: h, width: w };
    out['det.boxes'] = f32(boxes, [D, 4]);
    out['det.scores'] = f32(d!.scores, [D]);
    out['det.labels'] = { dtype: 'int32', shape: [D], data: d!.labels };
    if (maskOn) out[`det.masks[0:${DUMP_FIRST}]`] = f32(masks.slice(0, first * h * w), [first, h, w]);
    return { det, tensors: out };
  } finally {
    owned.forEach((t) => t.dispose());
  }
}
