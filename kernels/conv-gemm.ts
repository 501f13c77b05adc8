// Convolution as implicit GEMM with register blocking and no workgroup memory: the patch matrix is
// never stored; each invocation gathers the operand values it needs straight from the tensors and
// accumulates a block of outputs in registers. (On lavapipe, the CPU WebGPU this project runs on,
// every non-uniform load is a per-lane scalar loop worth ~15 FMAs and barriers are coroutine
// switches, so speed is set by FMAs per loaded value: see bench/RESULTS.md. Workgroup-memory tiles
// only add loads there; the CPU caches already do their job.)
//
// Two generators, in conv2d naming (x [N,Cin,H,W], w [Cout,Cin_g,KH,KW], y [N,Cout,OH,OW]):
//  - spatialKernel, GEMM M = output pixels, N = output channels, K = (channel, kh, kw):
//      'fwd'      y  = x * w.
//      'bwdInput' dx = dy *^T w, the transposed convolution (also conv_transpose2d's forward), run
//                 once per stride phase (ih mod sh, iw mod sw): within a phase the contributing
//                 taps are fixed, so it is a stride-1 gather with no wasted multiplies.
//    An invocation owns tm consecutive output columns of one row and tn channels. Per (channel,
//    kernel row) it loads one input row segment and reuses it for every kw (sliding window): a 3x3
//    block of 14 pixels x 8 channels loads 16 + 24 values for 336 FMAs instead of 3 x (14 + 8).
//  - weightGradKernel, dw = sum over images and pixels of dy x patches: an invocation owns tm
//    output channels x tc input channels x one kernel row, all kw; it walks a range of (image, row)
//    pairs (split-K: partial sums per range, reduced by the op) R columns at a time, again reusing
//    each input row segment across kw.
// Kernel geometry (KH, KW, stride, padding, dilation, phase) is baked in as constants, so the kw
// loops unroll onto named registers; 1x1, 3x3 and 7x7 each get their own pipelines. Sizes travel in
// the uniforms. `roundF16` (both specs) is the autocast form: every loaded operand value is rounded to
// f16 (kernels/f16.ts) and the sums stay f32; bias and the epilogue stay f32. Its reference is
// kernels/conv.ts's loops on operands rounded with roundArrayToF16.
import { uniformBlock } from './uniforms.js';
import { F16_ROUND_WGSL, f16Load } from './f16.js';

export interface SpatialSpec {
  mode: 'fwd' | 'bwdInput';
  KH: number;
  KW: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  dh: number;
  dw: number;
  /** bwdInput: the output phase (ih mod sh, iw mod sw) this kernel computes. */
  phase: [number, number];
  /** Output columns and channels per invocation. */
  tm: number;
  tn: number;
  /** Autocast: round src and weight values to f16 as they are loaded. */
  roundF16?: boolean;
}

export const SPATIAL_WG = 64;

/** Taps along one axis: kernel index k, and the source coordinate offset (affine in k's position). */
interface Taps {
  ks: number[];
  /** source coordinate = dst-grid index * srcMul + off[i] (+ t * srcMul along columns). */
  off: number[];
}

/**
 * Taps of one axis. fwd: src = o*s - p + k*d (srcMul s). bwdInput, phase r: dst i = r + s*a receives
 * from src o = (i + p - k*d)/s = a + (r + p - k*d)/s for the k that make it divisible (srcMul 1).
 */
function axisTaps(mode: SpatialSpec['mode'], K: number, s: number, p: number, d: number, r: number): Taps {
  const ks: number[] = [], off: number[] = [];
  for (let k = 0; k < K; k++) {
    if (mode === 'fwd') {
      ks.push(k);
      off.push(k * d - p);
    } else if ((((r + p - k * d) % s) + s) % s === 0) {
      ks.push(k);
      off.push((r + p - k * d) / s);
    }
  }
  return { ks, off };
}

/**
 * kc: source channels per group; nc: output channels per group; rows, cols: the dst grid; blocks:
 * column blocks; chBlocks: channel blocks; flags: 1 add bias, 2 relu.
 */
export const SPATIAL_UNIFORMS = uniformBlock('conv_spatial', {
  N: 'u32',
  srcC: 'u32',
  srcH: 'u32',
  srcW: 'u32',
  dstC: 'u32',
  dstH: 'u32',
  dstW: 'u32',
  kc: 'u32',
  nc: 'u32',
  rows: 'u32',
  blocks: 'u32',
  cols: 'u32',
  chBlocks: 'u32',
  flags: 'u32',
});

