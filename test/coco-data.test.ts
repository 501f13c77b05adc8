// COCO loading on the real tiny_coco subset: indexing, label mapping, crowd handling, empty images,
// validation messages, masks, and one sample end to end through CocoSampleSource.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { nodeIO } from '../cli/node-io.js';
import { CocoDataset, CocoFormatError } from '../data/coco.js';
import { instanceMasks } from '../data/coco-masks.js';
import { CocoSampleSource } from '../data/coco-source.js';
import { NORMALIZE_TORCHVISION, type TransformConfig } from '../data/transforms.js';
import { mixSeed } from '../data/rng.js';
import { DataLoader } from '../data/loader.js';

const ROOT = '../shared/data/tiny_coco';
const TRAIN_JSON = `${ROOT}/annotations/instances_train2017.json`;
const VAL_JSON = `${ROOT}/annotations/instances_val2017.json`;

let trainText = '';
const train = async (): Promise<CocoDataset> => {
  if (!trainText) trainText = await nodeIO.readText(TRAIN_JSON);
  return CocoDataset.fromText(trainText, TRAIN_JSON);
};
const rawTrain = async (): Promise<Record<string, any>> => {
  await train();
  return JSON.parse(trainText);
};

function throwsMessage(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    return (e as Error).message;
  }
  throw new Error('expected an error');
}

test('tiny_coco train: counts and id-sorted index', async () => {
  const ds = await CocoDataset.load(nodeIO, TRAIN_JSON);
  assert.is(ds.images.length, 50);
  assert.is(ds.json.annotations.length, 470);
  assert.is(ds.numCategories, 80);
  for (let i = 1; i < ds.images.length; i++) assert.ok(ds.images[i]!.id > ds.images[i - 1]!.id);
  let total = 0;
  for (const im of ds.images) total += ds.annotations(im.id).length;
  assert.is(total, 470);
  assert.is(ds.image(391895).file_name, '000000391895.jpg');
});

test('category ids map to contiguous labels 1..K and back, 0 is background', async () => {
  const ds = await train();
  // COCO ids skip 12, 26, ...: id 1 (person) is label 1, id 13 (stop sign) label 12, id 90 label 80.
  assert.is(ds.catIdToLabel.get(1), 1);
  assert.is(ds.catIdToLabel.get(13), 12);
  assert.is(ds.catIdToLabel.get(90), 80);
  assert.is(ds.catIdToLabel.get(12), undefined);
  assert.is(ds.labelToCatId.length, 81);
  assert.is(ds.labelToCatId[0], 0);
  for (const [id, label] of ds.catIdToLabel) assert.is(ds.labelToCatId[label], id);
  assert.is(ds.labelName(0), '__background__');
  assert.is(ds.labelName(1), 'person');
  assert.is(ds.labelName(12), 'stop sign');
  assert.is(ds.labelName(80), 'toothbrush');
});

test('category mapping does not depend on the order categories are listed in', async () => {
  const raw = await rawTrain();
  raw.categories.reverse();
  const ds = CocoDataset.fromObject(raw, 'reversed');
  assert.is(ds.catIdToLabel.get(13), 12);
  assert.is(ds.labelToCatId[80], 90);
});

test('crowd annotations are kept for evaluation but excluded from training targets', async () => {
  const ds = await train();
  // Image 223648 has 38 annotations of which 2 are crowd (categories 50 and 84).
  const all = ds.annotations(223648);
  assert.is(all.length, 38);
  assert.is(all.filter((a) => a.iscrowd === 1).length, 2);
  const t = ds.targets(223648);
  assert.is(t.labels.length, 36);
  assert.is(t.boxes.length, 36 * 4);
  assert.ok(t.annotations.every((a) => a.iscrowd === 0));
  for (let i = 0; i < t.labels.length; i++) {
    assert.is(t.labels[i], ds.catIdToLabel.get(t.annotations[i]!.category_id));
    const [x, y, w, h] = t.annotations[i]!.bbox;
    assert.ok(Math.abs(t.boxes[i * 4]! - x) < 1e-3 && Math.abs(t.boxes[i * 4 + 3]! - Math.min(y + h, t.height)) < 1e-3);
  }
});

test('images without annotations are kept, with empty targets; filterEmpty drops them', async () => {
  const ds = await train();
  assert.is(ds.annotations(262284).length, 0);
  const t = ds.targets(262284);
  assert.is(t.labels.length, 0);
  assert.is(t.boxes.length, 0);
  assert.is(instanceMasks(t).length, 0);
  assert.ok(ds.imageIds().includes(262284));
  const kept = ds.imageIds({ filterEmpty: true });
  assert.is(kept.length, 49);
  assert.not.ok(kept.includes(262284));
  const val = await CocoDataset.load(nodeIO, VAL_JSON);
  assert.is(val.imageIds().length, 50);
  assert.is(val.imageIds({ filterEmpty: true }).length, 48);
});

