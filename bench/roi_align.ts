// roi_align forward and backward on Mask R-CNN shapes (512 boxes, 7x7 bins, 256 channels, an
// 800x1088 image with FPN levels P2..P5 at 200x272 .. 25x34), vs TF.js's closest op on the same
// adapter. Run: npm run bench -- roi_align (BENCH_QUICK=1 shortens every measurement).
//
// What is compared with TF.js: torchvision's roi_align with sampling_ratio 2 and aligned=False
// averages a 14x14 grid of bilinear samples, 2x2 per bin, at x1*s + (m + 0.5) * w / 14 (m = 0..13,
// w = box width in map pixels). tf.image.cropAndResize to 14x14 samples at x1' * (W-1) + m * (x2' - x1')
// * (W-1) / 13 for normalised corners x1', x2': choosing x1' = (x1*s + w/28) / (W-1) and x2' = (x1*s +
// 27w/28) / (W-1) puts its samples at exactly our sampling points; a 2x2/2 average pool then gives
// roi_align's bins. For boxes whose samples stay in [0, W-1] x [0, H-1] the results are equal (checked
// below, 1e-4 relative); they differ only at the border (TF extrapolates 0, torchvision clamps).
// TF.js runs NHWC (the map is transposed once, outside the timing), the normalised boxes are computed on
// the host outside the timing, and the multi-level TF.js pooler is: host-side level assignment and box
// split (untimed), per level cropAndResize + avgPool, concat, gather back to box order (timed).
// TF.js has no gradient for CropAndResize (tf.grad throws), so backward rows have no peer.
import { setupPeer } from './peer.js';
import { timeOurs, timeTfjs, printTable, markdownTable, machineInfo, type TimeOpts, type Cell, type Timing } from './harness.js';
import * as F from '../engine/index.js';

const peer = await setupPeer();
const { tf } = peer;
const quick = !!process.env.BENCH_QUICK;
const opts: TimeOpts = quick ? { warmup: 1, targetS: 0.3, repeats: 1, maxIters: 3 } : { warmup: 1, targetS: 1.5, repeats: 3, maxIters: 20 };

const info = machineInfo(peer);
console.log(Object.entries(info).map(([k, v]) => `${k}: ${v}`).join('\n') + `\ntfjs backend: ${tf.getBackend()}\n`);

const IMG_H = 800, IMG_W = 1088, C = 256, K = 512, P = 7;
const LEVELS = [2, 3, 4, 5].map((l) => ({ l, scale: 2 ** -l, H: IMG_H >> l, W: IMG_W >> l }));
const rng = new F.Rng(7);
const rand = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.uniform() - 0.5);

/**
 * K boxes with sqrt(area) log-uniform in [lo, hi) image pixels, aspect 1/2..2, kept where every
 * sample of map `clip` (scale, H, W) lies inside [0, H-1] x [0, W-1] so TF.js and ours agree.
 */
function boxes(lo: number, hi: number, clip: { scale: number; H: number; W: number }): number[][] {
  const out: number[][] = [];
  const maxX = (clip.W - 1) / clip.scale, maxY = (clip.H - 1) / clip.scale;
  while (out.length < K) {
    const s = lo * (hi / lo) ** rng.uniform();
    const a = 2 ** (2 * rng.uniform() - 1);
    const w = Math.min(s * Math.sqrt(a), maxX), h = Math.min(s / Math.sqrt(a), maxY);
    const x1 = rng.uniform() * (maxX - w), y1 = rng.uniform() * (maxY - h);
    out.push([0, x1, y1, x1 + w, y1 + h]);
  }
  return out;
}

/** torchvision's level: clamp(floor(4 + log2(sqrt(area) / 224) + 1e-6), 2, 5). */
const levelOf = (b: number[]): number => {
  const s = Math.sqrt((b[3]! - b[1]!) * (b[4]! - b[2]!));
  return Math.min(5, Math.max(2, Math.floor(4 + Math.log2(s / 224) + 1e-6)));
};

/** cropAndResize boxes [y1, x1, y2, x2] normalised so its 14x14 samples are roi_align's (sr 2, not aligned). */
function tfBoxes(bs: number[][], scale: number, H: number, W: number): number[][] {
  const n = 2 * P;
  return bs.map((b) => {
    const x = b[1]! * scale, y = b[2]! * scale;
    const w = Math.max((b[3]! - b[1]!) * scale, 1), h = Math.max((b[4]! - b[2]!) * scale, 1);
    return [(y + (0.5 * h) / n) / (H - 1), (x + (0.5 * w) / n) / (W - 1), (y + ((n - 0.5) * h) / n) / (H - 1), (x + ((n - 0.5) * w) / n) / (W - 1)];
  });
}

type TfT = ReturnType<typeof tf.tensor>;

async function agree(ours: F.Tensor, theirs: TfT, what: string): Promise<void> {
  const a = await ours.data();
  const b = await tf.transpose(theirs, [0, 3, 1, 2]).data();
  let diff = 0, scale = 1e-6;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  if (!(diff <= 1e-4 * scale)) throw new Error(`${what}: ours and tfjs differ by ${diff} (scale ${scale})`);
  console.log(`${what}: ours == TF.js within ${(diff / scale).toExponential(1)} (relative to max |value|)`);
}

// Feature maps: ours NCHW, TF.js NHWC (one transpose, untimed).
const maps = LEVELS.map((L) => {
  const d = rand(C * L.H * L.W);
  const ours = F.tensor(d, [1, C, L.H, L.W]).requiresGrad_();
  const theirs = tf.transpose(tf.tensor4d(d, [1, C, L.H, L.W]), [0, 2, 3, 1]) as TfT;
  return { ...L, ours, theirs };
});
const p4 = maps[2]!;