/** Workgroups: (ceil(N*rows*blocks / 64), chBlocks, groups). */
export function spatialKernel(s: SpatialSpec): { wgsl: string; entry: string } {
  const { tm, tn } = s;
  const fwd = s.mode === 'fwd';
  const th = axisTaps(s.mode, s.KH, s.sh, s.ph, s.dh, s.phase[0]);
  const tw = axisTaps(s.mode, s.KW, s.sw, s.pw, s.dw, s.phase[1]);
  const srcMulH = fwd ? s.sh : 1, srcMulW = fwd ? s.sw : 1;
  const [rowOff, rowMul] = fwd ? [0, 1] : [s.phase[0], s.sh];
  const [colOff, colMul] = fwd ? [0, 1] : [s.phase[1], s.sw];
  const KHW = s.KH * s.KW;
  const L: string[] = [];
  const e = (x: string): void => void L.push(x);
  const r16 = !!s.roundF16;
  e(SPATIAL_UNIFORMS.wgsl);
  if (r16) e(F16_ROUND_WGSL);
  e('@group(0) @binding(1) var<storage, read> src: array<f32>;');
  e('@group(0) @binding(2) var<storage, read> wt: array<f32>;');
  // Bias and relu are uniform flags (fewer pipelines to compile); without a bias any buffer is bound.
  e('@group(0) @binding(3) var<storage, read> bias: array<f32>;');
  e('@group(0) @binding(4) var<storage, read_write> dst: array<f32>;');
  e(`@compute @workgroup_size(${SPATIAL_WG})`);
  e(`fn conv_${s.mode}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {`);
  e(`  let Nb = u.N; let srcC = u.srcC; let srcH = u.srcH; let srcW = u.srcW;`);
  e(`  let dstC = u.dstC; let dstH = u.dstH; let dstW = u.dstW; let kc = u.kc; let nc = u.nc;`);
  e(`  let rows = u.rows; let blocks = u.blocks; let cols = u.cols; let flags = u.flags;`);
  e(`  let id = wid.x * ${SPATIAL_WG}u + lid.x;`);
  // Phases with no taps (1x1 stride 2) read nothing, but their bindings must stay in the layout.
  e(`  if (id >= Nb * rows * blocks) { _ = src[0]; _ = wt[0]; _ = bias[0]; return; }`);
  e(`  let g = wid.z; let j0 = wid.y * ${tn}u;`);
  e(`  let blk = id % blocks; let rest = id / blocks; let a = rest % rows; let nb = rest / rows;`);
  e(`  let b0 = blk * ${tm}u;`);
  // Source columns of this invocation: b0*srcMulW + t*srcMulW + off[kw]; one segment covers all.
  const offMin = tw.off.length ? Math.min(...tw.off) : 0, offMax = tw.off.length ? Math.max(...tw.off) : 0;
  const segLen = tw.ks.length ? (tm - 1) * srcMulW + offMax - offMin + 1 : 0;
  e(`  let seg0 = i32(b0 * ${srcMulW}u) + ${offMin};`);
  for (let q = 0; q < segLen; q++) e(`  let cok${q} = u32(seg0 + ${q}) < srcW;`);
  e(`  let srcBase = (nb * srcC + g * kc) * srcH * srcW;`);
  // Weights: fwd w[((g*nc + j)*kc + c)*KHW + kh*KW + kw]; bwdInput w[((g*kc + c)*nc + j)*KHW + ...].
  for (let j = 0; j < tn; j++) {
    const jj = `min(j0 + ${j}u, nc - 1u)`;
    e(`  let wb${j} = ${fwd ? `((g * nc + ${jj}) * kc) * ${KHW}u` : `((g * kc) * nc + ${jj}) * ${KHW}u`};`);
  }
  e(`  let wcs = ${fwd ? `${KHW}u` : `nc * ${KHW}u`};`);
  for (let i = 0; i < tm; i++) e(`  ${Array.from({ length: tn }, (_, j) => `var c${i}_${j} = 0.0;`).join(' ')}`);
  if (th.ks.length && tw.ks.length) {
    e(`  for (var c = 0u; c < kc; c++) {`);
    e(`    let plane = srcBase + c * srcH * srcW; let wc = c * wcs;`);
    // Kernel rows: an arithmetic progression in both the kernel index and the source offset.
    const khStep = th.ks.length > 1 ? th.ks[1]! - th.ks[0]! : 1;
    const offStep = th.off.length > 1 ? th.off[1]! - th.off[0]! : 0;
    e(`    for (var m = 0u; m < ${th.ks.length}u; m++) {`);
    e(`      let kh = ${th.ks[0]}u + m * ${khStep}u;`);
    e(`      let r = i32(a * ${srcMulH}u) + ${th.off[0]} + i32(m) * ${offStep};`);
    e(`      let rok = u32(r) < srcH;`);
    e(`      let rowBase = plane + select(0u, u32(r), rok) * srcW;`);
    for (let q = 0; q < segLen; q++) {
      e(`      let ok${q} = rok && cok${q}; let x${q} = select(0.0, ${f16Load(`src[select(0u, rowBase + u32(seg0 + ${q}), ok${q})]`, r16)}, ok${q});`);
    }
    tw.ks.forEach((kw, n) => {
      e(`      { let wo = wc + kh * ${s.KW}u + ${kw}u;`);
      e(`        ${Array.from({ length: tn }, (_, j) => `let w${j} = ${f16Load(`wt[wb${j} + wo]`, r16)};`).join(' ')}`);
      for (let i = 0; i < tm; i++) {
        const q = i * srcMulW + tw.off[n]! - offMin;
        e(`        ${Array.from({ length: tn }, (_, j) => `c${i}_${j} = fma(x${q}, w${j}, c${i}_${j});`).join(' ')}`);
      }
      e(`      }`);
    });
    e(`    }`);
    e(`  }`);
  }
  // Store: dst[((nb*dstC + g*nc + j)*dstH + rowOff + rowMul*a)*dstW + colOff + colMul*(b0 + t)].
  e(`  let drow = ${rowOff}u + ${rowMul}u * a;`);
  for (let j = 0; j < tn; j++) {
    e(`  if (j0 + ${j}u < nc) {`);
    e(`    let ch = g * nc + j0 + ${j}u; var bv = 0.0; if ((flags & 1u) != 0u) { bv = bias[ch]; }`);
    e(`    let ob = ((nb * dstC + ch) * dstH + drow) * dstW + ${colOff}u;`);
    for (let i = 0; i < tm; i++) {
      e(`    if (b0 + ${i}u < cols) { let v = c${i}_${j} + bv; dst[ob + (b0 + ${i}u) * ${colMul}u] = select(v, max(v, 0.0), (flags & 2u) != 0u); }`);
    }
    e(`  }`);
  }
  e(`}`);
  return { wgsl: L.join('\n'), entry: `conv_${s.mode}` };
}

