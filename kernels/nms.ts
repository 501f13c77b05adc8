// Non-maximum suppression as torchvision's CUDA nms does it: boxes in descending score order, a
// suppression bitmask (bit j of row i set when sorted box i overlaps sorted box j > i by IoU >
// threshold; 64-bit masks as pairs of u32 per block of 64 boxes), then a greedy pass over the
// mask. The float64 reference is box-math.ts's boxes64.nms / batchedNms (plain greedy NMS).
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

/** n boxes, colBlocks column blocks of NMS_BLOCK, thr: the IoU threshold. */
export const NMS_UNIFORMS = uniformBlock('nms_mask', { n: 'u32', colBlocks: 'u32', boxesOffset: 'u32', thr: 'f32' });

/** mask[i, cb] (2 u32 words) for sorted row i and column block cb. Workgroup (cb, rb) of 64 threads. */
export function nmsMaskKernel(): { wgsl: string; entry: string } {
  const entry = 'nms_mask';
  return {
    entry,
    wgsl: `${NMS_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> boxes: array<f32>;
@group(0) @binding(2) var<storage, read> order: array<i32>;
@group(0) @binding(3) var<storage, read_write> mask: array<u32>;
var<workgroup> cols: array<vec4<f32>, ${NMS_BLOCK}>;
${SUPPRESSES}
fn load(pos: u32) -> vec4<f32> {
  let b = u.boxesOffset + 4u * u32(order[pos]);
  return vec4<f32>(boxes[b], boxes[b + 1u], boxes[b + 2u], boxes[b + 3u]);
}
@compute @workgroup_size(${NMS_BLOCK})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let n = u.n;
  let cb = wid.x;
  let rb = wid.y;
  let thr = u.thr;
  let col0 = cb * ${NMS_BLOCK}u;
  let ncols = min(n - col0, ${NMS_BLOCK}u);
  if (lid < ncols) { cols[lid] = load(col0 + lid); }
  workgroupBarrier();
  let i = rb * ${NMS_BLOCK}u + lid;
  if (i >= n) { return; }
  let a = load(i);
  var lo = 0u;
  var hi = 0u;
  // Only j > i: lower-scored boxes are suppressed by higher-scored ones.
  let start = select(0u, lid + 1u, rb == cb);
  if (rb <= cb) {
    for (var j = start; j < ncols; j++) {
      if (suppresses(a, cols[j], thr)) {
        if (j < 32u) { lo |= 1u << j; } else { hi |= 1u << (j - 32u); }
      }
    }
  }
  let w = (i * u.colBlocks + cb) * 2u;
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
