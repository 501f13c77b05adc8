// The tensor-core kernels' emulated forms (kernels/subgroup-matrix-tile.ts: the same WGSL with the
// three subgroup-matrix operations done in plain f32 on the same workgroup-memory tiles) run here,
// where lavapipe has no subgroup matrices. They prove, against the float64 reference on f16-rounded
// operands, everything of those kernels but the three builtins: the staging of A and B with tails in
// every dimension, the conv's on-the-fly im2col (stride, padding, dilation), the tile layout, the
// bounds-checked store and the conv epilogue; and the engine's wiring (engine/ops/tensor-cores.ts):
// the init check's runner and verdicts, autocast's matmul and conv forward dispatching them with the
// right bindings, flags and grids, the backward still right, groups > 1 falling back.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { ref, gpu, expectRef } from './helpers/check.js';
import * as F from '../engine/index.js';
import { getBackend, waitForGPU } from '../engine/backend.js';
import { adapterReport } from '../engine/device.js';
import { chooseMatmulVariant, setMatmulVariant } from '../engine/ops/matmul.js';
import { checkRuns, runCheck, checkResult, convCheckResult, convGradCheckResult, convWeightGradCheckResult, emulateTensorCores, subgroupMatrixVariants, checkSubgroupMatrix, convTensorCoreSpec, setSubgroupMatrixChecked, subgroupMatrixStatus, CONV_CHECK, CONV_CHECK_FLAGS } from '../engine/ops/tensor-cores.js';
import { convSgmatUniforms, inputGradPhases } from '../kernels/conv-subgroup-matrix.js';
import { matmulReference } from '../kernels/matmul.js';
import { refGeom, conv2dReference, conv2dEpilogueReference, conv2dInputGradReference, conv2dWeightGradReference, convTranspose2dReference, type Conv2dRefParams, type ConvTranspose2dRefParams } from '../kernels/conv.js';
import { roundArrayToF16 } from '../kernels/f16.js';
import type { RefTensor } from '../kernels/common.js';

await ready;

const TOL = { atol: 1e-4, rtol: 1e-4 };
const r16 = (r: RefTensor): RefTensor => ({ shape: r.shape, data: roundArrayToF16(r.data) });
/** Subgroup and matrix sizes to emulate: NVIDIA's (32 lanes, 16 x 16) and a smaller pair. */
const SIZES = [{ S: 32, D: 16 }, { S: 8, D: 8 }];

/** Labels of the dispatches fn records. */
function labelsOf(fn: () => void): string[] {
  const labels: string[] = [];
  getBackend().captureDispatches((d) => labels.push(`${d.label} [${d.entry}]`));
  try {
    fn();
  } finally {
    getBackend().captureDispatches(null);
  }
  return labels;
}

