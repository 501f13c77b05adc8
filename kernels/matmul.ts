// Batched matrix multiply C[b] = A[b] @ B[b], generated from parameters into two kernel families:
//  - 'tiled': a workgroup stages TILE_M x tk and tk x TILE_N slices of A and B in workgroup memory,
//    each thread accumulates a tm x tn register block. Reads A and B with any strides, so it is the
//    general path (transposed, broadcast, odd offsets).
//  - 'direct': no workgroup memory; each thread reads its A rows and B columns straight from the
//    storage buffers into a tm x tn register block; optionally B is read (and C written) as vec4
//    along N when B's rows are contiguous. This is the fast family on CPU WebGPU (lavapipe): there
//    the CPU caches do what workgroup memory does on a GPU, barriers cost coroutine switches, and
//    every divergent load is a per-lane loop of scalar loads (~15 FMAs' worth each), so the largest
//    register block that still compiles well (16 x 8 per invocation) wins.
//  - 'subgroup' (kernels/matmul-subgroup.ts) and 'texture' (kernels/matmul-texture.ts): 'direct'
//    with A shared across an 8-lane subgroup; 'texture' reads A from a packed rgba32float texture,
//    lavapipe's fastest (a texel fetch is one vectorised call, a storage load a per-lane loop).
//  - 'subgroupMatrix' (kernels/matmul-subgroup-matrix.ts): tensor cores, f16 operands, autocast only.
// Every variant also comes in a `roundF16` form (autocast): each A and B element is rounded to f16
// as it is loaded (kernels/f16.ts), products and sums stay f32; the reference is the same triple
// loop on operands rounded with roundArrayToF16.
// The float64 reference is the plain triple loop.
import type { RefTensor } from './common.js';
import { F16_ROUND_WGSL, f16Load } from './f16.js';
import { uniformBlock } from './uniforms.js';
import { subgroupLoop } from './matmul-subgroup.js';
import { textureLoop, textureRows, TEXTURE_A_DECL } from './matmul-texture.js';
import { subgroupMatrixKernel } from './matmul-subgroup-matrix.js';

export interface MatmulVariant {
  name: string;
  kind: 'tiled' | 'direct' | 'subgroup' | 'texture' | 'subgroupMatrix';
  /** Threads per workgroup along N and M. */
  wgN: number;
  wgM: number;
  /** Outputs per thread along M and N (tn counts scalars; a multiple of 4 when vecB). */
  tm: number;
  tn: number;
  /** 'tiled': K-slice staged per step. */
  tk?: number;
  /** 'direct', 'subgroup', 'texture': B read / C written as vec4 along N (needs bN = 1 and N, B offsets, bK divisible by 4). */
  vecB?: boolean;
  /** 'subgroup', 'texture', 'subgroupMatrix': the subgroup size it is written for (the adapter's must be exactly this). */
  subgroup?: number;
  /** 'subgroupMatrix' (kernels/matmul-subgroup-matrix.ts, autocast only): the D x D matrix size; tm and tn are multiples of it. */
  matrix?: number;
  /** 'subgroupMatrix': D-wide steps of K per staged slice (default 1); wgM x wgN are its subgroups per workgroup. */
  kSteps?: number;
  /** 'subgroupMatrix': the emulated form (kernels/subgroup-matrix-tile.ts; tests on adapters without subgroup matrices). */
  emulate?: boolean;
}

/** Operand layout in elements, as passed in the uniforms. */
export interface MatmulLayout {
  M: number;
  N: number;
  K: number;
  aOff: number;
  aBatch: number;
  aM: number;
  aK: number;
  bOff: number;
  bBatch: number;
  bK: number;
  bN: number;
}

/** Whether a variant can compute this layout (the 'tiled' ones take anything). */
export function variantFits(v: MatmulVariant, l: MatmulLayout): boolean {
  const by4 = (...xs: number[]) => xs.every((x) => x % 4 === 0);
  if (v.vecB && !(l.bN === 1 && by4(l.N, l.bOff, l.bBatch, l.bK))) return false;
  return true;
}

export function variantTile(v: MatmulVariant): { tileM: number; tileN: number } {
  return { tileM: v.wgM * v.tm, tileN: v.wgN * v.tn };
}

/** A MatmulLayout, the batch count and C's batch stride (elements). */
export const MATMUL_UNIFORMS = uniformBlock('matmul', {
  M: 'u32',
  N: 'u32',
  K: 'u32',
  batch: 'u32',
  aOff: 'u32',
  aBatch: 'u32',
  aM: 'u32',
  aK: 'u32',
  bOff: 'u32',
  bBatch: 'u32',
  bK: 'u32',
  bN: 'u32',
  cBatch: 'u32',
});

