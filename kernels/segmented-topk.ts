// Segmented top-k: for every row of a dense [N, R] float32 x and every segment [start, start+count)
// of the row (the same segments in every row), the k largest (or smallest) in stable order, all
// segments in a fixed number of dispatches however many there are. A radix select finds each
// segment's k-th rank key (the u32 sort_rank of kernels/sort.ts, complemented for the largest) in
// three digit passes (11, 11 and 10 bits), each a histogram over chunks of CHUNK elements (every
// segment's chunks in one dispatch, a histogram per chunk, no atomics across workgroups) and a
// select (a workgroup per segment sums its chunks' histograms and picks the digit holding the k-th
// key). A compaction then writes each segment's k (rank, column) pairs into a [segments, P] row:
// the keys below the k-th in any order, and of the keys equal to it the ones with the lowest
// columns (each chunk's ties ranked by a prefix over the chunks before it), so the bitonic sort of
// kernels/sort.ts on those short rows (P = next power of two of the largest k) gives torch's stable
// order. An output pass gathers values and columns in segment order. mergeRunsKernel orders a row
// made of such sorted segments by one merge instead of a sort.
//
// Buffers shared by the kernels (u32 words):
//   meta: per segment s (S = N * L, s = n * L + l) 8 words {start, count, k, outCol, row, firstChunk,
//         chunks, 0}, then per chunk 2 words {segment, offset of the chunk in its segment};
//   hist: [chunks, BINS] digit counts of the current pass;
//   state: per segment 4 words {prefix, mask, remaining, 0}: the key bits found so far, which bits
//         they are, and how many keys equal to the prefix are still to take;
//   tieBefore: [chunks] keys equal to the k-th key in the segment's earlier chunks;
//   slots: [S] atomic count of the pairs written below the k-th key.
import { LINEAR_GROUP, WORKGROUP } from './common.js';
import { uniformBlock } from './uniforms.js';
import { SORT_RANK, sortReference } from './sort.js';

/** Bins of one digit (the widest: 11 bits). */
export const TOPK_BINS = 2048;
/** The digit passes, most significant first: [shift, bits]. */
export const TOPK_PASSES: readonly (readonly [number, number])[] = [[21, 11], [10, 11], [0, 10]];
/** Elements per thread in the histogram and compaction kernels; a chunk is WORKGROUP of them each. */
const PER_THREAD = 16;
/** Elements per chunk (one workgroup of the histogram and compaction kernels). */
export const TOPK_CHUNK = WORKGROUP * PER_THREAD;
/** meta words per segment and per chunk. */
export const TOPK_SEG_WORDS = 8;
export const TOPK_CHUNK_WORDS = 2;

export const TOPK_HIST_UNIFORMS = uniformBlock('topk_hist', { chunks: 'u32', S: 'u32', R: 'u32', xOffset: 'u32', descending: 'u32', shift: 'u32', bits: 'u32', phase: 'u32' });
export const TOPK_SELECT_UNIFORMS = uniformBlock('topk_select', { S: 'u32', shift: 'u32', bits: 'u32', phase: 'u32', last: 'u32' });
export const TOPK_COMPACT_UNIFORMS = uniformBlock('topk_compact', { chunks: 'u32', S: 'u32', R: 'u32', xOffset: 'u32', descending: 'u32', P: 'u32' });
/** count = N * C outputs (C: the sum of the segments' k), L segments a row. */
export const TOPK_OUTPUT_UNIFORMS = uniformBlock('topk_output', { count: 'u32', C: 'u32', L: 'u32', R: 'u32', xOffset: 'u32', P: 'u32' });

const HEAD = `@compute @workgroup_size(${WORKGROUP})`;
const ARGS = `@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32`;
/** The chunk of this workgroup and its segment's fields (cs: its segment's meta base). */
const CHUNK_FIELDS = `
  let c = min(${LINEAR_GROUP}, u.chunks - 1u);
  let live = ${LINEAR_GROUP} < u.chunks;
  let s = segs[u.S * ${TOPK_SEG_WORDS}u + c * ${TOPK_CHUNK_WORDS}u];
  let off = segs[u.S * ${TOPK_SEG_WORDS}u + c * ${TOPK_CHUNK_WORDS}u + 1u];
  let start = segs[s * ${TOPK_SEG_WORDS}u];
  let count = segs[s * ${TOPK_SEG_WORDS}u + 1u];
  let k = segs[s * ${TOPK_SEG_WORDS}u + 2u];
  let base = u.xOffset + segs[s * ${TOPK_SEG_WORDS}u + 4u] * u.R + start;
  let end = min(off + ${TOPK_CHUNK}u, count);`;

