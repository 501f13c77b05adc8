// RoIAlign (torchvision.ops.roi_align) forward and backward, single- or multi-level, and the FPN
// level mapper, with float64 references that follow torchvision's CPU kernel line by line
// (csrc/ops/cpu/roi_align_kernel.cpp: bilinear_interpolate and its y < -1 / y > H cut-offs,
// the 0.5 offset when aligned, the 1x1 minimum RoI size when not, adaptive sampling grids).
//
// GPU layout: one invocation per (box, output bin, block of roiChannels() channels), channel blocks
// fastest, so the lanes of a SIMD group share the box and the bin (no divergence) and the geometry is
// computed once per block. The bilinear weights are separable, so each bin walks the distinct rows and
// columns its samples touch and loads each pixel once per 4x4-sample chunk (see taps, levelBody). A
// multi-level pooler binds every level's feature map and reads each box's level from a level buffer,
// so pooling all boxes of all levels is one dispatch and the output is in the original box order. The
// backward scatters the merged weights into the input gradient with a float atomic add
// (compare-exchange loop on the bit pattern), since bins of different boxes read the same pixels;
// on CPU adapters a row form with fewer atomic adds (kernels/roi_align_rows.ts).
import { F32_BITS, LINEAR_GROUP, WORKGROUP, type RefTensor } from './common.js';
import { blockVariants, uniformBlock } from './uniforms.js';

export interface RoiAlignParams {
  pooledH: number;
  pooledW: number;
  /** > 0: fixed grid per bin; <= 0: adaptive ceil(roi_size / pooled_size). */
  samplingRatio: number;
  aligned: boolean;
}

export interface RoiLevel {
  /** Feature map N, C, H, W. */
  shape: readonly number[];
  scale: number;
  offset: number;
}

/**
 * The RoIAlign uniforms for `nLevels` feature maps: n invocations, K boxes, C channels, the pooled
 * size, the sampling ratio, aligned (0 or 1), the boxes' offset, then each level's H, W, spatial
 * scale and feature offset.
 */
export const roiAlignUniforms = blockVariants((nLevels: number) =>
  uniformBlock(`roi_align${nLevels}`, {
    n: 'u32',
    K: 'u32',
    C: 'u32',
    PH: 'u32',
    PW: 'u32',
    samplingRatio: 'i32',
    aligned: 'u32',
    boxesOffset: 'u32',
    levelH: ['u32', nLevels],
    levelW: ['u32', nLevels],
    levelScale: ['f32', nLevels],
    levelOffset: ['u32', nLevels],
  }),
);

/** roiAlignUniforms' bytes for these levels. */
export function packRoiAlignUniforms(n: number, K: number, C: number, p: RoiAlignParams, boxesOffset: number, levels: readonly RoiLevel[]): Uint32Array {
  return roiAlignUniforms(levels.length).pack({
    n,
    K,
    C,
    PH: p.pooledH,
    PW: p.pooledW,
    samplingRatio: p.samplingRatio,
    aligned: p.aligned ? 1 : 0,
    boxesOffset,
    levelH: levels.map((l) => l.shape[2]!),
    levelW: levels.map((l) => l.shape[3]!),
    levelScale: levels.map((l) => l.scale),
    levelOffset: levels.map((l) => l.offset),
  });
}

/**
 * Channels per invocation: 16 forward, 8 backward. Lanes of a SIMD group are consecutive invocations,
 * i.e. consecutive channel blocks of one (box, bin): they share every trip count and branch of the
 * sampling loops, and the geometry (box loads, taps) is computed once per block. Measured on lavapipe
 * (P4 map, 512 boxes, sampling_ratio 2): 4 / 8 / 16 channels 880 / 650 / 550 CPU-ms forward; the
 * backward stays at 8 because each channel adds a compare-exchange loop to the shader (compile time).
 */
export function roiChannels(backward: boolean): number {
  return backward ? 8 : 16;
}

