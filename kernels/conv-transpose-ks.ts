// conv_transpose2d whose kernel equals its stride (no padding, dilation 1, one group): the mask
// head's 2x2 stride-2 "deconv". Each input pixel then owns its own KH x KW output patch, so
//   forward:  y[n, co, i*KH + a, j*KW + b] = bias[co] + sum_ci x[n, ci, i, j] w[ci, co, a, b]
//   dx:       dx[n, ci, i, j] = sum_{co, a, b} dy[n, co, i*KH + a, j*KW + b] w[ci, co, a, b]
// (dx is conv2d's forward with stride = kernel). The generic kernels (conv-gemm.ts) run the forward
// as KH*KW stride phases, each a one-tap convolution storing every KW-th column, and the dx as a
// strided gather; here one invocation takes JB input columns of one row and a block of channels for
// all taps, so the forward's KW*JB output columns of a row are contiguous (vec4 stores when OW % 4
// is 0) and the dx's row segments of dy are contiguous (vec4 loads). The channel block is the
// workgroup's y, so every lane needs the same weights of a step: each lane of an 8-wide subgroup
// loads 1/8 of them and subgroupBroadcast hands them round (on lavapipe a storage load per weight
// costs the forward 2x its time, measured by ablation; needs 'subgroups' of 8). Accumulator-major order:
// each weight is applied to all JB columns in a row (llvmpipe spills large register blocks; see
// conv-gemm.ts). The float64 references are conv.ts's convTranspose2dReference and
// conv2dInputGradReference. `roundF16` (autocast): the source (x or dy) and the weights rounded to
// f16 at each load, as the generic kernels' roundF16 forms.
import { uniformBlock } from './uniforms.js';
import { F16_ROUND_WGSL, f16Load } from './f16.js';

export const CONV_TRANSPOSE_KS_UNIFORMS = uniformBlock('conv_transpose_ks', {
  N: 'u32', Ci: 'u32', H: 'u32', W: 'u32', Co: 'u32', OH: 'u32', OW: 'u32',
  /** Column blocks per input row: ceil(W / JB). */
  jBlocks: 'u32',
  /** Element offsets of the source (x or dy), the weight and the bias. */
  srcOffset: 'u32', wOffset: 'u32', bOffset: 'u32',
  /** Forward: 1 adds the bias, 1 applies ReLU. */
  bias: 'u32', relu: 'u32',
});

/** Workgroup width. */
export const KS_WG = 64;
/** Input columns per invocation. */
export const KS_JB = 4;

export interface ConvTransposeKsSpec {
  mode: 'forward' | 'dx';
  KH: number;
  KW: number;
  /** Channels per invocation: output channels (forward) or input channels (dx). */
  cb: number;
  /** forward: the output as vec4s (OW % 4 = 0); dx: dy read as vec4s (OW % 4 = 0, dy's offset % 4 = 0). */
  vec4: boolean;
  /** Autocast: operands rounded to f16 at each load (absent otherwise, so fp32 keys stay as they were). */
  roundF16?: boolean;
}

/**
 * Channels per invocation: a power of two up to 32 and to the channels' next power of two, with at
 * most 128 accumulators (forward: JB x cb x KH x KW; dx: JB x cb). Measured on lavapipe, mask head
 * shape (bench/RESULTS.md): the forward's 8 (2x2) and the dx's 32 beat smaller blocks.
 */
