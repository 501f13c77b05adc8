// Convolution weights packed into an rgba32float texture for the spatial kernel's `wtex` form
// (kernels/conv-gemm.ts). Why: the spatial kernel's weights are the same for all 64 lanes of a
// workgroup, but on lavapipe (Mesa llvmpipe) a storage-buffer load whose address is not a constant
// is a runtime loop over the 8 SIMD lanes (bounds check, one scalar load per lane), while a texel
// fetch is one vectorised call returning 4 floats for 8 lanes (bench/RESULTS.md, "Texture-fed
// matmul"). Packing: texel (c*KHW + kh*KW + kw, g*ceil(nc/4) + jq) holds output channels 4jq..4jq+3
// of group g (zero past nc) at source channel c and tap (kh, kw); the mode's weight strides (wJ, wC
// of spatialWeightStrides) say where each sits in the weight tensor, so 'fwd' and 'bwdInput' share
// the packer. Cost O(weights) per dispatch, against O(pixels x weights) for the convolution.
//
// The dual form writes both modes' textures in one dispatch (a training step needs the forward's
// texture now and the input gradient's in the backward: engine/ops/conv-weight-pack.ts keeps them).
// The second mode's layout is the first's with (kc, nc) and (wJ, wC) swapped: fwd reads
// w[g][j][c][khw] as (wJ, wC) = (kc*KHW, KHW), bwdInput as (KHW, nc_b*KHW) with its nc_b = kc.
import { uniformBlock } from './uniforms.js';
import { F16_ROUND_WGSL, f16Load, roundToF16 } from './f16.js';

/** The spatial kernel's texture binding (after src, wt, bias, dst at bindings 1-4). */
export const WEIGHT_TEXTURE_DECL = '@group(0) @binding(5) var wtx: texture_2d<f32>;';

export const PACK_WEIGHTS_WG = 64;

/** kc: source channels per group; nc: output channels per group; taps = kc * KHW texels per row. */
export const PACK_WEIGHTS_UNIFORMS = uniformBlock('conv_pack_weights', {
  kc: 'u32',
  nc: 'u32',
  KHW: 'u32',
  wJ: 'u32',
  wC: 'u32',
});

/** The texture's size in texels: kc*KHW wide, groups*ceil(nc/4) high. */
export function weightTextureSize(kc: number, nc: number, KHW: number, groups: number): [number, number] {
  return [kc * KHW, groups * Math.ceil(nc / 4)];
}

/**
 * Workgroups of a pack of the layout (kc, nc) (and, dual, of its swap (nc, kc)):
 * (ceil(taps / PACK_WEIGHTS_WG), ceil(channels / 4), groups), the larger of the two in each dimension.
 */
export function packWeightsGrid(kc: number, nc: number, KHW: number, groups: number, dual: boolean): [number, number, number] {
  const taps = dual ? Math.max(kc, nc) * KHW : kc * KHW;
  const quads = dual ? Math.max(Math.ceil(kc / 4), Math.ceil(nc / 4)) : Math.ceil(nc / 4);
  return [Math.ceil(taps / PACK_WEIGHTS_WG), quads, groups];
}

/**
 * Buffers [w], textures [the texture (storage, written)] or, dual, [the (kc, nc) texture, the
 * swapped layout's texture]. Workgroups: packWeightsGrid. roundF16: the autocast form (values
 * rounded to f16 as packed).
 */
export function packWeightsKernel(roundF16: boolean, dual = false): { wgsl: string; entry: string } {
  const entry = `conv_pack_weights${dual ? '_dual' : ''}${roundF16 ? '_f16' : ''}`;
  const lanes = [0, 1, 2, 3].map((i) => `  let j${i} = jq * 4u + ${i}u;
  let v${i} = select(0.0, ${f16Load(`w[base + min(j${i}, nc - 1u) * wJ]`, roundF16)}, j${i} < nc);`);
  // One texel of the layout (kc, nc, wJ, wC), stored when (tap, jq) lies within it.
  const store = (t: string, kc: string, nc: string, wJ: string, wC: string) =>
    `  if (tap < ${kc} * u.KHW && jq < (${nc} + 3u) / 4u) { textureStore(${t}, vec2<u32>(tap, g * ((${nc} + 3u) / 4u) + jq), texel(tap, jq, g, ${kc}, ${nc}, ${wJ}, ${wC})); }`;
  return {
    entry,
    wgsl: `${roundF16 ? `${F16_ROUND_WGSL}\n` : ''}${PACK_WEIGHTS_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var t: texture_storage_2d<rgba32float, write>;
${dual ? '@group(0) @binding(3) var t2: texture_storage_2d<rgba32float, write>;\n' : ''}
fn texel(tap: u32, jq: u32, g: u32, kc: u32, nc: u32, wJ: u32, wC: u32) -> vec4<f32> {
  let KHW = u.KHW;
  let c = tap / KHW; let khw = tap % KHW;
  let base = g * nc * kc * KHW + c * wC + khw;
${lanes.join('\n')}
  return vec4<f32>(v0, v1, v2, v3);
}
@compute @workgroup_size(${PACK_WEIGHTS_WG})
fn ${entry}(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let tap = gid.x; let jq = wid.y; let g = wid.z;
${store('t', 'u.kc', 'u.nc', 'u.wJ', 'u.wC')}
${dual ? store('t2', 'u.nc', 'u.kc', 'u.wC', 'u.wJ') : ''}
}
`,
  };
}

/**
 * The float64 reference: the texels of the layout (kc, nc, wJ, wC) of groups x nc x kc x KHW weights
 * `w`, row-major (texel (x, y) at (y*width + x)*4), values rounded to f16 when roundF16.
 */
export function packWeightsReference(w: ArrayLike<number>, kc: number, nc: number, KHW: number, groups: number, wJ: number, wC: number, roundF16 = false): Float64Array {
  const [width, height] = weightTextureSize(kc, nc, KHW, groups);
  const out = new Float64Array(width * height * 4);
  const quads = Math.ceil(nc / 4);
  for (let g = 0; g < groups; g++) {
    for (let tap = 0; tap < kc * KHW; tap++) {
      const c = Math.floor(tap / KHW), khw = tap % KHW;
      for (let j = 0; j < nc; j++) {
        const v = w[g * nc * kc * KHW + c * wC + khw + j * wJ]!;
        out[((g * quads + Math.floor(j / 4)) * width + tap) * 4 + (j % 4)] = roundF16 ? roundToF16(v) : v;
      }
    }
  }
  return out;
}
