// The RPN's pre-NMS top-k (model/rpn-proposals.ts): per image and pyramid level the k = min(preNmsTopN,
// anchors) best logits, as one topk per level (slice, topk, add of the level's first anchor, cat:
// what selectProposals did before) against one segmentedTopk over every level. Shapes: R50-FPN,
// 3 anchors per location, levels P2..P6, batch 2, at 512x512 (the training bench's step) and at
// 800x1344 (COCO's size, padded to 32), with torchvision's preNmsTopN 2000 (training) and 1000
// (testing). Then the order of all those candidates by score: argsort against argsortRuns (one
// merge of the levels' sorted runs; what batchedNmsPadded's sortedRuns uses). Each pair's results are
// checked equal first. Reports ms per call (best of a few batches) and dispatches per call.
// Usage: node dist/bench/segmented-topk.js [--json]   (BENCH_QUICK=1 shortens every measurement)
import '../cli/node-gpu.js';
import * as F from '../engine/index.js';
import { counters, init, setQuiet } from '../engine/index.js';
import { timeOurs, printTable, type TimeOpts } from './harness.js';

setQuiet(true);
await init();
const json = process.argv.includes('--json');
const quick = !!process.env.BENCH_QUICK;
const opts: TimeOpts = quick ? { warmup: 1, targetS: 0.3, repeats: 1, maxIters: 3 } : { warmup: 1, targetS: 1.5, repeats: 3, maxIters: 20 };

/** Anchors per level of an H x W image: 3 per location at strides 4..64 (P6 from P5 by a stride-2 pool). */
const levels = (H: number, W: number): number[] => [4, 8, 16, 32, 64].map((s) => 3 * Math.ceil(H / s) * Math.ceil(W / s));

function perLevel(x: F.Tensor, lengths: number[], k: number): F.Tensor[] {
  const vals: F.Tensor[] = [], idx: F.Tensor[] = [];
  let start = 0;
  for (const len of lengths) {
    const r = F.topk(F.slice(x, 1, start, start + len), Math.min(k, len), 1);
    vals.push(r.values);
    idx.push(start === 0 ? r.indices : F.add(r.indices, start));
    start += len;
  }
  return [F.cat(vals, 1), F.cat(idx, 1)];
}
const segmented = (x: F.Tensor, lengths: number[], k: number): F.Tensor[] => {
  const r = F.segmentedTopk(x, lengths, k);
  return [r.values, r.indices];
};

const dispatches = (fn: () => F.Tensor[]): number => {
  const before = counters().dispatches;
  F.tidy(() => void fn());
  return counters().dispatches - before;
};

const rows: (string | number)[][] = [];
const results: Record<string, unknown>[] = [];
for (const [H, W] of [[512, 512], [800, 1344]] as const) {
  const lengths = levels(H, W);
  const R = lengths.reduce((a, c) => a + c, 0);
  const N = 2;
  const rng = new F.Rng(H + W);
  const x = F.tensor(Float32Array.from({ length: N * R }, () => rng.uniform() * 8 - 4), [N, R]);
  for (const k of [2000, 1000]) {
    const [a, b] = [perLevel(x, lengths, k), segmented(x, lengths, k)];
    const [ai, bi] = [await a[1]!.data(), await b[1]!.data()];
    if (ai.length !== bi.length || ai.some((v, i) => v !== bi[i])) throw new Error(`${H}x${W} k=${k}: per-level topk and segmentedTopk disagree`);
    for (const t of [...a, ...b]) t.dispose();
    for (const [name, fn] of [['topk per level', () => perLevel(x, lengths, k)], ['segmentedTopk', () => segmented(x, lengths, k)]] as const) {
      const t = await timeOurs(fn, opts);
      const d = dispatches(fn);
      rows.push([`${N}x${H}x${W}`, lengths.join('+'), String(k), name, d, t.s * 1000, t.cpuS * 1000]);
      results.push({ image: [H, W], batch: N, lengths, preNmsTopN: k, path: name, dispatches: d, ms: t.s * 1000, cpuMs: t.cpuS * 1000 });
    }
    // Ordering all candidates by score: argsort, or one merge of the levels' sorted runs (on the
    // logits: their sigmoid is not sorted to the last bit, see argsortRuns).
    const runs = lengths.map((len) => Math.min(k, len));
    const prob = F.tidy(() => F.segmentedTopk(x, lengths, k).values);
    const [o1, o2] = [F.argsort(prob, 1, true), F.argsortRuns(prob, runs, true)];
    const [d1, d2] = [await o1.data(), await o2.data()];
    if (d1.some((v, i) => v !== d2[i])) throw new Error(`${H}x${W} k=${k}: argsort and argsortRuns disagree`);
    o1.dispose();
    o2.dispose();
    for (const [name, fn] of [['order: argsort', () => [F.argsort(prob, 1, true)]], ['order: argsortRuns', () => [F.argsortRuns(prob, runs, true)]]] as const) {
      const t = await timeOurs(fn, opts);
      const d = dispatches(fn);
      rows.push([`${N}x${H}x${W}`, runs.join('+'), String(k), name, d, t.s * 1000, t.cpuS * 1000]);
      results.push({ image: [H, W], batch: N, lengths: runs, preNmsTopN: k, path: name, dispatches: d, ms: t.s * 1000, cpuMs: t.cpuS * 1000 });
    }
    prob.dispose();
  }
  x.dispose();
}
if (json) console.log(JSON.stringify({ node: process.version, results }, null, 1));
else printTable('RPN pre-NMS top-k, all levels', ['batch x image', 'anchors per level', 'k', 'path', 'dispatches', 'ms', 'CPU ms'], rows);