const rows: Cell[][] = [];
const ms = (t: Timing): [number, number] => [t.s * 1e3, t.cpuS * 1e3];
function row(label: string, pass: string, a: Timing, b: Timing | null): void {
  const [aw, ac] = ms(a);
  if (!b) rows.push([label, pass, aw, '-', '-', ac, '-', '-']);
  else {
    const [bw, bc] = ms(b);
    rows.push([label, pass, aw, bw, bw / aw, ac, bc, bc / ac]);
  }
  console.log(rows[rows.length - 1]!.map((c) => (typeof c === 'number' ? c.toFixed(1) : c)).join('  '));
}

/** Forward+backward through autograd minus the forward alone: the backward's cost, with its zero fill. */
async function timeBackward(fwd: () => F.Tensor, leaves: F.Tensor[], gout: F.Tensor, f: Timing): Promise<Timing> {
  const fb = await timeOurs(() => {
    fwd().backward(gout);
    for (const l of leaves) {
      l.grad?.dispose();
      l.grad = null;
    }
  }, opts);
  return { s: fb.s - f.s, cpuS: fb.cpuS - f.cpuS };
}

// ---- single level: P4 (1x256x50x68, scale 1/16) with level-4-sized boxes (sqrt(area) 224..448).
{
  const bs = boxes(224, 448, p4);
  const rois = F.tensor(bs.flat(), [K, 5]);
  const tb = tf.tensor2d(tfBoxes(bs, p4.scale, p4.H, p4.W), [K, 4]);
  const ind = tf.zeros([K], 'int32') as TfT;
  const label = `P4 1x${C}x${p4.H}x${p4.W}, ${K} boxes 224-448 px`;
  const gout = F.tensor(rand(K * C * P * P), [K, C, P, P]);
  for (const sr of [2, 0]) {
    const ours = () => F.roiAlign(p4.ours, rois, { outputSize: P, spatialScale: p4.scale, samplingRatio: sr });
    let theirs: (() => TfT) | null = null;
    if (sr === 2) {
      theirs = () => tf.avgPool(tf.image.cropAndResize(p4.theirs as never, tb as never, ind as never, [2 * P, 2 * P]), 2, 2, 'valid') as TfT;
      await agree(F.noGrad(ours), tf.tidy(theirs), `${label} sr=2`);
    }
    const a = await timeOurs(() => F.noGrad(ours), opts);
    const b = theirs ? await timeTfjs(tf, theirs, opts) : null;
    row(label, `forward sr=${sr || 'adaptive'}`, a, b);
    row(label, `backward sr=${sr || 'adaptive'}`, await timeBackward(ours, [p4.ours], gout, a), null);
  }
  [rois, gout].forEach((t) => t.dispose());
  [tb, ind].forEach((t) => t.dispose());
}

// ---- the multi-level pooler over P2..P5 (torchvision's box head: 7x7, sampling_ratio 2).
{
  // Boxes of every size (sqrt(area) 32..640 px), clipped so every level's samples stay inside its map.
  const bs = boxes(32, 640, maps[3]!);
  const rois = F.tensor(bs.flat(), [K, 5]);
  const lv = bs.map(levelOf);
  const per = maps.map((m) => {
    const idx = lv.flatMap((l, k) => (l === m.l ? [k] : []));
    const tb = tf.tensor2d(tfBoxes(idx.map((k) => bs[k]!), m.scale, m.H, m.W), [idx.length, 4]);
    return { m, idx, tb, ind: tf.zeros([idx.length], 'int32') as TfT };
  });
  const order = per.flatMap((q) => q.idx);
  const inv = tf.tensor1d(order.map((_, i) => order.indexOf(i)), 'int32');
  const counts = per.map((q) => q.idx.length).join('/');
  const label = `P2-P5 pooler, ${K} boxes 32-640 px (${counts} per level)`;
  const feats = maps.map((m) => m.ours);
  const scales = maps.map((m) => m.scale);
  const ours = () => F.multiScaleRoiAlign(feats, rois, { outputSize: P, samplingRatio: 2, scales });
  const theirs = () => {
    const parts = per.filter((q) => q.idx.length > 0).map((q) => tf.avgPool(tf.image.cropAndResize(q.m.theirs as never, q.tb as never, q.ind as never, [2 * P, 2 * P]), 2, 2, 'valid'));
    return tf.gather(tf.concat(parts, 0), inv) as TfT;
  };
  await agree(F.noGrad(ours), tf.tidy(theirs), label);
  const a = await timeOurs(() => F.noGrad(ours), opts);
  row(label, 'forward sr=2', a, await timeTfjs(tf, theirs, opts));
  const gout = F.tensor(rand(K * C * P * P), [K, C, P, P]);
  row(label, 'backward sr=2', await timeBackward(ours, feats, gout, a), null);
  [rois, gout].forEach((t) => t.dispose());
}

const headers = ['case', 'pass', 'ours ms', 'TF.js ms', 'TF.js/ours', 'ours CPU-ms', 'TF.js CPU-ms', 'TF.js/ours (CPU)'];
printTable('roi_align, float32, 7x7 output, 256 channels (ours NCHW, TF.js NHWC cropAndResize 14x14 + avgPool 2x2)', headers, rows, 1);
console.log('Markdown:\n');
console.log(markdownTable(headers, rows, 1) + '\n');
console.log(`load average now ${machineInfo(peer)['load average (1/5/15 min)']}`);
process.exit(0);
