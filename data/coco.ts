// A loaded, validated and indexed COCO instances file: images, annotations per image, categories,
// and the category id <-> contiguous label mapping the model trains on. No file access beyond the
// one read through FileIO, so it runs in a browser as well.
import type { FileIO } from './io.js';
import type { CocoAnnotation, CocoCategory, CocoImage, CocoInstances } from './coco-types.js';
import { validateCoco } from './coco-validate.js';

export type { CocoAnnotation, CocoCategory, CocoImage, CocoInstances, CocoRle, CocoPolygons, CocoSegmentation } from './coco-types.js';
export { isRle } from './coco-types.js';
export { CocoFormatError, validateCoco } from './coco-validate.js';

/** Per-image training targets, after the torchvision-reference conversion (ConvertCocoPolysToMask). */
export interface InstanceTargets {
  imageId: number;
  height: number;
  width: number;
  /** n*4 floats, [x1, y1, x2, y2] per instance, clamped to the image. */
  boxes: Float32Array;
  /** n contiguous labels in 1..K (0 is background and never appears here). */
  labels: Int32Array;
  /** The annotations these instances came from, same order (for their segmentations). */
  annotations: CocoAnnotation[];
}

export class CocoDataset {
  /** Image records sorted by id (torchvision's CocoDetection and Detectron2 both order by id). */
  readonly images: CocoImage[];
  readonly imageById = new Map<number, CocoImage>();
  /** Every annotation of an image, crowd included, in file order. */
  readonly annsByImage = new Map<number, CocoAnnotation[]>();
  /** Categories sorted by id; categories[label - 1] is the category of contiguous label `label`. */
  readonly categories: CocoCategory[];
  /** COCO category id -> contiguous label 1..K. */
  readonly catIdToLabel = new Map<number, number>();
  /** Contiguous label -> COCO category id; index 0 (background) holds 0, which no COCO category uses. */
  readonly labelToCatId: Int32Array;

  private constructor(
    readonly json: CocoInstances,
    /** Where it came from, for error messages. */
    readonly source: string,
  ) {
    this.images = [...json.images].sort((a, b) => a.id - b.id);
    for (const im of this.images) {
      this.imageById.set(im.id, im);
      this.annsByImage.set(im.id, []);
    }
    for (const a of json.annotations) this.annsByImage.get(a.image_id)!.push(a);
    // Sorting by id makes the mapping independent of the order categories are listed in the file,
    // which is what Detectron2 does (thing_dataset_id_to_contiguous_id over sorted ids).
    this.categories = [...json.categories].sort((a, b) => a.id - b.id);
    this.labelToCatId = new Int32Array(this.categories.length + 1);
    this.categories.forEach((c, i) => {
      this.catIdToLabel.set(c.id, i + 1);
      this.labelToCatId[i + 1] = c.id;
    });
  }

  /** Validates and indexes an already parsed JSON object. `source` names it in errors. */
  static fromObject(raw: unknown, source = '<coco json>'): CocoDataset {
    return new CocoDataset(validateCoco(raw, source), source);
  }

  /** Validates and indexes JSON text. */
  static fromText(text: string, source = '<coco json>'): CocoDataset {
    let raw: unknown;
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new Error(`${source}: not valid JSON: ${(e as Error).message}`);
    }
    return CocoDataset.fromObject(raw, source);
  }

  /** Reads, parses, validates and indexes a COCO instances file. */
  static async load(io: FileIO, path: string): Promise<CocoDataset> {
    return CocoDataset.fromText(await io.readText(path), path);
  }

  /** Number of object classes K (the model has K + 1 outputs counting background). */
  get numCategories(): number {
    return this.categories.length;
  }

  /** Category name of a contiguous label ('__background__' for 0). */
  labelName(label: number): string {
    return label === 0 ? '__background__' : (this.categories[label - 1]?.name ?? `label${label}`);
  }

  image(id: number): CocoImage {
    const im = this.imageById.get(id);
    if (!im) throw new Error(`${this.source}: no image with id ${id}`);
    return im;
  }

  /** All annotations of an image, crowd included (what evaluation needs). */
  annotations(imageId: number): CocoAnnotation[] {
    return this.annsByImage.get(imageId) ?? [];
  }

  /**
   * Training targets of an image as the torchvision references build them: crowd annotations are
   * dropped (they would teach the model that a blob of people is one person), boxes go from xywh to
   * xyxy, are clamped to the image, and degenerate ones (x2 <= x1 or y2 <= y1) are removed.
   */
  targets(imageId: number): InstanceTargets {
    const im = this.image(imageId);
    const kept: CocoAnnotation[] = [];
    const boxes: number[] = [];
    const labels: number[] = [];
    for (const a of this.annotations(imageId)) {
      if (a.iscrowd) continue;
      const [x, y, w, h] = a.bbox;
      const x1 = clamp(x, 0, im.width);
      const y1 = clamp(y, 0, im.height);
      const x2 = clamp(x + w, 0, im.width);
      const y2 = clamp(y + h, 0, im.height);
      if (!(x2 > x1 && y2 > y1)) continue;
      kept.push(a);
      boxes.push(x1, y1, x2, y2);
      labels.push(this.catIdToLabel.get(a.category_id)!);
    }
    return {
      imageId,
      height: im.height,
      width: im.width,
      boxes: Float32Array.from(boxes),
      labels: Int32Array.from(labels),
      annotations: kept,
    };
  }

  /**
   * Image ids in id order. With `filterEmpty`, images that have no usable training instance (no
   * annotations, only crowd ones, or only degenerate boxes) are left out, as Detectron2's
   * DATALOADER.FILTER_EMPTY_ANNOTATIONS and torchvision's _coco_remove_images_without_annotations do
   * for training. Evaluation should keep them (they still count for false positives).
   */
  imageIds(opts: { filterEmpty?: boolean } = {}): number[] {
    const ids = this.images.map((im) => im.id);
    return opts.filterEmpty ? ids.filter((id) => this.targets(id).labels.length > 0) : ids;
  }

  /** Why imageIds(opts) is empty: what the file holds and what the filter left out. */
  whyEmpty(opts: { filterEmpty?: boolean } = {}): string {
    if (this.images.length === 0) return `${this.source} lists no images`;
    const anns = this.json.annotations;
    if (!opts.filterEmpty) return `${this.source} has ${this.images.length} images`;
    if (anns.length === 0) return `${this.source} has ${this.images.length} images but no annotations (images without instances are left out for training)`;
    const crowd = anns.filter((a) => a.iscrowd).length;
    const degenerate = this.images.reduce((n, im) => n + this.annotations(im.id).filter((a) => !a.iscrowd).length - this.targets(im.id).labels.length, 0);
    return `none of the ${this.images.length} images of ${this.source} has a usable instance (images without one are left out for training): ` +
      `of ${anns.length} annotations, ${crowd} are crowd regions and ${degenerate} have a box of zero area inside the image`;
  }
}

function clamp(v: number, lo: number, hi: number): number {
  return v < lo ? lo : v > hi ? hi : v;
}
