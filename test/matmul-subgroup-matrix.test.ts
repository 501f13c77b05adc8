// The tensor-core GEMM generator (kernels/matmul-subgroup-matrix.ts) cannot run here: lavapipe has
// no `chromium-experimental-subgroup-matrix`. What can be checked without a GPU: the configuration
// choice from adapter-reported lists (NVIDIA's f16/f32 16x16x16 and 16x8x16, Apple-style f32-only,
// f16 results only, none), the generator's refusals, and that the generated WGSL has the autocast
// numerics (operands through f16r before the exact f16 store) and the tile's bounds checks; and that
// this adapter indeed lacks the feature (so no engine path can reach the kernel here).
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { getBackend } from '../engine/backend.js';
import { adapterReport } from '../engine/device.js';
import { pickSubgroupMatrixConfig, subgroupMatrixKernel, type SubgroupMatrixConfig } from '../kernels/matmul-subgroup-matrix.js';

await ready;

const cfg = (componentType: string, resultComponentType: string, M: number, N: number, K: number): SubgroupMatrixConfig => ({ componentType, resultComponentType, M, N, K });

test('configuration choice: f16 operands with f32 results, square, the largest', () => {
  const nvidia = [cfg('f16', 'f16', 16, 16, 16), cfg('f16', 'f32', 16, 8, 16), cfg('f16', 'f32', 16, 16, 16), cfg('i8', 'i32', 16, 16, 32)];
  assert.equal(pickSubgroupMatrixConfig(nvidia), cfg('f16', 'f32', 16, 16, 16));
  assert.equal(pickSubgroupMatrixConfig([cfg('f16', 'f32', 8, 8, 8), cfg('f16', 'f32', 16, 16, 16)]), cfg('f16', 'f32', 16, 16, 16));
  assert.is(pickSubgroupMatrixConfig([cfg('f32', 'f32', 8, 8, 8)]), null, 'f32 operands are not autocast');
  assert.is(pickSubgroupMatrixConfig([cfg('f16', 'f16', 16, 16, 16)]), null, 'f16 accumulation is not autocast');
  assert.is(pickSubgroupMatrixConfig([]), null);
  assert.is(pickSubgroupMatrixConfig(undefined), null);
});

test('generator: refuses sizes it is not written for; the WGSL rounds operands with f16r and bounds-checks the store', () => {
  assert.throws(() => subgroupMatrixKernel({ S: 32, D: 32, tilesM: 2, tilesN: 2 }), /matrix size 32/);
  assert.throws(() => subgroupMatrixKernel({ S: 0, D: 16, tilesM: 2, tilesN: 2 }), /bad spec/);
  const { wgsl, entry } = subgroupMatrixKernel({ S: 32, D: 16, tilesM: 2, tilesN: 3 });
  assert.is(entry, 'matmul_sgmat16_2x3');
  assert.ok(wgsl.startsWith('enable f16;\nenable chromium_experimental_subgroup_matrix;'));
  assert.match(wgsl, /@compute @workgroup_size\(32\)/);
  assert.match(wgsl, /As\[e\] = f16\(select\(0\.0, v, r < M && k < K\)\);/);
  assert.match(wgsl, /let v = f16r\(a\[/);
  assert.match(wgsl, /let v = f16r\(b\[/);
  assert.is(wgsl.match(/subgroupMatrixMultiplyAccumulate/g)!.length, 6, 'one MMA per result matrix and K slice');
  assert.match(wgsl, /if \(r < M && col < N\) \{ c\[cBase \+ r \* N \+ col\] = Cs\[e\]; \}/);
  assert.match(wgsl, /subgroupMatrixStore\(&Cs, 800u, acc1_2, false, 48u\);/, 'tile (1, 2) at row 16, column 32 of the 32x48 tile: 16 * 48 + 32');
});

test('this adapter has no subgroup matrices (lavapipe): the kernel is unreachable here', () => {
  if (!/llvmpipe|lavapipe/i.test(adapterReport?.description ?? '')) return;
  assert.not.ok(getBackend().device.features.has('chromium-experimental-subgroup-matrix' as GPUFeatureName));
});

test.run();
