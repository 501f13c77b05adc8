// Tensor-core conv2d forward, input gradient and weight gradient for autocast: implicit GEMMs on
// kernels/subgroup-matrix-tile.ts's loop (the weight gradient's below its kernel). The forward:
// C[co, p] = sum_k W[co, k] X[k, p] with GM = Cout (rows), GN = N*OH*OW (output pixels, image-major),
// GK = Cin*KH*KW; W is the dense weight [Cout, Cin, KH, KW] read as [Cout, GK]; X[k, p] is the input
// pixel that tap k = (ci, kh, kw) of output pixel p = (n, oh, ow) reads, zero in the padding (im2col
// made on the fly while staging B). Groups = 1 only. The store is the spatial kernels' epilogue,
// y = relu?(acc * scale[co] + bias[co] + residual) under SPATIAL_FLAGS (kernels/conv-gemm.ts's
// spatialEpilogue), with their bindings (src, wt, bias, dst, scale, res at 1-6), so engine/ops/conv.ts
// binds it alike.
// Numerics: x and w rounded to f16 (autocast), f32 sums, epilogue in f32. Reference:
// conv2dEpilogueReference on f16-rounded x and w. The input gradient (conv_transpose2d's forward):
// one dispatch per stride phase (InputGradPhase), dx[ci, p] = sum_k W^T[ci, k] dY[k, p] with
// GM = Cin, GN = N*rows*cols (the phase's dx pixels), GK = Cout * the phase's taps; tap (co, kh, kw)
// of dx pixel (n, ih, iw) reads dy at oh = (ih + ph - kh*dh) / sh, which divides evenly for the
// phase's taps, zero past dy's edges; bias and relu flags over dx's channels.
// Reference: conv2dInputGradReference on f16-rounded dy and w. `emulate` (subgroup-matrix-tile.ts)
// runs anywhere.
import { uniformBlock } from './uniforms.js';
import { spatialBindings, spatialEpilogue } from './conv-gemm.js';
import { subgroupMatrixTileWgsl, tileEntry, tileShape, type SubgroupMatrixTileSpec } from './subgroup-matrix-tile.js';
import type { ConvGeom } from './conv.js';

export const CONV_SGMAT_UNIFORMS = uniformBlock('convsgmat', {
  N: 'u32', Cin: 'u32', H: 'u32', W: 'u32', Cout: 'u32', OH: 'u32', OW: 'u32',
  KH: 'u32', KW: 'u32', sh: 'u32', sw: 'u32', ph: 'u32', pw: 'u32', dh: 'u32', dw: 'u32',
  flags: 'u32',
  /** Weight gradient: output pixels summed per split (a multiple of the K slice KB). */
  perSplit: 'u32',
  /** Input gradient, one stride phase (InputGradPhase): its offsets, pixel grid and valid taps. */
  rh: 'u32', rw: 'u32', rows: 'u32', cols: 'u32',
  kh0: 'u32', kw0: 'u32', nkh: 'u32', nkw: 'u32', kstepH: 'u32', kstepW: 'u32',
});

/**
 * One stride phase of the input gradient: the dx pixels (rh + sh*a, rw + sw*b), a < rows, b < cols,
 * and the kernel taps that reach them, kh = kh0 + j*kstepH (j < nkh), likewise kw: exactly those
 * with (rh + ph - kh*dh) divisible by sh, so no tap is wasted (a phase with none stores the epilogue
 * of 0). Stride 1 is one phase with every tap.
 */
export interface InputGradPhase {
  rh: number; rw: number; rows: number; cols: number;
  kh0: number; kw0: number; nkh: number; nkw: number; kstepH: number; kstepW: number;
}

/** Phase (rh, rw) of g's input gradient, or null when it has no pixels (kernels/conv-gemm.ts's spatial kernel takes the same phases). */
export function inputGradPhase(g: ConvGeom, rh: number, rw: number): InputGradPhase | null {
  const taps = (r: number, p: number, d: number, s: number, K: number) => {
    const valid = Array.from({ length: K }, (_, k) => k).filter((k) => (((r + p - k * d) % s) + s) % s === 0);
    return { k0: valid[0] ?? 0, n: valid.length, step: valid.length > 1 ? valid[1]! - valid[0]! : 1 };
  };
  const rows = Math.ceil((g.H - rh) / g.sh), cols = Math.ceil((g.W - rw) / g.sw);
  if (rows <= 0 || cols <= 0) return null;
  const h = taps(rh, g.ph, g.dh, g.sh, g.KH), w = taps(rw, g.pw, g.dw, g.sw, g.KW);
  return { rh, rw, rows, cols, kh0: h.k0, kw0: w.k0, nkh: h.n, nkw: w.n, kstepH: h.step, kstepW: w.step };
}

/** The phases of g's input gradient that have pixels. */
export function inputGradPhases(g: ConvGeom): InputGradPhase[] {
  const out: InputGradPhase[] = [];
  for (let rh = 0; rh < g.sh; rh++) {
    for (let rw = 0; rw < g.sw; rw++) {
      const q = inputGradPhase(g, rh, rw);
      if (q) out.push(q);
    }
  }
  return out;
}