// Per-box geometry, shared by forward and backward (the same float32 expression order as torchvision),
// and the sampling taps along one axis.
const GEOMETRY = `struct Geom { sw: f32, sh: f32, bw: f32, bh: f32, gh: i32, gw: i32, count: f32, batch: u32 }
fn roi_geom(k: u32, scale: f32) -> Geom {
  let b = u.boxesOffset + k * 5u;
  let offset = select(0.0, 0.5, u.aligned != 0u);
  let sw = boxes[b + 1u] * scale - offset;
  let sh = boxes[b + 2u] * scale - offset;
  let ew = boxes[b + 3u] * scale - offset;
  let eh = boxes[b + 4u] * scale - offset;
  var rw = ew - sw;
  var rh = eh - sh;
  if (u.aligned == 0u) { rw = max(rw, 1.0); rh = max(rh, 1.0); }
  let ph = f32(u.PH);
  let pw = f32(u.PW);
  let bh = rh / ph;
  let bw = rw / pw;
  let sr = u.samplingRatio;
  let gh = select(i32(ceil(rh / ph)), sr, sr > 0);
  let gw = select(i32(ceil(rw / pw)), sr, sr > 0);
  let count = f32(max(gh * gw, 1));
  return Geom(sw, sh, bw, bh, gh, gw, count, u32(boxes[b]));
}
// Bilinear interpolation is separable: a sample's four corner weights are products of one weight per
// axis, and torchvision's cut-off (sample outside [-1, H] x [-1, W] counts 0) is "either axis outside".
// So a bin is the sum over rows r and columns q of wy(r) * wx(q) * f(r, q), where wy(r) sums the weights
// that the bin's samples give row r (likewise wx). taps() gives 4 samples s0..s0+3 of one axis as 8
// taps (tap 2j / 2j+1: sample j's low / high neighbour), with torchvision's bilinear_interpolate rules:
// weight 0 for samples past the grid (s >= g) or outside [-1, n]; the coordinate is max(v, 0), and from
// n - 1 on both neighbours are n - 1, i.e. the weights are those of min(max(v, 0), n - 1) with the high
// neighbour min(low + 1, n - 1). Taps on the same pixel are merged: the first carries the summed
// weight, the others 0, so each pixel is loaded once. Packed in vec4s for run-time indexing (pick).
struct Taps { ia: vec4<i32>, ib: vec4<i32>, wa: vec4<f32>, wb: vec4<f32> }
fn taps(lo: f32, bin: f32, g: i32, s0: i32, n: u32) -> Taps {
  let v0 = lo + (f32(s0 + 0) + 0.5) * bin / f32(g);
  let c0 = min(max(v0, 0.0), f32(n) - 1.0);
  let i0 = i32(c0);
  let i1 = min(i0 + 1, i32(n) - 1);
  let f0 = c0 - f32(i0);
  let k0 = select(0.0, 1.0, s0 + 0 < g && v0 >= -1.0 && v0 <= f32(n));
  let u0 = (1.0 - f0) * k0;
  let u1 = f0 * k0;
  let v1 = lo + (f32(s0 + 1) + 0.5) * bin / f32(g);
  let c1 = min(max(v1, 0.0), f32(n) - 1.0);
  let i2 = i32(c1);
  let i3 = min(i2 + 1, i32(n) - 1);
  let f1 = c1 - f32(i2);
  let k1 = select(0.0, 1.0, s0 + 1 < g && v1 >= -1.0 && v1 <= f32(n));
  let u2 = (1.0 - f1) * k1;
  let u3 = f1 * k1;
  let v2 = lo + (f32(s0 + 2) + 0.5) * bin / f32(g);
  let c2 = min(max(v2, 0.0), f32(n) - 1.0);
  let i4 = i32(c2);
  let i5 = min(i4 + 1, i32(n) - 1);
  let f2 = c2 - f32(i4);
  let k2 = select(0.0, 1.0, s0 + 2 < g && v2 >= -1.0 && v2 <= f32(n));
  let u4 = (1.0 - f2) * k2;
  let u5 = f2 * k2;
  let v3 = lo + (f32(s0 + 3) + 0.5) * bin / f32(g);
  let c3 = min(max(v3, 0.0), f32(n) - 1.0);
  let i6 = i32(c3);
  let i7 = min(i6 + 1, i32(n) - 1);
  let f3 = c3 - f32(i6);
  let k3 = select(0.0, 1.0, s0 + 3 < g && v3 >= -1.0 && v3 <= f32(n));
  let u6 = (1.0 - f3) * k3;
  let u7 = f3 * k3;
  let w0 = u0 + select(0.0, u1, i1 == i0) + select(0.0, u2, i2 == i0) + select(0.0, u3, i3 == i0) + select(0.0, u4, i4 == i0) + select(0.0, u5, i5 == i0) + select(0.0, u6, i6 == i0) + select(0.0, u7, i7 == i0);
  let w1 = select(u1 + select(0.0, u0, i0 == i1) + select(0.0, u2, i2 == i1) + select(0.0, u3, i3 == i1) + select(0.0, u4, i4 == i1) + select(0.0, u5, i5 == i1) + select(0.0, u6, i6 == i1) + select(0.0, u7, i7 == i1), 0.0, i0 == i1);
  let w2 = select(u2 + select(0.0, u0, i0 == i2) + select(0.0, u1, i1 == i2) + select(0.0, u3, i3 == i2) + select(0.0, u4, i4 == i2) + select(0.0, u5, i5 == i2) + select(0.0, u6, i6 == i2) + select(0.0, u7, i7 == i2), 0.0, i0 == i2 || i1 == i2);
  let w3 = select(u3 + select(0.0, u0, i0 == i3) + select(0.0, u1, i1 == i3) + select(0.0, u2, i2 == i3) + select(0.0, u4, i4 == i3) + select(0.0, u5, i5 == i3) + select(0.0, u6, i6 == i3) + select(0.0, u7, i7 == i3), 0.0, i0 == i3 || i1 == i3 || i2 == i3);
  let w4 = select(u4 + select(0.0, u0, i0 == i4) + select(0.0, u1, i1 == i4) + select(0.0, u2, i2 == i4) + select(0.0, u3, i3 == i4) + select(0.0, u5, i5 == i4) + select(0.0, u6, i6 == i4) + select(0.0, u7, i7 == i4), 0.0, i0 == i4 || i1 == i4 || i2 == i4 || i3 == i4);
  let w5 = select(u5 + select(0.0, u0, i0 == i5) + select(0.0, u1, i1 == i5) + select(0.0, u2, i2 == i5) + select(0.0, u3, i3 == i5) + select(0.0, u4, i4 == i5) + select(0.0, u6, i6 == i5) + select(0.0, u7, i7 == i5), 0.0, i0 == i5 || i1 == i5 || i2 == i5 || i3 == i5 || i4 == i5);
  let w6 = select(u6 + select(0.0, u0, i0 == i6) + select(0.0, u1, i1 == i6) + select(0.0, u2, i2 == i6) + select(0.0, u3, i3 == i6) + select(0.0, u4, i4 == i6) + select(0.0, u5, i5 == i6) + select(0.0, u7, i7 == i6), 0.0, i0 == i6 || i1 == i6 || i2 == i6 || i3 == i6 || i4 == i6 || i5 == i6);
  let w7 = select(u7 + select(0.0, u0, i0 == i7) + select(0.0, u1, i1 == i7) + select(0.0, u2, i2 == i7) + select(0.0, u3, i3 == i7) + select(0.0, u4, i4 == i7) + select(0.0, u5, i5 == i7) + select(0.0, u6, i6 == i7), 0.0, i0 == i7 || i1 == i7 || i2 == i7 || i3 == i7 || i4 == i7 || i5 == i7 || i6 == i7);
  return Taps(vec4<i32>(i0, i1, i2, i3), vec4<i32>(i4, i5, i6, i7), vec4<f32>(w0, w1, w2, w3), vec4<f32>(w4, w5, w6, w7));
}
fn pick_i(t: Taps, e: i32) -> i32 { return select(t.ia[e & 3], t.ib[e & 3], e >= 4); }
fn pick_w(t: Taps, e: i32) -> f32 { return select(t.wa[e & 3], t.wb[e & 3], e >= 4); }`;


