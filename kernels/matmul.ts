// Batched matrix multiply C[b] = A[b] @ B[b] with any strides for A and B (so transposed and
// broadcast operands are read in place). Each workgroup computes a TILE_M x TILE_N block of C;
// each thread a THREAD_M x THREAD_N register block, reading A and B tiles staged in workgroup
// memory. The float64 reference is the plain triple loop.
import { uniformDecl, uword, type RefTensor } from './common.js';

export interface MatmulConfig {
  /** Threads per workgroup along N and M. */
  wgN: number;
  wgM: number;
  /** Outputs per thread along M and N. */
  tm: number;
  tn: number;
  /** K-slice staged per step. */
  tk: number;
}

export const DEFAULT_MATMUL: MatmulConfig = { wgN: 16, wgM: 16, tm: 4, tn: 4, tk: 16 };

/**
 * Uniform words: M, N, K, batch, aOff, aBatch, aM, aK, bOff, bBatch, bK, bN, cBatch.
 * C is dense [batch, M, N]. Workgroups: (ceil(N/tileN), ceil(M/tileM), batch).
 */
export function matmulKernel(cfg: MatmulConfig = DEFAULT_MATMUL): { wgsl: string; entry: string } {
  const { wgN, wgM, tm, tn, tk } = cfg;
  const TM = wgM * tm;
  const TN = wgN * tn;
  const threads = wgN * wgM;
  const aLoads = Math.ceil((TM * tk) / threads);
  const bLoads = Math.ceil((tk * TN) / threads);
  const entry = 'matmul';
  const wgsl = `${uniformDecl(4)}
@group(0) @binding(1) var<storage, read> a: array<f32>;
@group(0) @binding(2) var<storage, read> b: array<f32>;
@group(0) @binding(3) var<storage, read_write> c: array<f32>;
var<workgroup> As: array<f32, ${TM * tk}>;
var<workgroup> Bs: array<f32, ${tk * TN}>;
@compute @workgroup_size(${wgN}, ${wgM})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let M = ${uword(0)}; let N = ${uword(1)}; let K = ${uword(2)};
  let batch = wid.z;
  let aBase = ${uword(4)} + batch * ${uword(5)};
  let bBase = ${uword(8)} + batch * ${uword(9)};
  let aM = ${uword(6)}; let aK = ${uword(7)}; let bK = ${uword(10)}; let bN = ${uword(11)};
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
        As[e] = select(0.0, a[aBase + gr * aM + gk * aK], gr < M && gk < K);
      }
    }
    for (var l = 0u; l < ${bLoads}u; l++) {
      let e = lid + l * ${threads}u;
      if (e < ${tk * TN}u) {
        let kk = e / ${TN}u; let cc = e % ${TN}u;
        let gk = k0 + kk; let gc = col0 + cc;
        Bs[e] = select(0.0, b[bBase + gk * bK + gc * bN], gk < K && gc < N);
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
  let cBase = batch * ${uword(12)};
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
  return { wgsl, entry };
}

export function matmulTile(cfg: MatmulConfig = DEFAULT_MATMUL): { tileM: number; tileN: number } {
  return { tileM: cfg.wgM * cfg.tm, tileN: cfg.wgN * cfg.tn };
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
