// The tensor-core GEMM generator (kernels/matmul-subgroup-matrix.ts) cannot run here: lavapipe has
// no `chromium-experimental-subgroup-matrix`. What can be checked without a GPU: the configuration
// choice from adapter-reported lists (NVIDIA's f16/f32 16x16x16 and 16x8x16, Apple-style f32-only,
// f16 results only, none), the generator's refusals, and that the generated WGSL has the autocast
// numerics (operands through f16r before the exact f16 store) and the tile's bounds checks; and that
// this adapter indeed lacks the feature (so no engine path can reach the kernel here). And the wiring
// that a GPU will exercise: which features the device asks for given an adapter's offer, the init
// check's verdict on right and wrong products, and that autocast's matmul picks the tensor-core
// variant only under autocast and only once a check has passed (with a faked adapter report).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { getBackend } from '../engine/backend.js';
import { adapterReport, engineFeatures, SUBGROUP_MATRIX_FEATURE } from '../engine/device.js';
import { pickSubgroupMatrixConfig, subgroupMatrixKernel, type SubgroupMatrixConfig } from '../kernels/matmul-subgroup-matrix.js';
import { CHECK_SHAPE, checkOperands, checkResult, setSubgroupMatrixChecked, subgroupMatrixStatus, subgroupMatrixVariants } from '../engine/ops/tensor-cores.js';
import { chooseMatmulVariant } from '../engine/ops/matmul.js';
import { matmulKernel } from '../kernels/matmul.js';
import { tileShape, tileMemory } from '../kernels/subgroup-matrix-tile.js';
import { roundToF16 } from '../kernels/f16.js';
import { autocast, tensor } from '../engine/index.js';

await ready;

const cfg = (componentType: string, resultComponentType: string, M: number, N: number, K: number): SubgroupMatrixConfig => ({ componentType, resultComponentType, M, N, K });

test('configuration choice: f16 operands with f32 results, square, the largest', () => {
  const nvidia = [cfg('f16', 'f16', 16, 16, 16), cfg('f16', 'f32', 16, 8, 16), cfg('f16', 'f32', 16, 16, 16), cfg('i8', 'i32', 16, 16, 32)];
  assert.equal(pickSubgroupMatrixConfig(nvidia), cfg('f16', 'f32', 16, 16, 16));
  assert.equal(pickSubgroupMatrixConfig([cfg('f16', 'f32', 8, 8, 8), cfg('f16', 'f32', 16, 16, 16)]), cfg('f16', 'f32', 16, 16, 16));
  assert.is(pickSubgroupMatrixConfig([cfg('f32', 'f32', 8, 8, 8)]), null, 'f32 operands are not autocast');
  assert.is(pickSubgroupMatrixConfig([cfg('f16', 'f16', 16, 16, 16)]), null, 'f16 accumulation is not autocast');
  assert.is(pickSubgroupMatrixConfig([]), null);
  assert.equal(pickSubgroupMatrixConfig([cfg('f16', 'f32', 32, 32, 32), cfg('f16', 'f32', 8, 8, 8)]), cfg('f16', 'f32', 8, 8, 8), 'sizes the tile loop is written for only');
  assert.is(pickSubgroupMatrixConfig(undefined), null);
});