for (const { S, D } of SIZES) {
  test(`S=${S} D=${D}: the init check's runs pass in emulation; a wrong conv epilogue is refused`, async () => {
    const device = getBackend().device;
    const runs = checkRuns(S, D, true);
    assert.is(checkResult(await runCheck(device, runs.matmul, waitForGPU)), null);
    assert.is(convCheckResult(await runCheck(device, runs.conv, waitForGPU)), null);
    assert.is(convGradCheckResult(await runCheck(device, runs.convGrad, waitForGPU)), null);
    assert.is(convWeightGradCheckResult(await runCheck(device, runs.convWeightGrad, waitForGPU)), null);
    // One split fewer (the last pixels left out) is refused, as is one stride phase of dx left out.
    const [wg] = runs.convWeightGrad.dispatches;
    const short = { ...runs.convWeightGrad, dispatches: [{ ...wg!, grid: [wg!.grid[0], wg!.grid[1], wg!.grid[2] - 1] as [number, number, number] }] };
    assert.is(runs.convGrad.dispatches.length, 4, 'stride 2: four phases');
    assert.match(convGradCheckResult(await runCheck(device, { ...runs.convGrad, dispatches: runs.convGrad.dispatches.slice(1) }, waitForGPU)) ?? '', /expected/);
    assert.match(convWeightGradCheckResult(await runCheck(device, short, waitForGPU)) ?? '', /expected|partial sums/);
    assert.match(convGradCheckResult(await runCheck(device, runs.conv, waitForGPU)) ?? '', /results for|expected/, 'the forward is not the input gradient');
    const g = refGeom(CONV_CHECK.x, CONV_CHECK.w, CONV_CHECK.p);
    const noRelu = { ...runs.conv, dispatches: [{ ...runs.conv.dispatches[0]!, uniforms: convSgmatUniforms(g, CONV_CHECK_FLAGS & ~2) }] };
    assert.match(convCheckResult(await runCheck(device, noRelu, waitForGPU)) ?? '', /expected/);
    // A kernel that does not compile is reported, not thrown past the check.
    const broken = { ...runs.matmul, kernel: { ...runs.matmul.kernel, wgsl: runs.matmul.kernel.wgsl.replace('let GK = K;', '') } };
    await runCheck(device, broken, waitForGPU).then(() => assert.unreachable('compiled'), (e: Error) => assert.match(e.message, /WGSL/));
  });

  test(`S=${S} D=${D}: autocast's matmul on the emulated tensor-core variant (odd shapes, batches, transposed views)`, async () => {
    emulateTensorCores({ S, D });
    try {
      const cases: [number[], number[], boolean][] = [
        [[7, 13], [13, 5], false],
        [[37, 45], [45, 132], false],
        [[3, 65, 33], [3, 33, 17], false],
        [[2, 19, 40], [40, 23], true],
      ];
      for (const [sa, sb, transposeB] of cases) {
        const a = ref(sa, 1), bStored = ref(transposeB ? [sb[1]!, sb[0]!] : sb, 2);
        const tb = transposeB ? F.transpose(gpu(bStored), 0, 1) : gpu(bStored);
        const bRef = transposeB ? transpose2(bStored) : bStored;
        const ta = gpu(a);
        assert.match(F.autocast(() => chooseMatmulVariant(ta, tb)).name, /^sgmat\d+_2x2_w2x2_k2_emulated$/);
        const labels = labelsOf(() => void F.autocast(() => F.matmul(ta, tb)).dispose());
        assert.ok(labels.some((l) => /matmul_sgmat/.test(l)), `no tensor-core dispatch: ${labels.join(', ')}`);
        const y = F.autocast(() => F.matmul(ta, tb));
        await expectRef(y, matmulReference(r16(a), r16(bRef)), TOL, `${sa} @ ${sb}${transposeB ? ' (B transposed)' : ''}`);
      }
      assert.not.match(chooseMatmulVariant(gpu(ref([4, 4], 3)), gpu(ref([4, 4], 4))).name, /^sgmat/, 'fp32 takes no f16 kernel');
      // Operands past f16's range become inf, NaN stays NaN: the GradScaler's inf check must see them.
      {
        const a = ref([9, 12], 7), b = ref([12, 10], 8, 0.5, 1);
        a.data[3 * 12 + 5] = 1e5;
        a.data[7 * 12 + 2] = NaN;
        const y = await F.autocast(() => F.matmul(gpu(a), gpu(b))).data();
        const want = matmulReference(r16(a), r16(b)).data;
        for (let i = 0; i < want.length; i++) {
          const row = Math.floor(i / 10);
          if (row === 3) assert.is(y[i], Infinity, `element ${i}: an operand of 1e5 is inf in f16`);
          else if (row === 7) assert.ok(Number.isNaN(y[i]), `element ${i}: a NaN operand stays NaN`);
          else assert.ok(Math.abs(y[i]! - want[i]!) <= 1e-4 * (1 + Math.abs(want[i]!)), `element ${i}: ${y[i]} vs ${want[i]}`);
        }
      }
      // Every tile offered (the autotuner's and bench/matmul.js's candidates), forced by name.
      const a = ref([70, 90], 5), b = ref([90, 50], 6);
      const names = subgroupMatrixVariants().map((v) => v.name);
      assert.is(names.length, 3);
      for (const name of names) {
        setMatmulVariant(name);
        try {
          await expectRef(F.autocast(() => F.matmul(gpu(a), gpu(b))), matmulReference(r16(a), r16(b)), TOL, `forced ${name}`);
        } finally {
          setMatmulVariant(null);
        }
      }
    } finally {
      emulateTensorCores(null);
    }
  });

  test(`S=${S} D=${D}: autocast's conv2d forward, weight gradient and input gradient (phase by phase) on the emulated tensor-core kernels; groups > 1 fall back`, async () => {
    emulateTensorCores({ S, D });
    try {
      const cases: { x: number[]; w: number[]; p: Conv2dRefParams; bias: boolean }[] = [
        { x: [2, 3, 7, 13], w: [5, 3, 3, 3], p: { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 }, bias: true },
        { x: [1, 2, 3, 5], w: [3, 2, 1, 1], p: { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 }, bias: false },
        { x: [2, 7, 5, 9], w: [19, 7, 1, 1], p: { stride: [1, 1], padding: [0, 0], dilation: [1, 1], groups: 1 }, bias: false },
        { x: [1, 3, 23, 17], w: [20, 3, 7, 7], p: { stride: [2, 2], padding: [3, 3], dilation: [1, 1], groups: 1 }, bias: true },
        { x: [2, 4, 11, 10], w: [6, 4, 3, 3], p: { stride: [1, 2], padding: [2, 1], dilation: [2, 1], groups: 1 }, bias: true },
        { x: [2, 5, 9, 8], w: [7, 5, 1, 1], p: { stride: [2, 2], padding: [0, 0], dilation: [1, 1], groups: 1 }, bias: false },
        { x: [1, 4, 12, 11], w: [6, 4, 3, 3], p: { stride: [3, 2], padding: [1, 2], dilation: [2, 1], groups: 1 }, bias: true },
        // Over 32 channels each way: every subgroup of a workgroup (2 x 2 of them) has rows.
        { x: [1, 37, 6, 7], w: [41, 37, 3, 3], p: { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 }, bias: true },
        { x: [2, 6, 7, 11], w: [9, 2, 3, 3], p: { stride: [2, 2], padding: [1, 1], dilation: [1, 1], groups: 3 }, bias: false },
      ];
      const splitCounts: number[] = [];
      for (const c of cases) {
        const xr = ref(c.x, 20, -1, 1), wr = ref(c.w, 21, -1, 1), br = c.bias ? ref([c.w[0]!], 22, -1, 1) : null;
        const x = gpu(xr, true), w = gpu(wr, true);
        const run = () => F.autocast(() => F.conv2d(x, w, br ? gpu(br) : null, c.p.stride, c.p.padding, c.p.dilation, c.p.groups));
        const labels = labelsOf(() => void F.noGrad(run).dispose());
        assert.is(labels.some((l) => /conv_fwd_sgmat/.test(l)), c.p.groups === 1, `${c.w}: tensor cores ${c.p.groups === 1 ? 'expected' : 'not expected'}: ${labels.join(', ')}`);
        const y = run();
        const want = conv2dReference(r16(xr), r16(wr), br, c.p);
        await expectRef(y, want, TOL, `conv x[${c.x}] w[${c.w}] forward`);
        const gy = ref(want.shape, 23, -1, 1);
        const bwd = labelsOf(() => F.backward(y, { grad: gpu(gy) }));
        assert.is(bwd.some((l) => /conv_dx_sgmat/.test(l)), c.p.groups === 1, `${c.w}: input gradient on tensor cores: ${bwd.join(', ')}`);
        await expectRef(x.grad!, conv2dInputGradReference(r16(gy), r16(wr), c.x, c.p), TOL, `conv x[${c.x}] w[${c.w}] grad input`);
        assert.is(bwd.some((l) => /conv_dw_sgmat/.test(l)), c.p.groups === 1, `${c.w}: weight gradient on tensor cores: ${bwd.join(', ')}`);
        splitCounts.push(...bwd.flatMap((l) => /(\d+) splits/.exec(l)?.[1] ?? []).map(Number));
        await expectRef(w.grad!, conv2dWeightGradReference(r16(gy), r16(xr), c.w, c.p), TOL, `conv x[${c.x}] w[${c.w}] grad weight`);
      }
      assert.ok(splitCounts.some((n) => n > 1) && splitCounts.includes(1), `split-K both ways: ${splitCounts}`);
      // Every epilogue term: y = relu(conv * scale + bias + residual).
      const xr = ref([2, 3, 7, 13], 70, -1, 1), wr = ref([21, 3, 3, 3], 71, -1, 1), sr = ref([21], 72, 0.3, 1.7), br = ref([21], 73, -1, 1), rr = ref([2, 21, 7, 13], 74, -1, 1);
      const p: Conv2dRefParams = { stride: [1, 1], padding: [1, 1], dilation: [1, 1], groups: 1 };
      const y = F.autocast(() => F.conv2d(gpu(xr), gpu(wr), gpu(br), 1, 1, 1, 1, { scale: gpu(sr), residual: gpu(rr), activation: 'relu' }));
      await expectRef(y, conv2dEpilogueReference(r16(xr), r16(wr), sr, br, rr, true, p), TOL, 'conv with scale, bias, residual, relu');
      // conv_transpose2d's forward is the input-gradient kernel: stride 1, dilation 2, bias over its output channels.
      const tx = ref([2, 6, 9, 7], 80, -1, 1), tw = ref([6, 17, 3, 3], 81, -1, 1), tb = ref([17], 82, -1, 1);
      const tp: ConvTranspose2dRefParams = { stride: [1, 1], padding: [2, 1], outputPadding: [0, 0], dilation: [2, 2], groups: 1 };
      let yt: F.Tensor | undefined;
      const fwd = labelsOf(() => void (yt = F.autocast(() => F.convTranspose2d(gpu(tx), gpu(tw), gpu(tb), 1, [2, 1], 0, 1, 2))));
      assert.ok(fwd.some((l) => /conv_dx_sgmat/.test(l)), `conv_transpose2d not on tensor cores: ${fwd.join(', ')}`);
      await expectRef(yt!, convTranspose2dReference(r16(tx), r16(tw), tb, tp), TOL, 'conv_transpose2d stride 1 dilation 2 with bias');
    } finally {
      emulateTensorCores(null);
    }
  });
}

