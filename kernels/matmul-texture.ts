// The 'texture' matmul family: 'subgroup' (kernels/matmul-subgroup.ts) with A read from an
// rgba32float texture instead of a storage buffer. Why (bench/RESULTS.md, "Texture-fed matmul"): on
// lavapipe (Mesa llvmpipe) a storage-buffer load whose address is not a compile-time or push-constant
// value is a runtime loop over the 8 SIMD lanes with a bounds check and one scalar load per lane per
// component, while a texel fetch is one vectorised call for all 8 lanes and 4 components.
//
// Two dispatches per matmul:
//  1. packA: A (any strides, batch broadcast, f16 rounding under autocast) is written into a scratch
//     texture: texel (kq, b*M + r) = A[b, r, 4kq .. 4kq+3], zero past K. Cost O(batch*M*K).
//  2. the matmul: a workgroup is one subgroup of S = 8 invocations along N ('direct' layout: each
//     holds a tm x tn register block of C and reads its own B columns from the storage buffer). Per
//     4-step slice of K, lane l fetches the texel of row (8g + l) of each group g of 8 rows (one
//     fetch serves 8 rows x 4 k), and row i's 4 values come from lane i % 8 by subgroupBroadcast
//     (a register shuffle on lavapipe). The K tail: A's texels are zero past K and B's row index is
//     clamped and the value zeroed (selects, no branches).
// Texture rows are b*M + r (r clamped to M - 1), so batch*M must not exceed maxTextureDimension2D,
// nor ceil(K/4) its width (engine/ops/matmul.ts checks). The float64 reference is matmulReference.
import { MATMUL_UNIFORMS, type MatmulVariant, type RegisterBlock } from './matmul.js';
import { F16_ROUND_WGSL, f16Load } from './f16.js';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Invocations per workgroup of packA (along the texture's width). */
export const PACK_WG = 64;

/**
 * packA: A into the texture at @binding(2) (buffers: [a]). Workgroups: (ceil(ceil(K/4) / PACK_WG),
 * batch * M). Uniforms: MATMUL_UNIFORMS (the matmul's own).
 */
export function packAKernel(roundF16: boolean): { wgsl: string; entry: string } {
  const loads = range(4).map((i) => `  let k${i} = kq * 4u + ${i}u;
  let v${i} = select(0.0, ${f16Load(`a[base + min(k${i}, K - 1u) * u.aK]`, roundF16)}, k${i} < K);`);
  return {
    entry: `matmul_pack_a${roundF16 ? '_f16' : ''}`,
    wgsl: `${roundF16 ? `${F16_ROUND_WGSL}\n` : ''}${MATMUL_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var t: texture_storage_2d<rgba32float, write>;
@compute @workgroup_size(${PACK_WG})
fn matmul_pack_a${roundF16 ? '_f16' : ''}(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let M = u.M; let K = u.K;
  let kq = gid.x; let row = wid.y;
  if (kq * 4u >= K) { return; }
  let base = u.aOff + (row / M) * u.aBatch + (row % M) * u.aM;
${loads.join('\n')}
  textureStore(t, vec2<u32>(kq, row), vec4<f32>(v0, v1, v2, v3));
}
`,
  };
}

/** The matmul's A declaration (after the buffers b, c at bindings 1 and 2). */
export const TEXTURE_A_DECL = '@group(0) @binding(3) var a: texture_2d<f32>;';

/** Lines naming each group g of 8 rows' texture row for this lane (at{g}), before the k-loop. */
export function textureRows(v: MatmulVariant): string[] {
  checkShape(v);
  return range(v.tm / 8).map((g) => `let at${g} = batch * M + min(row0 + ${g * 8}u + sl, M - 1u);`);
}

/** The k-loop lines (names as in RegisterBlock; `sl` is the subgroup invocation id). */
export function textureLoop(v: MatmulVariant, { tm, tnv, T, roundF16 }: RegisterBlock): string[] {
  checkShape(v);
  const lines = ['for (var k0 = 0u; k0 < K; k0 += 4u) {'];
  for (const g of range(tm / 8)) lines.push(`  let as${g} = textureLoad(a, vec2<u32>(k0 / 4u, at${g}), 0);`);
  for (const kk of range(4)) {
    lines.push(`  let k${kk} = min(k0 + ${kk}u, K - 1u);`);
    // Past K, B's clamped row is zeroed too: a zero A times an infinite B would be NaN.
    const load = (j: number) => f16Load(`b[bc${j} + k${kk} * bKv]`, roundF16, T !== 'f32');
    for (const j of range(tnv)) lines.push(`  let b${kk}_${j} = ${kk === 0 ? load(j) : `select(${T}(0.0), ${load(j)}, k0 + ${kk}u < K)`};`);
  }
  // Accumulator-major: row i's 4 A values arrive by broadcast just before its accumulators take all
  // 4 steps. The block's accumulators do not fit in 16 vector registers; in this order LLVM loads
  // and stores each once per slice instead of once per step (x86 spill moves per slice 545 -> 182
  // at 16 x 4), and the larger 32-row block that it makes affordable halves B's loads per FMA.
  for (const i of range(tm)) {
    lines.push(`  { let a = subgroupBroadcast(as${Math.floor(i / 8)}, ${i % 8}u);`);
    for (const j of range(tnv)) lines.push(`    ${range(4).map((kk) => `acc${i}_${j} = fma(${T}(a[${kk}]), b${kk}_${j}, acc${i}_${j});`).join(' ')}`);
    lines.push('  }');
  }
  lines.push('}');
  return lines;
}

function checkShape(v: MatmulVariant): void {
  if (v.subgroup !== 8 || v.wgN !== 8 || v.wgM !== 1 || v.tm % 8 !== 0) {
    throw new Error(`matmul variant ${v.name}: a texture variant's workgroup is one subgroup of 8 (wgN = subgroup = 8, wgM = 1) and tm a multiple of 8`);
  }
}
