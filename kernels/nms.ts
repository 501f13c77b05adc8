// Non-maximum suppression as torchvision's CUDA nms does it: boxes in descending score order, a
// suppression bitmask (bit j of row i set when sorted box i overlaps sorted box j > i by IoU >
// threshold; 64-bit masks as pairs of u32 per block of 64 boxes), then a greedy pass over the
// mask. Both run per row of a batch (workgroup z / x = the row), and boxes of different groups
// (batched_nms's idxs) never suppress each other when the mask kernel is built `grouped`. The greedy
// pass runs on the host (greedyFromMask) or on the GPU at a fixed capacity (nmsGreedyKernel), so
// that a caller never has to read anything back. The float64 reference is box-math.ts's
// boxes64.nms / batchedNms (plain greedy NMS).
import { uniformBlock } from './uniforms.js';

export const NMS_BLOCK = 64;

/**
 * devIoU(a, b) > thr, with torchvision's zero-union rule (0 / 0 is NaN: no suppression). The second
 * test keeps an IoU exactly at the threshold unsuppressed even where WGSL division is not correctly
 * rounded (it is exact: inter and thr * union are both exact when inter / union == thr).
 */
export const SUPPRESSES = `fn suppresses(a: vec4<f32>, b: vec4<f32>, thr: f32) -> bool {
  let w = max(min(a.z, b.z) - max(a.x, b.x), 0.0);
  let h = max(min(a.w, b.w) - max(a.y, b.y), 0.0);
  let inter = w * h;
  let uni = (a.z - a.x) * (a.w - a.y) + (b.z - b.x) * (b.w - b.y) - inter;
  if (uni == 0.0) { return inter > 0.0; }
  return inter / uni > thr && (uni < 0.0 || inter > thr * uni);
}`;

/**
 * n boxes per row, colBlocks column blocks of NMS_BLOCK, thr: the IoU threshold. Row b's boxes
 * start at boxesOffset + 4*b*n, its sorted order (row-local indices) at b*n, its groups (grouped
 * kernel only) at groupsOffset + b*n.
 */
export const NMS_UNIFORMS = uniformBlock('nms_mask', { n: 'u32', colBlocks: 'u32', boxesOffset: 'u32', groupsOffset: 'u32', thr: 'f32' });

/**
 * mask[b, i, cb] (2 u32 words) for sorted row i and column block cb of batch row b. Workgroup
 * (cb, rb, b) of 64 threads. `grouped`: a box only suppresses boxes of its own group.
 */
export function nmsMaskKernel(grouped = false): { wgsl: string; entry: string } {
  const entry = grouped ? 'nms_mask_grouped' : 'nms_mask';
  const sameGroup = grouped ? ' && g == colGroups[j]' : '';
  return {
    entry,
    wgsl: `${NMS_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> boxes: array<f32>;
@group(0) @binding(2) var<storage, read> order: array<i32>;
@group(0) @binding(3) var<storage, read_write> mask: array<u32>;
${grouped ? '@group(0) @binding(4) var<storage, read> groups: array<i32>;\nvar<workgroup> colGroups: array<i32, ' + NMS_BLOCK + '>;' : ''}
var<workgroup> cols: array<vec4<f32>, ${NMS_BLOCK}>;
${SUPPRESSES}
fn load(base: u32, pos: u32) -> vec4<f32> {
  let b = u.boxesOffset + 4u * (base + u32(order[base + pos]));
  return vec4<f32>(boxes[b], boxes[b + 1u], boxes[b + 2u], boxes[b + 3u]);
}
@compute @workgroup_size(${NMS_BLOCK})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let n = u.n;
  let cb = wid.x;
  let rb = wid.y;
  let base = wid.z * n;
  let thr = u.thr;
  let col0 = cb * ${NMS_BLOCK}u;
  let ncols = min(n - col0, ${NMS_BLOCK}u);
  if (lid < ncols) {
    cols[lid] = load(base, col0 + lid);${grouped ? '\n    colGroups[lid] = groups[u.groupsOffset + base + u32(order[base + col0 + lid])];' : ''}
  }
  workgroupBarrier();
  let i = rb * ${NMS_BLOCK}u + lid;
  if (i >= n) { return; }
  let a = load(base, i);${grouped ? '\n  let g = groups[u.groupsOffset + base + u32(order[base + i])];' : ''}
  var lo = 0u;
  var hi = 0u;
  // Only j > i: lower-scored boxes are suppressed by higher-scored ones.
  let start = select(0u, lid + 1u, rb == cb);
  if (rb <= cb) {
    for (var j = start; j < ncols; j++) {
      if (suppresses(a, cols[j], thr)${sameGroup}) {
        if (j < 32u) { lo |= 1u << j; } else { hi |= 1u << (j - 32u); }
      }
    }
  }
  let w = ((base + i) * u.colBlocks + cb) * 2u;
  mask[w] = lo;
  mask[w + 1u] = hi;
}
`,
  };
}