/** Histogram of one digit over one chunk, of the keys whose higher digits match the prefix found so far. */
export function topkHistKernel(): { wgsl: string; entry: string } {
  const entry = 'topk_hist';
  return {
    entry,
    wgsl: `${TOPK_HIST_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> segs: array<u32>;
@group(0) @binding(3) var<storage, read> state: array<u32>;
@group(0) @binding(4) var<storage, read_write> hist: array<u32>;
var<workgroup> h: array<atomic<u32>, ${TOPK_BINS}>;
${SORT_RANK}
${HEAD}
fn ${entry}(${ARGS}) {
  ${CHUNK_FIELDS}
  for (var b = lid; b < ${TOPK_BINS}u; b += ${WORKGROUP}u) { atomicStore(&h[b], 0u); }
  workgroupBarrier();
  var prefix = 0u;
  var mask = 0u;
  if (u.phase > 0u) { prefix = state[4u * s]; mask = state[4u * s + 1u]; }
  let digit = (1u << u.bits) - 1u;
  if (live && k > 0u) {
    // Strided: neighbouring threads read neighbouring elements.
    for (var i = off + lid; i < end; i += ${WORKGROUP}u) {
      let key = sort_rank(x[base + i], u.descending != 0u);
      if ((key & mask) == prefix) { atomicAdd(&h[(key >> u.shift) & digit], 1u); }
    }
  }
  workgroupBarrier();
  if (live) {
    for (var b = lid; b < ${TOPK_BINS}u; b += ${WORKGROUP}u) { hist[c * ${TOPK_BINS}u + b] = atomicLoad(&h[b]); }
  }
}
`,
  };
}

/** Inclusive prefix sum of v over the workgroup (Hillis-Steele in workgroup memory `scan`). */
const SCAN_FN = (name: string, arr: string): string => `fn ${name}(lid: u32, v: u32) -> u32 {
  ${arr}[lid] = v;
  workgroupBarrier();
  for (var o = 1u; o < ${WORKGROUP}u; o = o << 1u) {
    let w = select(0u, ${arr}[lid - min(o, lid)], lid >= o);
    workgroupBarrier();
    ${arr}[lid] += w;
    workgroupBarrier();
  }
  let r = ${arr}[lid];
  workgroupBarrier();
  return r;
}`;

/**
 * One workgroup per segment: sums the segment's chunk histograms, finds the digit holding the
 * remaining-th key and narrows the state to it; on the last pass also ranks the chunks' ties.
 */
export function topkSelectKernel(): { wgsl: string; entry: string } {
  const entry = 'topk_select';
  const per = TOPK_BINS / WORKGROUP;
  return {
    entry,
    wgsl: `${TOPK_SELECT_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> segs: array<u32>;
@group(0) @binding(2) var<storage, read> hist: array<u32>;
@group(0) @binding(3) var<storage, read_write> state: array<u32>;
@group(0) @binding(4) var<storage, read_write> tieBefore: array<u32>;
@group(0) @binding(5) var<storage, read_write> slots: array<u32>;
var<workgroup> scan: array<u32, ${WORKGROUP}>;
var<workgroup> found: u32;
${SCAN_FN('prefix_sum', 'scan')}
${HEAD}
fn ${entry}(${ARGS}) {
  let s = min(${LINEAR_GROUP}, u.S - 1u);
  let live = ${LINEAR_GROUP} < u.S;
  let k = segs[s * ${TOPK_SEG_WORDS}u + 2u];
  let first = segs[s * ${TOPK_SEG_WORDS}u + 5u];
  let chunks = segs[s * ${TOPK_SEG_WORDS}u + 6u];
  var prefix = 0u;
  var mask = 0u;
  var want = k;
  if (u.phase > 0u) { prefix = state[4u * s]; mask = state[4u * s + 1u]; want = state[4u * s + 2u]; }
  var cnt: array<u32, ${per}>;
  var mine = 0u;
  for (var j = 0u; j < ${per}u; j++) {
    var v = 0u;
    for (var ch = 0u; ch < chunks; ch++) { v += hist[(first + ch) * ${TOPK_BINS}u + lid * ${per}u + j]; }
    cnt[j] = v;
    mine += v;
  }
  let before = prefix_sum(lid, mine) - mine;
  if (live && want > 0u && before < want && want <= before + mine) {
    var acc = before;
    for (var j = 0u; j < ${per}u; j++) {
      if (acc + cnt[j] >= want) {
        let d = lid * ${per}u + j;
        state[4u * s] = prefix | (d << u.shift);
        state[4u * s + 1u] = mask | (((1u << u.bits) - 1u) << u.shift);
        state[4u * s + 2u] = want - acc;
        found = d;
        break;
      }
      acc += cnt[j];
    }
  }
  if (live && lid == 0u && want == 0u) { state[4u * s + 2u] = 0u; found = 0u; }
  if (live && lid == 0u && u.phase == 0u) { slots[s] = 0u; }
  workgroupBarrier();
  if (live && lid == 0u && u.last != 0u) {
    let d = found;
    var run = 0u;
    for (var ch = 0u; ch < chunks; ch++) {
      tieBefore[first + ch] = run;
      run += hist[(first + ch) * ${TOPK_BINS}u + d];
    }
  }
}
`,
  };
}