test('targets clamp boxes to the image and drop degenerate ones', () => {
  const ds = CocoDataset.fromObject({
    images: [{ id: 1, width: 10, height: 8, file_name: 'a.jpg' }],
    categories: [{ id: 5, name: 'x' }],
    annotations: [
      { id: 1, image_id: 1, category_id: 5, bbox: [-2, 1, 5, 20], area: 1, iscrowd: 0 },
      { id: 2, image_id: 1, category_id: 5, bbox: [3, 3, 0, 2], area: 0, iscrowd: 0 },
      { id: 3, image_id: 1, category_id: 5, bbox: [12, 3, 2, 2], area: 4, iscrowd: 0 },
    ],
  });
  const t = ds.targets(1);
  assert.equal(Array.from(t.boxes), [0, 1, 3, 8]);
  assert.equal(Array.from(t.labels), [1]);
  assert.equal(ds.imageIds({ filterEmpty: true }), [1]);
});

test('an empty training set says why: zero-area boxes, crowd regions, no annotations', () => {
  const ds = CocoDataset.fromObject({
    images: [{ id: 1, width: 10, height: 8, file_name: 'a.jpg' }, { id: 2, width: 10, height: 8, file_name: 'b.jpg' }],
    categories: [{ id: 5, name: 'x' }],
    annotations: [
      { id: 1, image_id: 1, category_id: 5, bbox: [3, 3, 0, 2], area: 0, iscrowd: 0 },
      { id: 2, image_id: 1, category_id: 5, bbox: [12, 3, 2, 2], area: 4, iscrowd: 0 },
      { id: 3, image_id: 2, category_id: 5, bbox: [1, 1, 2, 2], area: 4, iscrowd: 1 },
    ],
  }, 'flat.json');
  const transform = { train: true } as unknown as TransformConfig;
  const source = new CocoSampleSource(ds, nodeIO, { imageDir: '.', transform, filterEmpty: true });
  assert.is(source.size, 0);
  let message = '';
  try {
    new DataLoader(source, { batchSize: 1, seed: 0 });
  } catch (e) {
    message = (e as Error).message;
  }
  assert.is(message, 'the dataset is empty: none of the 2 images of flat.json has a usable instance (images without one are left out for training): ' +
    'of 3 annotations, 1 are crowd regions and 2 have a box of zero area inside the image');
  const bare = CocoDataset.fromObject({ images: [{ id: 1, width: 4, height: 4, file_name: 'a.jpg' }], categories: [{ id: 1, name: 'x' }], annotations: [] }, 'bare.json');
  assert.is(bare.whyEmpty({ filterEmpty: true }), 'bare.json has 1 images but no annotations (images without instances are left out for training)');
});

test('validation names the file and the record', async () => {
  const raw = await rawTrain();
  raw.annotations[12].bbox = [1, 2, 3];
  const msg = throwsMessage(() => CocoDataset.fromObject(raw, 'instances_train2017.json'));
  assert.ok(msg.includes('instances_train2017.json'), msg);
  assert.ok(msg.includes('annotations[12].bbox must be 4 numbers'), msg);

  const raw2 = await rawTrain();
  raw2.annotations[3].image_id = 424242;
  raw2.annotations[4].category_id = 12;
  raw2.annotations[5].id = raw2.annotations[6].id;
  raw2.images[2].width = 0;
  raw2.annotations[7].segmentation = [[1, 2, 3]];
  raw2.annotations[8].iscrowd = 2;
  let err: unknown;
  try {
    CocoDataset.fromObject(raw2, 'f.json');
  } catch (e) {
    err = e;
  }
  assert.instance(err, CocoFormatError);
  const m = (err as Error).message;
  for (const part of [
    'annotations[3].image_id 424242 names no image',
    'annotations[4].category_id 12 names no category',
    'annotations[6].id',
    'images[2].width must be a positive integer',
    'annotations[7].segmentation[0] must have an even number of coordinates',
    'annotations[8].iscrowd must be 0 or 1',
  ]) {
    assert.ok(m.includes(part), `missing "${part}" in:\n${m}`);
  }
});

