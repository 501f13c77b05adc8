// Our default training run against the CPU peer a user would pick instead: torchvision's Mask R-CNN
// configured like `tiny-cpu`, trained by tools/torch-peer-train.py (PyTorch's CPU path) on the same
// generated shapes data with the same schedule. This scores the peer's results with our COCOeval and
// compares them with one of our run folders (its metrics.jsonl), printing a table or, with --json,
// one JSON object per line: {case, ours, peer, ratio, ...}.
//
//   /usr/bin/python3 tools/torch-peer-train.py --data .cache/shapes-s0-n1000-100-128px --out PEER_DIR
//   node dist/bench/torch-peer.js --peer PEER_DIR [--ours RUN_DIR] [--data DIR] [--json]
//
// Without --peer (as `npm run bench` runs it) it only prints its usage; bench/RESULTS.md has the figures.
import { readFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { COCOeval } from '../data/cocoeval/index.js';
import { parseArgs, type OptionSpec } from '../cli/args.js';

const OPTIONS: OptionSpec[] = [
  { name: 'peer', type: 'string', metavar: 'DIR', help: 'output folder of tools/torch-peer-train.py (results.json, summary.json)' },
  { name: 'ours', type: 'string', metavar: 'RUN_DIR', help: 'our run folder (metrics.jsonl) to compare with' },
  { name: 'data', type: 'string', metavar: 'DIR', help: 'the generated dataset (default .cache/shapes-s0-n1000-100-128px)' },
  { name: 'json', type: 'boolean', help: 'one JSON object per line' },
];

interface Figures {
  imagesPerSecond: number;
  bboxAP: number;
  segmAP: number;
  iters: number;
}

function readJson(file: string): unknown {
  if (!existsSync(file)) throw new Error(`${file} does not exist`);
  return JSON.parse(readFileSync(file, 'utf8')) as unknown;
}

/** The peer's speed (summary.json) and its results scored by our COCOeval against the val annotations. */
function peerFigures(dir: string, gt: unknown): Figures & { imagesPerCpuSecond: number; threads: number; loadAverage: number[] } {
  const s = readJson(path.join(dir, 'summary.json')) as { imagesPerSecond: number; imagesPerCpuSecond: number; iters: number; threads: number; loadAverage: number[] };
  const dt = readJson(path.join(dir, 'results.json'));
  const ap = (iouType: 'bbox' | 'segm') => {
    const E = new COCOeval(gt, dt, iouType);
    E.evaluate();
    E.accumulate();
    E.summarize();
    return E.stats[0]!;
  };
  return { imagesPerSecond: s.imagesPerSecond, imagesPerCpuSecond: s.imagesPerCpuSecond, iters: s.iters, threads: s.threads, loadAverage: s.loadAverage, bboxAP: ap('bbox'), segmAP: ap('segm') };
}

/** Our run's training speed (iteration lines) and its last evaluation (metrics.jsonl). */
function ourFigures(dir: string): Figures {
  const lines = readFileSync(path.join(dir, 'metrics.jsonl'), 'utf8').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, number | string>);
  const iters = lines.filter((l) => l.type === 'iter');
  const evals = lines.filter((l) => l.type === 'eval');
  if (!iters.length || !evals.length) throw new Error(`${dir}/metrics.jsonl: needs iteration lines and an evaluation`);
  const seconds = iters.reduce((s, l) => s + Number(l.seconds), 0), images = iters.reduce((s, l) => s + Number(l.images), 0);
  const last = evals[evals.length - 1]!;
  return { imagesPerSecond: images / seconds, bboxAP: Number(last.bboxAP), segmAP: Number(last.segmAP), iters: Number(iters[iters.length - 1]!.iter) };
}

const { values } = parseArgs(process.argv.slice(2), OPTIONS);
if (!values.peer) {
  // `npm run bench` runs every benchmark without arguments: this one needs a finished peer run.
  console.log('torch-peer: skipped (usage: node dist/bench/torch-peer.js --peer PEER_DIR [--ours RUN_DIR] [--data DIR] [--json])');
  process.exit(0);
}
const data = (values.data as string | undefined) ?? '.cache/shapes-s0-n1000-100-128px';
const gt = readJson(path.join(data, 'annotations', 'instances_val.json'));
const peer = peerFigures(values.peer as string, gt);
const ours = values.ours ? ourFigures(values.ours as string) : null;
const rows: { case: string; ours: number | null; peer: number; ratio: number | null }[] = [
  { case: 'training images/s', ours: ours?.imagesPerSecond ?? null, peer: peer.imagesPerSecond, ratio: null },
  { case: 'box AP', ours: ours?.bboxAP ?? null, peer: peer.bboxAP, ratio: null },
  { case: 'mask AP', ours: ours?.segmAP ?? null, peer: peer.segmAP, ratio: null },
];
for (const r of rows) r.ratio = r.ours === null ? null : r.ours / r.peer;
const context = { peerIters: peer.iters, oursIters: ours?.iters ?? null, peerThreads: peer.threads, peerImagesPerCpuSecond: peer.imagesPerCpuSecond, peerLoadAverage: peer.loadAverage };
if (values.json) {
  for (const r of rows) console.log(JSON.stringify({ ...r, ...context }));
} else {
  const f = (x: number | null) => (x === null ? '-' : x.toFixed(3));
  console.log(`torchvision Mask R-CNN (tiny-cpu config, PyTorch CPU, ${peer.threads} threads, ${peer.iters} iterations; load average at its end ${peer.loadAverage.map((x) => x.toFixed(1)).join(' ')})`);
  console.log(`${'case'.padEnd(20)} ${'ours'.padStart(8)} ${'peer'.padStart(8)} ${'ours/peer'.padStart(10)}`);
  for (const r of rows) console.log(`${r.case.padEnd(20)} ${f(r.ours).padStart(8)} ${f(r.peer).padStart(8)} ${f(r.ratio).padStart(10)}`);
  console.log(`peer images per CPU-second: ${peer.imagesPerCpuSecond.toFixed(2)}`);
}
process.exit(0);