/**
 * C is dense [batch, M, N]. Workgroups: (ceil(N/tileN), ceil(M/tileM), batch). roundF16: the
 * autocast form (operands rounded to f16 at each load, f32 accumulation).
 */
export function matmulKernel(v: MatmulVariant, roundF16 = false): { wgsl: string; entry: string } {
  if (v.kind === 'subgroupMatrix') {
    // f16 operands by construction: only the autocast form exists.
    if (!roundF16 || !v.matrix || !v.subgroup) throw new Error(`matmul variant ${v.name}: a subgroup-matrix variant runs under autocast only, with its matrix and subgroup size`);
    return subgroupMatrixKernel({ S: v.subgroup, D: v.matrix, tilesM: v.tm / v.matrix, tilesN: v.tn / v.matrix, sgM: v.wgM, sgN: v.wgN, kSteps: v.kSteps ?? 1, ...(v.emulate ? { emulate: true } : {}) });
  }
  const wgsl = v.kind === 'tiled' ? tiledWgsl(v, roundF16) : registerWgsl(v, roundF16);
  return { wgsl: roundF16 ? wgsl.replace(MATMUL_UNIFORMS.wgsl, `${F16_ROUND_WGSL}\n${MATMUL_UNIFORMS.wgsl}`) : wgsl, entry: `matmul_${v.name}` };
}

const PRELUDE = `  let M = u.M; let N = u.N; let K = u.K;
  let batch = wid.z;
  let aBase = u.aOff + batch * u.aBatch;
  let bBase = u.bOff + batch * u.bBatch;
  let aM = u.aM; let aK = u.aK; let bK = u.bK; let bN = u.bN;
  let cBase = batch * u.cBatch;`;

