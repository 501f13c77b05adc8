// Stable sort along the last dimension of a dense [rows, n] float32 tensor: bitonic sort of
// (rank, index) pairs over each row padded to a power of two P >= BLOCK. The rank is a u32 that
// orders floats (descending sorts use its complement), and ties resolve to the lower index, so
// the result is the stable order (torch.sort(stable=True)); NaN sorts as the largest value, as in
// torch. Steps with a compare distance below BLOCK run inside one workgroup in shared memory; the
// longer ones run one dispatch per step.
import { LINEAR_GROUP, WORKGROUP } from './common.js';
import { uniformBlock } from './uniforms.js';

/** Elements per workgroup block (two per thread). */
export const SORT_BLOCK = 2 * WORKGROUP;

/** Padded row length for n elements. */
export function sortPadded(n: number): number {
  let p = SORT_BLOCK;
  while (p < n) p *= 2;
  return p;
}

// Pairs are ordered by (rank, index) ascending; padding is (0xffffffff, 0xffffffff), always last.
const LESS = `fn less(a: vec2<u32>, b: vec2<u32>) -> bool { return (a.x < b.x) | ((a.x == b.x) & (a.y < b.y)); }`;

/**
 * WGSL sort_rank(bits, descending): the u32 whose unsigned order is the sort order of the float32
 * with these bits (ascending; complemented for descending), NaN one value above +inf, -0 == +0.
 */
export const SORT_RANK = `fn sort_rank(bits: u32, descending: bool) -> u32 {
  var b = bits;
  if ((b & 0x7fffffffu) > 0x7f800000u) { b = 0x7fc00000u; }  // one NaN, the largest
  if (b == 0x80000000u) { b = 0u; }                         // -0 == +0
  // Flip so unsigned order is float order: negatives reversed below positives.
  let r = select(b ^ 0x80000000u, ~b, (b & 0x80000000u) != 0u);
  return select(r, ~r, descending);
}`;

/** count = rows*P threads; descending is 0 or 1. */
export const SORT_INIT_UNIFORMS = uniformBlock('sort_init', { count: 'u32', P: 'u32', n: 'u32', xOffset: 'u32', descending: 'u32' });
/** count = rows*P/2 pairs; one compare-exchange step (k, j). */
export const SORT_STEP_UNIFORMS = uniformBlock('sort_step', { count: 'u32', P: 'u32', k: 'u32', j: 'u32' });
/** k is the merge stage ('merge' mode only; 0 for 'sort'). */
export const SORT_LOCAL_UNIFORMS = uniformBlock('sort_local', { P: 'u32', k: 'u32' });
/** count = rows*k outputs. */
export const SORT_OUTPUT_UNIFORMS = uniformBlock('sort_output', { count: 'u32', k: 'u32', P: 'u32', n: 'u32', xOffset: 'u32' });
/** count = rows*k gradients. */
export const SORT_SCATTER_UNIFORMS = uniformBlock('sort_scatter', { count: 'u32', k: 'u32', n: 'u32' });

/** Init: kv[row*P + i] = (rank(x[off + row*n + i]), i), padding beyond n. */
export function sortInitKernel(): { wgsl: string; entry: string } {
  const entry = 'sort_init';
  return {
    entry,
    wgsl: `${SORT_INIT_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> kv: array<vec2<u32>>;
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (t >= u.count) { return; }
  let P = u.P;
  let n = u.n;
  let row = t / P;
  let i = t % P;
  if (i >= n) { kv[t] = vec2<u32>(0xffffffffu, 0xffffffffu); return; }
  kv[t] = vec2<u32>(sort_rank(x[u.xOffset + row * n + i], u.descending != 0u), i);
}
${SORT_RANK}
`,
  };
}

/**
 * The start of a kernel with one thread per pair of a row of P: t, and the pair's row and position q
 * in it (0 <= q < P/2).
 */
const PAIR_HEAD = (entry: string, uniforms: string, bindings: string): string => `${uniforms}
${bindings}
${LESS}
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (t >= u.count) { return; }
  let row = t / (u.P / 2u);
  let q = t - row * (u.P / 2u);`;

/** One compare-exchange step (k, j) with j >= BLOCK, one thread per pair. */
export function sortStepKernel(): { wgsl: string; entry: string } {
  const entry = 'sort_step';
  return {
    entry,
    wgsl: `${PAIR_HEAD(entry, SORT_STEP_UNIFORMS.wgsl, '@group(0) @binding(1) var<storage, read_write> kv: array<vec2<u32>>;')}
  let k = u.k;
  let j = u.j;
  let lo = ((q & ~(j - 1u)) << 1u) | (q & (j - 1u)); // j is a power of two
  let a = row * u.P + lo;
  let ascending = (lo & k) == 0u;
  let x = kv[a];
  let y = kv[a + j];
  let swap = less(y, x) == ascending;
  kv[a] = select(x, y, swap);
  kv[a + j] = select(y, x, swap);
}
`,
  };
}

/**
 * In-workgroup steps over a block of BLOCK pairs. mode 'sort': all stages k = 2..BLOCK;
 * 'merge': stage k (uniform) for j = BLOCK/2 .. 1.
 */
