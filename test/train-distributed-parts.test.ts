// Data-parallel parts in one process, against a scripted 2-rank Collective (the mpirun runs are in
// train-distributed.test.ts):
// - the GradientReducer reduces buckets in bucket order whatever order gradients complete in (MPI
//   pairs collectives by order), counts an unused parameter's gradient as zero, and leaves the
//   average over the ranks in .grad;
// - sharded evaluation: rank 1 detects images 1, 3, ..., rank 0 images 0, 2, ... and gathers rank 1's
//   results; rank 0's COCOeval over the gathered results must equal a 1-process evaluation of the
//   same model on all images (same detections: every image is alone in its eval batch).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { rmSync } from 'node:fs';
import { ready } from './helpers/gpu.js';
import { nodeIO } from '../cli/node-io.js';
import { CocoDataset } from '../data/coco.js';
import { singleProcess, type Collective } from '../train/collective.js';
import { evaluateModel } from '../train/evaluate.js';
import { buildTraining } from '../train/trainer.js';
import { GradientReducer } from '../train/ddp.js';
import { keep, tensor } from '../engine/index.js';
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

test('gradient buckets: reduced in bucket order, unused parameters as zeros, the average left in .grad', async () => {
  const params = [tensor([1, 2, 3], [3]), tensor([0, 0, 0, 0], [2, 2]), tensor([5, 6, 7, 8, 9], [5])];
  const order: number[] = [];
  // Rank 0 of 2; the other rank's gradient is 10 everywhere.
  const coll = {
    ...singleProcess,
    size: 2,
    allreduceSum: async (buf: Float32Array | Float64Array) => {
      order.push(buf.length);
      for (let i = 0; i < buf.length; i++) buf[i]! += 10;
    },
  };
  // 16-byte buckets: one parameter each, in reverse registration order: [p2], [p1], [p0].
  const reducer = new GradientReducer(params, coll, 16);
  assert.is(reducer.bucketCount, 3);
  const grads = [[2, 4, 6], null, [1, 1, 1, 1, 1]];
  params.forEach((p, i) => (p.grad = grads[i] ? keep(tensor(grads[i]!, p.shape)) : null));
  reducer.onLeafGrad(params[0]!); // bucket 2 complete first: it must wait for buckets 0 and 1
  assert.equal(order, []);
  reducer.onLeafGrad(params[2]!); // bucket 0 goes; bucket 1's parameter never gets a gradient
  await reducer.finish();
  assert.equal(order, [5, 4, 3], 'buckets reduced in bucket order');
  assert.equal(Array.from(await params[0]!.grad!.floatData()), [6, 7, 8]);
  assert.equal(Array.from(await params[1]!.grad!.floatData()), [5, 5, 5, 5], 'an unused parameter contributes zeros');
  assert.equal(Array.from(await params[2]!.grad!.floatData()), [5.5, 5.5, 5.5, 5.5, 5.5]);
  for (const p of params) {
    p.grad?.dispose();
    p.dispose();
  }
});

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
