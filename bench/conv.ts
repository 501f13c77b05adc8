// conv2d forward, input gradient and weight gradient on ResNet-50 shapes: our implicit-GEMM kernels
// vs TF.js's WebGPU backend on the same adapter (tfjs is NHWC: inputs are transposed once, outside
// the timed loops; tfjs's backward kernels are run directly, as tf.grad would). Run:
// npm run bench -- conv (or node bench/run.js conv). BENCH_QUICK=1 shortens every measurement.
// --json: one JSON object per shape and pass (case, ours, peer, ratio in GFLOP per CPU-second;
// oursWall, peerWall, ratioWall per wall-clock second, the figures that count on a GPU) and one
// with the geometric means of both ratios. On GPUs (or with --amp) also a table of ours under autocast
// against ours in fp32 per shape and pass (tensor cores where the device has subgroup matrices).
import { setupPeer } from './peer.js';
import { timeOurs, timeTfjs, printTable, markdownTable, machineInfo, type TimeOpts, type Cell } from './harness.js';
import * as F from '../engine/index.js';
import { conv2dInputGradRaw, conv2dWeightGradRaw } from '../engine/ops/conv.js';
import { convOutSize, type ConvGeom } from '../kernels/conv.js';
import { adapterIsCpu } from '../engine/device.js';
import { subgroupMatrixStatus } from '../engine/ops/tensor-cores.js';

const peer = await setupPeer();
const { tf } = peer;
const quick = !!process.env.BENCH_QUICK;
// The stem at 224 is ~0.24 GFLOP per pass and lavapipe does ~1-5 GFLOP/s: keep the counts low.
const opts: TimeOpts = quick ? { warmup: 1, targetS: 0.3, repeats: 1, maxIters: 5 } : { warmup: 1, targetS: 1, repeats: 2, maxIters: 20 };

const info = machineInfo(peer);
console.log(Object.entries(info).map(([k, v]) => `${k}: ${v}`).join('\n') + `\ntfjs backend: ${tf.getBackend()}\n`);

interface Shape {
  label: string;
  N: number;
  Cin: number;
  H: number;
  Cout: number;
  K: number;
  stride: number;
  pad: number;
}

const SHAPES: Shape[] = [
  { label: 'stem 7x7/2, 3->64, 224x224', N: 1, Cin: 3, H: 224, Cout: 64, K: 7, stride: 2, pad: 3 },
  { label: '3x3, 64->64, 56x56', N: 1, Cin: 64, H: 56, Cout: 64, K: 3, stride: 1, pad: 1 },
  { label: '1x1, 256->64, 56x56', N: 1, Cin: 256, H: 56, Cout: 64, K: 1, stride: 1, pad: 0 },
  { label: '3x3, 512->512, 7x7, batch 2', N: 2, Cin: 512, H: 7, Cout: 512, K: 3, stride: 1, pad: 1 },
];

type TfT = ReturnType<typeof tf.tensor>;
const rng = new F.Rng(1);
const rand = (n: number): Float32Array => Float32Array.from({ length: n }, () => rng.uniform() - 0.5);

/** Max |a - b| relative to max |b|, for NCHW (ours) vs tfjs data permuted back to NCHW. */
async function agree(ours: F.Tensor, theirs: TfT, perm: number[], what: string): Promise<void> {
  const a = await ours.data();
  const b = await tf.transpose(theirs, perm).data();
  let diff = 0, scale = 1e-6;
  for (let i = 0; i < a.length; i++) {
    diff = Math.max(diff, Math.abs(a[i]! - b[i]!));
    scale = Math.max(scale, Math.abs(b[i]!));
  }
  if (!(diff <= 1e-3 * scale)) throw new Error(`${what}: ours and tfjs differ by ${diff} (scale ${scale})`);
}

