// Tensor-core GEMM for autocast (f16 operands, f32 accumulation) through Dawn's
// `chromium-experimental-subgroup-matrix` feature (WGSL `enable chromium_experimental_subgroup_matrix`,
// Vulkan VK_KHR_cooperative_matrix; on NVIDIA it also needs `shader-f16`, i.e. the device toggles
// allow_unsafe_apis and vulkan_enable_f16_on_nvidia, which cli/node-gpu.ts sets where they buy
// something). Where it runs: engine/device.ts asks for the features where the adapter offers them
// with an f16 x f16 -> f32 square configuration (D = 16 on NVIDIA); at init() the kernel must
// compute a small product with tails in M, N and K (engine/ops/matmul-subgroup-matrix.ts) before
// autocast's matmul lists its variants (first in the fixed table under autocast, autotuner
// candidates). Same uniforms, bindings, grid and numerics as kernels/matmul.ts's roundF16 variants:
// every operand element rounded to f16 with f16r, then stored as f16, which is exact; products and
// sums in f32. Its reference is matmulReference on roundArrayToF16 operands. Lavapipe (the only
// adapter in CI) offers neither the feature nor configurations, so this WGSL has not yet been
// compiled or run anywhere: tools/gpu-bench.sh's matmul benchmark is where it first will be.
//
// Shape: a workgroup is exactly one subgroup of S invocations (so every subgroup-matrix call sits in
// workgroup-uniform control flow with workgroup-uniform offsets) computing a TM x TN tile of C as
// tilesM x tilesN result matrices of D x D. Per D-wide slice of K it stages A (TM x D) and B (D x TN)
// in workgroup memory as f16, zero-padded past M, N and K, loads the left / right matrices from there
// and multiply-accumulates; at the end the result matrices go through workgroup memory so the store
// to C can be bounds-checked (M and N need not be multiples of D). A first, simple form: no double
// buffering, one subgroup per workgroup.
import { MATMUL_UNIFORMS } from './matmul.js';
import { F16_ROUND_WGSL } from './f16.js';

/** One entry of GPUAdapterInfo.subgroupMatrixConfigs (Dawn). */
export interface SubgroupMatrixConfig {
  componentType: string;
  resultComponentType: string;
  M: number;
  N: number;
  K: number;
}

export interface SubgroupMatrixSpec {
  /** The adapter's subgroup size (the workgroup size; min = max subgroup size required). */
  S: number;
  /** Square matrix size of the chosen configuration (M = N = K = D). */
  D: number;
  /** Result matrices per workgroup along M and N. */
  tilesM: number;
  tilesN: number;
}

/** The configuration autocast can use: f16 operands, f32 results, square; the largest such. Null when none. */
export function pickSubgroupMatrixConfig(configs: readonly SubgroupMatrixConfig[] | undefined): SubgroupMatrixConfig | null {
  const usable = (configs ?? []).filter((c) => c.componentType === 'f16' && c.resultComponentType === 'f32' && c.M === c.N && c.N === c.K);
  return usable.sort((x, y) => y.M - x.M)[0] ?? null;
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** C is dense [batch, M, N]. Workgroups: (ceil(N / (tilesN*D)), ceil(M / (tilesM*D)), batch). */
export function subgroupMatrixKernel(s: SubgroupMatrixSpec): { wgsl: string; entry: string } {
  const { S, D, tilesM, tilesN } = s;
  if (![8, 16].includes(D)) throw new Error(`subgroupMatrixKernel: matrix size ${D} (written for 8 or 16)`);
  if (!(Number.isInteger(S) && S >= 4 && S <= 128) || tilesM < 1 || tilesN < 1) throw new Error(`subgroupMatrixKernel: bad spec ${JSON.stringify(s)}`);
  const TM = tilesM * D, TN = tilesN * D;
  const ij = range(tilesM).flatMap((i) => range(tilesN).map((j) => [i, j] as const));
  const entry = `matmul_sgmat${D}_${tilesM}x${tilesN}`;
  const wgsl = `enable f16;
enable chromium_experimental_subgroup_matrix;
${F16_ROUND_WGSL}
${MATMUL_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
var<workgroup> As: array<f16, ${TM * D}>;
var<workgroup> Bs: array<f16, ${D * TN}>;
var<workgroup> Cs: array<f32, ${TM * TN}>;
@compute @workgroup_size(${S})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let M = u.M; let N = u.N; let K = u.K;
  let aBase = u.aOff + wid.z * u.aBatch;
  let bBase = u.bOff + wid.z * u.bBatch;
  let cBase = wid.z * u.cBatch;
  let row0 = wid.y * ${TM}u;
  let col0 = wid.x * ${TN}u;
${ij.map(([i, j]) => `  var acc${i}_${j} = subgroup_matrix_result<f32, ${D}, ${D}>();`).join('\n')}
  for (var k0 = 0u; k0 < K; k0 += ${D}u) {
    for (var e = lid; e < ${TM * D}u; e += ${S}u) {
      let r = row0 + e / ${D}u; let k = k0 + e % ${D}u;
      let v = f16r(a[aBase + min(r, M - 1u) * u.aM + min(k, K - 1u) * u.aK]);
      As[e] = f16(select(0.0, v, r < M && k < K));
    }
    for (var e = lid; e < ${D * TN}u; e += ${S}u) {
      let k = k0 + e / ${TN}u; let col = col0 + e % ${TN}u;
      let v = f16r(b[bBase + min(k, K - 1u) * u.bK + min(col, N - 1u) * u.bN]);
      Bs[e] = f16(select(0.0, v, k < K && col < N));
    }
    workgroupBarrier();
${range(tilesM).map((i) => `    let l${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, ${D}, ${D}>>(&As, ${i * D * D}u, false, ${D}u);`).join('\n')}
${range(tilesN).map((j) => `    let r${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, ${D}, ${D}>>(&Bs, ${j * D}u, false, ${TN}u);`).join('\n')}
${ij.map(([i, j]) => `    acc${i}_${j} = subgroupMatrixMultiplyAccumulate(l${i}, r${j}, acc${i}_${j});`).join('\n')}
    workgroupBarrier();
  }
${ij.map(([i, j]) => `  subgroupMatrixStore(&Cs, ${i * D * TN + j * D}u, acc${i}_${j}, false, ${TN}u);`).join('\n')}
  workgroupBarrier();
  for (var e = lid; e < ${TM * TN}u; e += ${S}u) {
    let r = row0 + e / ${TN}u; let col = col0 + e % ${TN}u;
    if (r < M && col < N) { c[cBase + r * N + col] = Cs[e]; }
  }
}
`;
  return { wgsl, entry };
}