test('generator: refuses sizes it is not written for; the WGSL rounds operands with f16r, places each subgroup\'s matrices and bounds-checks the store', () => {
  assert.throws(() => subgroupMatrixKernel({ S: 32, D: 32, tilesM: 2, tilesN: 2 }), /matrix size 32/);
  assert.throws(() => subgroupMatrixKernel({ S: 0, D: 16, tilesM: 2, tilesN: 2 }), /bad spec/);
  assert.throws(() => subgroupMatrixKernel({ S: 32, D: 16, tilesM: 2, tilesN: 2, sgM: 3, sgN: 3 }), /288 invocations per workgroup/);
  const one = subgroupMatrixKernel({ S: 32, D: 16, tilesM: 2, tilesN: 3 });
  assert.is(one.entry, 'matmul_sgmat16_2x3');
  assert.is(one.wgsl.match(/subgroupMatrixMultiplyAccumulate/g)!.length, 6, 'one MMA per result matrix and K step');
  // 2 x 2 subgroups of 2 x 3 matrices, K staged in 2 steps: a 64 x 96 tile, 128 invocations.
  const s = { S: 32, D: 16, tilesM: 2, tilesN: 3, sgM: 2, sgN: 2, kSteps: 2 };
  assert.equal(tileShape(s), { TM: 64, TN: 96, KB: 32, WG: 128, SG: 4 });
  assert.is(tileMemory(s), 2 * (64 * 32 + 32 * 96) + 4 * 4 * 256);
  const { wgsl, entry } = subgroupMatrixKernel(s);
  assert.is(entry, 'matmul_sgmat16_2x3_w2x2_k2');
  assert.ok(wgsl.startsWith('enable f16;\nenable chromium_experimental_subgroup_matrix;\ndiagnostic(off, chromium.subgroup_matrix_uniformity);'));
  assert.match(wgsl, /@compute @workgroup_size\(128\)/);
  assert.match(wgsl, /let sg = lid \/ 32u; let lane = lid % 32u;\n  let sm = sg \/ 2u; let sn = sg % 2u;/);
  assert.match(wgsl, /As\[e\] = toF16\(select\(0\.0, v, r < GM && k < GK\)\);/);
  assert.match(wgsl, /let v = f16r\(a\[/);
  assert.match(wgsl, /let v = f16r\(b\[/);
  assert.is(wgsl.match(/subgroupMatrixMultiplyAccumulate/g)!.length, 12, 'one MMA per result matrix and K step');
  // Left matrix 1 at K step 1: row (sm*32 + 16) of the 32-wide A slice, column 16; right matrix 2 at
  // K step 1: row 16 of B's 96-wide slice, column sn*48 + 32.
  assert.match(wgsl, /subgroupMatrixLoad<subgroup_matrix_left<f16, 16, 16>>\(&As, \(sm \* 32u \+ 1u \* 16u\) \* 32u \+ 1u \* 16u, false, 32u\)/);
  assert.match(wgsl, /subgroupMatrixLoad<subgroup_matrix_right<f16, 16, 16>>\(&Bs, 1u \* 1536u \+ sn \* 48u \+ 2u \* 16u, false, 96u\)/);
  assert.match(wgsl, /subgroupMatrixStore\(&Cscr, scr, acc1_2, false, 16u\);/);
  assert.match(wgsl, /let r = row0 \+ sm \* 32u \+ 1u \* 16u \+ e \/ 16u; let col = col0 \+ sn \* 48u \+ 2u \* 16u \+ e % 16u;\n    if \(r < GM && col < GN\) \{ c\[cBase \+ r \* N \+ col\] = Cscr\[scr \+ e\]; \}/);
});

test('this adapter has no subgroup matrices (lavapipe): the kernel is unreachable here', () => {
  if (!/llvmpipe|lavapipe/i.test(adapterReport?.description ?? '')) return;
  assert.not.ok(getBackend().device.features.has('chromium-experimental-subgroup-matrix' as GPUFeatureName));
});

const fakeAdapter = (features: string[], configs: SubgroupMatrixConfig[]) => ({ features: new Set(features) as unknown as GPUSupportedFeatures, info: { subgroupMatrixConfigs: configs } as unknown as GPUAdapterInfo });

test('device features: shader-f16 wherever offered, subgroup matrices only with it and a usable configuration', () => {
  const all = ['timestamp-query', 'subgroups', 'shader-f16', SUBGROUP_MATRIX_FEATURE, 'float32-filterable'];
  const f16 = [cfg('f16', 'f32', 16, 16, 16)];
  assert.equal(engineFeatures(fakeAdapter(all, f16)), ['timestamp-query', 'subgroups', 'shader-f16', SUBGROUP_MATRIX_FEATURE]);
  assert.equal(engineFeatures(fakeAdapter(all, [cfg('f16', 'f16', 16, 16, 16)])), ['timestamp-query', 'subgroups', 'shader-f16'], 'no f32-result configuration');
  assert.equal(engineFeatures(fakeAdapter(all.filter((f) => f !== 'shader-f16'), f16)), ['timestamp-query', 'subgroups'], 'no shader-f16');
  assert.equal(engineFeatures(fakeAdapter(['subgroups', 'shader-f16'], f16)), ['subgroups', 'shader-f16'], 'lavapipe-like: no subgroup matrices (shader-f16 for the emulated tiles)');
});

/** The check's product computed on the host: f16-rounded operands, f32 sums over k (or fewer k). */
function hostProduct(kMax = CHECK_SHAPE.K, transposeB = false): Float32Array {
  const { M, K, N } = CHECK_SHAPE;
  const { a, b } = checkOperands();
  const c = new Float32Array(M * N);
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let s = 0;
      for (let k = 0; k < kMax; k++) s = Math.fround(s + roundToF16(a[i * K + k]!) * roundToF16(transposeB ? b[(j * K + k) % (K * N)]! : b[k * N + j]!));
      c[i * N + j] = s;
    }
  }
  return c;
}

test('init check: accepts autocast\'s product, refuses a dropped K tail, a wrong layout, a short result', () => {
  assert.is(checkResult(hostProduct()), null);
  assert.match(checkResult(hostProduct(48)) ?? '', /^element \d+ = .*expected/);
  assert.match(checkResult(hostProduct(CHECK_SHAPE.K, true)) ?? '', /expected/);
  assert.match(checkResult(new Float32Array(10)) ?? '', /10 results for 11550/);
  // Without f16 rounding the f32 product differs by more than the tolerance somewhere.
  const { M, K, N } = CHECK_SHAPE;
  const { a, b } = checkOperands();
  const exact = new Float32Array(M * N);
  for (let i = 0; i < M; i++) for (let j = 0; j < N; j++) for (let k = 0; k < K; k++) exact[i * N + j] += a[i * K + k]! * b[k * N + j]!;
  assert.ok(checkResult(exact) !== null, 'an f32 product is not autocast\'s');
});

test('autocast picks the tensor-core variant only under autocast and after a passed check (faked report)', () => {
  const report = adapterReport!;
  const saved = report.subgroupMatrix;
  const a = tensor(new Float32Array(64 * 32), [64, 32]), b = tensor(new Float32Array(32 * 48), [32, 48]);
  try {
    report.subgroupMatrix = { ...cfg('f16', 'f32', 16, 16, 16), subgroupSize: 32 };
    setSubgroupMatrixChecked('');
    assert.equal(subgroupMatrixVariants(), [], 'unchecked: none');
    assert.match(subgroupMatrixStatus(), /not checked/);
    assert.not.match(autocast(() => chooseMatmulVariant(a, b)).name, /^sgmat/);
    setSubgroupMatrixChecked('ok');
    assert.is(subgroupMatrixStatus(), '');
    assert.equal(subgroupMatrixVariants().map((v) => v.name), ['sgmat16_2x2_w2x2_k2', 'sgmat16_4x4_w2x2_k2', 'sgmat16_4x4']);
    const v = autocast(() => chooseMatmulVariant(a, b));
    assert.is(v.name, 'sgmat16_2x2_w2x2_k2');
    assert.equal([v.tm, v.tn, v.wgM, v.wgN, v.kSteps, v.subgroup, v.matrix], [32, 32, 2, 2, 2, 32, 16]);
    assert.match(matmulKernel(v, true).wgsl, /fn matmul_sgmat16_2x2_w2x2_k2\(/);
    assert.throws(() => matmulKernel(v, false), /autocast only/);
    assert.not.match(chooseMatmulVariant(a, b).name, /^sgmat/, 'fp32: never the f16 kernel');
  } finally {
    report.subgroupMatrix = saved;
    setSubgroupMatrixChecked('');
    a.dispose();
    b.dispose();
  }
});

test('this adapter: no tensor-core variants, nothing to report', () => {
  if (adapterReport?.subgroupMatrix) return;
  assert.equal(subgroupMatrixVariants(), []);
  assert.is(subgroupMatrixStatus(), '');
});

test.run();
