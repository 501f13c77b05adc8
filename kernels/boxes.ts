// Box ops in (x1, y1, x2, y2) form, as torchvision.ops.boxes and torchvision's BoxCoder compute them
// (widths are x2 - x1, no +1): pairwise IoU, encode/decode with weights and the dw/dh clamp, clip to
// the image. Their float64 reference is box-math.ts's boxes64 (the host box math the detector runs
// in float32). The float32 kernels keep torchvision's expression order so results round like PyTorch's.
import { F32_BITS, LINEAR_GROUP, WORKGROUP } from './common.js';
import { uniformBlock, type UniformBlock } from './uniforms.js';

export { BBOX_XFORM_CLIP, type BoxWeights } from './box-math.js';

/** box_iou over N x M pairs: count = N*M. */
export const BOX_IOU_UNIFORMS = uniformBlock('box_iou', { count: 'u32', M: 'u32', aOffset: 'u32', bOffset: 'u32' });
/** encode: N boxes; wx, wy, ww, wh: the BoxCoder weights. */
export const BOX_ENCODE_UNIFORMS = uniformBlock('box_encode', { count: 'u32', gtOffset: 'u32', prOffset: 'u32', wx: 'f32', wy: 'f32', ww: 'f32', wh: 'f32' });
/** decode: count = N*C codes of C boxes per row; clip: the dw/dh clamp. */
export const BOX_DECODE_UNIFORMS = uniformBlock('box_decode', {
  count: 'u32',
  C: 'u32',
  codesOffset: 'u32',
  boxesOffset: 'u32',
  wx: 'f32',
  wy: 'f32',
  ww: 'f32',
  wh: 'f32',
  clip: 'f32',
});
/** clip_boxes_to_image: count values in rows of `cols`. */
export const BOX_CLIP_UNIFORMS = uniformBlock('box_clip', { count: 'u32', cols: 'u32', offset: 'u32', width: 'f32', height: 'f32' });

const HEAD = (entry: string, block: UniformBlock, bindings: string[]): string => `${block.wgsl}
${bindings.map((b, i) => `@group(0) @binding(${i + 1}) ${b}`).join('\n')}
${F32_BITS}
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (t >= u.count) { return; }`;

/** box_iou: out[i, j] = inter / union of a[i], b[j]. */
export function boxIouKernel(): { wgsl: string; entry: string } {
  const entry = 'box_iou';
  return {
    entry,
    wgsl: `${HEAD(entry, BOX_IOU_UNIFORMS, ['var<storage, read> a: array<f32>;', 'var<storage, read> b: array<f32>;', 'var<storage, read_write> out: array<f32>;'])}
  let i = t / u.M;
  let j = t % u.M;
  let p = u.aOffset + 4u * i;
  let q = u.bOffset + 4u * j;
  let area1 = (a[p + 2u] - a[p]) * (a[p + 3u] - a[p + 1u]);
  let area2 = (b[q + 2u] - b[q]) * (b[q + 3u] - b[q + 1u]);
  let w = max(min(a[p + 2u], b[q + 2u]) - max(a[p], b[q]), 0.0);
  let h = max(min(a[p + 3u], b[q + 3u]) - max(a[p + 1u], b[q + 1u]), 0.0);
  let inter = w * h;
  let uni = area1 + area2 - inter;
  // 0 / 0 (two zero-area boxes) is NaN in torch; WGSL does not promise NaN from a division.
  out[t] = select(inter / uni, f32_bits(0x7fc00000u), uni == 0.0 && inter == 0.0);
}
`,
  };
}

/**
 * BoxCoder.encode_single: targets [N,4] of reference (matched gt) boxes relative to proposals.
 */
export function encodeKernel(): { wgsl: string; entry: string } {
  const entry = 'box_encode';
  return {
    entry,
    wgsl: `${HEAD(entry, BOX_ENCODE_UNIFORMS, ['var<storage, read> gt: array<f32>;', 'var<storage, read> pr: array<f32>;', 'var<storage, read_write> out: array<f32>;'])}
  let g = u.gtOffset + 4u * t;
  let p = u.prOffset + 4u * t;
  let wx = u.wx;
  let wy = u.wy;
  let ww = u.ww;
  let wh = u.wh;
  let ex_w = pr[p + 2u] - pr[p];
  let ex_h = pr[p + 3u] - pr[p + 1u];
  let ex_x = pr[p] + 0.5 * ex_w;
  let ex_y = pr[p + 1u] + 0.5 * ex_h;
  let gt_w = gt[g + 2u] - gt[g];
  let gt_h = gt[g + 3u] - gt[g + 1u];
  let gt_x = gt[g] + 0.5 * gt_w;
  let gt_y = gt[g + 1u] + 0.5 * gt_h;
  out[4u * t] = wx * (gt_x - ex_x) / ex_w;
  out[4u * t + 1u] = wy * (gt_y - ex_y) / ex_h;
  out[4u * t + 2u] = ww * log(gt_w / ex_w);
  out[4u * t + 3u] = wh * log(gt_h / ex_h);
}
`,
  };
}

/**
 * BoxCoder.decode_single: rel_codes [N, 4C] applied to boxes [N, 4] -> [N, 4C], with dw, dh
 * clamped above at `clip` (log(1000/16)).
 */
export function decodeKernel(): { wgsl: string; entry: string } {
  const entry = 'box_decode';
  return {
    entry,
    wgsl: `${HEAD(entry, BOX_DECODE_UNIFORMS, ['var<storage, read> codes: array<f32>;', 'var<storage, read> boxes: array<f32>;', 'var<storage, read_write> out: array<f32>;'])}
  let n = t / u.C;
  let r = u.codesOffset + 4u * t;
  let b = u.boxesOffset + 4u * n;
  let width = boxes[b + 2u] - boxes[b];
  let height = boxes[b + 3u] - boxes[b + 1u];
  let ctr_x = boxes[b] + 0.5 * width;
  let ctr_y = boxes[b + 1u] + 0.5 * height;
  let dx = codes[r] / u.wx;
  let dy = codes[r + 1u] / u.wy;
  let clip = u.clip;
  let dw = min(codes[r + 2u] / u.ww, clip);
  let dh = min(codes[r + 3u] / u.wh, clip);
  let px = dx * width + ctr_x;
  let py = dy * height + ctr_y;
  let cw = 0.5 * (exp(dw) * width);
  let ch = 0.5 * (exp(dh) * height);
  out[4u * t] = px - cw;
  out[4u * t + 1u] = py - ch;
  out[4u * t + 2u] = px + cw;
  out[4u * t + 3u] = py + ch;
}
`,
  };
}

/** clip_boxes_to_image: even columns clamped to [0, width], odd to [0, height]. */
export function clipKernel(): { wgsl: string; entry: string } {
  const entry = 'box_clip';
  return {
    entry,
    wgsl: `${HEAD(entry, BOX_CLIP_UNIFORMS, ['var<storage, read> x: array<f32>;', 'var<storage, read_write> out: array<f32>;'])}
  let hi = select(u.height, u.width, (t % u.cols) % 2u == 0u);
  out[t] = min(max(x[u.offset + t], 0.0), hi);
}
`,
  };
}
