// Matmul and a large elementwise add: our engine vs TF.js's WebGPU backend on the same adapter,
// plus the adapter's measured FMA peak. Run: npm run bench -- matmul (or node bench/run.js matmul).
// BENCH_QUICK=1 shortens every measurement (for smoke runs); MATMUL_VARIANTS=1 also times each of
// our kernel variants forced on every shape (for tuning). --json: also one JSON object per line
// and case (case, ours, peer, ratio, pctPeak; rates in GFLOP per CPU-second, robust to other load;
// oursWall, peerWall, pctPeakWall: per wall-clock second, the figures that count on a GPU).
// On GPUs it adds 2048^3 and an autocast table: each shape under autocast (tensor cores where the
// device has subgroup matrices: engine/ops/tensor-cores.ts) against our fp32 matmul, with
// the kernel each ran; --amp adds that table on CPU adapters too. --published-tflops X: also the
// fp32 rate as a % of the card's published peak (an H100 SXM's or H200's 67).
import { setupPeer } from './peer.js';
import { timeOurs, timeTfjs, printTable, markdownTable, machineInfo, measurePeak, type TimeOpts, type Cell } from './harness.js';
import * as F from '../engine/index.js';
import { matmulVariants, setMatmulVariant, chooseMatmulVariant } from '../engine/ops/matmul.js';
import { adapterIsCpu } from '../engine/device.js';
import { subgroupMatrixStatus, subgroupMatrixVariants } from '../engine/ops/tensor-cores.js';

const peer = await setupPeer();
const { tf } = peer;
const quick = !!process.env.BENCH_QUICK;
const opts: TimeOpts = quick ? { warmup: 1, targetS: 0.2, repeats: 1 } : { warmup: 2, targetS: 1.5, repeats: 3 };

const info = machineInfo(peer);
console.log(Object.entries(info).map(([k, v]) => `${k}: ${v}`).join('\n') + `\ntfjs backend: ${tf.getBackend()}\n`);

const peak = await measurePeak(opts);
printTable('FMA peak', ['variant', 'GFLOP/s', 'GFLOP/CPU-s'], peak.variants.map((v) => [`vec${v.config.vec} x${v.config.regs} regs, unroll ${v.config.unroll}, wg ${v.config.wg}`, v.gflops.wall, v.gflops.cpu]));

// [M, K, N, label]
const SHAPES: [number, number, number, string][] = [
  [256, 256, 256, '256^3'],
  [512, 512, 512, '512^3'],
  [1024, 1024, 1024, '1024^3'],
  [3136, 576, 64, '3136x576x64 (ResNet conv2 as GEMM)'],
];
const gpu = !adapterIsCpu();
if (gpu) SHAPES.push([2048, 2048, 2048, '2048^3']);
const ampTable = gpu || process.argv.includes('--amp');
const flagAt = process.argv.indexOf('--published-tflops');
const publishedGflops = flagAt > 0 ? Number(process.argv[flagAt + 1]) * 1000 : null;
if (publishedGflops !== null && !(publishedGflops > 0)) throw new Error('--published-tflops needs a positive number (TFLOP/s)');
const ampRows: Cell[][] = [];
const tileRows: Cell[][] = [];

const rng = new F.Rng(1);
const rows: Cell[][] = [];
const variantRows: Cell[][] = [];
for (const [M, K, N, label] of SHAPES) {
  const flops = 2 * M * N * K;
  const aData = Float32Array.from({ length: M * K }, () => rng.uniform() - 0.5);
  const bData = Float32Array.from({ length: K * N }, () => rng.uniform() - 0.5);
  const a = F.tensor(aData, [M, K]), b = F.tensor(bData, [K, N]);
  const ta = tf.tensor2d(aData, [M, K]), tb = tf.tensor2d(bData, [K, N]);
  // Sanity: both engines agree before anything is timed.
  const ours = await F.matmul(a, b).data();
  const theirs = await tf.matMul(ta, tb).data();
  let maxDiff = 0;
  for (let i = 0; i < ours.length; i++) maxDiff = Math.max(maxDiff, Math.abs(ours[i]! - theirs[i]!));
  if (maxDiff > 1e-3 * Math.sqrt(K)) throw new Error(`matmul ${label}: ours and tfjs differ by ${maxDiff}`);

  const sOurs = await timeOurs(() => F.matmul(a, b), opts);
  const sTf = await timeTfjs(tf, () => tf.matMul(ta, tb), opts);
  const gOurs = flops / sOurs.s / 1e9, gTf = flops / sTf.s / 1e9;
  const cOurs = flops / sOurs.cpuS / 1e9, cTf = flops / sTf.cpuS / 1e9;
  rows.push([label, chooseMatmulVariant(a, b).name, gOurs, gTf, gOurs / gTf, (100 * gOurs) / peak.gflops.wall, cOurs, cTf, cOurs / cTf, (100 * cOurs) / peak.gflops.cpu]);
  if (ampTable) {
    // Autocast's product against fp32's: f16 operands, so ~1e-3 relative to the row-column scale.
    const amp = await F.autocast(() => F.matmul(a, b)).data();
    let worst = 0, scale = 0;
    for (let i = 0; i < amp.length; i++) {
      worst = Math.max(worst, Math.abs(amp[i]! - ours[i]!));
      scale = Math.max(scale, Math.abs(ours[i]!));
    }
    if (!(worst <= 2e-2 * Math.max(scale, 1))) throw new Error(`matmul ${label} under autocast: off from fp32 by ${worst} (largest |C| ${scale})`);
    const sAmp = await timeOurs(() => F.autocast(() => F.matmul(a, b)), opts);
    const gAmp = flops / sAmp.s / 1e9;
    ampRows.push([label, F.autocast(() => chooseMatmulVariant(a, b)).name, gAmp, gOurs, gAmp / gOurs, publishedGflops ? (100 * gOurs) / publishedGflops : '-']);
    // Each tensor-core tile this device offers, forced (the fixed table takes the first; the GPU
    // run says which one to make the default).
    for (const v of subgroupMatrixVariants()) {
      setMatmulVariant(v.name);
      try {
        const s = await timeOurs(() => F.autocast(() => F.matmul(a, b)), opts);
        tileRows.push([label, v.name, flops / s.s / 1e9, flops / s.s / 1e9 / gOurs]);
      } finally {
        setMatmulVariant(null);
      }
    }
  }
  if (process.env.MATMUL_VARIANTS) {
    for (const v of matmulVariants()) {
      setMatmulVariant(v.name);
      const s = await timeOurs(() => F.matmul(a, b), { ...opts, repeats: 1 });
      variantRows.push([label, v.name, flops / s.s / 1e9, flops / s.cpuS / 1e9]);
    }
    setMatmulVariant(null);
  }
  a.dispose(); b.dispose(); ta.dispose(); tb.dispose();
}
// Wall-clock rates, and rates per CPU-second of this process (robust when other processes share
// the cores: on lavapipe all GPU work runs on this process's threads).
const headers = ['shape (MxKxN)', 'our kernel', 'ours GFLOP/s', 'TF.js GFLOP/s', 'ours/TF.js', '% of peak',
  'ours GFLOP/CPU-s', 'TF.js GFLOP/CPU-s', 'ours/TF.js (CPU)', '% of peak (CPU)'];