/**
 * One workgroup per chunk: writes the chunk's keys below the k-th (at slots taken with one atomic
 * add per chunk) and its ties with it that are among the first `remaining` of the segment by column.
 * The first chunk of a segment also pads the segment's row past k.
 */
export function topkCompactKernel(): { wgsl: string; entry: string } {
  const entry = 'topk_compact';
  return {
    entry,
    wgsl: `${TOPK_COMPACT_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read> segs: array<u32>;
@group(0) @binding(3) var<storage, read> state: array<u32>;
@group(0) @binding(4) var<storage, read> tieBefore: array<u32>;
@group(0) @binding(5) var<storage, read_write> slots: array<atomic<u32>>;
@group(0) @binding(6) var<storage, read_write> kv: array<vec2<u32>>;
var<workgroup> scanBelow: array<u32, ${WORKGROUP}>;
var<workgroup> scanTie: array<u32, ${WORKGROUP}>;
var<workgroup> slotBase: u32;
${SORT_RANK}
${SCAN_FN('sum_below', 'scanBelow')}
${SCAN_FN('sum_tie', 'scanTie')}
${HEAD}
fn ${entry}(${ARGS}) {
  ${CHUNK_FIELDS}
  let kth = state[4u * s];
  let want = state[4u * s + 2u];
  let row = s * u.P;
  // Each thread takes ${PER_THREAD} consecutive elements, so ties are ranked in column order.
  let lo = off + lid * ${PER_THREAD}u;
  var keys: array<u32, ${PER_THREAD}>;
  var below = 0u;
  var ties = 0u;
  for (var j = 0u; j < ${PER_THREAD}u; j++) {
    var key = 0xffffffffu;
    if (lo + j < end) { key = sort_rank(x[base + lo + j], u.descending != 0u); }
    keys[j] = key;
    below += select(0u, 1u, lo + j < end && key < kth);
    ties += select(0u, 1u, lo + j < end && key == kth);
  }
  let belowEnd = sum_below(lid, below);
  let tieEnd = sum_tie(lid, ties);
  if (lid == ${WORKGROUP - 1}u && live && k > 0u && belowEnd > 0u) { slotBase = atomicAdd(&slots[s], belowEnd); }
  workgroupBarrier();
  if (live && k > 0u) {
    var b = slotBase + belowEnd - below;
    var t = tieBefore[c] + tieEnd - ties;
    for (var j = 0u; j < ${PER_THREAD}u; j++) {
      if (lo + j >= end) { break; }
      let key = keys[j];
      if (key < kth) {
        kv[row + b] = vec2<u32>(key, start + lo + j);
        b++;
      } else if (key == kth) {
        if (t < want) { kv[row + k - want + t] = vec2<u32>(key, start + lo + j); }
        t++;
      }
    }
  }
  if (live && off == 0u) {
    for (var j = k + lid; j < u.P; j += ${WORKGROUP}u) { kv[row + j] = vec2<u32>(0xffffffffu, 0xffffffffu); }
  }
}
`,
  };
}

/** Gathers the sorted segments' first k into [N, C] values and int32 columns, in segment order. */
export function topkOutputKernel(): { wgsl: string; entry: string } {
  const entry = 'topk_output';
  return {
    entry,
    wgsl: `${TOPK_OUTPUT_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> kv: array<vec2<u32>>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read> segs: array<u32>;
@group(0) @binding(4) var<storage, read_write> values: array<f32>;
@group(0) @binding(5) var<storage, read_write> indices: array<i32>;
${HEAD}
fn ${entry}(${ARGS}) {
  let t = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (t >= u.count) { return; }
  let n = t / u.C;
  let c = t - n * u.C;
  var s = n * u.L;
  // The segment whose output columns hold c (segments are in column order; empty ones are passed over).
  for (var l = 0u; l < u.L; l++) {
    let m = (n * u.L + l) * ${TOPK_SEG_WORDS}u;
    if (c >= segs[m + 3u] && c < segs[m + 3u] + segs[m + 2u]) { s = n * u.L + l; }
  }
  let col = kv[s * u.P + c - segs[s * ${TOPK_SEG_WORDS}u + 3u]].y;
  values[t] = x[u.xOffset + n * u.R + col];
  indices[t] = i32(col);
}
`,
  };
}