export function sortLocalKernel(mode: 'sort' | 'merge'): { wgsl: string; entry: string } {
  const entry = `sort_local_${mode}`;
  const steps =
    mode === 'sort'
      ? `for (var k = 2u; k <= ${SORT_BLOCK}u; k = k << 1u) {
    for (var j = k >> 1u; j > 0u; j = j >> 1u) { step(lid, start, k, j); }
  }`
      : `for (var j = ${SORT_BLOCK / 2}u; j > 0u; j = j >> 1u) { step(lid, start, u.k, j); }`;
  return {
    entry,
    wgsl: `${SORT_LOCAL_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read_write> kv: array<vec2<u32>>;
var<workgroup> s: array<vec2<u32>, ${SORT_BLOCK}>;
${LESS}
fn step(lid: u32, start: u32, k: u32, j: u32) {
  let lo = ((lid & ~(j - 1u)) << 1u) | (lid & (j - 1u)); // (lid / j) * 2j + lid % j, j a power of two
  // Direction from the position within the row (start is a multiple of BLOCK within the row).
  let ascending = ((start + lo) & k) == 0u;
  let x = s[lo];
  let y = s[lo + j];
  // Branch-free exchange: CPU drivers (lavapipe) run invocations as SIMD lanes.
  let swap = less(y, x) == ascending;
  s[lo] = select(x, y, swap);
  s[lo + j] = select(y, x, swap);
  workgroupBarrier();
}
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let block = ${LINEAR_GROUP};
  let base = block * ${SORT_BLOCK}u;
  let start = base % u.P;
  s[lid] = kv[base + lid];
  s[lid + ${WORKGROUP}u] = kv[base + lid + ${WORKGROUP}u];
  workgroupBarrier();
  ${steps}
  kv[base + lid] = s[lid];
  kv[base + lid + ${WORKGROUP}u] = s[lid + ${WORKGROUP}u];
}
`,
  };
}

/** count = rows*P/2 outputs; P is the input row length (a multiple of 2*BLOCK). */
export const SORT_HALVE_UNIFORMS = uniformBlock('sort_halve', { count: 'u32', P: 'u32' });

/**
 * One round of a top-k (k <= BLOCK) over rows whose BLOCK-blocks are sorted in alternating
 * directions (as the block sort and the merges leave them): each pair of blocks (ascending,
 * descending) is a bitonic sequence, and the elementwise lesser of its halves holds the pair's BLOCK
 * smallest as a bitonic block (Batcher's half-cleaner), which a merge then sorts. Rows halve.
 */
export function sortHalveKernel(): { wgsl: string; entry: string } {
  const entry = 'sort_halve';
  return {
    entry,
    wgsl: `${PAIR_HEAD(entry, SORT_HALVE_UNIFORMS.wgsl, '@group(0) @binding(1) var<storage, read> src: array<vec2<u32>>;\n@group(0) @binding(2) var<storage, read_write> dst: array<vec2<u32>>;')}
  let a = row * u.P + (q / ${SORT_BLOCK}u) * ${2 * SORT_BLOCK}u + q % ${SORT_BLOCK}u;
  let x = src[a];
  let y = src[a + ${SORT_BLOCK}u];
  dst[t] = select(x, y, less(y, x));
}
`,
  };
}

/** The first `k` sorted entries of each row: values (gathered from x) and indices (int32). */
export function sortOutputKernel(): { wgsl: string; entry: string } {
  const entry = 'sort_output';
  return {
    entry,
    wgsl: `${SORT_OUTPUT_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> kv: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> values: array<f32>;
@group(0) @binding(4) var<storage, read_write> indices: array<i32>;
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (t >= u.count) { return; }
  let k = u.k;
  let row = t / k;
  let idx = kv[row * u.P + t % k].y;
  values[t] = x[u.xOffset + row * u.n + idx];
  indices[t] = i32(idx);
}
`,
  };
}

/** Backward of the sorted values: gx[row, idx[row, i]] = g[row, i] (distinct positions; gx zeroed). */
export function sortScatterKernel(): { wgsl: string; entry: string } {
  const entry = 'sort_scatter';
  return {
    entry,
    wgsl: `${SORT_SCATTER_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> indices: array<i32>;
@group(0) @binding(3) var<storage, read_write> gx: array<f32>;
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (t >= u.count) { return; }
  let row = t / u.k;
  gx[row * u.n + u32(indices[t])] = g[t];
}
`,
  };
}

/** float64 reference: stable sort of each row; NaN largest. Returns [values, indices] rows. */
export function sortReference(x: ArrayLike<number>, rows: number, n: number, descending: boolean, k = n): { values: number[]; indices: number[] } {
  const values: number[] = [], indices: number[] = [];
  const rank = (v: number): number => (Number.isNaN(v) ? Infinity : v);
  for (let r = 0; r < rows; r++) {
    const idx = Array.from({ length: n }, (_, i) => i);
    const v = (i: number): number => x[r * n + i]!;
    idx.sort((a, b) => {
      const va = rank(v(a)), vb = rank(v(b));
      const nanA = Number.isNaN(v(a)), nanB = Number.isNaN(v(b));
      if (nanA !== nanB) return (nanA ? 1 : -1) * (descending ? -1 : 1);
      if (va !== vb) return (va < vb ? -1 : 1) * (descending ? -1 : 1);
      return a - b;
    });
    for (const i of idx.slice(0, k)) {
      values.push(v(i));
      indices.push(i);
    }
  }
  return { values, indices };
}