export interface WeightGradSpec {
  KW: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  dh: number;
  dw: number;
  /** Output channels, input channels per invocation; columns per step. */
  tm: number;
  tc: number;
  R: number;
  /** Autocast: round dy and x values to f16 as they are loaded. */
  roundF16?: boolean;
}

/** cinG, coutG: channels per group; perSplit: (image, row) pairs per split. */
export const WEIGHT_GRAD_UNIFORMS = uniformBlock('conv_weight_grad', {
  N: 'u32',
  Cin: 'u32',
  H: 'u32',
  W: 'u32',
  Cout: 'u32',
  OH: 'u32',
  OW: 'u32',
  cinG: 'u32',
  coutG: 'u32',
  KH: 'u32',
  splits: 'u32',
  perSplit: 'u32',
  coBlocks: 'u32',
  ciBlocks: 'u32',
});

/**
 * Partial output [splits, Cout, Cin_g, KH, KW].
 * Workgroups: (ceil(coBlocks*ciBlocks*KH / 64), 1, groups*splits).
 */
export function weightGradKernel(s: WeightGradSpec): { wgsl: string; entry: string } {
  const { tm, tc, R, KW } = s;
  const segLen = (R - 1) * s.sw + (KW - 1) * s.dw + 1;
  const L: string[] = [];
  const e = (x: string): void => void L.push(x);
  const r16 = !!s.roundF16;
  e(WEIGHT_GRAD_UNIFORMS.wgsl);
  if (r16) e(F16_ROUND_WGSL);
  e('@group(0) @binding(1) var<storage, read> dy: array<f32>;');
  e('@group(0) @binding(2) var<storage, read> x: array<f32>;');
  e('@group(0) @binding(3) var<storage, read_write> dw: array<f32>;');
  e(`@compute @workgroup_size(${SPATIAL_WG})`);
  e(`fn conv_bwdWeight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {`);
  e(`  let Nb = u.N; let Cin = u.Cin; let H = u.H; let W = u.W; let Cout = u.Cout;`);
  e(`  let OH = u.OH; let OW = u.OW; let cinG = u.cinG; let coutG = u.coutG; let KH = u.KH;`);
  e(`  let splits = u.splits; let perSplit = u.perSplit; let coBlocks = u.coBlocks; let ciBlocks = u.ciBlocks;`);
  e(`  let id = wid.x * ${SPATIAL_WG}u + lid.x;`);
  e(`  if (id >= coBlocks * ciBlocks * KH) { return; }`);
  e(`  let g = wid.z / splits; let split = wid.z - g * splits;`);
  e(`  let kh = id % KH; let rest = id / KH; let cib = rest % ciBlocks; let cob = rest / ciBlocks;`);
  e(`  let co0 = cob * ${tm}u; let ci0 = cib * ${tc}u;`);
  e(`  let HW = H * W; let OHW = OH * OW;`);
  for (let i = 0; i < tm; i++) e(`  let dyc${i} = (g * coutG + min(co0 + ${i}u, coutG - 1u)) * OHW;`);
  for (let c = 0; c < tc; c++) e(`  let xc${c} = (g * cinG + min(ci0 + ${c}u, cinG - 1u)) * HW;`);
  for (let i = 0; i < tm; i++) for (let c = 0; c < tc; c++) e(`  ${Array.from({ length: KW }, (_, k) => `var a${i}_${c}_${k} = 0.0;`).join(' ')}`);
  e(`  let r0 = split * perSplit; let r1 = min(r0 + perSplit, Nb * OH);`);
  e(`  for (var row = r0; row < r1; row++) {`);
  e(`    let nb = row / OH; let oh = row - nb * OH;`);
  e(`    let ih = i32(oh * ${s.sh}u) - ${s.ph} + i32(kh * ${s.dh}u);`);
  e(`    if (u32(ih) >= H) { continue; }`);
  e(`    let dyRow = nb * Cout * OHW + oh * OW; let xRow = nb * Cin * HW + u32(ih) * W;`);
  e(`    for (var ow0 = 0u; ow0 < OW; ow0 += ${R}u) {`);
  for (let t = 0; t < R; t++) e(`      let tok${t} = ow0 + ${t}u < OW; let tcol${t} = min(ow0 + ${t}u, OW - 1u);`);
  for (let i = 0; i < tm; i++) {
    e(`      ${Array.from({ length: R }, (_, t) => `let d${i}_${t} = select(0.0, ${f16Load(`dy[dyRow + dyc${i} + tcol${t}]`, r16)}, tok${t});`).join(' ')}`);
  }
  e(`      let seg0 = i32(ow0 * ${s.sw}u) - ${s.pw};`);
  for (let q = 0; q < segLen; q++) e(`      let sok${q} = u32(seg0 + ${q}) < W; let scol${q} = select(0u, u32(seg0 + ${q}), sok${q});`);
  for (let c = 0; c < tc; c++) {
    e(`      {`);
    for (let q = 0; q < segLen; q++) e(`        let v${q} = select(0.0, ${f16Load(`x[xRow + xc${c} + scol${q}]`, r16)}, sok${q});`);
    for (let i = 0; i < tm; i++) {
      for (let k = 0; k < KW; k++) {
        const terms = Array.from({ length: R }, (_, t) => `d${i}_${t} * v${t * s.sw + k * s.dw}`);
        e(`        a${i}_${c}_${k} += ${terms.join(' + ')};`);
      }
    }
    e(`      }`);
  }
  e(`    }`);
  e(`  }`);
  e(`  let KHW = KH * ${KW}u;`);
  for (let i = 0; i < tm; i++) {
    for (let c = 0; c < tc; c++) {
      e(`  if (co0 + ${i}u < coutG && ci0 + ${c}u < cinG) {`);
      e(`    let o = ((split * Cout + g * coutG + co0 + ${i}u) * cinG + ci0 + ${c}u) * KHW + kh * ${KW}u;`);
      e(`    ${Array.from({ length: KW }, (_, k) => `dw[o + ${k}u] = a${i}_${c}_${k};`).join(' ')}`);
      e(`  }`);
    }
  }
  e(`}`);
  return { wgsl: L.join('\n'), entry: 'conv_bwdWeight' };
}

/**
 * Register block of the spatial kernel: output columns (4, 8 or 16: few sizes, so few pipelines to
 * compile; 16 wastes at most 3/16 of a block on rows wider than 12) and channels (1, 2, 4 or 8).
 */
export function pickBlock(cols: number, channels: number): { tm: number; tn: number } {
  const tm = cols <= 4 ? 4 : cols <= 8 ? 8 : 16;
  const tn = channels >= 8 ? 8 : channels >= 3 ? 4 : channels;
  return { tm, tn };
}