/** The meta words (see the top of this file) and chunk count for N rows of segments `lengths` taking `k` each. */
export function topkMeta(N: number, lengths: readonly number[], k: readonly number[]): { meta: Uint32Array; chunks: number } {
  const L = lengths.length, S = N * L;
  const segChunks = lengths.map((len, l) => (k[l]! > 0 ? Math.ceil(len / TOPK_CHUNK) : 0));
  const perRow = segChunks.reduce((a, c) => a + c, 0);
  const chunks = N * perRow;
  const meta = new Uint32Array(S * TOPK_SEG_WORDS + chunks * TOPK_CHUNK_WORDS);
  let chunk = 0;
  for (let n = 0; n < N; n++) {
    let start = 0, outCol = 0;
    for (let l = 0; l < L; l++) {
      const s = n * L + l, m = s * TOPK_SEG_WORDS;
      meta.set([start, lengths[l]!, k[l]!, outCol, n, chunk, segChunks[l]!, 0], m);
      for (let j = 0; j < segChunks[l]!; j++, chunk++) meta.set([s, j * TOPK_CHUNK], S * TOPK_SEG_WORDS + chunk * TOPK_CHUNK_WORDS);
      start += lengths[l]!;
      outCol += k[l]!;
    }
  }
  return { meta, chunks };
}

/**
 * float64 reference: per row of x [rows, R] and per segment (lengths tile the row) the first
 * min(k, length) of the segment's stable sort (sortReference: NaN largest, -0 == +0), columns in the
 * row; segments' results concatenated in order. Returns flat [rows * C] values and indices.
 */
export function segmentedTopkReference(x: ArrayLike<number>, rows: number, lengths: readonly number[], k: readonly number[], largest: boolean): { values: number[]; indices: number[] } {
  const R = lengths.reduce((a, c) => a + c, 0);
  const values: number[] = [], indices: number[] = [];
  for (let r = 0; r < rows; r++) {
    let start = 0;
    lengths.forEach((len, l) => {
      const seg = Array.from({ length: len }, (_, i) => x[r * R + start + i]!);
      const got = sortReference(seg, 1, len, largest, Math.min(k[l]!, len));
      values.push(...got.values);
      indices.push(...got.indices.map((i) => i + start));
      start += len;
    });
  }
  return { values, indices };
}

/** Runs a row may have for topkMergeRunsKernel (their starts live in its uniforms). */
export const MERGE_RUNS_MAX = 15;
/** count = rows * n outputs; starts: L + 1 run starts (the last n). */
export const MERGE_RUNS_UNIFORMS = uniformBlock('merge_runs', { count: 'u32', n: 'u32', L: 'u32', xOffset: 'u32', descending: 'u32', starts: ['u32', MERGE_RUNS_MAX + 1] });

/**
 * The stable argsort of rows of x [rows, n] made of L runs that are each already in that order (as
 * segmentedTopk leaves each segment): an element's place is its place in its run plus, for every
 * other run, the count of its elements that come first (a binary search: smaller rank keys, and
 * equal ones when that run is earlier in the row). One thread per element, no sort steps.
 */
export function mergeRunsKernel(): { wgsl: string; entry: string } {
  const entry = 'merge_runs';
  const start = (l: string): string => MERGE_RUNS_UNIFORMS.at('starts', l);
  return {
    entry,
    wgsl: `${MERGE_RUNS_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> x: array<u32>;
@group(0) @binding(2) var<storage, read_write> order: array<i32>;
${SORT_RANK}
${HEAD}
fn ${entry}(${ARGS}) {
  let t = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (t >= u.count) { return; }
  let row = t / u.n;
  let i = t - row * u.n;
  let base = u.xOffset + row * u.n;
  let desc = u.descending != 0u;
  // The run holding i: the last whose start is <= i (an empty run shares its start with the next).
  var a = 0u;
  for (var l = 0u; l < u.L; l++) { if (${start('l')} <= i) { a = l; } }
  let key = sort_rank(x[base + i], desc);
  var pos = i - ${start('a')};
  for (var b = 0u; b < u.L; b++) {
    if (b == a) { continue; }
    let earlier = b < a;
    // First j in run b that does not come before element i.
    var lo = ${start('b')};
    var hi = ${start('b + 1u')};
    let first = lo;
    while (lo < hi) {
      let mid = (lo + hi) / 2u;
      let k = sort_rank(x[base + mid], desc);
      if (k < key || (earlier && k == key)) { lo = mid + 1u; } else { hi = mid; }
    }
    pos += lo - first;
  }
  order[row * u.n + pos] = i32(i);
}
`,
  };
}
