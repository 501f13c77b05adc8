// Convolution as implicit GEMM: the patch matrix is never stored; each workgroup gathers the
// TM x TK and TK x TN operand tiles it needs straight from the tensors into workgroup memory,
// then every thread accumulates a tm x tn register block (same tiling as kernels/matmul.ts).
// One generator, three GEMMs (conv2d naming: x [N,Cin,H,W], w [Cout,Cin_g,KH,KW], y [N,Cout,OH,OW]):
//   fwd        y  = x * w        M = N*OH*OW (output pixels), N = Cout_g, K = Cin_g*KH*KW
//   bwdInput   dx = dy *^T w     M = N*H*W (input pixels),    N = Cin_g,  K = Cout_g*KH*KW
//              (a transposed convolution: also conv_transpose2d's forward)
//   bwdWeight  dw = dy^T x       M = Cout_g, N = Cin_g*KH*KW, K = N*OH*OW, split-K partial sums
// The kernel geometry (KH, KW, stride, padding, dilation) is baked in as constants, so index
// arithmetic divides by constants (3x3 and 7x7 get their own pipelines), and 1x1/stride-1/no-padding
// takes a pointwise path with no bounds arithmetic at all: a plain batched matmul over channels.
// Sizes (N, C, H, W, ...) travel in the uniforms. Threads along x (SIMD lanes on lavapipe) walk the
// M dimension, which is the contiguous pixel axis for both the gathers and the NCHW stores.
import { uniformDecl, uword } from './common.js';

export type ConvMode = 'fwd' | 'bwdInput' | 'bwdWeight';

export interface ConvTile {
  /** Threads per workgroup along M (x) and N (y). */
  wgM: number;
  wgN: number;
  /** Outputs per thread along M and N. */
  tm: number;
  tn: number;
  /** K-slice staged per step. */
  tk: number;
}

export interface ConvKernelSpec {
  mode: ConvMode;
  KH: number;
  KW: number;
  sh: number;
  sw: number;
  ph: number;
  pw: number;
  dh: number;
  dw: number;
  /** Adds bias[channel] in the epilogue (fwd / bwdInput). */
  bias: boolean;
  /** Applies max(0, .) in the epilogue (fwd / bwdInput). */
  relu: boolean;
  tile: ConvTile;
}

/**
 * Uniform words (all u32): 0 N, 1 Cin, 2 H, 3 W, 4 Cout, 5 OH, 6 OW, 7 Cin_g, 8 Cout_g, 9 M, 10 GEMM-N,
 * 11 K, 12 splits, 13 tiles per split, 14 K-tiles per image, 15 total K-tiles (the last four: bwdWeight).
 * Workgroups: (ceil(M/TM), ceil(GEMM-N/TN), groups * splits).
 */
export const CONV_UNIFORM_WORDS = 16;

export function convTileSize(t: ConvTile): { TM: number; TN: number } {
  return { TM: t.wgM * t.tm, TN: t.wgN * t.tn };
}

export function convKernelKey(s: ConvKernelSpec): string {
  const t = s.tile;
  return `${s.mode}|${s.KH}x${s.KW}|s${s.sh},${s.sw}|p${s.ph},${s.pw}|d${s.dh},${s.dw}|b${+s.bias}r${+s.relu}|${t.wgM},${t.wgN},${t.tm},${t.tn},${t.tk}`;
}

/** Per-thread loads of one operand tile: (fast, slow) coordinates of element lid + l*T. */
function tileLoads(size: number, fastDim: number, threads: number): { l: number; fast: string; slow: string; guard: string | null }[] {
  const out = [];
  for (let l = 0; l * threads < size; l++) {
    const e = `(lid + ${l * threads}u)`;
    out.push({ l, fast: `${e} % ${fastDim}u`, slow: `${e} / ${fastDim}u`, guard: (l + 1) * threads > size ? `${e} < ${size}u` : null });
  }
  return out;
}