export const range = (n: number): number[] => Array.from({ length: n }, (_, j) => j);

/**
 * One (box, bin, channel block) at level l: the sampling grid in chunks of 4 x 4 samples; within a
 * chunk each pixel is loaded once per channel ((g + 1)^2 loads for a dense g x g grid instead of 4 g^2;
 * on lavapipe every buffer load is a loop over the SIMD lanes, so loads set the speed). One copy of
 * the visit code (the backward's atomics are large), loops with run-time bounds over vec4-packed taps.
 */
function levelBody(nLevels: number, l: number, backward: boolean, cb: number): string {
  const visit = range(cb)
    .map((j) => (backward ? `add(b${j} + p, w * go${j});` : `a${j} += w * f${l}[b${j} + p];`))
    .join('\n            ');
  return `${levelPrelude(nLevels, l, cb)}
    ${backward ? range(cb).map((j) => `let go${j} = gv${j} / g.count;`).join(' ') : 'cnt = g.count;'}
    ${binLoops(visit)}`;
}

/** The box's geometry at level l and each channel's plane base b{j} (names used by the bodies). */
export function levelPrelude(nLevels: number, l: number, cb: number): string {
  const U = roiAlignUniforms(nLevels);
  return `let g = roi_geom(k, ${U.at('levelScale', l)});
    let H = ${U.at('levelH', l)};
    let W = ${U.at('levelW', l)};
    let plane = H * W;
    let base = ${U.at('levelOffset', l)} + g.batch * C * plane;
    ${range(cb).map((j) => `let b${j} = base + ch${j} * plane;`).join(' ')}`;
}

