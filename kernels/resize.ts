// interpolate kernels (nearest, bilinear) over [planes, H, W] and their float64 references, with
// PyTorch's index arithmetic (aten/src/ATen/native/UpSample.h):
//   nearest:  src = min(floor(dst * scale), in - 1), scale = in/out in float32, or 1/scale_factor
//             when a scale factor is passed through (legacy 'nearest', not 'nearest-exact').
//   bilinear: align_corners=false: src = max(scale * (dst + 0.5) - 0.5, 0) (half-pixel, clamped at 0),
//             scale = in/out or 1/scale_factor; align_corners=true: src = scale * dst with
//             scale = (in - 1)/(out - 1) (0 when out = 1). i0 = floor(src), i1 = min(i0 + 1, in - 1),
//             weights 1 - (src - i0) and src - i0.
// The scale is computed once on the host in float32 (resizeScale) and passed to the kernel.
// Backward is a gather (no atomics): each input element finds the few outputs that can read it
// from the inverse of the index map, then re-evaluates the forward's own index function on them,
// so the gradient is the exact transpose of the forward.
import { LINEAR_GROUP, WORKGROUP, type RefTensor } from './common.js';
import { uniformBlock } from './uniforms.js';

export type ResizeMode = 'nearest' | 'bilinear';

/**
 * PyTorch's float32 scale for one axis: area_pixel_compute_scale (bilinear) or
 * compute_scales_value (nearest). `scaleFactor` is the user's scale when it is passed through
 * to the kernel (scale_factor given and recompute_scale_factor not true).
 */
export function resizeScale(mode: ResizeMode, inSize: number, outSize: number, alignCorners: boolean, scaleFactor?: number): number {
  if (mode === 'bilinear' && alignCorners) return outSize > 1 ? Math.fround(Math.fround(inSize - 1) / (outSize - 1)) : 0;
  if (scaleFactor !== undefined && scaleFactor > 0) return Math.fround(1 / scaleFactor);
  return Math.fround(Math.fround(inSize) / outSize);
}

/** Nearest source index of `dst` (float32 product, as PyTorch's floorf(dst * scale)). */
export function nearestSource(dst: number, scale: number, inSize: number): number {
  return Math.min(Math.floor(Math.fround(dst * scale)), inSize - 1);
}

/** The two bilinear source indices of `dst` and their weights. */
export function linearSource(dst: number, scale: number, alignCorners: boolean, inSize: number): { i0: number; i1: number; w0: number; w1: number } {
  const src = alignCorners ? scale * dst : Math.max(scale * (dst + 0.5) - 0.5, 0);
  const i0 = Math.min(Math.floor(src), inSize - 1);
  const w1 = Math.min(Math.max(src - i0, 0), 1);
  return { i0, i1: i0 < inSize - 1 ? i0 + 1 : i0, w0: 1 - w1, w1 };
}

/** n: threads; alignCorners: 0 or 1; offset: of x (forward) or g (backward). */
export const RESIZE_UNIFORMS = uniformBlock('interpolate', {
  n: 'u32',
  H: 'u32',
  W: 'u32',
  OH: 'u32',
  OW: 'u32',
  scaleH: 'f32',
  scaleW: 'f32',
  alignCorners: 'u32',
  offset: 'u32',
});

