// Convolution weights packed into an rgba32float texture for the spatial kernel's `wtex` form
// (kernels/conv-gemm.ts). Why: the spatial kernel's weights are the same for all 64 lanes of a
// workgroup, but on lavapipe (Mesa llvmpipe) a storage-buffer load whose address is not a constant
// is a runtime loop over the 8 SIMD lanes (bounds check, one scalar load per lane), while a texel
// fetch is one vectorised call returning 4 floats for 8 lanes (bench/RESULTS.md, "Texture-fed
// matmul"). Packing: texel (c*KHW + kh*KW + kw, g*ceil(nc/4) + jq) holds output channels 4jq..4jq+3
// of group g (zero past nc) at source channel c and tap (kh, kw); the mode's weight strides (wJ, wC
// of spatialWeightStrides) say where each sits in the weight tensor, so 'fwd' and 'bwdInput' share
// the packer. Cost O(weights) per dispatch, against O(pixels x weights) for the convolution.
import { uniformBlock } from './uniforms.js';
import { F16_ROUND_WGSL, f16Load } from './f16.js';

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
 * Buffers [w], textures [the texture (storage, written)]. Workgroups: (ceil(kc*KHW / PACK_WEIGHTS_WG),
 * ceil(nc/4), groups). roundF16: the autocast form (values rounded to f16 as packed).
 */
export function packWeightsKernel(roundF16: boolean): { wgsl: string; entry: string } {
  const entry = `conv_pack_weights${roundF16 ? '_f16' : ''}`;
  const lanes = [0, 1, 2, 3].map((i) => `  let j${i} = jq * 4u + ${i}u;
  let v${i} = select(0.0, ${f16Load(`w[base + min(j${i}, nc - 1u) * u.wJ]`, roundF16)}, j${i} < nc);`);
  return {
    entry,
    wgsl: `${roundF16 ? `${F16_ROUND_WGSL}\n` : ''}${PACK_WEIGHTS_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> w: array<f32>;
@group(0) @binding(2) var t: texture_storage_2d<rgba32float, write>;
@compute @workgroup_size(${PACK_WEIGHTS_WG})
fn ${entry}(@builtin(global_invocation_id) gid: vec3<u32>, @builtin(workgroup_id) wid: vec3<u32>) {
  let nc = u.nc; let KHW = u.KHW;
  let tap = gid.x; let jq = wid.y; let g = wid.z;
  if (tap >= u.kc * KHW) { return; }
  let c = tap / KHW; let khw = tap % KHW;
  let base = g * nc * u.kc * KHW + c * u.wC + khw;
${lanes.join('\n')}
  textureStore(t, vec2<u32>(tap, g * ((nc + 3u) / 4u) + jq), vec4<f32>(v0, v1, v2, v3));
}
`,
  };
}