export function convKernel(s: ConvKernelSpec): { wgsl: string; entry: string } {
  const { wgM, wgN, tm, tn, tk } = s.tile;
  const T = wgM * wgN;
  const { TM, TN } = convTileSize(s.tile);
  const KHW = s.KH * s.KW;
  const pointwise = s.KH === 1 && s.KW === 1 && s.sh === 1 && s.sw === 1 && s.ph === 0 && s.pw === 0;
  const epilogueBias = s.bias && s.mode !== 'bwdWeight';
  const U = (k: number): string => uword(k);
  const lines: string[] = [];
  const emit = (x: string): void => void lines.push(x);
  // k -> (c, kh, kw) with constant divisors.
  const splitK = (k: string, c: string, rr: string, kh: string, kw: string): string =>
    `let ${c} = ${k} / ${KHW}u; let ${rr} = ${k} - ${c} * ${KHW}u; let ${kh} = ${rr} / ${s.KW}u; let ${kw} = ${rr} - ${kh} * ${s.KW}u;`;

  // ---- operand tiles: which coordinate is fast (consecutive threads) and how an element is read ----
  const kFast = s.mode === 'bwdWeight';
  const aLoads = tileLoads(TM * tk, kFast ? tk : TM, T).map((e) => ({ ...e, r: kFast ? e.slow : e.fast, kk: kFast ? e.fast : e.slow }));
  const bLoads = tileLoads(TN * tk, tk, T).map((e) => ({ ...e, c: e.slow, kk: e.fast }));
  const pre: string[] = [];
  const step: string[] = [];
  const wrap = (guard: string | null, body: string): string => (guard ? `if (${guard}) { ${body} }` : `{ ${body} }`);

  for (const { l, r, kk, guard } of aLoads) {
    pre.push(`let ar${l} = ${r}; let ak${l} = ${kk}; let am${l} = m0 + ar${l}; let aok${l} = am${l} < M;`);
    let read: string;
    if (s.mode === 'fwd') {
      pre.push(`let an${l} = am${l} / OHW; let apix${l} = am${l} - an${l} * OHW;`);
      if (pointwise) {
        pre.push(`let abase${l} = (an${l} * Cin + g * cinG) * HW + apix${l};`);
        read = `let k = k0 + ak${l}; if (aok${l} && k < K) { v = abuf[abase${l} + k * HW]; }`;
      } else {
        pre.push(`let aoh${l} = apix${l} / OW; let aow${l} = apix${l} - aoh${l} * OW; let abase${l} = (an${l} * Cin + g * cinG) * HW;`);
        pre.push(`let aih${l} = i32(aoh${l} * ${s.sh}u) - ${s.ph}; let aiw${l} = i32(aow${l} * ${s.sw}u) - ${s.pw};`);
        read = `let k = k0 + ak${l}; ${splitK('k', 'ci', 'rr', 'kh', 'kw')}
        let ih = aih${l} + i32(kh * ${s.dh}u); let iw = aiw${l} + i32(kw * ${s.dw}u);
        if (aok${l} && k < K && u32(ih) < H && u32(iw) < W) { v = abuf[abase${l} + ci * HW + u32(ih) * W + u32(iw)]; }`;
      }
    } else if (s.mode === 'bwdInput') {
      // dx[n,ci,ih,iw] gathers dy[n,co,oh,ow] where oh*sh - ph + kh*dh = ih (stride must divide).
      pre.push(`let an${l} = am${l} / HW; let apix${l} = am${l} - an${l} * HW; let abase${l} = (an${l} * Cout + g * coutG) * OHW;`);
      if (pointwise) {
        pre.push(`let aoff${l} = abase${l} + apix${l};`);
        read = `let k = k0 + ak${l}; if (aok${l} && k < K) { v = abuf[aoff${l} + k * OHW]; }`;
      } else {
        pre.push(`let aih${l} = apix${l} / W; let aiw${l} = apix${l} - aih${l} * W;`);
        pre.push(`let ath${l} = i32(aih${l}) + ${s.ph}; let atw${l} = i32(aiw${l}) + ${s.pw};`);
        const divH = s.sh === 1 ? '' : ` && oh * ${s.sh}u == u32(th)`;
        const divW = s.sw === 1 ? '' : ` && ow * ${s.sw}u == u32(tw)`;
        read = `let k = k0 + ak${l}; ${splitK('k', 'co', 'rr', 'kh', 'kw')}
        let th = ath${l} - i32(kh * ${s.dh}u); let tw = atw${l} - i32(kw * ${s.dw}u);
        let oh = u32(th) / ${s.sh}u; let ow = u32(tw) / ${s.sw}u;
        if (aok${l} && k < K && th >= 0 && tw >= 0 && oh < OH && ow < OW${divH}${divW}) { v = abuf[abase${l} + co * OHW + oh * OW + ow]; }`;
      }
    } else {
      pre.push(`let abase${l} = (g * coutG + am${l}) * OHW;`);
      read = `let pix = p0 + ak${l}; if (aok${l} && pix < OHW) { v = abuf[nb * Cout * OHW + abase${l} + pix]; }`;
    }
    step.push(wrap(guard, `var v = 0.0; ${read}\n        As[ak${l} * ${TM}u + ar${l}] = v;`));
  }

  for (const { l, c, kk, guard } of bLoads) {
    pre.push(`let bc${l} = ${c}; let bk${l} = ${kk}; let bn${l} = n0 + bc${l}; let bok${l} = bn${l} < NC;`);
    let read: string;
    if (s.mode === 'fwd') {
      pre.push(`let bbase${l} = (g * coutG + bn${l}) * K;`);
      read = `let k = k0 + bk${l}; if (bok${l} && k < K) { v = bbuf[bbase${l} + k]; }`;
    } else if (s.mode === 'bwdInput') {
      pre.push(`let boff${l} = g * coutG * cinG * ${KHW}u + bn${l} * ${KHW}u;`);
      read = `let k = k0 + bk${l}; let co = k / ${KHW}u; let rr = k - co * ${KHW}u;
        if (bok${l} && k < K) { v = bbuf[boff${l} + co * cinG * ${KHW}u + rr]; }`;
    } else {
      pre.push(`${splitK(`bn${l}`, `bci${l}`, `brr${l}`, `bkh${l}`, `bkw${l}`)} let bxo${l} = (g * cinG + bci${l}) * HW;`);
      if (pointwise) {
        read = `let pix = p0 + bk${l}; if (bok${l} && pix < OHW) { v = bbuf[nb * Cin * HW + bxo${l} + pix]; }`;
      } else {
        pre.push(`let bdh${l} = i32(bkh${l} * ${s.dh}u) - ${s.ph}; let bdw${l} = i32(bkw${l} * ${s.dw}u) - ${s.pw};`);
        read = `let pix = p0 + bk${l}; let oh = udivf(pix, OW); let ow = pix - oh * OW;
        let ih = i32(oh * ${s.sh}u) + bdh${l}; let iw = i32(ow * ${s.sw}u) + bdw${l};
        if (bok${l} && pix < OHW && u32(ih) < H && u32(iw) < W) { v = bbuf[nb * Cin * HW + bxo${l} + u32(ih) * W + u32(iw)]; }`;
      }
    }
    step.push(wrap(guard, `var v = 0.0; ${read}\n        Bs[bk${l} * ${TN}u + bc${l}] = v;`));
  }

  // ---- the kernel ----
  const bindings = ['abuf', 'bbuf', ...(epilogueBias ? ['bias'] : [])];
  emit(uniformDecl(CONV_UNIFORM_WORDS / 4));
  bindings.forEach((b, i) => emit(`@group(0) @binding(${i + 1}) var<storage, read> ${b}: array<f32>;`));
  emit(`@group(0) @binding(${bindings.length + 1}) var<storage, read_write> outbuf: array<f32>;`);
  emit(`var<workgroup> As: array<f32, ${TM * tk}>;`);
  emit(`var<workgroup> Bs: array<f32, ${TN * tk}>;`);
  // floor(a / d) for a < 2^24 through one f32 division (vectorises; integer division does not):
  // the rounded quotient is never below the true floor and at most one above it.
  emit(`fn udivf(a: u32, d: u32) -> u32 { var q = u32(f32(a) / f32(d)); if (q * d > a) { q = q - 1u; } return q; }`);
  emit(`@compute @workgroup_size(${wgM}, ${wgN})`);
  emit(`fn conv_${s.mode}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid3: vec3<u32>, @builtin(local_invocation_index) lid: u32) {`);
  emit(`  let Nb = ${U(0)}; let Cin = ${U(1)}; let H = ${U(2)}; let W = ${U(3)}; let Cout = ${U(4)}; let OH = ${U(5)}; let OW = ${U(6)};`);
  emit(`  let cinG = ${U(7)}; let coutG = ${U(8)}; let M = ${U(9)}; let NC = ${U(10)}; let K = ${U(11)};`);
  emit(`  let HW = H * W; let OHW = OH * OW;`);
  if (s.mode === 'bwdWeight') emit(`  let splits = ${U(12)}; let g = wid.z / splits; let split = wid.z - g * splits;`);
  else emit(`  let g = wid.z;`);
  emit(`  let m0 = wid.x * ${TM}u; let n0 = wid.y * ${TN}u;`);
  emit(`  _ = Nb;`);
  for (const p of pre) emit(`  ${p}`);
  for (let i = 0; i < tm; i++) emit(`  ${Array.from({ length: tn }, (_, j) => `var c${i}_${j} = 0.0;`).join(' ')}`);
  if (s.mode === 'bwdWeight') {
    // K runs over (image, pixel tile) pairs so a tile never straddles two images.
    emit(`  let tpi = ${U(14)}; let t0 = split * ${U(13)}; let t1 = min(t0 + ${U(13)}, ${U(15)});`);
    emit(`  for (var t = t0; t < t1; t++) {`);
    emit(`    let nb = t / tpi; let p0 = (t - nb * tpi) * ${tk}u;`);
  } else {
    emit(`  for (var k0 = 0u; k0 < K; k0 += ${tk}u) {`);
  }
  for (const st of step) emit(`    ${st}`);
  emit(`    workgroupBarrier();`);
  emit(`    for (var kk = 0u; kk < ${tk}u; kk++) {`);
  emit(`      let ab = kk * ${TM}u + lid3.x; let bb = kk * ${TN}u + lid3.y;`);
  emit(`      ${Array.from({ length: tm }, (_, i) => `let a${i} = As[ab + ${i * wgM}u];`).join(' ')}`);
  emit(`      ${Array.from({ length: tn }, (_, j) => `let b${j} = Bs[bb + ${j * wgN}u];`).join(' ')}`);
  for (let i = 0; i < tm; i++) emit(`      ${Array.from({ length: tn }, (_, j) => `c${i}_${j} = fma(a${i}, b${j}, c${i}_${j});`).join(' ')}`);
  emit(`    }`);
  emit(`    workgroupBarrier();`);
  emit(`  }`);

  // ---- epilogue ----
  if (s.mode === 'bwdWeight') {
    // Partial sums [splits, Cout, Cin_g*KH*KW]; the op reduces over splits when there are several.
    for (let i = 0; i < tm; i++) emit(`  let r${i} = m0 + lid3.x + ${i * wgM}u; let ob${i} = (split * Cout + g * coutG + r${i}) * NC;`);
    for (let j = 0; j < tn; j++) {
      emit(`  { let n = n0 + lid3.y + ${j * wgN}u; if (n < NC) {`);
      for (let i = 0; i < tm; i++) emit(`    if (r${i} < M) { outbuf[ob${i} + n] = c${i}_${j}; }`);
      emit(`  } }`);
    }
  } else {
    const P = s.mode === 'fwd' ? 'OHW' : 'HW';
    const Ctot = s.mode === 'fwd' ? 'Cout' : 'Cin';
    const NCg = s.mode === 'fwd' ? 'coutG' : 'cinG';
    for (let i = 0; i < tm; i++) {
      emit(`  let r${i} = m0 + lid3.x + ${i * wgM}u; let rn${i} = r${i} / ${P}; let ob${i} = rn${i} * ${Ctot} * ${P} + (r${i} - rn${i} * ${P});`);
    }
    for (let j = 0; j < tn; j++) {
      emit(`  { let ch = g * ${NCg} + n0 + lid3.y + ${j * wgN}u; if (n0 + lid3.y + ${j * wgN}u < NC) {`);
      emit(`    let bv = ${epilogueBias ? 'bias[ch]' : '0.0'};`);
      for (let i = 0; i < tm; i++) {
        const val = s.relu ? `max(c${i}_${j} + bv, 0.0)` : `c${i}_${j} + bv`;
        emit(`    if (r${i} < M) { outbuf[ob${i} + ch * ${P}] = ${val}; }`);
      }
      emit(`  } }`);
    }
  }
  emit(`}`);
  return { wgsl: lines.join('\n'), entry: `conv_${s.mode}` };
}

/** Tile shapes, picked by the GEMM's N (output channels per group): wide N gets square tiles. */
export function pickTile(mode: ConvMode, M: number, N: number): ConvTile {
  if (mode === 'bwdWeight') {
    if (N >= 64 && M >= 64) return { wgM: 16, wgN: 16, tm: 4, tn: 4, tk: 16 };
    return { wgM: 8, wgN: 8, tm: 2, tn: 4, tk: 16 };
  }
  if (N <= 4) return { wgM: 64, wgN: 1, tm: 2, tn: N <= 2 ? N : 4, tk: 8 };
  if (N <= 16) return { wgM: 32, wgN: 4, tm: 2, tn: 4, tk: 8 };
  return { wgM: 16, wgN: 16, tm: 4, tn: 4, tk: 16 };
}