test('validation of RLE sizes, top-level shape, and JSON syntax', async () => {
  const raw = await rawTrain();
  const crowd = raw.annotations.findIndex((a: any) => a.iscrowd === 1);
  raw.annotations[crowd].segmentation.counts.push(5);
  let m = throwsMessage(() => CocoDataset.fromObject(raw, 'x.json'));
  assert.ok(m.includes(`annotations[${crowd}].segmentation.counts sum to`), m);
  const raw2 = await rawTrain();
  raw2.annotations[crowd].segmentation.size = [1, 2];
  m = throwsMessage(() => CocoDataset.fromObject(raw2, 'x.json'));
  assert.ok(m.includes(`annotations[${crowd}].segmentation.size [1, 2] differs`), m);
  m = throwsMessage(() => CocoDataset.fromObject({ images: [], annotations: {} }, 'y.json'));
  assert.ok(m.includes('y.json') && m.includes('annotations must be an array') && m.includes('categories must be an array'), m);
  m = throwsMessage(() => CocoDataset.fromText('{"images": [', 'broken.json'));
  assert.ok(m.startsWith('broken.json: not valid JSON'), m);
  const missing = await CocoDataset.load(nodeIO, `${ROOT}/annotations/nope.json`).catch((e: Error) => e.message);
  assert.ok(String(missing).includes('nope.json'));
});

test('missing area and iscrowd take defaults', () => {
  const ds = CocoDataset.fromObject({
    images: [{ id: 3, width: 4, height: 4, file_name: 'a.png' }],
    categories: [{ id: 1, name: 'x' }],
    annotations: [{ id: 1, image_id: 3, category_id: 1, bbox: [0, 0, 2, 3] }],
  });
  const a = ds.annotations(3)[0]!;
  assert.is(a.area, 6);
  assert.is(a.iscrowd, 0);
});

test('instance masks: polygons rasterised inside their boxes with about their area', async () => {
  const ds = await train();
  const id = 391895;
  const t = ds.targets(id);
  const masks = instanceMasks(t);
  const plane = t.height * t.width;
  assert.is(masks.length, t.labels.length * plane);
  for (let i = 0; i < t.labels.length; i++) {
    let sum = 0;
    let outside = 0;
    const [x1, y1, x2, y2] = Array.from(t.boxes.subarray(i * 4, i * 4 + 4)) as [number, number, number, number];
    for (let y = 0; y < t.height; y++) {
      for (let x = 0; x < t.width; x++) {
        if (!masks[i * plane + y * t.width + x]) continue;
        sum++;
        if (x < x1 - 1 || x > x2 + 1 || y < y1 - 1 || y > y2 + 1) outside++;
      }
    }
    const area = t.annotations[i]!.area;
    assert.is(outside, 0);
    assert.ok(Math.abs(sum - area) <= 0.15 * area + 20, `mask ${i}: ${sum} pixels vs area ${area}`);
  }
});

test('end to end: a val image through CocoSampleSource', async () => {
  const ds = await CocoDataset.load(nodeIO, VAL_JSON);
  const transform: TransformConfig = {
    minSizes: [96],
    maxSize: 160,
    rounding: 'torchvision',
    normalization: NORMALIZE_TORCHVISION,
    flipProb: 0,
    train: false,
  };
  const src = new CocoSampleSource(ds, nodeIO, { imageDir: `${ROOT}/val2017`, transform });
  assert.is(src.size, 50);
  const i = src.ids.indexOf(397133); // 427x640 -> torchvision gives 95x143 at (96, 160)
  const s = await src.load(i, mixSeed(1, 2, 3));
  assert.is(s.imageId, 397133);
  assert.is(s.origHeight, 427);
  assert.is(s.origWidth, 640);
  assert.is(s.height, 95);
  assert.is(s.width, 143);
  assert.is(s.image.length, 3 * 95 * 143);
  const n = ds.targets(397133).labels.length;
  assert.is(s.labels.length, n);
  assert.is(s.masks.length, n * 95 * 143);
  for (let k = 0; k < n * 4; k++) assert.ok(s.boxes[k]! >= 0 && s.boxes[k]! <= 143.001);
  assert.ok(s.image.every((v) => Number.isFinite(v) && v > -2.2 && v < 2.7));
  assert.ok(src.name(i).endsWith('000000397133.jpg'));
  // maxInstances bounds every sample's instances (training sizes the mask tensors for it).
  const most = Math.max(...src.ids.map((id) => ds.annotations(id).length));
  assert.is(src.maxInstances, most);
  assert.ok(src.ids.every((id) => ds.targets(id).labels.length <= src.maxInstances));
});

test.run();