export function ksChannelBlock(mode: 'forward' | 'dx', KH: number, KW: number, channels: number): number {
  const per = mode === 'forward' ? KS_JB * KH * KW : KS_JB;
  let cb = 32;
  while (cb > 1 && (cb * per > 128 || cb / 2 >= channels)) cb /= 2;
  return cb;
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/**
 * The kernel of a spec. Bindings: forward: x, w, bias, y; dx: dy, w, dx. Grid: [ceil(N * H *
 * jBlocks / KS_WG), ceil(channels / cb)] (channels: Co forward, Ci dx). vec4 needs KW * KS_JB % 4 = 0.
 */
export function convTransposeKsKernel(s: ConvTransposeKsSpec): { wgsl: string; entry: string } {
  const { mode, KH, KW, cb, vec4 } = s;
  if (vec4 && (KW * KS_JB) % 4 !== 0) throw new Error(`convTransposeKsKernel: vec4 needs KW * ${KS_JB} divisible by 4 (KW ${KW})`);
  const T = KH * KW, JB = KS_JB, seg = KW * JB;
  const r16 = !!s.roundF16;
  const ld = (x: string, v = false): string => f16Load(x, r16, v);
  const entry = `conv_transpose_ks_${mode}_${KH}x${KW}_c${cb}${vec4 ? '_v4' : ''}${r16 ? '_f16' : ''}`;
  const L: string[] = [];
  const e = (x: string): void => void L.push(x);
  e('enable subgroups;');
  e(CONV_TRANSPOSE_KS_UNIFORMS.wgsl);
  if (r16) e(F16_ROUND_WGSL);
  const fwd = mode === 'forward';
  const srcT = !fwd && vec4 ? 'vec4<f32>' : 'f32';
  e(`@group(0) @binding(1) var<storage, read> src: array<${srcT}>;`);
  e(`@group(0) @binding(2) var<storage, read> wt: array<f32>;`);
  if (fwd) {
    e(`@group(0) @binding(3) var<storage, read> bias: array<f32>;`);
    e(`@group(0) @binding(4) var<storage, read_write> dst: array<${vec4 ? 'vec4<f32>' : 'f32'}>;`);
  } else e(`@group(0) @binding(3) var<storage, read_write> dst: array<f32>;`);
  e(`@compute @workgroup_size(${KS_WG})`);
  e(`fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32, @builtin(subgroup_invocation_id) sl: u32) {`);
  // The broadcasts need every lane: lanes past the grid compute the last invocation's values, unstored.
  e(`  let total = u.N * u.H * u.jBlocks; let live = wid.x * ${KS_WG}u + lid < total;`);
  e(`  let id = min(wid.x * ${KS_WG}u + lid, total - 1u);`);
  e(`  let jb = id % u.jBlocks; let rest = id / u.jBlocks; let i = rest % u.H; let n = rest / u.H;`);
  e(`  let j0 = jb * ${JB}u; let c0 = wid.y * ${cb}u;`);
  for (const q of range(JB)) e(`  let ok${q} = j0 + ${q}u < u.W;`);
  const bc = (v: number): string => `subgroupBroadcast(wl${v >> 3}, ${v & 7}u)`;
  if (fwd) {
    // acc{q}_{c}_{t}: input column j0+q, output channel c0+c, tap t = a*KW + b.
    for (const q of range(JB)) e(`  ${range(cb).flatMap((c) => range(T).map((t) => `var a${q}_${c}_${t} = 0.0;`)).join(' ')}`);
    e(`  let last = arrayLength(&src) - 1u;`);
    e(`  for (var ci = 0u; ci < u.Ci; ci++) {`);
    e(`    let xb = u.srcOffset + ((n * u.Ci + ci) * u.H + i) * u.W + j0;`);
    for (const q of range(JB)) e(`    let x${q} = select(0.0, ${ld(`src[min(xb + ${q}u, last)]`)}, ok${q});`);
    // w[ci, co, a, b] at ((ci * Co + co) * KH + a) * KW + b: the block's cb * T weights of this ci
    // are contiguous; value v is lane v % 8's load v / 8 (past the last channel: the last weight, unstored).
    e(`    let wb = u.wOffset + ci * u.Co * ${T}u; let wlast = u.wOffset + (ci + 1u) * u.Co * ${T}u - 1u;`);
    for (const f of range(Math.ceil((cb * T) / 8))) e(`    let wl${f} = ${ld(`wt[min(wb + c0 * ${T}u + ${f * 8}u + sl, wlast)]`)};`);
    for (const c of range(cb)) {
      e(`    {`);
      for (const t of range(T)) {
        e(`      let w${t} = ${bc(c * T + t)}; ${range(JB).map((q) => `a${q}_${c}_${t} = fma(x${q}, w${t}, a${q}_${c}_${t});`).join(' ')}`);
      }
      e(`    }`);
    }
    e(`  }`);
    for (const c of range(cb)) {
      e(`  if (live && c0 + ${c}u < u.Co) {`);
      e(`    let co = c0 + ${c}u; let bv = select(0.0, bias[u.bOffset + co], u.bias == 1u);`);
      for (const a of range(KH)) {
        e(`    let ob${a} = ((n * u.Co + co) * u.OH + i * ${KH}u + ${a}u) * u.OW + j0 * ${KW}u;`);
        // The row segment's values in column order: input column q, tap column b.
        const v = (k: number): string => {
          const q = Math.floor(k / KW), b = k % KW;
          return `act(a${q}_${c}_${a * KW + b} + bv)`;
        };
        if (vec4) {
          // OW % 4 = 0 and the segment starts at a multiple of 4: each vec4 lies wholly inside or past the row.
          for (const k of range(seg / 4)) {
            e(`    if (j0 * ${KW}u + ${4 * k}u < u.OW) { dst[(ob${a} + ${4 * k}u) / 4u] = vec4<f32>(${range(4).map((m) => v(4 * k + m)).join(', ')}); }`);
          }
        } else {
          for (const k of range(seg)) e(`    if (ok${Math.floor(k / KW)}) { dst[ob${a} + ${k}u] = ${v(k)}; }`);
        }
      }
      e(`  }`);
    }
    e(`}`);
    e(`fn act(v: f32) -> f32 { return select(v, max(v, 0.0), u.relu == 1u); }`);
  } else {
    // acc{q}_{c}: input column j0+q, input channel c0+c. dy row i*KH+a, columns j0*KW .. j0*KW+seg-1.
    for (const q of range(JB)) e(`  ${range(cb).map((c) => `var a${q}_${c} = 0.0;`).join(' ')}`);
    e(`  let lastV = arrayLength(&src) - 1u;`);
    e(`  for (var co = 0u; co < u.Co; co++) {`);
    for (const a of range(KH)) {
      e(`    {`);
      e(`      let rb = u.srcOffset + ((n * u.Co + co) * u.OH + i * ${KH}u + ${a}u) * u.OW + j0 * ${KW}u;`);
      if (vec4) {
        for (const k of range(seg / 4)) e(`      let V${k} = select(vec4<f32>(0.0), ${ld(`src[min(rb / 4u + ${k}u, lastV)]`, true)}, j0 * ${KW}u + ${4 * k}u < u.OW);`);
        for (const k of range(seg)) e(`      let y${k} = V${k >> 2}[${k & 3}];`);
      } else {
        for (const k of range(seg)) e(`      let y${k} = select(0.0, ${ld(`src[min(rb + ${k}u, lastV)]`)}, ok${Math.floor(k / KW)});`);
      }
      // w[ci, co, a, b] for the block's cb input channels and the KW taps of row a: value v = c * KW + b
      // is lane v % 8's load v / 8 (channels past Ci read the last one, unstored).
      for (const f of range(Math.ceil((cb * KW) / 8))) {
        e(`      let v${f} = ${f * 8}u + sl; let wl${f} = ${ld(`wt[u.wOffset + (min(c0 + v${f} / ${KW}u, u.Ci - 1u) * u.Co + co) * ${T}u + ${a * KW}u + v${f} % ${KW}u]`)};`);
      }
      for (const c of range(cb)) {
        e(`      {`);
        for (const b of range(KW)) {
          e(`        let w${b} = ${bc(c * KW + b)}; ${range(JB).map((q) => `a${q}_${c} = fma(y${q * KW + b}, w${b}, a${q}_${c});`).join(' ')}`);
        }
        e(`      }`);
      }
      e(`    }`);
    }
    e(`  }`);
    for (const c of range(cb)) {
      e(`  if (live && c0 + ${c}u < u.Ci) {`);
      e(`    let ob = ((n * u.Ci + c0 + ${c}u) * u.H + i) * u.W + j0;`);
      e(`    ${range(JB).map((q) => `if (ok${q}) { dst[ob + ${q}u] = a${q}_${c}; }`).join(' ')}`);
      e(`  }`);
    }
    e(`}`);
  }
  return { wgsl: L.join('\n'), entry };
}