/** Tap k = (ci, kh, kw) of output pixel p: the input element, or 0 in the padding (a clamped, in-bounds load). */
const SRC_AT = `fn srcAt(k: u32, p: u32) -> f32 {
  let KHW = u.KH * u.KW; let OHW = u.OH * u.OW;
  let kc = min(k, u.Cin * KHW - 1u); let pc = min(p, u.N * OHW - 1u);
  let ci = kc / KHW; let t = kc % KHW; let kh = t / u.KW; let kw = t % u.KW;
  let n = pc / OHW; let q = pc % OHW; let oh = q / u.OW; let ow = q % u.OW;
  let ih = i32(oh * u.sh + kh * u.dh) - i32(u.ph); let iw = i32(ow * u.sw + kw * u.dw) - i32(u.pw);
  let inside = ih >= 0 && ih < i32(u.H) && iw >= 0 && iw < i32(u.W);
  let i = ((n * u.Cin + ci) * u.H + u32(clamp(ih, 0, i32(u.H) - 1))) * u.W + u32(clamp(iw, 0, i32(u.W) - 1));
  return select(0.0, src[i], inside);
}`;

/** The spatial kernels' store (kernels/conv-gemm.ts, so all round alike) of accumulator v for channel ch at dst[o]. */
function epilogue(epi: boolean, ch: string, o: string, v: string): string {
  const e = spatialEpilogue(epi);
  return `${e.channel(ch)} ${e.store(v, o)}`;
}

/** The uniforms of one dispatch on geometry g (groups 1) with SPATIAL_FLAGS bits `flags`. */
export function convSgmatUniforms(g: ConvGeom, flags: number, perSplit = 0, phase?: InputGradPhase): Uint32Array {
  const { N, Cin, H, W, Cout, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw } = g;
  const q = phase ?? { rh: 0, rw: 0, rows: 0, cols: 0, kh0: 0, kw0: 0, nkh: 0, nkw: 0, kstepH: 0, kstepW: 0 };
  return CONV_SGMAT_UNIFORMS.pack({ N, Cin, H, W, Cout, OH, OW, KH, KW, sh, sw, ph, pw, dh, dw, flags, perSplit, ...q });
}

/**
 * The weight gradient's split-K plan: output pixels per split (a multiple of the K slice, KB) and the split count,
 * enough workgroups for `targetWorkgroups` where the pixels allow, partial sums within `maxPartial`
 * floats. Grid: (ceil(Cin*KH*KW / TN), ceil(Cout / TM), splits).
 */
export function convWeightGradSplits(g: ConvGeom, s: SubgroupMatrixTileSpec, targetWorkgroups = 512, maxPartial = 1 << 24, imagesAtCapacity = g.N): { perSplit: number; splits: number; grid: [number, number, number] } {
  // Planned for the batch at its capacity (the mask head's RoIs vary per step), so the partial-sum
  // buffer is the same every step; splits past the real pixels sum nothing and store zeros.
  const pixels = Math.max(g.N, imagesAtCapacity) * g.OH * g.OW, GN = g.Cin * g.KH * g.KW;
  const { TM, TN, KB } = tileShape(s);
  const tiles = Math.ceil(GN / TN) * Math.ceil(g.Cout / TM);
  const most = Math.max(1, Math.min(Math.ceil(pixels / (4 * KB)), Math.floor(maxPartial / (g.Cout * GN))));
  const want = Math.max(1, Math.min(most, Math.ceil(targetWorkgroups / tiles)));
  const perSplit = Math.ceil(pixels / want / KB) * KB;
  const splits = Math.ceil(pixels / perSplit);
  return { perSplit, splits, grid: [Math.ceil(GN / TN), Math.ceil(g.Cout / TM), splits] };
}

/**
 * The weight gradient's partial sums: out[z, co, k] = sum over split z's output pixels p of dy[co, p]
 * X[k, p] (k = (ci, kh, kw) as in the forward), GM = Cout, GN = Cin*KH*KW, GK = N*OH*OW. Bindings: dy,
 * x, out (1-3). The caller sums over z (engine/ops/conv.ts). Reference: conv2dWeightGradReference on
 * f16-rounded dy and x.
 */
export function convWeightGradSubgroupMatrixKernel(s: SubgroupMatrixTileSpec): { wgsl: string; entry: string } {
  const entry = tileEntry('conv_dw', s);
  const wgsl = subgroupMatrixTileWgsl(s, {
    entry,
    decls: `${CONV_SGMAT_UNIFORMS.wgsl}
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> src: array<f32>;
@group(0) @binding(3) var<storage, read_write> dst: array<f32>;`,
    helpers: SRC_AT,
    prelude: `  let GM = u.Cout; let GN = u.Cin * u.KH * u.KW; let GK = u.N * u.OH * u.OW;
  let OHW = u.OH * u.OW;
  let kStart = wid.z * u.perSplit; let kEnd = min(GK, kStart + u.perSplit);`,
    kRange: { start: 'kStart', end: 'kEnd' },
    // dy[co, p] for output pixel p = (n, oh, ow).
    loadA: (r, k) => `dy[(min(${k}, GK - 1u) / OHW * GM + min(${r}, GM - 1u)) * OHW + min(${k}, GK - 1u) % OHW]`,
    loadB: (k, col) => `srcAt(${col}, ${k})`,
    store: (r, col, v) => `dst[(wid.z * GM + ${r}) * GN + ${col}] = ${v};`,
  });
  return { wgsl, entry };
}

