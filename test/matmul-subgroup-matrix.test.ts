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

test('generator: refuses sizes it is not written for; the WGSL rounds operands with f16r and bounds-checks the store', () => {
  assert.throws(() => subgroupMatrixKernel({ S: 32, D: 32, tilesM: 2, tilesN: 2 }), /matrix size 32/);
  assert.throws(() => subgroupMatrixKernel({ S: 0, D: 16, tilesM: 2, tilesN: 2 }), /bad spec/);
  const { wgsl, entry } = subgroupMatrixKernel({ S: 32, D: 16, tilesM: 2, tilesN: 3 });
  assert.is(entry, 'matmul_sgmat16_2x3');
  assert.ok(wgsl.startsWith('enable f16;\nenable chromium_experimental_subgroup_matrix;'));
  assert.match(wgsl, /@compute @workgroup_size\(32\)/);
  assert.match(wgsl, /As\[e\] = f16\(select\(0\.0, v, r < GM && k < GK\)\);/);
  assert.match(wgsl, /let v = f16r\(a\[/);
  assert.match(wgsl, /let v = f16r\(b\[/);
  assert.is(wgsl.match(/subgroupMatrixMultiplyAccumulate/g)!.length, 6, 'one MMA per result matrix and K slice');
  assert.match(wgsl, /if \(r < GM && col < GN\) \{ c\[cBase \+ r \* N \+ col\] = Cs\[e\]; \}/);
  assert.match(wgsl, /subgroupMatrixStore\(&Cs, 800u, acc1_2, false, 48u\);/, 'tile (1, 2) at row 16, column 32 of the 32x48 tile: 16 * 48 + 32');
});

test('this adapter has no subgroup matrices (lavapipe): the kernel is unreachable here', () => {
  if (!/llvmpipe|lavapipe/i.test(adapterReport?.description ?? '')) return;
  assert.not.ok(getBackend().device.features.has('chromium-experimental-subgroup-matrix' as GPUFeatureName));
});

const fakeAdapter = (features: string[], configs: SubgroupMatrixConfig[]) => ({ features: new Set(features) as unknown as GPUSupportedFeatures, info: { subgroupMatrixConfigs: configs } as unknown as GPUAdapterInfo });

test('device features: subgroup matrices and shader-f16 together, only with a usable configuration', () => {
  const all = ['timestamp-query', 'subgroups', 'shader-f16', SUBGROUP_MATRIX_FEATURE, 'float32-filterable'];
  const f16 = [cfg('f16', 'f32', 16, 16, 16)];
  assert.equal(engineFeatures(fakeAdapter(all, f16)), ['timestamp-query', 'subgroups', 'shader-f16', SUBGROUP_MATRIX_FEATURE]);
  assert.equal(engineFeatures(fakeAdapter(all, [cfg('f16', 'f16', 16, 16, 16)])), ['timestamp-query', 'subgroups'], 'no f32-result configuration');
  assert.equal(engineFeatures(fakeAdapter(all.filter((f) => f !== 'shader-f16'), f16)), ['timestamp-query', 'subgroups'], 'no shader-f16');
  assert.equal(engineFeatures(fakeAdapter(['subgroups', 'shader-f16'], f16)), ['subgroups'], 'lavapipe-like: no subgroup matrices');
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
  assert.match(checkResult(new Float32Array(10)) ?? '', /10 results for 1665/);
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
    assert.equal(subgroupMatrixVariants().map((v) => v.name), ['sgmat16_4x4', 'sgmat16_2x2', 'sgmat16_4x2']);
    const v = autocast(() => chooseMatmulVariant(a, b));
    assert.is(v.name, 'sgmat16_4x4');
    assert.equal([v.tm, v.tn, v.subgroup, v.matrix], [64, 64, 32, 16]);
    assert.match(matmulKernel(v, true).wgsl, /fn matmul_sgmat16_4x4\(/);
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
