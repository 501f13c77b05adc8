// Tensor-core GEMM for autocast (f16 operands, f32 accumulation) through Dawn's
// `chromium-experimental-subgroup-matrix` feature (WGSL `enable chromium_experimental_subgroup_matrix`,
// Vulkan VK_KHR_cooperative_matrix; on NVIDIA it also needs `shader-f16`, i.e. the device toggles
// allow_unsafe_apis and vulkan_enable_f16_on_nvidia, which cli/node-gpu.ts sets where they buy
// something). Where it runs: engine/device.ts asks for the features where the adapter offers them
// with an f16 x f16 -> f32 square configuration (D = 16 on NVIDIA); at init() the kernel must
// compute a small product with tails in M, N and K (engine/ops/tensor-cores.ts) before
// autocast's matmul lists its variants (first in the fixed table under autocast, autotuner
// candidates). Same uniforms, bindings, grid and numerics as kernels/matmul.ts's roundF16 variants:
// every operand element rounded to f16 with f16r, then stored as f16, which is exact; products and
// sums in f32. Its reference is matmulReference on roundArrayToF16 operands. Lavapipe (the only
// adapter in CI) offers neither the feature nor configurations, so this WGSL has not yet been
// compiled or run anywhere: tools/gpu-bench.sh's matmul benchmark is where it first will be.
//
// The tile loop (and its emulated form, which runs anywhere) is kernels/subgroup-matrix-tile.ts's.
import { MATMUL_UNIFORMS } from './matmul.js';
import { subgroupMatrixTileWgsl, tileEntry, type SubgroupMatrixTileSpec } from './subgroup-matrix-tile.js';

/** One entry of GPUAdapterInfo.subgroupMatrixConfigs (Dawn). */
export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

export type SubgroupMatrixSpec = SubgroupMatrixTileSpec;

/** The configuration autocast can use: f16 operands, f32 results, square, of a size the tile loop is written for (8 or 16); the largest such. Null when none. */
export function pickSubgroupMatrixConfig(configs: readonly SubgroupMatrixConfig[] | undefined): SubgroupMatrixConfig | null {
  const usable = (configs ?? []).filter((c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && c.M === c.N && c.N === c.K && (c.M === 8 || c.M === 16));
  return usable.sort((x, y) => y.M - x.M)[0] ?? null;
}

/** C is dense [batch, M, N]. Workgroups: (ceil(N / TN), ceil(M / TM), batch) (tileShape). */
export function subgroupMatrixKernel(s: SubgroupMatrixSpec): { wgsl: string; entry: string } {
  const entry = tileEntry('matmul', s);
  const wgsl = subgroupMatrixTileWgsl(s, {
    entry,
    decls: `${MATMUL_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;`,
    prelude: `  let M = u.M; let N = u.N; let K = u.K;
  let GM = M; let GN = N; let GK = K;
  let aBase = u.aOff + wid.z * u.aBatch;
  let bBase = u.bOff + wid.z * u.bBatch;
  let cBase = wid.z * u.cBatch;`,
    loadA: (r, k) => `a[aBase + min(${r}, M - 1u) * u.aM + min(${k}, K - 1u) * u.aK]`,
    loadB: (k, col) => `b[bBase + min(${k}, K - 1u) * u.bK + min(${col}, N - 1u) * u.bN]`,
    store: (r, col, v) => `c[cBase + ${r} * N + ${col}] = ${v};`,
  });
  return { wgsl, entry };
}
