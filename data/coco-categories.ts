// COCO's category names indexed by category id (0 = background; 'N/A' marks the 11 ids of the 91
// that COCO 2017 does not use). torchvision's COCO-trained detection models predict these indices
// directly (num_classes = 91, label = COCO category id), as in its COCO_INSTANCE_CATEGORY_NAMES.

// prettier-ignore
export const COCO_91_NAMES: readonly string[] = [
  '__background__', 'person', 'bicycle', 'car', 'motorcycle', 'airplane', 'bus', 'train', 'truck',
  'boat', 'traffic light', 'fire hydrant', 'N/A', 'stop sign', 'parking meter', 'bench', 'bird',
  'cat', 'dog', 'horse', 'sheep', 'cow', 'elephant', 'bear', 'zebra', 'giraffe', 'N/A', 'backpack',
  'umbrella', 'N/A', 'N/A', 'handbag', 'tie', 'suitcase', 'frisbee', 'skis', 'snowboard',
  'sports ball', 'kite', 'baseball bat', 'baseball glove', 'skateboard', 'surfboard', 'tennis racket',
  'bottle', 'N/A', 'wine glass', 'cup', 'fork', 'knife', 'spoon', 'bowl', 'banana', 'apple',
  'sandwich', 'orange', 'broccoli', 'carrot', 'hot dog', 'pizza', 'donut', 'cake', 'chair', 'couch',
  'potted plant', 'bed', 'N/A', 'dining table', 'N/A', 'N/A', 'toilet', 'N/A', 'tv', 'laptop',
  'mouse', 'remote', 'keyboard', 'cell phone', 'microwave', 'oven', 'toaster', 'sink',
  'refrigerator', 'N/A', 'book', 'clock', 'vase', 'scissors', 'teddy bear', 'hair drier',
  'toothbrush',
];

/** How a model's contiguous labels become names and COCO category ids. */
export interface LabelTable {
  /** names[label] (index 0: background). */
  names: string[];
  /** catIds[label]: the category_id written to results (index 0 unused). */
  catIds: Int32Array;
  /** Where the table came from, for messages. */
  source: string;
}

/** torchvision's convention: label = COCO category id (91 classes with background). */
export function coco91Table(): LabelTable {
  return { names: [...COCO_91_NAMES], catIds: Int32Array.from(COCO_91_NAMES, (_, i) => i), source: 'COCO (torchvision 91-index)' };
}

/**
 * COCO's 80 categories numbered contiguously in id order (label 1..80 -> category ids 1..90 without
 * the 11 unused ones): the layout of Detectron2's COCO models, whose class k (0..79) is our label
 * k + 1 once the loader has put background first (model/checkpoint-keys.ts).
 */
export function coco80Table(): LabelTable {
  const cats = COCO_91_NAMES.flatMap((name, id) => (id > 0 && name !== 'N/A' ? [{ id, name }] : []));
  return categoriesTable(cats, 'COCO (80 contiguous classes, Detectron2)');
}

/**
 * A table from dataset categories in contiguous order: categories[label - 1] is label `label`
 * (how data/coco.ts and training checkpoints number classes: categories sorted by id).
 */
export function categoriesTable(categories: readonly { id: number; name: string }[], source: string): LabelTable {
  const names = ['__background__', ...categories.map((c) => c.name)];
  const catIds = new Int32Array(categories.length + 1);
  categories.forEach((c, i) => (catIds[i + 1] = c.id));
  return { names, catIds, source };
}

/** Labels named "class N" with category_id = N, for models whose classes are unknown. */
export function genericTable(numClasses: number): LabelTable {
  const names = Array.from({ length: numClasses }, (_, i) => (i === 0 ? '__background__' : `class ${i}`));
  return { names, catIds: Int32Array.from(names, (_, i) => i), source: 'generic (category_id = label)' };
}
