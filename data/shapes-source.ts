// The synthetic shapes as an in-memory SampleSource: each image rendered on demand by
// data/synthetic.ts (no files, no PNG round trip), so a browser page and Node can train on identical
// data. Sample i is image i of the split, with COCO image id i + 1 as in the generated dataset.
import type { SampleSource } from './coco-source.js';
import { Rng } from './rng.js';
import { rleDecodeRowMajor, rleFrString } from './rle.js';
import { renderShapesImage, type RenderedShapes, type ShapesOptions } from './synthetic.js';
import { transformSample, type RawSample, type Sample, type TransformConfig } from './transforms.js';

/** A rendered image's annotations as targets: xyxy boxes, labels, n*h*w 0/1 masks (row-major). */
export function shapesTargets(s: RenderedShapes): { boxes: Float32Array; labels: Int32Array; masks: Uint8Array } {
  const n = s.objects.length, hw = s.width * s.height;
  const boxes = new Float32Array(4 * n), labels = new Int32Array(n), masks = new Uint8Array(n * hw);
  s.objects.forEach((o, i) => {
    const [x, y, w, h] = o.bbox;
    boxes.set([x, y, x + w, y + h], 4 * i);
    // Category ids 1..K are already the contiguous labels.
    labels[i] = o.categoryId;
    masks.set(rleDecodeRowMajor(rleFrString(o.segmentation.counts, s.height, s.width)), i * hw);
  });
  return { boxes, labels, masks };
}

/** Image `index` of split 0 (train) or 1 (val) as a raw sample: xyxy boxes, labels, 0/1 masks. */
export function shapesRawSample(opts: ShapesOptions, split: 0 | 1, index: number): { raw: RawSample; rendered: RenderedShapes } {
  const s = renderShapesImage(opts, split, index);
  return { raw: { imageId: index + 1, image: { width: s.width, height: s.height, data: s.rgb }, ...shapesTargets(s) }, rendered: s };
}

export class ShapesSampleSource implements SampleSource {
  readonly size: number;

  constructor(
    readonly opts: ShapesOptions,
    readonly split: 0 | 1,
    readonly transform: TransformConfig,
  ) {
    this.size = split === 0 ? opts.trainCount : opts.valCount;
  }

  name(i: number): string {
    return `shapes ${this.split === 0 ? 'train' : 'val'} #${i}`;
  }

  async load(i: number, seed: number): Promise<Sample> {
    if (!(i >= 0 && i < this.size)) throw new Error(`sample index ${i} out of range 0..${this.size - 1}`);
    return transformSample(shapesRawSample(this.opts, this.split, i).raw, this.transform, new Rng(seed));
  }
}
