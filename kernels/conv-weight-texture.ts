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
// One dispatch packs up to PACK_WEIGHTS_MAX_BATCH weights (all single or all dual): after an
// optimizer step every trainable weight is stale at once (engine/ops/conv-weight-pack.ts).
import { blockVariants, uniformBlock } from './uniforms.js';
import { grid, LINEAR_GROUP } from './common.js';
import { F16_ROUND_WGSL, f16Load, roundToF16 } from './f16.js';

/** The spatial kernel's texture binding (after src, wt, bias, dst at bindings 1-4). */
export const WEIGHT_TEXTURE_DECL = '@group(0) @binding(5) var wtx: texture_2d<f32>;';

export const PACK_WEIGHTS_WG = 64;

/** Weights one pack dispatch packs at most (each binds its buffer and one or, dual, two storage textures). */
export const PACK_WEIGHTS_MAX_BATCH = 4;

/**
 * The uniforms of a pack of k weights. Member j: kc{j} source and nc{j} output channels per group,
 * KHW{j} taps, weight strides wJ{j}, wC{j} (spatialWeightStrides of its mode), and its share of the
 * linear workgroup grid: xw{j} workgroups along the taps, q{j} texel quads, from workgroup start{j}.
 */
export const packWeightsUniforms = blockVariants((k: number) => {
  const spec: Record<string, 'u32'> = {};
  for (let j = 0; j < k; j++) for (const f of ['kc', 'nc', 'KHW', 'wJ', 'wC', 'xw', 'q', 'start']) spec[`${f}${j}`] = 'u32';
  return uniformBlock(`conv_pack_weights${k}`, spec);
});

/** The texture's size in texels: kc*KHW wide, groups*ceil(nc/4) high. */
export function weightTextureSize(kc: number, nc: number, KHW: number, groups: number): [number, number] {
  return [kc * KHW, groups * Math.ceil(nc / 4)];
}

/** One weight of a pack: its layout (kc, nc, KHW, groups; wJ, wC its mode's strides), dual or not. */
export interface PackMember {
  kc: number;
  nc: number;
  KHW: number;
  groups: number;
  wJ: number;
  wC: number;
}

/**
 * A member's workgroups: (ceil(taps / PACK_WEIGHTS_WG), quads, groups) with taps and quads those of
 * the layout (kc, nc) or, dual, the larger of it and its swap (nc, kc).
 */
function memberGrid(m: PackMember, dual: boolean): { xw: number; q: number; groups: number } {
  const taps = dual ? Math.max(m.kc, m.nc) * m.KHW : m.kc * m.KHW;
  const q = dual ? Math.max(Math.ceil(m.kc / 4), Math.ceil(m.nc / 4)) : Math.ceil(m.nc / 4);
  return { xw: Math.ceil(taps / PACK_WEIGHTS_WG), q, groups: m.groups };
}

/** The uniforms and workgroup grid of a pack of `members` (all dual or all single). */
export function packWeightsDispatch(members: readonly PackMember[], dual: boolean): { uniforms: Uint32Array; workgroups: [number, number] } {
  const values: Record<string, number> = {};
  let start = 0;
  members.forEach((m, j) => {
    const { xw, q, groups } = memberGrid(m, dual);
    Object.assign(values, { [`kc${j}`]: m.kc, [`nc${j}`]: m.nc, [`KHW${j}`]: m.KHW, [`wJ${j}`]: m.wJ, [`wC${j}`]: m.wC, [`xw${j}`]: xw, [`q${j}`]: q, [`start${j}`]: start });
    start += xw * q * groups;
  });
  return { uniforms: packWeightsUniforms(members.length).pack(values), workgroups: grid(start) };
}

/**
 * Packs k weights in one dispatch (k = 1: one weight). Buffers [w0 .. w(k-1)]; textures, per member,
 * [its (kc, nc) texture] or, dual, [that, the swapped layout's texture]. The linear workgroup index
 * picks the member (its range from start{j}), then its (tap block, quad, group). roundF16: the
 * autocast form (values rounded to f16 as packed). Workgroups: packWeightsDispatch.
 */
export function packWeightsKernel(roundF16: boolean, dual = false, k = 1): { wgsl: string; entry: string } {
  if (!Number.isInteger(k) || k < 1 || k > PACK_WEIGHTS_MAX_BATCH) throw new Error(`packWeightsKernel: ${k} weights per dispatch`);
  const entry = `conv_pack_weights${dual ? '_dual' : ''}${k > 1 ? `_x${k}` : ''}${roundF16 ? '_f16' : ''}`;
  const per = dual ? 2 : 1;
  const decls: string[] = [];
  for (let j = 0; j < k; j++) {
    decls.push(`@group(0) @binding(${1 + j}) var<storage, read> w${j}: array<f32>;`);
    decls.push(`@group(0) @binding(${1 + k + j * per}) var t${j}: texture_storage_2d<rgba32float, write>;`);
    if (dual) decls.push(`@group(0) @binding(${2 + k + j * per}) var t${j}b: texture_storage_2d<rgba32float, write>;`);
  }
  // One texel of member j's layout (kc, nc, wJ, wC) at (tap, jq, g), stored when it lies within it.
  const store = (j: number, t: string, kc: string, nc: string, wJ: string, wC: string): string => {
    const lanes = [0, 1, 2, 3].map((i) => `let v${i} = select(0.0, ${f16Load(`w${j}[base + min(jq * 4u + ${i}u, ${nc} - 1u) * ${wJ}]`, roundF16)}, jq * 4u + ${i}u < ${nc});`);
    return `if (tap < ${kc} * u.KHW${j} && jq < (${nc} + 3u) / 4u) {
        let base = g * ${nc} * ${kc} * u.KHW${j} + (tap / u.KHW${j}) * ${wC} + tap % u.KHW${j};
        ${lanes.join('\n        ')}
        textureStore(${t}, vec2<u32>(tap, g * ((${nc} + 3u) / 4u) + jq), vec4<f32>(v0, v1, v2, v3));
      }`;
  };
  const cases = Array.from({ length: k }, (_, j) => {
    const body = [store(j, `t${j}`, `u.kc${j}`, `u.nc${j}`, `u.wJ${j}`, `u.wC${j}`)];
    if (dual) body.push(store(j, `t${j}b`, `u.nc${j}`, `u.kc${j}`, `u.wC${j}`, `u.wJ${j}`));
    return `case ${j}u: {
      let local = wl - u.start${j};
      let tap = (local % u.xw${j}) * ${PACK_WEIGHTS_WG}u + lid;
      let jq = (local / u.xw${j}) % u.q${j};
      let g = local / (u.xw${j} * u.q${j});
      ${body.join('\n      ')}
    }`;
  });
  const pick = Array.from({ length: k - 1 }, (_, j) => `if (wl >= u.start${j + 1}) { j = ${j + 1}u; }`).join(' ');
  return {
    entry,
    wgsl: `${roundF16 ? `${F16_ROUND_WGSL}\n` : ''}${packWeightsUniforms(k).wgsl}
${decls.join('\n')}
@compute @workgroup_size(${PACK_WEIGHTS_WG})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let wl = ${LINEAR_GROUP};
  var j = 0u; ${pick}
  switch j {
    ${cases.join('\n    ')}
    default: {}
  }
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