/** Bin (ph, pw)'s sampling grid in 4 x 4-sample chunks, `visit` run for each pixel p with weight w. */
export function binLoops(visit: string): string {
  return `let ylo = g.sh + f32(ph) * g.bh;
    let xlo = g.sw + f32(pw) * g.bw;
    for (var sy = 0; sy < g.gh; sy += 4) {
      let ty = taps(ylo, g.bh, g.gh, sy, H);
      let ny = 2 * min(g.gh - sy, 4);
      for (var sx = 0; sx < g.gw; sx += 4) {
        let tx = taps(xlo, g.bw, g.gw, sx, W);
        let nx = 2 * min(g.gw - sx, 4);
        for (var ey = 0; ey < ny; ey++) {
          let wy = pick_w(ty, ey);
          if (wy == 0.0) { continue; }
          let row = u32(pick_i(ty, ey)) * W;
          for (var ex = 0; ex < nx; ex++) {
            let wx = pick_w(tx, ex);
            if (wx == 0.0) { continue; }
            let p = row + u32(pick_i(tx, ex));
            let w = wy * wx;
            ${visit}
          }
        }
      }
    }`;
}

/** The bindings (boxes, [levels], then grad_out and the levels' gradient, or the features and out) and, backward, the atomic add. */
function roiAlignBindings(nLevels: number, backward: boolean): { decls: string[]; adds: string[] } {
  const decls: string[] = ['@group(0) @binding(1) var<storage, read> boxes: array<f32>;'];
  let binding = 2;
  if (nLevels > 1) decls.push(`@group(0) @binding(${binding++}) var<storage, read> lvl: array<i32>;`);
  if (backward) decls.push(`@group(0) @binding(${binding++}) var<storage, read> gout: array<f32>;`);
  // The backward adds every level's gradient into one buffer (each level from its levelOffset): one
  // zero fill for all levels and one atomic-add function. Float atomic add as a compare-exchange loop
  // on the bit pattern; concurrent lanes hold different channels, so they never hit the same address.
  if (backward) decls.push(`@group(0) @binding(${binding++}) var<storage, read_write> gin: array<atomic<u32>>;`);
  else for (let l = 0; l < nLevels; l++) decls.push(`@group(0) @binding(${binding++}) var<storage, read> f${l}: array<f32>;`);
  const adds = backward
    ? [`fn add(i: u32, v: f32) {
  var old = atomicLoad(&gin[i]);
  loop {
    let r = atomicCompareExchangeWeak(&gin[i], old, bitcast<u32>(bitcast<f32>(old) + v));
    if (r.exchanged) { break; }
    old = r.old_value;
  }
}`]
    : [];
  if (!backward) decls.push(`@group(0) @binding(${binding++}) var<storage, read_write> out: array<f32>;`);
  return { decls, adds };
}

