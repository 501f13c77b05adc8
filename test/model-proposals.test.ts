// The RPN's GPU proposal selection (model/rpn-proposals.ts) against its host reference on odd
// shapes: levels smaller and larger than the pre-NMS top-k, images of different sizes, padding
// past the count, boxes clipped and too small, scores under the threshold, and equal scores (the
// same logit within and across levels; saturated logits whose float32 probabilities are all 1),
// which keep candidate order (level, then logit, then anchor), as torchvision's stable sorts do.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import * as F from '../engine/index.js';
import { Rng } from '../engine/random.js';
import { packProposals, proposalsReference, selectProposals, unpackProposals, type ProposalOptions } from '../model/rpn-proposals.js';

await ready;

interface Case {
  perLevel: number[];
  imageSizes: [number, number][];
  logits: (rng: Rng) => number;
  opts: ProposalOptions;
  seed: number;
}

const BASE: ProposalOptions = { preNmsTopN: 15, postNmsTopN: 12, nmsThresh: 0.6, minSize: 1.5, scoreThresh: 0.2, weights: [1, 1, 1, 1] };

async function run(c: Case, precision: 32 | 64): Promise<void> {
  const rng = new Rng(c.seed);
  const N = c.imageSizes.length, R = c.perLevel.reduce((a, x) => a + x, 0);
  const anchors: number[] = [];
  for (let i = 0; i < R; i++) {
    const x = rng.uniform() * 60 - 5, y = rng.uniform() * 60 - 5;
    anchors.push(x, y, x + 2 + rng.uniform() * 30, y + 2 + rng.uniform() * 30);
  }
  const objectness = Array.from({ length: N * R }, () => Math.fround(c.logits(rng)));
  // Mostly small moves; every 7th shrinks its box under minSize, every 11th grows it past the image.
  const deltas = Array.from({ length: N * R * 4 }, (_, i) => Math.fround((i >> 2) % 7 === 3 && i % 4 >= 2 ? -4 : (i >> 2) % 11 === 5 && i % 4 >= 2 ? 1.5 : (rng.uniform() - 0.5) * 0.6));
  const want = proposalsReference(objectness, deltas, anchors, c.perLevel, c.imageSizes, c.opts, precision);
  const sel = selectProposals(F.tensor(objectness, [N, R]), F.tensor(deltas, [N, R, 4]), F.tensor(anchors, [R, 4]), c.perLevel, c.imageSizes, c.opts);
  const K = c.opts.postNmsTopN;
  assert.equal(sel.boxes.shape, [N, K, 4]);
  assert.equal(sel.scores.shape, [N, K]);
  const [boxes, scores, count, packed] = await Promise.all([sel.boxes.data(), sel.scores.data(), sel.count.data(), packProposals(sel).data()]);
  const got = unpackProposals(packed as Float32Array, N, K);
  for (let n = 0; n < N; n++) {
    const label = `seed ${c.seed} image ${n}`;
    assert.is(got.proposals[n]!.length / 4, want.proposals[n]!.length / 4, `${label}: count`);
    got.proposals[n]!.forEach((v, i) => assert.ok(Math.abs(v - want.proposals[n]![i]!) <= 1e-4 * (1 + Math.abs(v)), `${label}: box value ${i}: ${v} vs ${want.proposals[n]![i]}`));
    got.scores[n]!.forEach((v, i) => assert.ok(Math.abs(v - want.scores[n]![i]!) <= 1e-6, `${label}: score ${i}: ${v} vs ${want.scores[n]![i]}`));
    // The padded tensors: the same rows, then zeros.
    assert.equal(Array.from(boxes.subarray(n * K * 4, (n * K + count[n]!) * 4)), Array.from(got.proposals[n]!), `${label}: padded boxes`);
    assert.equal(Array.from(scores.subarray(n * K, n * K + count[n]!)), Array.from(got.scores[n]!), `${label}: padded scores`);
    assert.ok(boxes.subarray((n * K + count[n]!) * 4, (n + 1) * K * 4).every((v) => v === 0), `${label}: padding boxes`);
    assert.ok(scores.subarray(n * K + count[n]!, (n + 1) * K).every((v) => v === 0), `${label}: padding scores`);
  }
  for (const t of [sel.boxes, sel.scores, sel.count]) t.dispose();
}

// Logits on a grid of 1/4: many exact ties, distinct values far apart in probability.
const gridLogit = (rng: Rng): number => Math.floor(rng.uniform() * 25) / 4 - 3;

test('GPU proposals vs the float64 reference: odd levels, several images, ties, small and clipped boxes, padding', async () => {
  await run({ perLevel: [37, 20, 9, 3], imageSizes: [[50, 41], [33, 60], [64, 64]], logits: gridLogit, opts: BASE, seed: 1 }, 64);
  // Capacity above what survives (padding), a level above the top-k, one image.
  await run({ perLevel: [130, 7], imageSizes: [[47, 53]], logits: gridLogit, opts: { ...BASE, preNmsTopN: 70, postNmsTopN: 90, nmsThresh: 0.5 }, seed: 2 }, 64);
  // More candidates than one 64-box NMS block, no score threshold, box coder weights.
  await run({ perLevel: [300, 90, 1], imageSizes: [[60, 60], [45, 30]], logits: gridLogit, opts: { ...BASE, preNmsTopN: 120, postNmsTopN: 40, scoreThresh: 0, weights: [2, 2, 1, 1] }, seed: 3 }, 64);
});

test('GPU proposals: saturated logits (float32 probability 1) tie and keep candidate order, as torchvision', async () => {
  const logits = (rng: Rng): number => (rng.uniform() < 0.5 ? 18 + Math.floor(rng.uniform() * 8) : gridLogit(rng));
  await run({ perLevel: [41, 17, 5], imageSizes: [[64, 48], [40, 64]], logits, opts: { ...BASE, preNmsTopN: 20, postNmsTopN: 25 }, seed: 4 }, 32);
});

test.run();
