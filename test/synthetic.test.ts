// The synthetic shapes dataset: determinism from the seed, valid COCO output whose bbox/area agree
// with the stored visible-region masks, disjoint visible masks, bounded occlusion, readable PNGs.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeIO } from '../cli/node-io.js';
import { CocoDataset } from '../data/coco.js';
import { decodeImage } from '../data/image.js';
import { annToMask, type Segmentation } from '../data/polygon.js';
import {
  DEFAULT_SHAPES_OPTIONS,
  SHAPES_CATEGORIES,
  buildShapesSplit,
  generateShapesDataset,
  renderShapesImage,
  shapesDatasetReady,
  type ShapesOptions,
} from '../data/synthetic.js';

const small: ShapesOptions = { ...DEFAULT_SHAPES_OPTIONS, seed: 3, trainCount: 12, valCount: 4, size: 64, minVisibleArea: 20 };

test('rendering is a pure function of (seed, split, index)', () => {
  const a = renderShapesImage(small, 0, 5);
  const b = renderShapesImage(small, 0, 5);
  assert.equal(Array.from(a.rgb), Array.from(b.rgb));
  assert.equal(a.objects, b.objects);
  const otherSeed = renderShapesImage({ ...small, seed: 4 }, 0, 5);
  const otherSplit = renderShapesImage(small, 1, 5);
  assert.not.equal(Array.from(otherSeed.rgb), Array.from(a.rgb));
  assert.not.equal(Array.from(otherSplit.rgb), Array.from(a.rgb));
});

test('annotations: visible masks disjoint, bbox/area from the mask, occlusion bounded', async () => {
  const coco = await buildShapesSplit({ ...small, trainCount: 60 }, 'train');
  const ds = CocoDataset.fromObject(coco, 'shapes');
  assert.is(ds.numCategories, SHAPES_CATEGORIES.length);
  let objects = 0;
  const perCat = new Map<number, number>();
  for (const im of ds.images) {
    const anns = ds.annotations(im.id);
    assert.ok(anns.length >= small.minObjects && anns.length <= small.maxObjects, `${anns.length} objects`);
    const cover = new Uint8Array(im.width * im.height);
    for (const a of anns) {
      objects++;
      perCat.set(a.category_id, (perCat.get(a.category_id) ?? 0) + 1);
      assert.is(a.iscrowd, 0);
      const m = annToMask(a.segmentation as Segmentation, im.height, im.width);
      let area = 0;
      let x0 = Infinity, y0 = Infinity, x1 = -1, y1 = -1;
      for (let y = 0; y < im.height; y++) {
        for (let x = 0; x < im.width; x++) {
          if (!m[y * im.width + x]) continue;
          area++;
          x0 = Math.min(x0, x); y0 = Math.min(y0, y); x1 = Math.max(x1, x); y1 = Math.max(y1, y);
          assert.is(cover[y * im.width + x], 0, 'visible masks overlap');
          cover[y * im.width + x] = 1;
        }
      }
      assert.is(a.area, area);
      assert.ok(area >= small.minVisibleArea);
      assert.equal(a.bbox, [x0, y0, x1 - x0 + 1, y1 - y0 + 1]);
    }
  }
  assert.ok(objects >= 60);
  // Every class shows up.
  assert.is(perCat.size, SHAPES_CATEGORIES.length);
});

test('generateShapesDataset writes a COCO folder; regenerating gives identical bytes', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'shapes-'));
  const dir2 = await mkdtemp(join(tmpdir(), 'shapes-'));
  try {
    assert.not.ok(await shapesDatasetReady(small, nodeIO, dir));
    const { train, val, paths } = await generateShapesDataset(small, nodeIO, dir);
    assert.is(train.images.length, 12);
    assert.is(val.images.length, 4);
    assert.ok(await shapesDatasetReady(small, nodeIO, dir));
    assert.not.ok(await shapesDatasetReady({ ...small, seed: 99 }, nodeIO, dir));
    assert.equal(await nodeIO.list(paths.trainImages), train.images.map((im) => im.file_name));
    const ds = await CocoDataset.load(nodeIO, paths.valAnnotations);
    assert.is(ds.images.length, 4);
    const im = ds.images[0]!;
    const img = await decodeImage(await nodeIO.readBytes(join(paths.valImages, im.file_name)));
    assert.equal([img.width, img.height], [64, 64]);
    const again = renderShapesImage(small, 1, 0);
    assert.equal(Array.from(img.data), Array.from(again.rgb));

    await generateShapesDataset(small, nodeIO, dir2);
    for (const rel of ['annotations/instances_train.json', 'annotations/instances_val.json', 'train/000001.png', 'val/000004.png']) {
      const a = await readFile(join(dir, rel));
      const b = await readFile(join(dir2, rel));
      assert.ok(a.equals(b), `${rel} differs between two generations`);
    }
  } finally {
    await rm(dir, { recursive: true, force: true });
    await rm(dir2, { recursive: true, force: true });
  }
});

test('defaults suit a tiny CPU model: 128x128, 1000/100 images, 1-4 objects', () => {
  assert.equal(
    [DEFAULT_SHAPES_OPTIONS.size, DEFAULT_SHAPES_OPTIONS.trainCount, DEFAULT_SHAPES_OPTIONS.valCount],
    [128, 1000, 100],
  );
  assert.equal([DEFAULT_SHAPES_OPTIONS.minObjects, DEFAULT_SHAPES_OPTIONS.maxObjects], [1, 4]);
  const r = renderShapesImage(DEFAULT_SHAPES_OPTIONS, 0, 0);
  assert.is(r.rgb.length, 128 * 128 * 3);
});

test.run();
