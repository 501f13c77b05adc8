// The real-data smoke run: Detectron2's R50-FPN trained from scratch with GroupNorm everywhere (the
// scratch_*_gn recipe, 4conv1fc box head) for a few iterations on real COCO images and annotations
// (shared/data/tiny_coco/train2017: polygons, crowd regions, 80 categories), at a small image size
// so it fits the test budget. It must run without error, with finite losses, and the loss must go
// down. The frozen-BN `detectron2-r50-fpn` preset itself needs pretrained weights, which the shared
// data does not hold: from a random initialisation its identity-frozen BN lets activations grow
// through 50 layers and the loss diverges (as in Detectron2), and the parity fixture's formula
// weights are no stand-in (measured: loss 69 -> 291 -> 77 at LR 5e-4, 69 -> 1.2e3 -> 5e12 at 1e-2).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ready } from './helpers/gpu.js';
import { nodeIO } from '../cli/node-io.js';
import { readMetrics } from '../train/progress.js';
import { runTraining, METRICS_FILE } from '../train/run.js';
import { resolveConfig } from '../train/config.js';

await ready;

const COCO = '../shared/data/tiny_coco';
const ITERS = 4;

/**
 * The annotation file cut to its first two images with non-crowd instances, so that every batch of
 * two holds the same images: over 4 iterations from scratch a fresh pair per step makes the mask
 * term noise (measured 0.774 -> 0.742 -> 0.736 -> 0.789 on new images each step), while repeated
 * images show whether the mask and RPN box branches learn at all.
 */
function twoImageAnnotations(dir: string): string {
  const json = JSON.parse(readFileSync(join(COCO, 'annotations', 'instances_train2017.json'), 'utf8')) as {
    images: { id: number }[]; annotations: { image_id: number; iscrowd: number }[];
  };
  const withObjects = new Set(json.annotations.filter((a) => !a.iscrowd).map((a) => a.image_id));
  const keep = new Set(json.images.filter((im) => withObjects.has(im.id)).slice(0, 2).map((im) => im.id));
  const out = join(dir, 'instances_train2017_two.json');
  writeFileSync(out, JSON.stringify({ ...json, images: json.images.filter((im) => keep.has(im.id)), annotations: json.annotations.filter((a) => keep.has(a.image_id)) }));
  return out;
}

test('detectron2-r50-fpn-gn-scratch: a few iterations on tiny_coco train2017 run and lower the loss', async () => {
  if (!existsSync(join(COCO, 'annotations', 'instances_train2017.json'))) {
    throw new Error(`${COCO} is missing: the smoke run needs the shared tiny_coco data (see DEVELOPERS.md)`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'train-real-'));
  try {
    const cfg = resolveConfig({
      preset: 'detectron2-r50-fpn-gn-scratch',
      data: 'coco',
      trainImages: join(COCO, 'train2017'),
      trainAnn: twoImageAnnotations(dir),
      // Small images and fewer proposals / RoIs: the architecture is the preset's.
      model: {
        input: { minSizesTrain: [128], minSizeTest: 128, maxSize: 192 },
        rpn: { preNmsTopNTrain: 300, postNmsTopNTrain: 150 },
        roiHeads: { batchSizePerImage: 32 },
      },
      iters: ITERS,
      batch: 2,
      lr: 0.01,
      warmupIters: 0,
      stepFractions: [],
      workers: 0,
      logEvery: 1,
      checkpointEvery: 1000,
      out: join(dir, 'run'),
    });
    const lines: string[] = [];
    const out = await runTraining(cfg, { io: nodeIO, cacheDir: dir, print: (l) => lines.push(l) });
    for (const l of lines) console.log(`    ${l}`);
    assert.is(out.status, 'done');
    const iters = (await readMetrics(nodeIO, join(cfg.out, METRICS_FILE))).filter((r) => r.type === 'iter') as unknown as { total: number; losses: Record<string, number> }[];
    const totals = iters.map((r) => r.total);
    assert.is(totals.length, ITERS);
    assert.ok(totals.every(Number.isFinite), `finite losses: ${totals.join(', ')}`);
    // The first iteration's classifier loss is about ln(81) = 4.4 (uniform over 81 classes) and
    // dominates the total, which learning the class prior alone would lower: the RPN's box and
    // the mask terms must fall as well (mean of the last two iterations below the first two).
    assert.ok(totals[ITERS - 1]! < 0.8 * totals[0]!, `loss ${totals.join(' -> ')} did not go down`);
    for (const term of ['loss_rpn_box_reg', 'loss_mask']) {
      const v = iters.map((r) => r.losses[term]!);
      const head = (v[0]! + v[1]!) / 2, tail = (v[ITERS - 2]! + v[ITERS - 1]!) / 2;
      console.log(`    ${term}: ${v.map((x) => x.toFixed(4)).join(' -> ')}`);
      assert.ok(tail < head, `${term} ${v.join(' -> ')} did not go down`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