export function resizeKernel(mode: ResizeMode, dir: 'forward' | 'backward'): { wgsl: string; entry: string } {
  const { n, H, W, OH, OW, scaleH, scaleW, alignCorners: align, offset: off } = RESIZE_UNIFORMS.ref;
  const entry = `interpolate_${mode}_${dir}`;
  const helpers = `fn near_src(d: u32, scale: f32, n: u32) -> u32 {
  return min(u32(floor(f32(d) * scale)), n - 1u);
}
struct Lin { i0: u32, i1: u32, w0: f32, w1: f32 }
fn lin_src(d: u32, scale: f32, n: u32) -> Lin {
  var r = scale * f32(d);
  if (${align} == 0u) { r = max(scale * (f32(d) + 0.5) - 0.5, 0.0); }
  let i0 = min(u32(r), n - 1u);
  let w1 = clamp(r - f32(i0), 0.0, 1.0);
  return Lin(i0, select(i0, i0 + 1u, i0 < n - 1u), 1.0 - w1, w1);
}
// Weight with which output d reads input i along one axis.
fn weight(d: u32, i: u32, scale: f32, n: u32) -> f32 {
  ${
    mode === 'nearest'
      ? 'return select(0.0, 1.0, near_src(d, scale, n) == i);'
      : `let l = lin_src(d, scale, n);
  return select(0.0, l.w0, l.i0 == i) + select(0.0, l.w1, l.i1 == i);`
  }
}
// Outputs [lo, hi] that can read input i: the inverse of the index map, widened by 2 for rounding.
fn candidates(i: u32, n: u32, nOut: u32, scale: f32) -> vec2<u32> {
  if (scale <= 0.0) { return vec2<u32>(0u, nOut - 1u); }
  ${
    mode === 'nearest'
      ? `var lo = f32(i) / scale;
  var hi = f32(i + 1u) / scale;`
      : `var lo = (f32(i) - 1.0) / scale;
  var hi = (f32(i) + 1.0) / scale;
  if (${align} == 0u) { lo = (f32(i) - 0.5) / scale - 0.5; hi = (f32(i) + 1.5) / scale - 0.5; }`
  }
  let last = f32(nOut - 1u);
  let a = u32(clamp(floor(lo) - 2.0, 0.0, last));
  var b = u32(clamp(ceil(hi) + 2.0, 0.0, last));
  // The last input also takes every output whose source index was clamped to it.
  if (i == n - 1u) { b = nOut - 1u; }
  return vec2<u32>(a, b);
}`;
  const shell = (decls: string, body: string): string => `${RESIZE_UNIFORMS.wgsl}
${decls}
${helpers}
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (i >= ${n}) { return; }
  let sh = ${scaleH};
  let sw = ${scaleW};
  ${body}
}
`;
  const io = (src: string): string => `@group(0) @binding(1) var<storage, read> ${src}: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;`;
  if (dir === 'forward') {
    const read = (h: string, w: string): string => `x[base + ${h} * ${W} + ${w}]`;
    return {
      entry,
      wgsl: shell(
        io('x'),
        `let ow = i % ${OW};
  let t = i / ${OW};
  let oh = t % ${OH};
  let base = ${off} + (t / ${OH}) * ${H} * ${W};
  ${
    mode === 'nearest'
      ? `out[i] = ${read(`near_src(oh, sh, ${H})`, `near_src(ow, sw, ${W})`)};`
      : `let a = lin_src(oh, sh, ${H});
  let b = lin_src(ow, sw, ${W});
  out[i] = a.w0 * (b.w0 * ${read('a.i0', 'b.i0')} + b.w1 * ${read('a.i0', 'b.i1')}) +
           a.w1 * (b.w0 * ${read('a.i1', 'b.i0')} + b.w1 * ${read('a.i1', 'b.i1')});`
  }`,
      ),
    };
  }
  return {
    entry,
    wgsl: shell(
      io('g'),
      `let iw = i % ${W};
  let t = i / ${W};
  let ih = t % ${H};
  let base = ${off} + (t / ${H}) * ${OH} * ${OW};
  let rh = candidates(ih, ${H}, ${OH}, sh);
  let rw = candidates(iw, ${W}, ${OW}, sw);
  var acc = 0.0;
  for (var oh = rh.x; oh <= rh.y; oh++) {
    let wh = weight(oh, ih, sh, ${H});
    if (wh == 0.0) { continue; }
    var row = 0.0;
    for (var ow = rw.x; ow <= rw.y; ow++) {
      let ww = weight(ow, iw, sw, ${W});
      if (ww != 0.0) { row += ww * g[base + oh * ${OW} + ow]; }
    }
    acc += wh * row;
  }
  out[i] = acc;`,
    ),
  };
}

/**
 * float64 interpolate of x [..., H, W] to [..., outH, outW] with the given float32 scales
 * (resizeScale): PyTorch's index formulas, arithmetic on the values in float64.
 */
export function resizeReference(x: RefTensor, mode: ResizeMode, outH: number, outW: number, scaleH: number, scaleW: number, alignCorners = false): RefTensor {
  const H = x.shape[x.shape.length - 2]!, W = x.shape[x.shape.length - 1]!;
  const planes = x.data.length / (H * W);
  const out = new Float64Array(planes * outH * outW);
  for (let p = 0; p < planes; p++) {
    const at = (h: number, w: number): number => x.data[(p * H + h) * W + w]!;
    for (let oh = 0; oh < outH; oh++) {
      for (let ow = 0; ow < outW; ow++) {
        let v: number;
        if (mode === 'nearest') {
          v = at(nearestSource(oh, scaleH, H), nearestSource(ow, scaleW, W));
        } else {
          const a = linearSource(oh, scaleH, alignCorners, H), b = linearSource(ow, scaleW, alignCorners, W);
          v = a.w0 * (b.w0 * at(a.i0, b.i0) + b.w1 * at(a.i0, b.i1)) + a.w1 * (b.w0 * at(a.i1, b.i0) + b.w1 * at(a.i1, b.i1));
        }
        out[(p * outH + oh) * outW + ow] = v;
      }
    }
  }
  return { shape: [...x.shape.slice(0, -2), outH, outW], data: out };
}