function tiledWgsl(v: MatmulVariant, r16: boolean): string {
  const { wgN, wgM, tm, tn } = v;
  const tk = v.tk ?? 16;
  const TM = wgM * tm, TN = wgN * tn, threads = wgN * wgM;
  const aLoads = Math.ceil((TM * tk) / threads), bLoads = Math.ceil((tk * TN) / threads);
  return `${MATMUL_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
var<workgroup> As: array<f32, ${TM * tk}>;
var<workgroup> Bs: array<f32, ${tk * TN}>;
@compute @workgroup_size(${wgN}, ${wgM})
fn matmul_${v.name}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
${PRELUDE}
  let row0 = wid.y * ${TM}u;
  let col0 = wid.x * ${TN}u;
  var acc: array<f32, ${tm * tn}>;
  for (var i = 0u; i < ${tm * tn}u; i++) { acc[i] = 0.0; }
  for (var k0 = 0u; k0 < K; k0 += ${tk}u) {
    for (var l = 0u; l < ${aLoads}u; l++) {
      let e = lid + l * ${threads}u;
      if (e < ${TM * tk}u) {
        let r = e / ${tk}u; let kk = e % ${tk}u;
        let gr = row0 + r; let gk = k0 + kk;
        As[e] = select(0.0, ${f16Load('a[aBase + gr * aM + gk * aK]', r16)}, gr < M && gk < K);
      }
    }
    for (var l = 0u; l < ${bLoads}u; l++) {
      let e = lid + l * ${threads}u;
      if (e < ${tk * TN}u) {
        let kk = e / ${TN}u; let cc = e % ${TN}u;
        let gk = k0 + kk; let gc = col0 + cc;
        Bs[e] = select(0.0, ${f16Load('b[bBase + gk * bK + gc * bN]', r16)}, gk < K && gc < N);
      }
    }
    workgroupBarrier();
    for (var kk = 0u; kk < ${tk}u; kk++) {
      var av: array<f32, ${tm}>;
      var bv: array<f32, ${tn}>;
      for (var i = 0u; i < ${tm}u; i++) { av[i] = As[(lid3.y + i * ${wgM}u) * ${tk}u + kk]; }
      for (var j = 0u; j < ${tn}u; j++) { bv[j] = Bs[kk * ${TN}u + lid3.x + j * ${wgN}u]; }
      for (var i = 0u; i < ${tm}u; i++) {
        for (var j = 0u; j < ${tn}u; j++) { acc[i * ${tn}u + j] = fma(av[i], bv[j], acc[i * ${tn}u + j]); }
      }
    }
    workgroupBarrier();
  }
  for (var i = 0u; i < ${tm}u; i++) {
    let r = row0 + lid3.y + i * ${wgM}u;
    if (r >= M) { continue; }
    for (var j = 0u; j < ${tn}u; j++) {
      let cc = col0 + lid3.x + j * ${wgN}u;
      if (cc < N) { c[cBase + r * N + cc] = acc[i * ${tn}u + j]; }
    }
  }
}
`;
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** Names a register-blocked k-loop works with: tm rows ar{i} of A, tnv column bases bc{j} of B, accumulators acc{i}_{j}. */
export interface RegisterBlock {
  tm: number;
  tnv: number;
  /** The accumulator / B element type: f32 or vec4<f32>. */
  T: string;
  /** Autocast form: round every loaded A and B element to f16. */
  roundF16: boolean;
}

/** 'direct': each invocation reads its A rows and B columns itself every step. */
function directLoop({ tm, tnv, T, roundF16 }: RegisterBlock): string[] {
  return [
    'for (var k = 0u; k < K; k++) {',
    ...range(tnv).map((j) => `  let b${j} = ${f16Load(`b[bc${j} + k * bKv]`, roundF16, T !== 'f32')};`),
    ...range(tm).map((i) => `  let a${i} = ${f16Load(`a[ar${i} + k * aK]`, roundF16)};`),
    ...range(tm).flatMap((i) => range(tnv).map((j) => `  acc${i}_${j} = fma(${T}(a${i}), b${j}, acc${i}_${j});`)),
    '}',
  ];
}

/**
 * Register-blocked, no workgroup memory ('direct' and 'subgroup', which differ in the k-loop only;
 * 'texture', which also reads A from a packed texture: kernels/matmul-texture.ts).
 * Statements are unrolled in the generator (named registers).
 */
function registerWgsl(v: MatmulVariant, roundF16: boolean): string {
  const { wgN, wgM, tm, vecB = false } = v;
  const tnv = v.tn / (vecB ? 4 : 1); // B/C reads per row per thread
  const T = vecB ? 'vec4<f32>' : 'f32';
  const tex = v.kind === 'texture';
  const sg = v.kind === 'subgroup' || tex;
  const ly = wgM === 1 ? '' : ' + lid.y';
  const lines: string[] = [];
  const emit = (s: string) => lines.push(`  ${s}`);
  emit(`let row0 = wid.y * ${wgM * tm}u${ly};`);
  emit(`let colv0 = wid.x * ${wgN * tnv}u + lid.x;`);
  emit(vecB ? 'let Nv = N / 4u;' : 'let Nv = N;');
  // Out-of-range rows/columns read the last valid one (no branches in the loop) and are not stored.
  if (tex) textureRows(v).forEach(emit);
  else for (const i of range(tm)) emit(`let ar${i} = aBase + min(row0 + ${i * wgM}u, M - 1u) * aM;`);
  for (const j of range(tnv)) emit(`let bc${j} = ${vecB ? 'bBase / 4u + ' : 'bBase + '}min(colv0 + ${j * wgN}u, Nv - 1u)${vecB ? '' : ' * bN'};`);
  emit(vecB ? 'let bKv = bK / 4u;' : 'let bKv = bK;');
  for (const i of range(tm)) for (const j of range(tnv)) emit(`var acc${i}_${j} = ${T}(0.0);`);
  const block = { tm, tnv, T, roundF16 };
  for (const l of tex ? textureLoop(v, block) : sg ? subgroupLoop(v, block) : directLoop(block)) emit(l);
  for (const i of range(tm)) {
    emit(`if (row0 + ${i * wgM}u < M) {`);
    for (const j of range(tnv)) {
      const col = `colv0 + ${j * wgN}u`;
      emit(`  if (${col} < Nv) { c[${vecB ? 'cBase / 4u' : 'cBase'} + (row0 + ${i * wgM}u) * Nv + ${col}] = acc${i}_${j}; }`);
    }
    emit('}');
  }
  return `${sg ? 'enable subgroups;\n' : ''}${MATMUL_UNIFORMS.wgsl}
${tex ? '' : '@group(0) @binding(1) var<storage, read> a: array<f32>;\n'}@group(0) @binding(${tex ? 1 : 2}) var<storage, read> b: array<${T}>;
@group(0) @binding(${tex ? 2 : 3}) var<storage, read_write> c: array<${T}>;
${tex ? `${TEXTURE_A_DECL}\n` : ''}@compute @workgroup_size(${wgN}, ${wgM})
fn matmul_${v.name}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>${sg ? ', @builtin(subgroup_invocation_id) sl: u32' : ''}) {
${PRELUDE}
${lines.join('\n')}
}
`;
}

/**
 * The quick-to-compile variant of a 'direct' kernel (engine/tiering.ts runs it while the fast one
 * compiles in the background): the same grid, uniforms and bindings, each invocation's tm x tn
 * outputs computed one at a time by a k-loop, so nothing is unrolled. Each output is the same chain
 * of fma over k as in the fast kernel: bit for bit the same C.
 */
export function matmulQuickKernel(v: MatmulVariant, roundF16 = false): { wgsl: string; entry: string } {
  if (v.kind !== 'direct') throw new Error(`matmulQuickKernel: only 'direct' variants have one (got ${v.name})`);
  const { wgN, wgM, tm, vecB = false } = v;
  const tnv = v.tn / (vecB ? 4 : 1);
  const T = vecB ? 'vec4<f32>' : 'f32';
  const wgsl = `${roundF16 ? `${F16_ROUND_WGSL}\n` : ''}${MATMUL_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<${T}>;
@group(0) @binding(3) var<storage, read_write> c: array<${T}>;
@compute @workgroup_size(${wgN}, ${wgM})
fn matmul_${v.name}_quick(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
${PRELUDE}
  let row0 = wid.y * ${wgM * tm}u${wgM === 1 ? '' : ' + lid.y'};
  let colv0 = wid.x * ${wgN * tnv}u + lid.x;
  let Nv = N${vecB ? ' / 4u' : ''};
  let bKv = bK${vecB ? ' / 4u' : ''};
  for (var i = 0u; i < ${tm}u; i++) {
    let r = row0 + i * ${wgM}u;
    if (r >= M) { break; }
    let ar = aBase + r * aM;
    for (var j = 0u; j < ${tnv}u; j++) {
      let cv = colv0 + j * ${wgN}u;
      if (cv >= Nv) { break; }
      let bc = ${vecB ? 'bBase / 4u + cv' : 'bBase + cv * bN'};
      var acc = ${T}(0.0);
      for (var k = 0u; k < K; k++) {
        acc = fma(${T}(${f16Load('a[ar + k * aK]', roundF16)}), ${f16Load('b[bc + k * bKv]', roundF16, vecB)}, acc);
      }
      c[${vecB ? 'cBase / 4u' : 'cBase'} + r * Nv + cv] = acc;
    }
  }
}
`;
  return { wgsl, entry: `matmul_${v.name}_quick` };
}

/** float64 reference: a [..., M, K] @ b [..., K, N] with broadcast batch dims. */
export function matmulReference(a: RefTensor, b: RefTensor): RefTensor {
  const M = a.shape[a.shape.length - 2]!, K = a.shape[a.shape.length - 1]!;
  const N = b.shape[b.shape.length - 1]!;
  if (b.shape[b.shape.length - 2] !== K) throw new Error('matmulReference: inner dims differ');
  const aBatch = a.shape.slice(0, -2), bBatch = b.shape.slice(0, -2);
  const nd = Math.max(aBatch.length, bBatch.length);
  const batch: number[] = [];
  for (let i = 0; i < nd; i++) {
    const x = aBatch[i - nd + aBatch.length] ?? 1, y = bBatch[i - nd + bBatch.length] ?? 1;
    batch.push(Math.max(x, y));
  }
  const nb = batch.reduce((p, q) => p * q, 1);
  const out = new Float64Array(nb * M * N);
  const index = (shape: number[], flat: number): number => {
    // Broadcast batch index of `flat` (in `batch`) into an operand with batch shape `shape`.
    let idx = 0, mul = 1, f = flat;
    for (let i = nd - 1; i >= 0; i--) {
      const c = f % batch[i]!;
      f = (f - c) / batch[i]!;
      const k = i - nd + shape.length;
      if (k >= 0) {
        idx += (shape[k] === 1 ? 0 : c) * mul;
        mul *= shape[k]!;
      }
    }
    return idx;
  };
  for (let t = 0; t < nb; t++) {
    const ao = index(aBatch, t) * M * K, bo = index(bBatch, t) * K * N;
    for (let i = 0; i < M; i++) {
      for (let j = 0; j < N; j++) {
        let s = 0;
        for (let k = 0; k < K; k++) s += a.data[ao + i * K + k]! * b.data[bo + k * N + j]!;
        out[t * M * N + i * N + j] = s;
      }
    }
  }
  return { shape: [...batch, M, N], data: out };
}