printTable(`matmul, float32 (peak ${peak.gflops.wall.toFixed(1)} GFLOP/s, ${peak.gflops.cpu.toFixed(1)} GFLOP/CPU-s)`, headers, rows);
const ampHeaders = ['shape (MxKxN)', 'autocast kernel', 'autocast GFLOP/s', 'fp32 GFLOP/s', 'autocast/fp32', 'fp32 % of published peak'];
if (ampRows.length) {
  const tc = subgroupMatrixStatus();
  printTable(`matmul under autocast (f16 operands, f32 sums) against fp32${tc ? ` [${tc}]` : ''}`, ampHeaders, ampRows);
}
if (tileRows.length) printTable('tensor-core tiles under autocast (forced)', ['shape (MxKxN)', 'tile', 'GFLOP/s', 'against fp32'], tileRows);
if (variantRows.length) printTable('our matmul variants (forced)', ['shape', 'variant', 'GFLOP/s', 'GFLOP/CPU-s'], variantRows);

// Elementwise add of two 4M-element tensors: bandwidth-bound, 12 bytes moved per element.
const n = 4 * 1024 * 1024;
const xData = Float32Array.from({ length: n }, () => rng.uniform());
const x = F.tensor(xData, [n]), y = F.tensor(xData, [n]);
const tx = tf.tensor1d(xData), ty = tf.tensor1d(xData);
const sAddOurs = await timeOurs(() => F.add(x, y), opts);
const sAddTf = await timeTfjs(tf, () => tf.add(tx, ty), opts);
const gb = (s: number) => (12 * n) / s / 1e9;
const addHeaders = ['op', 'ours GB/s', 'TF.js GB/s', 'ours/TF.js', 'ours ms', 'TF.js ms', 'ours GB/CPU-s', 'TF.js GB/CPU-s'];
const addRows: Cell[][] = [['add 4M + 4M', gb(sAddOurs.s), gb(sAddTf.s), sAddTf.s / sAddOurs.s, sAddOurs.s * 1e3, sAddTf.s * 1e3, gb(sAddOurs.cpuS), gb(sAddTf.cpuS)]];
printTable('elementwise', addHeaders, addRows);

if (process.argv.includes('--json')) {
  for (const r of rows) console.log(JSON.stringify({ case: `matmul ${r[0]}`, kernel: r[1], ours: r[6], peer: r[7], ratio: r[8], pctPeak: r[9], unit: 'GFLOP/CPU-s', oursWall: r[2], peerWall: r[3], pctPeakWall: r[5] }));
  for (const r of ampRows) console.log(JSON.stringify({ case: `matmul autocast ${r[0]}`, kernel: r[1], ours: r[2], peer: r[3], ratio: r[4], pctPeak: null, unit: 'GFLOP/s (peer: our fp32)', fp32PctPublished: r[5] === '-' ? null : r[5] }));
  for (const r of variantRows) console.log(JSON.stringify({ case: `matmul ${r[0]} variant ${r[1]}`, ours: r[3], peer: null, ratio: null, pctPeak: (100 * (r[3] as number)) / peak.gflops.cpu, unit: 'GFLOP/CPU-s' }));
}
console.log('Markdown:\n');
console.log(markdownTable(headers, rows) + '\n');
if (ampRows.length) console.log(markdownTable(ampHeaders, ampRows) + '\n');
console.log(markdownTable(addHeaders, addRows) + '\n');
console.log(`measured FMA peak: ${peak.gflops.wall.toFixed(2)} GFLOP/s, ${peak.gflops.cpu.toFixed(2)} GFLOP/CPU-s; load average now ${machineInfo(peer)['load average (1/5/15 min)']}`);
process.exit(0);