/**
 * The module around an invocation's body: uniforms, bindings, helpers, and the invocation's channel
 * block c0 and the rest of its index t (each kernel decodes t into its box and bins).
 */
export function roiAlignModule(nLevels: number, backward: boolean, entry: string, cb: number, body: string): string {
  const { decls, adds } = roiAlignBindings(nLevels, backward);
  return `${roiAlignUniforms(nLevels).wgsl}
${decls.join('\n')}
${F32_BITS}
${GEOMETRY}
${adds.join('\n')}
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (i >= u.n) { return; }
  let C = u.C;
  let PH = u.PH;
  let PW = u.PW;
  let nb = (C + ${cb - 1}u) / ${cb}u;
  let c0 = (i % nb) * ${cb}u;
  let t = i / nb;
  ${body}
}
`;
}

/** One dispatch over the box's level: the body per level, by a switch on the level buffer when there are several. */
export function perLevel(nLevels: number, body: (l: number) => string): string {
  if (nLevels === 1) return `{\n    ${body(0)}\n  }`;
  const cases = range(nLevels).map((l) => `case ${l}: {\n    ${body(l)}\n  }`);
  return `switch (lvl[k]) {\n  ${cases.join('\n  ')}\n  default: {}\n  }`;
}

/**
 * Forward (`backward` false): out[k,c,ph,pw] from the box's level. Backward: grad_in[level] +=
 * weights * grad_out / count. One invocation per (box, bin, block of `cb` channels), the channel
 * block fastest. Bindings: boxes, [levels when nLevels > 1], then grad_out and the gradient of all
 * levels (backward: one buffer, level l from its levelOffset) or the features (one per level) and out
 * (forward). Uniform word 0 is the invocation count.
 */
export function roiAlignKernel(nLevels: number, backward: boolean, cb = roiChannels(backward), quick = false): { wgsl: string; entry: string } {
  // The quick variant (quick: engine/tiering.ts runs it while this kernel compiles in the background)
  // visits the levels' sampling grids once per channel of the block, in a loop: a one-channel body
  // per level instead of cb channels unrolled. Same grid, uniforms and bindings; the forward's sums
  // run in the same order (the same bits), the backward's atomic adds are unordered either way.
  const bodyCb = quick ? 1 : cb;
  let dispatchLevel = perLevel(nLevels, (l) => levelBody(nLevels, l, backward, bodyCb));
  if (quick) {
    dispatchLevel = `for (var jq = 0u; jq < ${cb}u; jq++) {
  if (c0 + jq >= C) { break; }
  let ch0 = c0 + jq;
  let o0 = ((k * C + ch0) * PH + ph) * PW + pw;
  ${backward ? 'let gv0 = gout[o0];\n  if (gv0 == 0.0) { continue; }' : 'var a0 = 0.0;\n  var cnt = 1.0;'}
  ${dispatchLevel}
  ${backward ? '' : 'out[o0] = a0 / cnt;'}
  }`;
  }
  const js = range(quick ? 0 : cb);
  const entry = `roi_align_${backward ? 'backward' : 'forward'}_l${nLevels}_c${cb}${quick ? '_quick' : ''}`;
  const wgsl = roiAlignModule(nLevels, backward, entry, cb, `let pw = t % PW;
  let ph = (t / PW) % PH;
  let k = t / (PW * PH);
  // Channels past C (the last block) read channel C - 1 and store nothing.
  ${js.map((j) => `let ch${j} = min(c0 + ${j}u, C - 1u);`).join(' ')}
  ${js.map((j) => `let o${j} = ((k * C + ch${j}) * PH + ph) * PW + pw;`).join('\n  ')}
  ${
    quick ? '' : backward
      ? `${js.map((j) => `let gv${j} = select(0.0, gout[o${j}], c0 + ${j}u < C);`).join(' ')}
  if (${js.map((j) => `gv${j} == 0.0`).join(' && ')}) { return; }`
      : `${js.map((j) => `var a${j} = 0.0;`).join(' ')}
  var cnt = 1.0;`
  }
  ${dispatchLevel}
  ${backward ? '' : js.map((j) => `if (c0 + ${j}u < C) { out[o${j}] = a${j} / cnt; }`).join('\n  ')}`);
  return { wgsl, entry };
}

