// Box ops in (x1, y1, x2, y2) form, as torchvision.ops.boxes and torchvision's BoxCoder compute them
// (widths are x2 - x1, no +1): pairwise IoU, encode/decode with weights and the dw/dh clamp, clip to
// the image. Their float64 reference is box-math.ts's boxes64 (the host box math the detector runs
// in float32). The float32 kernels keep torchvision's expression order so results round like PyTorch's.
import { F32_BITS, LINEAR_GROUP, WORKGROUP, uniformDecl, uword } from './common.js';

export { BBOX_XFORM_CLIP, type BoxWeights } from './box-math.js';

const HEAD = (entry: string, nVec4: number, bindings: string[]): string => `${uniformDecl(nVec4)}
${bindings.map((b, i) => `@group(0) @binding(${i + 1}) ${b}`).join('\n')}
${F32_BITS}
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let t = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (t >= ${uword(0)}) { return; }`;

/** box_iou: out[i, j] = inter / union of a[i], b[j]. Uniform words: N*M, M, a offset, b offset. */
export function boxIouKernel(): { wgsl: string; entry: string } {
  const entry = 'box_iou';
  return {
    entry,
    wgsl: `${HEAD(entry, 1, ['var<storage, read> a: array<f32>;', 'var<storage, read> b: array<f32>;', 'var<storage, read_write> out: array<f32>;'])}
  let i = t / ${uword(1)};
  let j = t % ${uword(1)};
  let p = ${uword(2)} + 4u * i;
  let q = ${uword(3)} + 4u * j;
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
 * Uniform words: N, ref offset, proposals offset, pad, wx, wy, ww, wh.
 */
export function encodeKernel(): { wgsl: string; entry: string } {
  const entry = 'box_encode';
  return {
    entry,
    wgsl: `${HEAD(entry, 2, ['var<storage, read> gt: array<f32>;', 'var<storage, read> pr: array<f32>;', 'var<storage, read_write> out: array<f32>;'])}
  let g = ${uword(1)} + 4u * t;
  let p = ${uword(2)} + 4u * t;
  let wx = bitcast<f32>(${uword(4)});
  let wy = bitcast<f32>(${uword(5)});
  let ww = bitcast<f32>(${uword(6)});
  let wh = bitcast<f32>(${uword(7)});
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
 * clamped above at `clip` (log(1000/16)). Uniform words: N*C, C, codes offset, boxes offset, wx, wy, ww, wh, clip.
 */
export function decodeKernel(): { wgsl: string; entry: string } {
  const entry = 'box_decode';
  return {
    entry,
    wgsl: `${HEAD(entry, 3, ['var<storage, read> codes: array<f32>;', 'var<storage, read> boxes: array<f32>;', 'var<storage, read_write> out: array<f32>;'])}
  let n = t / ${uword(1)};
  let r = ${uword(2)} + 4u * t;
  let b = ${uword(3)} + 4u * n;
  let width = boxes[b + 2u] - boxes[b];
  let height = boxes[b + 3u] - boxes[b + 1u];
  let ctr_x = boxes[b] + 0.5 * width;
  let ctr_y = boxes[b + 1u] + 0.5 * height;
  let dx = codes[r] / bitcast<f32>(${uword(4)});
  let dy = codes[r + 1u] / bitcast<f32>(${uword(5)});
  let clip = bitcast<f32>(${uword(8)});
  let dw = min(codes[r + 2u] / bitcast<f32>(${uword(6)}), clip);
  let dh = min(codes[r + 3u] / bitcast<f32>(${uword(7)}), clip);
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

/** clip_boxes_to_image: even columns clamped to [0, width], odd to [0, height]. Uniform words: n, cols, offset, pad, width, height. */
export function clipKernel(): { wgsl: string; entry: string } {
  const entry = 'box_clip';
  return {
    entry,
    wgsl: `${HEAD(entry, 2, ['var<storage, read> x: array<f32>;', 'var<storage, read_write> out: array<f32>;'])}
  let hi = select(bitcast<f32>(${uword(5)}), bitcast<f32>(${uword(4)}), (t % ${uword(1)}) % 2u == 0u);
  out[t] = min(max(x[${uword(2)} + t], 0.0), hi);
}
`,
  };
}