test('a device that refuses tiles of several subgroups falls back to one subgroup per workgroup (faked report, emulated runs)', async () => {
  const report = adapterReport!;
  const saved = report.subgroupMatrix;
  const single = { tilesM: 4, tilesN: 4, sgM: 1, sgN: 1, kSteps: 1 };
  const kind = (entry: string) => (entry.startsWith('matmul_') ? 'matmul' : entry.startsWith('conv_fwd_') ? 'conv' : entry.startsWith('conv_dx_') ? 'convGrad' : 'convWeightGrad');
  const seen: string[] = [];
  // Several-subgroup kernels "fail to compile"; single-subgroup ones run in their emulated form.
  const runner: typeof runCheck = async (device, run, wait) => {
    seen.push(run.kernel.entry);
    if (/_w\d+x\d+/.test(run.kernel.entry)) throw new Error('WGSL: non-uniform subgroup matrix offset');
    return runCheck(device, checkRuns(8, 8, true, { matmul: single, conv: single })[kind(run.kernel.entry)], wait);
  };
  try {
    report.subgroupMatrix = { componentType: 'f16', resultComponentType: 'f32', M: 8, N: 8, K: 8, subgroupSize: 8 };
    const status = await checkSubgroupMatrix(getBackend().device, waitForGPU, runner);
    assert.match(status, /^tiles of several subgroups failed \(matmul_sgmat8_2x2_w2x2_k2 failed its check: WGSL: non-uniform.*\); one subgroup per workgroup instead$/);
    assert.equal(seen, ['matmul_sgmat8_2x2_w2x2_k2', 'conv_fwd_sgmat8_2x4_w2x2_k2', 'conv_dx_sgmat8_2x4_w2x2_k2', 'conv_dw_sgmat8_2x4_w2x2_k2', 'matmul_sgmat8_4x4', 'conv_fwd_sgmat8_4x4', 'conv_dx_sgmat8_4x4', 'conv_dw_sgmat8_4x4']);
    assert.equal(subgroupMatrixVariants().map((v) => v.name), ['sgmat8_4x4']);
    assert.equal(convTensorCoreSpec(), { S: 8, D: 8, ...single });
    assert.is(subgroupMatrixStatus(), '');
  } finally {
    report.subgroupMatrix = saved;
    setSubgroupMatrixChecked('');
  }
});