/** The greedy pass over a read-back mask (torchvision's gather_keep_from_mask): kept sorted positions. */
export function greedyFromMask(mask: Uint32Array, n: number): number[] {
  const colBlocks = Math.ceil(n / NMS_BLOCK);
  const removed = new Uint32Array(colBlocks * 2);
  const keep: number[] = [];
  for (let i = 0; i < n; i++) {
    const word = (i >> 5) & 1, block = i >> 6;
    if (removed[block * 2 + word]! & (1 << (i & 31))) continue;
    keep.push(i);
    const row = i * colBlocks * 2;
    for (let w = block * 2; w < colBlocks * 2; w++) removed[w]! |= mask[row + w]!;
  }
  return keep;
}

/** n boxes per row, colBlocks as the mask's, k the capacity; row b's validity flags at validOffset + b*n. */
export const NMS_GREEDY_UNIFORMS = uniformBlock('nms_greedy', { n: 'u32', colBlocks: 'u32', k: 'u32', validOffset: 'u32' });

/** Threads of the GPU greedy pass (one workgroup per batch row). */
export const NMS_GREEDY_THREADS = 64;

/** Most boxes per row the GPU greedy pass takes: its removed-bits live in 16 KB of workgroup memory. */
export const NMS_GREEDY_MAX_BOXES = 4096 * 32;

/**
 * The greedy pass on the GPU, one workgroup per batch row b: visits the sorted boxes in order,
 * skips those removed by a kept box or not valid (valid[b, order[i]] == 0: such a box neither is
 * kept nor suppresses), and stops at k kept. keep[b, :] holds the kept boxes' row-local indices in
 * sorted order, then -1; count[b] how many were kept. `words` (2 * colBlocks, rounded up) sizes the
 * removed-bits array in workgroup memory.
 */
export function nmsGreedyKernel(words: number): { wgsl: string; entry: string } {
  const entry = 'nms_greedy';
  const T = NMS_GREEDY_THREADS;
  return {
    entry,
    wgsl: `${NMS_GREEDY_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> mask: array<u32>;
@group(0) @binding(2) var<storage, read> order: array<i32>;
@group(0) @binding(3) var<storage, read> valid: array<u32>;
@group(0) @binding(4) var<storage, read_write> keep: array<i32>;
@group(0) @binding(5) var<storage, read_write> count: array<u32>;
var<workgroup> removed: array<u32, ${words}>;
var<workgroup> alive: u32;
@compute @workgroup_size(${T})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let n = u.n;
  let k = u.k;
  let row = wid.x;
  let base = row * n;
  let W = 2u * u.colBlocks;
  for (var w = lid; w < W; w += ${T}u) { removed[w] = 0u; }
  workgroupBarrier();
  var kept = 0u;
  for (var i = 0u; i < n && kept < k; i++) {
    if (lid == 0u) {
      let o = u32(order[base + i]);
      let gone = (removed[i >> 5u] & (1u << (i & 31u))) != 0u;
      alive = select(0u, 1u, !gone && valid[u.validOffset + base + o] != 0u);
    }
    // The same value in every thread (and a barrier): the loop's control flow stays uniform.
    if (workgroupUniformLoad(&alive) != 0u) {
      if (lid == 0u) { keep[row * k + kept] = order[base + i]; }
      kept++;
      let first = (i >> 6u) * 2u;
      let m = (base + i) * W;
      for (var w = first + lid; w < W; w += ${T}u) { removed[w] |= mask[m + w]; }
    }
    workgroupBarrier();
  }
  for (var j = kept + lid; j < k; j += ${T}u) { keep[row * k + j] = -1; }
  if (lid == 0u) { count[row] = kept; }
}
`,
  };
}
