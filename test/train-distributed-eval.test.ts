// Sharded evaluation (train/evaluate.ts with a Collective), in one process with a scripted
// 2-rank collective: rank 1 detects images 1, 3, ..., rank 0 images 0, 2, ... and gathers rank 1's
// results; rank 0's COCOeval over the gathered results must equal a 1-process evaluation of the same
// model on all images (same detections: every image is alone in its eval batch, so padding is the same).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rmSync } from 'node:fs';
import { ready } from './helpers/gpu.js';
import { nodeIO } from '../cli/node-io.js';
import { CocoDataset } from '../data/coco.js';
import { singleProcess, type Collective } from '../train/collective.js';
import { evaluateModel } from '../train/evaluate.js';
import { buildTraining } from '../train/trainer.js';
import { microConfig, microDataset } from './train-fixture.js';

await ready;

/** Rank `rank` of 2; allgatherBytes returns this rank's bytes and `other`'s, in rank order, and records its own. */
function scripted(rank: number, other: Uint8Array[]): Collective & { sent: Uint8Array[] } {
  const sent: Uint8Array[] = [];
  return {
    ...singleProcess,
    rank,
    size: 2,
    sent,
    allgatherBytes: async (b) => {
      sent.push(b.slice());
      const theirs = other.shift() ?? new TextEncoder().encode('[]'); // rank 1's view: rank 0's results are not needed
      return rank === 0 ? [b.slice(), theirs] : [theirs, b.slice()];
    },
  };
}

test('evaluation sharded over 2 ranks and gathered to rank 0 gives the 1-process results and AP', async () => {
  const d = await microDataset(5);
  const parts = buildTraining(microConfig(d), 5);
  try {
    const ds = await CocoDataset.load(nodeIO, d.ann);
    const opts = { imageDir: d.images, batchSize: 1 };
    const whole = await evaluateModel(parts.model, ds, nodeIO, opts);
    const r1 = scripted(1, []);
    const rank1 = await evaluateModel(parts.model, ds, nodeIO, { ...opts, collective: r1 });
    assert.equal(rank1.bboxStats, new Array(12).fill(-1), 'rank 1 runs no COCOeval');
    const r0 = scripted(0, [...r1.sent]);
    const rank0 = await evaluateModel(parts.model, ds, nodeIO, { ...opts, collective: r0 });
    const ids = (rs: { image_id: number }[]): number[] => [...new Set(rs.map((r) => r.image_id))].sort((a, b) => a - b);
    const mine = JSON.parse(new TextDecoder().decode(r0.sent[0]!)) as { image_id: number }[];
    const theirs = JSON.parse(new TextDecoder().decode(r1.sent[0]!)) as { image_id: number }[];
    assert.ok(whole.results.length > 0, 'the untrained model detects something (else the comparison is empty)');
    assert.equal(ids(mine).filter((i) => ids(theirs).includes(i)), [], 'the ranks detect disjoint images');
    const key = (r: { image_id: number; category_id: number; score: number }): string => `${r.image_id}:${r.category_id}:${r.score}`;
    assert.equal(rank0.results.map(key).sort(), whole.results.map(key).sort(), 'gathered results = 1-process results');
    assert.equal(rank0.bboxStats, whole.bboxStats);
    assert.equal(rank0.segmStats, whole.segmStats);
    assert.is(rank0.images, whole.images);
  } finally {
    parts.dispose();
    rmSync(d.dir, { recursive: true, force: true });
  }
});

test.run();