test('input-gradient phases: the taps that reach each phase, none wasted, none missed', () => {
  const geom = (k: number, s: number, p: number, d: number, H = 9) => refGeom([1, 1, H, H], [1, 1, k, k], { stride: [s, s], padding: [p, p], dilation: [d, d], groups: 1 });
  const byPhase = (k: number, s: number, p: number, d: number) => inputGradPhases(geom(k, s, p, d)).filter((q) => q.rw === 0).map((q) => [q.rh, q.kh0, q.nkh, q.kstepH]);
  assert.equal(byPhase(3, 1, 1, 1), [[0, 0, 3, 1]]);
  assert.equal(byPhase(3, 2, 1, 1), [[0, 1, 1, 1], [1, 0, 2, 2]]);
  assert.equal(byPhase(1, 2, 0, 1), [[0, 0, 1, 1], [1, 0, 0, 1]], '1x1 stride 2: the odd phase has no tap');
  assert.equal(byPhase(7, 2, 3, 1), [[0, 1, 3, 2], [1, 0, 4, 2]]);
  assert.equal(byPhase(3, 2, 2, 2), [[0, 0, 3, 1], [1, 0, 0, 1]], 'dilation 2, stride 2: every tap or none');
  // Every (pixel, tap) pair with (ih + p - kh*d) divisible by s is in exactly its phase's list.
  const g = geom(5, 3, 2, 2, 11);
  const phases = inputGradPhases(g);
  assert.is(phases.length, 9);
  for (const q of phases) {
    const taps = Array.from({ length: q.nkh }, (_, j) => q.kh0 + j * q.kstepH);
    const want = Array.from({ length: g.KH }, (_, k) => k).filter((k) => (((q.rh + g.ph - k * g.dh) % g.sh) + g.sh) % g.sh === 0);
    assert.equal(taps, want, `phase ${q.rh}`);
    assert.is(q.rows, Math.ceil((g.H - q.rh) / g.sh));
  }
});

function transpose2(r: RefTensor): RefTensor {
  const [R, C] = r.shape as [number, number];
  const out = new Float64Array(R * C);
  for (let i = 0; i < R; i++) for (let j = 0; j < C; j++) out[j * R + i] = r.data[i * C + j]!;
  return { shape: [C, R], data: out };
}

test.run();