/** Invocations of roiAlignKernel for K boxes, C channels, PH x PW bins (the uniform n). */
export function roiAlignInvocations(K: number, C: number, p: RoiAlignParams, cb: number): number {
  return K * p.pooledH * p.pooledW * Math.ceil(C / cb);
}

/** FPN level mapper: lvl = clamp(floor(...), kMin, kMax) - kMin, torchvision's or Detectron2's formula. */
export interface LevelMapperParams {
  kMin: number;
  kMax: number;
  canonicalScale: number;
  canonicalLevel: number;
  eps: number;
  /** torchvision: floor(l0 + log2(s / s0) + eps); detectron2: floor(l0 + log2(s / s0 + eps)). */
  variant: 'torchvision' | 'detectron2';
}

/** K boxes; cols: box row stride (4 or 5); first: first coordinate column; s0, l0: canonical scale and level. */
export const LEVEL_MAPPER_UNIFORMS = uniformBlock('map_levels', {
  K: 'u32',
  boxesOffset: 'u32',
  cols: 'u32',
  first: 'u32',
  kMin: 'i32',
  kMax: 'i32',
  s0: 'f32',
  l0: 'f32',
  eps: 'f32',
});

export function levelMapperKernel(variant: LevelMapperParams['variant']): { wgsl: string; entry: string } {
  const expr = variant === 'torchvision' ? 'l0 + log2(s / s0) + eps' : 'l0 + log2(s / s0 + eps)';
  const arg = variant === 'torchvision' ? 's / s0' : 's / s0 + eps';
  const entry = `map_levels_${variant}`;
  return {
    entry,
    wgsl: `${LEVEL_MAPPER_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> boxes: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<i32>;
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (i >= u.K) { return; }
  let b = u.boxesOffset + i * u.cols + u.first;
  let kmin = u.kMin;
  let kmax = u.kMax;
  let s0 = u.s0;
  let l0 = u.l0;
  let eps = u.eps;
  let s = sqrt((boxes[b + 2u] - boxes[b]) * (boxes[b + 3u] - boxes[b + 1u]));
  var level = kmin;
  // log2 of 0 (zero-area box) is -inf in torch, so the box clamps to kMin; a negative area gives
  // NaN in torch (undefined level), which we also send to kMin.
  if (${arg} > 0.0) { level = clamp(i32(floor(${expr})), kmin, kmax); }
  out[i] = level - kmin;
}
`,
  };
}

// ---------------------------------------------------------------- float64 references

interface RefGeom {
  sw: number;
  sh: number;
  bw: number;
  bh: number;
  gh: number;
  gw: number;
  count: number;
  batch: number;
}

function refGeom(box: ArrayLike<number>, scale: number, p: RoiAlignParams): RefGeom {
  const offset = p.aligned ? 0.5 : 0;
  const sw = box[1]! * scale - offset, sh = box[2]! * scale - offset;
  let rw = box[3]! * scale - offset - sw, rh = box[4]! * scale - offset - sh;
  if (!p.aligned) {
    rw = Math.max(rw, 1);
    rh = Math.max(rh, 1);
  }
  const gh = p.samplingRatio > 0 ? p.samplingRatio : Math.ceil(rh / p.pooledH);
  const gw = p.samplingRatio > 0 ? p.samplingRatio : Math.ceil(rw / p.pooledW);
  return { sw, sh, bw: rw / p.pooledW, bh: rh / p.pooledH, gh, gw, count: Math.max(gh * gw, 1), batch: box[0]! };
}

/** torchvision's bilinear_interpolate: [offsets, weights] of the four corners, or null outside. */
export function refBilinear(y: number, x: number, H: number, W: number): [number[], number[]] | null {
  if (!(y >= -1 && y <= H && x >= -1 && x <= W)) return null;
  y = Math.max(y, 0);
  x = Math.max(x, 0);
  let yl = Math.trunc(y), xl = Math.trunc(x), yh: number, xh: number;
  if (yl >= H - 1) {
    yh = yl = H - 1;
    y = yl;
  } else yh = yl + 1;
  if (xl >= W - 1) {
    xh = xl = W - 1;
    x = xl;
  } else xh = xl + 1;
  const ly = y - yl, lx = x - xl, hy = 1 - ly, hx = 1 - lx;
  return [
    [yl * W + xl, yl * W + xh, yh * W + xl, yh * W + xh],
    [hy * hx, hy * lx, ly * hx, ly * lx],
  ];
}