const rows: Cell[][] = [];
const ratios: number[] = [];
const ampRows: Cell[][] = [];
const ampTable = !adapterIsCpu() || process.argv.includes('--amp');
for (const s of SHAPES) {
  const OH = convOutSize(s.H, s.K, s.stride, s.pad, 1);
  const g: ConvGeom = { N: s.N, Cin: s.Cin, H: s.H, W: s.H, Cout: s.Cout, KH: s.K, KW: s.K, OH, OW: OH, sh: s.stride, sw: s.stride, ph: s.pad, pw: s.pad, dh: 1, dw: 1, groups: 1 };
  const flops = 2 * s.N * s.Cout * OH * OH * s.Cin * s.K * s.K;
  const xd = rand(s.N * s.Cin * s.H * s.H), wd = rand(s.Cout * s.Cin * s.K * s.K), dyd = rand(s.N * s.Cout * OH * OH);
  const x = F.tensor(xd, [s.N, s.Cin, s.H, s.H]), w = F.tensor(wd, [s.Cout, s.Cin, s.K, s.K]), dy = F.tensor(dyd, [s.N, s.Cout, OH, OH]);
  // NCHW -> NHWC and OIHW -> HWIO, once.
  const tx = tf.transpose(tf.tensor4d(xd, [s.N, s.Cin, s.H, s.H]), [0, 2, 3, 1]);
  const tw = tf.transpose(tf.tensor4d(wd, [s.Cout, s.Cin, s.K, s.K]), [2, 3, 1, 0]);
  const tdy = tf.transpose(tf.tensor4d(dyd, [s.N, s.Cout, OH, OH]), [0, 2, 3, 1]);
  const strides: [number, number] = [s.stride, s.stride];
  const tfFwd = () => tf.conv2d(tx as never, tw as never, strides, s.pad);
  const tfBwdIn = () => tf.engine().runKernel('Conv2DBackpropInput', { dy: tdy, filter: tw }, { strides, pad: s.pad, dataFormat: 'NHWC', dimRoundingMode: undefined, inputShape: tx.shape } as never) as TfT;
  const tfBwdW = () => tf.engine().runKernel('Conv2DBackpropFilter', { x: tx, dy: tdy }, { strides, pad: s.pad, dataFormat: 'NHWC', dimRoundingMode: undefined, filterShape: tw.shape } as never) as TfT;
  const ours = {
    forward: () => F.conv2d(x, w, null, s.stride, s.pad),
    'grad input': () => conv2dInputGradRaw(dy, w, g),
    'grad weight': () => conv2dWeightGradRaw(dy, x, g),
  };
  const theirs = { forward: tfFwd, 'grad input': tfBwdIn, 'grad weight': tfBwdW };
  const perms = { forward: [0, 3, 1, 2], 'grad input': [0, 3, 1, 2], 'grad weight': [3, 2, 0, 1] };
  for (const pass of ['forward', 'grad input', 'grad weight'] as const) {
    await agree(F.tidy(ours[pass]), tf.tidy(theirs[pass]), perms[pass], `${s.label} ${pass}`);
    const a = await timeOurs(ours[pass], opts);
    const b = await timeTfjs(tf, theirs[pass], opts);
    const gOurs = flops / a.s / 1e9, gTf = flops / b.s / 1e9;
    const cOurs = flops / a.cpuS / 1e9, cTf = flops / b.cpuS / 1e9;
    ratios.push(cOurs / cTf);
    rows.push([s.label, pass, gOurs, gTf, gOurs / gTf, cOurs, cTf, cOurs / cTf]);
    if (ampTable) {
      const m = await timeOurs(() => F.autocast(ours[pass]), opts);
      ampRows.push([s.label, pass, flops / m.s / 1e9, gOurs, a.s / m.s]);
    }
  }
  [x, w, dy].forEach((t) => t.dispose());
  [tx, tw, tdy].forEach((t) => t.dispose());
}
const geoMean = (xs: number[]) => Math.exp(xs.reduce((p, r) => p + Math.log(r), 0) / xs.length);
const geo = geoMean(ratios);
const geoWall = geoMean(rows.map((r) => r[4] as number));
const headers = ['shape', 'pass', 'ours GFLOP/s', 'TF.js GFLOP/s', 'ours/TF.js', 'ours GFLOP/CPU-s', 'TF.js GFLOP/CPU-s', 'ours/TF.js (CPU)'];
printTable('conv2d, float32, NCHW (ours) vs NHWC (TF.js)', headers, rows);
console.log(`geometric mean of ours/TF.js: ${geoWall.toFixed(2)} (wall-clock rates), ${geo.toFixed(2)} (CPU-time rates)\n`);
const ampHeaders = ['shape', 'pass', 'autocast GFLOP/s', 'fp32 GFLOP/s', 'autocast/fp32'];
if (ampRows.length) {
  const tc = subgroupMatrixStatus();
  printTable(`conv2d under autocast (f16 operands, f32 sums) against fp32${tc ? ` [${tc}]` : ''}`, ampHeaders, ampRows);
}
if (process.argv.includes('--json')) {
  for (const r of ampRows) console.log(JSON.stringify({ case: `conv autocast ${r[0]} ${r[1]}`, ours: r[2], peer: r[3], ratio: r[4], pctPeak: null, unit: 'GFLOP/s (peer: our fp32)' }));
  for (const r of rows) console.log(JSON.stringify({ case: `conv ${r[0]} ${r[1]}`, ours: r[5], peer: r[6], ratio: r[7], pctPeak: null, unit: 'GFLOP/CPU-s', oursWall: r[2], peerWall: r[3], ratioWall: r[4] }));
  console.log(JSON.stringify({ case: 'conv geometric mean', ratio: geo, ratioWall: geoWall }));
}
console.log('Markdown:\n');
console.log(markdownTable(headers, rows) + '\n');
if (ampRows.length) console.log(markdownTable(ampHeaders, ampRows) + '\n');
console.log(`geometric mean ours/TF.js (CPU): ${geo.toFixed(2)}; load average now ${machineInfo(peer)['load average (1/5/15 min)']}`);
process.exit(0);
