// The per-sample work of a COCO data loader: read the image through FileIO, decode, build targets
// and masks, apply the transforms. Kept apart from loader.ts so that a worker thread (cli/) can run
// exactly the same code for a sample index + seed and give identical results.
import type { FileIO } from './io.js';
import type { CocoDataset } from './coco.js';
import { instanceMasks } from './coco-masks.js';
import { decodeImage, ImageDecodeError } from './image.js';
import { Rng } from './rng.js';
import { transformSample, type Sample, type TransformConfig } from './transforms.js';

/** What a loader needs from a dataset: a size, names for warnings, and a seeded sample maker. */
export interface SampleSource {
  readonly size: number;
  /** A human-readable name of sample i (its file), for warnings. */
  name(i: number): string;
  /** The transformed sample i; all randomness comes from `seed`, so the result is a pure
   *  function of (i, seed) whatever thread or order it runs in. */
  load(i: number, seed: number): Promise<Sample>;
  close?(): Promise<void>;
  /**
   * At least as many instances as any sample has (an upper bound, not necessarily reached), when
   * known: training sizes the instance-mask tensors for this many so every batch fits the same
   * buffers (train/batch.ts).
   */
  readonly maxInstances?: number;
  /** Why the source has no samples (when size is 0), for the error that says so. */
  whyEmpty?(): string;
}

export interface CocoSourceOptions {
  /** Folder holding the images named by `file_name`. */
  imageDir: string;
  transform: TransformConfig;
  /** Leave out images without usable training instances (training only; see CocoDataset.imageIds). */
  filterEmpty?: boolean;
  /** Rasterise instance masks (default true); false for box-only training or inference. */
  masks?: boolean;
}

export class CocoSampleSource implements SampleSource {
  /** Image id of each sample index. */
  readonly ids: number[];

  constructor(
    readonly dataset: CocoDataset,
    private readonly io: FileIO,
    readonly options: CocoSourceOptions,
  ) {
    this.ids = dataset.imageIds({ filterEmpty: options.filterEmpty ?? false });
    // Annotations per image, crowd ones included: a bound on the instances a sample can have.
    this.maxInstances = this.ids.reduce((m, id) => Math.max(m, dataset.annotations(id).length), 0);
  }

  readonly maxInstances: number;

  get size(): number {
    return this.ids.length;
  }

  whyEmpty(): string {
    return this.dataset.whyEmpty({ filterEmpty: this.options.filterEmpty });
  }

  name(i: number): string {
    return this.io.join(this.options.imageDir, this.dataset.image(this.ids[i]!).file_name);
  }

  async load(i: number, seed: number): Promise<Sample> {
    const id = this.ids[i];
    if (id === undefined) throw new Error(`sample index ${i} out of range 0..${this.ids.length - 1}`);
    const info = this.dataset.image(id);
    const path = this.name(i);
    const image = await decodeImage(await this.io.readBytes(path), path);
    if (image.width !== info.width || image.height !== info.height) {
      // Annotations are in the JSON's pixel grid; a different decoded size would misplace them.
      throw new ImageDecodeError(
        path,
        `decoded size ${image.width}x${image.height} differs from the annotation file's ${info.width}x${info.height}`,
      );
    }
    const t = this.dataset.targets(id);
    const masks = this.options.masks === false ? undefined : instanceMasks(t);
    return transformSample(
      { imageId: id, image, boxes: t.boxes, labels: t.labels, masks },
      this.options.transform,
      new Rng(seed),
    );
  }
}
