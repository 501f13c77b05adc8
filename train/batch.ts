// Batch assembly: a loader batch (data/loader.ts) as the model's input tensors and training targets.
// The one place the host-side batch becomes GPU tensors, for training (targets at the resized size)
// and for evaluation (input only). Call inside a tidy scope: the tensors made here are not kept.
import { tensor, withRowCapacity } from '../engine/index.js';
import type { Batch } from '../data/loader.js';
import type { PreparedBatch } from '../model/maskrcnn.js';
import type { MaskTarget } from '../model/roi-heads.js';

/** The model's input for a loader batch (images padded to the batch shape, sizes for rescaling). */
export function batchInput(b: Pick<Batch, 'images' | 'shape' | 'imageSizes' | 'samples'>): PreparedBatch {
  return {
    images: tensor(b.images, b.shape),
    info: { paddedSize: [b.shape[2], b.shape[3]], imageSizes: b.imageSizes },
    originalSizes: b.samples.map((s) => [s.origHeight, s.origWidth]),
  };
}

/**
 * The model's training input and targets for a loader batch (targets at the resized size). With
 * `maxInstances` (the source's bound), each image's [G, H, W] masks get a buffer for that many
 * instances, so that batches with more instances than any before reuse the same buffers.
 */
export function batchToModelInput(b: Batch, maxInstances = 0): { batch: PreparedBatch; targets: MaskTarget[] } {
  return {
    batch: batchInput(b),
    targets: b.samples.map((s) => {
      const g = s.labels.length;
      if (s.masks.length !== g * s.height * s.width) throw new Error(`train: sample ${s.imageId} has no instance masks (${s.masks.length} mask bytes for ${g} instances)`);
      const masks = withRowCapacity({ rows: g, capacity: Math.max(g, maxInstances) }, () => tensor(Float32Array.from(s.masks), [g, s.height, s.width]));
      return { boxes: s.boxes, labels: s.labels, masks };
    }),
  };
}