/** Workgroups of one dispatch: (pixel tiles, channel tiles, 1); the forward's output, or one input-gradient phase's dx pixels. */
export function convSgmatGrid(g: ConvGeom, s: SubgroupMatrixTileSpec, phase?: InputGradPhase): [number, number, number] {
  const [pixels, channels] = phase ? [g.N * phase.rows * phase.cols, g.Cin] : [g.N * g.OH * g.OW, g.Cout];
  const { TM, TN } = tileShape(s);
  return [Math.ceil(pixels / TN), Math.ceil(channels / TM), 1];
}

/** dx = the input gradient of conv2d (groups 1) from dy and w, one stride phase per dispatch (see the header). */
export function convInputGradSubgroupMatrixKernel(s: SubgroupMatrixTileSpec): { wgsl: string; entry: string } {
  const entry = tileEntry('conv_dx', s);
  // Tap k = (co, jh, jw) of the phase: kernel tap (kh0 + jh*kstepH, kw0 + jw*kstepW) of output channel co.
  const tap = `let NKK = u.nkh * u.nkw; let co = kc / NKK; let t = kc % NKK;
  let kh = u.kh0 + t / u.nkw * u.kstepH; let kw = u.kw0 + t % u.nkw * u.kstepW;`;
  const wgsl = subgroupMatrixTileWgsl(s, {
    entry,
    decls: `${CONV_SGMAT_UNIFORMS.wgsl}\n${spatialBindings(false)}`,
    // dy at the output pixel that reads dx pixel p through tap k (divisible by the stride by the
    // phase's choice of taps), or 0 past dy's edges.
    helpers: `fn dyAt(k: u32, p: u32) -> f32 {
  let RC = u.rows * u.cols;
  let kc = min(k, u.Cout * u.nkh * u.nkw - 1u); let pc = min(p, u.N * RC - 1u);
  ${tap}
  let n = pc / RC; let q = pc % RC; let ih = u.rh + q / u.cols * u.sh; let iw = u.rw + q % u.cols * u.sw;
  let yh = i32(ih + u.ph) - i32(kh * u.dh); let yw = i32(iw + u.pw) - i32(kw * u.dw);
  let oh = yh / i32(u.sh); let ow = yw / i32(u.sw);
  let inside = yh >= 0 && yw >= 0 && oh < i32(u.OH) && ow < i32(u.OW);
  let i = ((n * u.Cout + co) * u.OH + u32(clamp(oh, 0, i32(u.OH) - 1))) * u.OW + u32(clamp(ow, 0, i32(u.OW) - 1));
  return select(0.0, src[i], inside);
}
fn wAt(ci: u32, k: u32) -> f32 {
  let kc = min(k, u.Cout * u.nkh * u.nkw - 1u);
  ${tap}
  return wt[((co * u.Cin + min(ci, u.Cin - 1u)) * u.KH + kh) * u.KW + kw];
}`,
    prelude: `  let GM = u.Cin; let RC = u.rows * u.cols; let GN = u.N * RC; let GK = u.Cout * u.nkh * u.nkw;
  let flags = u.flags;`,
    loadA: (r, k) => `wAt(${r}, ${k})`,
    loadB: (k, col) => `dyAt(${k}, ${col})`,
    store: (r, col, v) => epilogue(false, r, `((${col} / RC * GM + ${r}) * u.H + u.rh + ${col} % RC / u.cols * u.sh) * u.W + u.rw + ${col} % u.cols * u.sw`, v),
  });
  return { wgsl, entry };
}

export function convSubgroupMatrixKernel(s: SubgroupMatrixTileSpec): { wgsl: string; entry: string } {
  const entry = tileEntry('conv_fwd', s);
  const wgsl = subgroupMatrixTileWgsl(s, {
    entry,
    decls: `${CONV_SGMAT_UNIFORMS.wgsl}\n${spatialBindings(true)}`,
    helpers: SRC_AT,
    prelude: `  let GM = u.Cout; let GN = u.N * u.OH * u.OW; let GK = u.Cin * u.KH * u.KW;
  let OHW = u.OH * u.OW; let flags = u.flags;`,
    loadA: (r, k) => `wt[min(${r}, GM - 1u) * GK + min(${k}, GK - 1u)]`,
    loadB: (k, col) => `srcAt(${k}, ${col})`,
    store: (r, col, v) => epilogue(true, r, `(${col} / OHW * GM + ${r}) * OHW + ${col} % OHW`, v),
  });
  return { wgsl, entry };
}