/** Visits every (output index, input index, weight) of the pooling (the op is linear in the input). */
function forEachWeight(
  featShapes: readonly (readonly number[])[],
  scales: readonly number[],
  rois: RefTensor,
  levels: ArrayLike<number> | null,
  p: RoiAlignParams,
  visit: (level: number, outIndex: number, inIndex: number, w: number) => void,
): void {
  const K = rois.shape[0]!;
  const C = featShapes[0]![1]!;
  for (let k = 0; k < K; k++) {
    const l = levels ? levels[k]! : 0;
    const [, , H, W] = featShapes[l]!;
    const g = refGeom(rois.data.subarray(k * 5, k * 5 + 5), scales[l]!, p);
    for (let c = 0; c < C; c++) {
      const base = (g.batch * C + c) * H! * W!;
      for (let ph = 0; ph < p.pooledH; ph++) {
        for (let pw = 0; pw < p.pooledW; pw++) {
          const o = ((k * C + c) * p.pooledH + ph) * p.pooledW + pw;
          for (let iy = 0; iy < g.gh; iy++) {
            const y = g.sh + ph * g.bh + ((iy + 0.5) * g.bh) / g.gh;
            for (let ix = 0; ix < g.gw; ix++) {
              const x = g.sw + pw * g.bw + ((ix + 0.5) * g.bw) / g.gw;
              const bl = refBilinear(y, x, H!, W!);
              if (!bl) continue;
              for (let q = 0; q < 4; q++) if (bl[1][q] !== 0) visit(l, o, base + bl[0][q]!, bl[1][q]! / g.count);
            }
          }
        }
      }
    }
  }
}

/** float64 multi-level RoIAlign: out[k] pools features[levels[k]] (levels null: one level). */
export function roiAlignReference(features: readonly RefTensor[], rois: RefTensor, scales: readonly number[], p: RoiAlignParams, levels: ArrayLike<number> | null = null): RefTensor {
  const K = rois.shape[0]!, C = features[0]!.shape[1]!;
  const out = new Float64Array(K * C * p.pooledH * p.pooledW);
  forEachWeight(features.map((f) => f.shape), scales, rois, levels, p, (l, o, i, w) => {
    out[o] += w * features[l]!.data[i]!;
  });
  return { shape: [K, C, p.pooledH, p.pooledW], data: out };
}

/** float64 backward: the input gradient of each level for output gradient `gout`. */
export function roiAlignBackwardReference(featShapes: readonly number[][], gout: RefTensor, rois: RefTensor, scales: readonly number[], p: RoiAlignParams, levels: ArrayLike<number> | null = null): RefTensor[] {
  const grads = featShapes.map((s) => ({ shape: [...s], data: new Float64Array(s.reduce((a, b) => a * b, 1)) }));
  forEachWeight(featShapes, scales, rois, levels, p, (l, o, i, w) => {
    grads[l]!.data[i] += w * gout.data[o]!;
  });
  return grads;
}

/** float64 level mapper over [K, 4] boxes (x1, y1, x2, y2). */
export function mapLevelsReference(boxes: ArrayLike<number>, stride: number, first: number, m: LevelMapperParams): number[] {
  const K = boxes.length / stride;
  const out: number[] = [];
  for (let k = 0; k < K; k++) {
    const b = k * stride + first;
    const s = Math.sqrt((boxes[b + 2]! - boxes[b]!) * (boxes[b + 3]! - boxes[b + 1]!));
    const arg = m.variant === 'torchvision' ? s / m.canonicalScale : s / m.canonicalScale + m.eps;
    let level = m.kMin;
    if (arg > 0) {
      const raw = m.variant === 'torchvision' ? m.canonicalLevel + Math.log2(arg) + m.eps : m.canonicalLevel + Math.log2(arg);
      level = Math.min(Math.max(Math.floor(raw), m.kMin), m.kMax);
    }
    out.push(level - m.kMin);
  }
  return out;
}
