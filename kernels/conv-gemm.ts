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
//  - weightGradKernel (kernels/conv-weight-grad.ts), dw = sum over images and pixels of dy x
//    patches: an invocation owns tm output channels x tc input channels x one kernel row, all kw;
//    it walks a range of (image, row) pairs (split-K: partial sums per range, reduced by the op)
//    R columns at a time, again reusing each input row segment across kw.
// CPU-adapter forms (bench/RESULTS.md, "Texture-fed matmul and conv weights", "Subgroup-shared
// conv weights"): the spatial kernel's `wtex` reads the weights, the same for all lanes, from a
// packed texture (kernels/conv-weight-texture.ts) and its `wshare` loads each step's weights once
// per 8-lane subgroup, one value per lane, and broadcasts them; the weight gradient's `sgDy`
// shares dy across an 8-lane subgroup. On lavapipe all three replace per-lane storage-load loops.
// Only what the sliding window unrolls onto named registers is baked in: the register block and the
// column taps (count, source spacing, column stride). Everything else (sizes, kernel rows, stride,
// padding and dilation along H, the phase's offsets, the weight layout of the mode) travels in the
// uniforms: on lavapipe each pipeline costs seconds of LLVM compile at its first dispatch, so
// forward and input-gradient convolutions and the stride phases of one transposed convolution share
// pipelines wherever their column taps agree (bench/first-step.ts counts them). `roundF16` (both specs)
// is the autocast form: every loaded operand value is rounded to f16 (kernels/f16.ts) and the sums
// stay f32; bias and the epilogue stay f32. Its reference is kernels/conv.ts's loops on operands
// rounded with roundArrayToF16.
// The forward's `epi` form adds a per-output-channel scale and a residual to the epilogue,
// y = relu(acc * scale[c] + bias[c] + residual), in torchvision's order for a conv followed by
// FrozenBatchNorm2d (x * scale + shift), a block's shortcut add and its ReLU: the norm's own
// elementwise pass over y is gone (engine/ops/conv.ts ConvOptions). Its bindings exist only in that
// form, so every other kernel keeps its layout.
import { uniformBlock, type BlockValues } from './uniforms.js';
import { F16_ROUND_WGSL, f16Load } from './f16.js';
import { WEIGHT_TEXTURE_DECL } from './conv-weight-texture.js';

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
  /** Weights from a packed texture (SpatialShape.wtex). */
  wtex?: boolean;
  /** The texture's texels fetched once per subgroup and shared (SpatialShape.wshare). */
  wshare?: boolean;
  /** src read as vec4s (SpatialShape.src4). */
  src4?: boolean;
  /** The scale-and-residual epilogue (SpatialShape.epi); 'fwd' only. */
  epi?: boolean;
}

/**
 * What a spatial kernel's WGSL bakes in: the register block and the column taps' shape, all the
 * sliding window needs to unroll onto named registers. The rest of the geometry (kernel rows,
 * strides along H, padding, phase offsets, the tap's weight columns, the weight layout of the mode)
 * travels in the uniforms, so forward and input-gradient convolutions, and the stride phases of one
 * transposed convolution, share pipelines wherever their column taps agree.
 */
export interface SpatialShape {
  /** Source columns per output column (the stride along W for 'fwd', 1 for 'bwdInput'). */
  srcMulW: number;
  /** Column taps, and the source column distance between consecutive ones (0 for one tap). */
  taps: number;
  tapStep: number;
  tm: number;
  tn: number;
  /** Autocast: round src and weight values to f16 as they are loaded. */
  roundF16?: boolean;
  /**
   * Weights read from a packed texture at @binding(5) (kernels/conv-weight-texture.ts: 4 output
   * channels per texel, one fetch for 8 lanes where a buffer load is a per-lane loop on lavapipe);
   * needs tn % 4 = 0. The packing rounds to f16 under autocast.
   */
  wtex?: boolean;
  /**
   * With wtex, on adapters whose subgroups are exactly 8 lanes (lavapipe): the texels a (source
   * channel, kernel row) step needs (taps x tn/4) are fetched once per subgroup, each lane fetching
   * a different one, and reach the other lanes by subgroupBroadcast (a register permute on
   * lavapipe), where every lane would fetch each of them itself. A texel fetch costs ~25 8-lane FMAs
   * there and the fetches were half of this kernel's time. No invocation leaves early (the
   * broadcasts need all 8 lanes): those past the grid compute the last output again and store
   * nothing.
   */
  wshare?: boolean;
  /**
   * src read as array<vec4<f32>> (CPU adapters): each (channel, kernel row) segment of segLen
   * values takes ceil((segLen + 3) / 4) vec4 loads from the aligned vec4 at or before its start,
   * and selects by the start's offset within a vec4 pick the values out: 3x fewer loads for a 3x3
   * block of 16 columns (18 -> 6), but on lavapipe only ~8% less time in this kernel (the selects,
   * and a vec4 load costs more than a scalar one there). Needs the tensor within the binding's
   * whole vec4s.
   */
  src4?: boolean;
  /**
   * The epilogue's per-output-channel scale at @binding(5) and residual (dst's layout) at
   * @binding(6), each applied when its flag is set (SPATIAL_FLAGS); the weight texture then moves
   * to @binding(7).
   */
  epi?: boolean;
}

export const SPATIAL_WG = 64;

/** Bits of SPATIAL_UNIFORMS.flags: which epilogue terms a dispatch applies (scale and residual need `epi`). */
export const SPATIAL_FLAGS = { bias: 1, relu: 2, scale: 4, residual: 8 } as const;

/**
 * The epilogue shared by the spatial kernels (fast and quick, so both tiers round alike): per
 * output channel `ch`, the terms it loads; per output, the store of accumulator `acc` at dst[o]:
 * v = acc * scale[ch] + bias[ch] + residual[o], then relu, each term under its flag. Without `epi`
 * this is the plain bias-and-relu store.
 */
export function spatialEpilogue(epi: boolean): { channel: (ch: string) => string; store: (acc: string, o: string) => string } {
  const F = SPATIAL_FLAGS;
  const reluOf = (v: string): string => `select(${v}, max(${v}, 0.0), (flags & ${F.relu}u) != 0u)`;
  const bias = `var bv = 0.0; if ((flags & ${F.bias}u) != 0u) { bv = bias[ch]; }`;
  if (!epi) return { channel: (ch) => `let ch = ${ch}; ${bias}`, store: (acc, o) => `let v = ${acc} + bv; dst[${o}] = ${reluOf('v')};` };
  return {
    channel: (ch) => `let ch = ${ch}; ${bias} var sv = 1.0; if ((flags & ${F.scale}u) != 0u) { sv = scale[ch]; }`,
    store: (acc, o) => `let o = ${o}; var v = ${acc} * sv + bv; if ((flags & ${F.residual}u) != 0u) { v = v + res[o]; } dst[o] = ${reluOf('v')};`,
  };
}

/** The spatial kernels' storage bindings: src, wt, bias, dst (1-4), and the epilogue's scale and residual (5-6) with `epi`; src4: src as vec4s. */
export function spatialBindings(epi: boolean, src4 = false): string {
  const L = [
    `@group(0) @binding(1) var<storage, read> src: array<${src4 ? 'vec4<f32>' : 'f32'}>;`,
    '@group(0) @binding(2) var<storage, read> wt: array<f32>;',
    // Bias and relu are uniform flags (fewer pipelines to compile); without a bias any buffer is bound.
    '@group(0) @binding(3) var<storage, read> bias: array<f32>;',
    '@group(0) @binding(4) var<storage, read_write> dst: array<f32>;',
  ];
  if (epi) L.push('@group(0) @binding(5) var<storage, read> scale: array<f32>;', '@group(0) @binding(6) var<storage, read> res: array<f32>;');
  return L.join('\n');
}

/** Statements that keep every storage binding in the layout when an invocation leaves early. */
export const spatialTouch = (epi: boolean): string => `_ = src[0]; _ = wt[0]; _ = bias[0];${epi ? ' _ = scale[0]; _ = res[0];' : ''}`;

/** The weight texture's declaration: after the storage bindings (the backend binds textures after buffers). */
function weightTextureDecl(epi: boolean): string {
  if (!epi) return WEIGHT_TEXTURE_DECL;
  const d = WEIGHT_TEXTURE_DECL.replace('@binding(5)', '@binding(7)');
  if (d === WEIGHT_TEXTURE_DECL) throw new Error('spatialKernel: the weight texture is no longer declared at @binding(5)');
  return d;
}

/** Taps along one axis: kernel index k, and the source coordinate offset (affine in k's position). */
interface Taps {
  ks: number[];
  /** source coordinate = dst-grid index * srcMul + off[i] (+ t * srcMul along columns). */
  off: number[];
}

/**
 * Taps of one axis. fwd: src = o*s - p + k*d (srcMul s). bwdInput, phase r: dst i = r + s*a receives
 * from src o = (i + p - k*d)/s = a + (r + p - k*d)/s for the k that make it divisible (srcMul 1).
 * Both k and the offset are arithmetic progressions.
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

const step = (xs: number[]): number => (xs.length > 1 ? xs[1]! - xs[0]! : 0);

/**
 * kc: source channels per group; nc: output channels per group; rows, cols: the dst grid; blocks:
 * column blocks; chBlocks: channel blocks; flags: 1 add bias, 2 relu. Kernel rows: khN taps, kernel
 * row kh0 + m*khStep reading source row a*srcMulH + rowSrc0 + m*rowSrcStep. Column tap n (in order
 * of source column) reads weight column kw0 + n*kwStep at source column b*srcMulW + colSrc0 +
 * n*tapStep. Weights of (group g, output channel j, source channel c, kh, kw) sit at
 * g*nc*kc*KHW + j*wJ + c*wC + kh*KW + kw. dst pixel (a, b) is row drowOff + drowMul*a, column
 * dcolOff + dcolMul*b.
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
  // Channel blocks per workgroup (slots) and invocations per slot (span, a multiple of 8): a grid
  // smaller than half a workgroup (4x4 maps) fills the workgroup's other lanes with further channel
  // blocks instead of leaving them idle (spatialSlots).
  slots: 'u32',
  span: 'u32',
  flags: 'u32',
  khN: 'u32',
  kh0: 'u32',
  khStep: 'u32',
  srcMulH: 'u32',
  rowSrc0: 'i32',
  rowSrcStep: 'i32',
  colSrc0: 'i32',
  kw0: 'i32',
  kwStep: 'i32',
  KW: 'u32',
  KHW: 'u32',
  wJ: 'u32',
  wC: 'u32',
  drowOff: 'u32',
  drowMul: 'u32',
  dcolOff: 'u32',
  dcolMul: 'u32',
  // The baked shape again (SpatialShape), read only by the quick variant (kernels/conv-gemm-quick.ts),
  // which loops where the fast kernel unrolls: one quick pipeline serves every shape.
  tm: 'u32',
  tn: 'u32',
  srcMulW: 'u32',
  taps: 'u32',
  tapStep: 'u32',
});

type SpatialGeometry = Omit<BlockValues<typeof SPATIAL_UNIFORMS>, 'N' | 'srcC' | 'srcH' | 'srcW' | 'dstC' | 'dstH' | 'dstW' | 'kc' | 'nc' | 'rows' | 'blocks' | 'cols' | 'chBlocks' | 'slots' | 'span' | 'flags' | 'wJ' | 'wC'>;

/**
 * The baked shape of a spec's kernel and the geometry uniforms of its dispatch. A phase with no taps
 * (1x1 stride 2, phases other than (0,0)) runs zero kernel rows: it stores the bias (or 0) only.
 */
export function spatialPlan(s: SpatialSpec): { shape: SpatialShape; geometry: SpatialGeometry } {
  const fwd = s.mode === 'fwd';
  const th = axisTaps(s.mode, s.KH, s.sh, s.ph, s.dh, s.phase[0]);
  let tw = axisTaps(s.mode, s.KW, s.sw, s.pw, s.dw, s.phase[1]);
  // Column taps in order of source column (bwdInput's offsets fall as k rises).
  if (step(tw.off) < 0) tw = { ks: [...tw.ks].reverse(), off: [...tw.off].reverse() };
  const empty = !th.ks.length || !tw.ks.length;
  const taps = empty ? 1 : tw.ks.length;
  if (s.epi && !fwd) throw new Error(`spatialPlan: the scale-and-residual epilogue is for 'fwd' only (got '${s.mode}')`);
  const shape: SpatialShape = {
    srcMulW: fwd ? s.sw : 1, taps, tapStep: taps > 1 ? step(tw.off) : 0, tm: s.tm, tn: s.tn,
    ...(s.roundF16 ? { roundF16: true } : {}), ...(s.wtex ? { wtex: true } : {}), ...(s.wshare ? { wshare: true } : {}), ...(s.src4 ? { src4: true } : {}), ...(s.epi ? { epi: true } : {}),
  };
  const geometry: SpatialGeometry = {
    khN: empty ? 0 : th.ks.length,
    kh0: th.ks[0] ?? 0,
    khStep: Math.max(0, step(th.ks)),
    srcMulH: fwd ? s.sh : 1,
    rowSrc0: th.off[0] ?? 0,
    rowSrcStep: step(th.off),
    colSrc0: empty ? 0 : tw.off[0]!,
    kw0: empty ? 0 : tw.ks[0]!,
    kwStep: step(tw.ks),
    KW: s.KW,
    KHW: s.KH * s.KW,
    drowOff: fwd ? 0 : s.phase[0],
    drowMul: fwd ? 1 : s.sh,
    dcolOff: fwd ? 0 : s.phase[1],
    dcolMul: fwd ? 1 : s.sw,
    tm: shape.tm,
    tn: shape.tn,
    srcMulW: shape.srcMulW,
    taps: shape.taps,
    tapStep: shape.tapStep,
  };
  return { shape, geometry };
}

/**
 * Weight strides of output channel j and source channel c within a group: fwd reads
 * w[((g*nc + j)*kc + c)*KHW + ...], bwdInput w[((g*kc + c)*nc + j)*KHW + ...].
 */
export function spatialWeightStrides(mode: SpatialSpec['mode'], kc: number, nc: number, KHW: number): { wJ: number; wC: number } {
  return mode === 'fwd' ? { wJ: kc * KHW, wC: KHW } : { wJ: KHW, wC: nc * KHW };
}

/** The invocation's pixel-block index (id) and channel block (cb) from its slot (spatialSlots). */
export const SPATIAL_SLOT_WGSL = `let gidx = wid.x * ${SPATIAL_WG}u + lid.x; let slot = gidx / u.span; let id = gidx - slot * u.span; let cb = wid.y * u.slots + slot;`;

/**
 * Slots of a spatial dispatch: `total` = N*rows*blocks invocations per channel block. Up to 32,
 * floor(64 / span) channel blocks share a workgroup (span: total rounded up to whole subgroups of 8,
 * so a subgroup's lanes share one channel block, as the shared weight loads need); otherwise one
 * channel block per workgroup row. Returns the uniforms and the grid's x and y.
 */
export function spatialSlots(total: number, chBlocks: number): { slots: number; span: number; x: number; y: number } {
  if (total > SPATIAL_WG / 2) {
    const x = Math.ceil(total / SPATIAL_WG);
    return { slots: 1, span: x * SPATIAL_WG, x, y: chBlocks };
  }
  const span = Math.ceil(total / 8) * 8, slots = Math.floor(SPATIAL_WG / span);
  return { slots, span, x: 1, y: Math.ceil(chBlocks / slots) };
}

/** Workgroups: spatialSlots' (x, y), and groups. */
export function spatialKernel(s: SpatialShape): { wgsl: string; entry: string } {
  const { tm, tn, srcMulW, taps, tapStep } = s;
  const r16 = !!s.roundF16, wtex = !!s.wtex, epi = !!s.epi, wshare = !!s.wshare;
  if (wtex && tn % 4 !== 0) throw new Error(`spatialKernel: weights from a texture need tn % 4 = 0 (tn ${tn})`);
  const L: string[] = [];
  const e = (x: string): void => void L.push(x);
  if (wshare) e('enable subgroups;');
  e(SPATIAL_UNIFORMS.wgsl);
  if (r16) e(F16_ROUND_WGSL);
  const src4 = !!s.src4;
  e(spatialBindings(epi, src4));
  if (wtex) e(weightTextureDecl(epi));
  e(`@compute @workgroup_size(${SPATIAL_WG})`);
  e(`fn conv_spatial(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>${wshare ? ', @builtin(subgroup_invocation_id) sl: u32' : ''}) {`);
  e(`  let Nb = u.N; let srcC = u.srcC; let srcH = u.srcH; let srcW = u.srcW;`);
  e(`  let dstC = u.dstC; let dstH = u.dstH; let dstW = u.dstW; let kc = u.kc; let nc = u.nc;`);
  e(`  let rows = u.rows; let blocks = u.blocks; let cols = u.cols; let flags = u.flags;`);
  e(`  ${SPATIAL_SLOT_WGSL}`);
  // Phases with no taps read nothing, but their bindings must stay in the layout.
  if (wshare) {
    // The subgroup's broadcasts need every lane: those past the grid redo the last output, unstored.
    e(`  let total = Nb * rows * blocks; let live = id < total && cb < u.chBlocks; let idc = min(id, total - 1u);`);
    e(`  if (!live) { ${spatialTouch(epi)} }`);
  } else {
    e(`  if (id >= Nb * rows * blocks || cb >= u.chBlocks) { ${spatialTouch(epi)} return; }`);
  }
  const idv = wshare ? 'idc' : 'id';
  e(`  let g = wid.z; let j0 = min(cb, u.chBlocks - 1u) * ${tn}u;`);
  e(`  let blk = ${idv} % blocks; let rest = ${idv} / blocks; let a = rest % rows; let nb = rest / rows;`);
  e(`  let b0 = blk * ${tm}u;`);
  // Source columns of this invocation: b0*srcMulW + t*srcMulW + n*tapStep; one segment covers all.
  const segLen = (tm - 1) * srcMulW + (taps - 1) * tapStep + 1;
  e(`  let seg0 = i32(b0 * ${srcMulW}u) + u.colSrc0;`);
  for (let q = 0; q < segLen; q++) e(`  let cok${q} = u32(seg0 + ${q}) < srcW;`);
  e(`  let srcBase = (nb * srcC + g * kc) * srcH * srcW;`);
  e(`  let wg = g * nc * kc * u.KHW;`);
  // wshare: value v of a step (a texel v = n*Q + q of tap n and channel quad q, or from the buffer
  // a weight v = n*tn + j of tap n and channel j) is loaded by lane v % 8 as its load v / 8.
  const Q = tn / 4, per = wtex ? Q : tn, shared = wshare ? Math.ceil((taps * per) / 8) : 0;
  for (let f = 0; f < shared; f++) {
    e(`  let wsl${f} = ${f * 8}u + sl; let wn${f} = min(wsl${f} / ${per}u, ${taps - 1}u); let wx${f} = u32(u.kw0 + i32(wn${f}) * u.kwStep);`);
    if (wtex) e(`  let wy${f} = g * ((nc + 3u) / 4u) + min(j0 / 4u + wsl${f} % ${Q}u, (nc - 1u) / 4u);`);
    else e(`  let wy${f} = wg + min(j0 + wsl${f} % ${tn}u, nc - 1u) * u.wJ + wx${f};`);
  }
  if (wtex) {
    if (!wshare) for (let q = 0; q < Q; q++) e(`  let wrow${q} = g * ((nc + 3u) / 4u) + min(j0 / 4u + ${q}u, (nc - 1u) / 4u);`);
  } else if (!wshare) for (let j = 0; j < tn; j++) e(`  let wb${j} = wg + min(j0 + ${j}u, nc - 1u) * u.wJ;`);
  for (let n = 0; n < taps; n++) e(`  let kw${n} = u32(u.kw0 + ${n} * u.kwStep);`);
  for (let i = 0; i < tm; i++) e(`  ${Array.from({ length: tn }, (_, j) => `var c${i}_${j} = 0.0;`).join(' ')}`);
  e(`  for (var c = 0u; c < kc; c++) {`);
  e(`    let plane = srcBase + c * srcH * srcW; let wc = c * u.wC;`);
  e(`    for (var m = 0u; m < u.khN; m++) {`);
  e(`      let kh = u.kh0 + m * u.khStep;`);
  e(`      let r = i32(a * u.srcMulH) + u.rowSrc0 + i32(m) * u.rowSrcStep;`);
  e(`      let rok = u32(r) < srcH;`);
  e(`      let rowBase = plane + select(0u, u32(r), rok) * srcW;`);
  e(`      let wr = wc + kh * u.KW;`);
  if (src4) {
    // The segment starts at element A = rowBase + seg0 (negative only in the padding, where every
    // value is masked): vec4 A >> 2 (arithmetic shift: floor), offset A & 3 into it.
    const nv = Math.ceil((segLen + 3) / 4);
    e(`      let A = i32(rowBase) + seg0; let v0 = A >> 2u; let sh = A & 3; let last = i32(arrayLength(&src)) - 1;`);
    e(`      let s1 = sh == 1; let s2 = sh >= 2; let s3 = sh == 3;`);
    for (let k = 0; k < nv; k++) e(`      let V${k} = ${f16Load(`src[u32(clamp(v0 + ${k}, 0, last))]`, r16, true)};`);
    const F = (p: number): string => `V${p >> 2}[${p & 3}]`;
    for (let q = 0; q < segLen; q++) {
      e(`      let ok${q} = rok && cok${q}; let x${q} = select(0.0, select(select(${F(q)}, ${F(q + 1)}, s1), select(${F(q + 2)}, ${F(q + 3)}, s3), s2), ok${q});`);
    }
  } else {
    for (let q = 0; q < segLen; q++) {
      e(`      let ok${q} = rok && cok${q}; let x${q} = select(0.0, ${f16Load(`src[select(0u, rowBase + u32(seg0 + ${q}), ok${q})]`, r16)}, ok${q});`);
    }
  }
  for (let f = 0; f < shared; f++) {
    if (wtex) e(`      let wl${f} = textureLoad(wtx, vec2<u32>(c * u.KHW + kh * u.KW + wx${f}, wy${f}), 0);`);
    else e(`      let wl${f} = ${f16Load(`wt[wy${f} + wr]`, r16)};`);
  }
  const bcast = (v: number): string => `subgroupBroadcast(wl${v >> 3}, ${v & 7}u)`;
  // wshare (CPU adapters): accumulator-major order. Each output channel (texel quad) takes its
  // taps' weights by broadcast, then every accumulator of the channel gets all its taps' FMAs in a
  // row: the block's 128 accumulators cannot stay in 16 vector registers, and in this order LLVM
  // loads and stores each once per step, not once per tap (x86 spill moves per step 512 -> 265;
  // conv_spatial in the tiny-cpu step -15-20%).
  const groups = wshare ? (wtex ? Q : tn) : 0, perGroup = wtex ? 4 : 1;
  for (let q = 0; q < groups; q++) {
    e(`      {`);
    e(`        ${Array.from({ length: taps }, (_, n) => `let wv${n} = ${bcast(wtex ? n * Q + q : n * tn + q)};`).join(' ')}`);
    for (let jj = 0; jj < perGroup; jj++) {
      const j = q * perGroup + jj;
      for (let i = 0; i < tm; i++) {
        e(`        ${Array.from({ length: taps }, (_, n) => `c${i}_${j} = fma(x${i * srcMulW + n * tapStep}, wv${n}${wtex ? `[${jj}]` : ''}, c${i}_${j});`).join(' ')}`);
      }
    }
    e(`      }`);
  }
  if (!wshare) for (let n = 0; n < taps; n++) {
    if (wtex) {
      // Texel column: (source channel, kernel row, kernel column) of the tap, as packed.
      e(`      { let wo = c * u.KHW + kh * u.KW + kw${n};`);
      e(`        ${Array.from({ length: tn / 4 }, (_, q) => `let wv${q} = textureLoad(wtx, vec2<u32>(wo, wrow${q}), 0);`).join(' ')}`);
      e(`        ${Array.from({ length: tn }, (_, j) => `let w${j} = wv${Math.floor(j / 4)}[${j % 4}];`).join(' ')}`);
    } else {
      e(`      { let wo = wr + kw${n};`);
      e(`        ${Array.from({ length: tn }, (_, j) => `let w${j} = ${f16Load(`wt[wb${j} + wo]`, r16)};`).join(' ')}`);
    }
    for (let i = 0; i < tm; i++) {
      const q = i * srcMulW + n * tapStep;
      e(`        ${Array.from({ length: tn }, (_, j) => `c${i}_${j} = fma(x${q}, w${j}, c${i}_${j});`).join(' ')}`);
    }
    e(`      }`);
  }
  e(`    }`);
  e(`  }`);
  // Store: dst[((nb*dstC + g*nc + j)*dstH + drowOff + drowMul*a)*dstW + dcolOff + dcolMul*(b0 + t)].
  e(`  let drow = u.drowOff + u.drowMul * a; let dcm = u.dcolMul;`);
  const ep = spatialEpilogue(epi);
  for (let j = 0; j < tn; j++) {
    e(`  if (${wshare ? 'live && ' : ''}j0 + ${j}u < nc) {`);
    e(`    ${ep.channel(`g * nc + j0 + ${j}u`)}`);
    e(`    let ob = ((nb * dstC + ch) * dstH + drow) * dstW + u.dcolOff;`);
    for (let i = 0; i < tm; i++) {
      e(`    if (b0 + ${i}u < cols) { ${ep.store(`c${i}_${j}`, `ob + (b0 + ${i}u) * dcm`)} }`);
    }
    e(`  }`);
  }
  e(`}`);
  return { wgsl: L.join('\n'), entry: 'conv_spatial' };
}

/** Column taps of a spec's phase (0: the phase reads nothing). */
export function columnTaps(s: Pick<SpatialSpec, 'mode' | 'KW' | 'sw' | 'pw' | 'dw' | 'phase'>): number {
  return axisTaps(s.mode, s.KW, s.sw, s.pw, s.dw, s.phase[1]).ks.length;
}

/**
 * Register block of the spatial kernel: output columns (4, 8 or 16: few sizes, so few pipelines to
 * compile; 16 wastes at most 3/16 of a block on rows wider than 12) and channels (1, 2, 8 or 16).
 * A single column tap (1x1, and phases of strided transposed convolutions) shares no loads across
 * columns, so 16 columns buy little there: such layers take 8 columns and, from 16 channels, 16
 * channels (each source value then feeds 16 FMAs; on lavapipe the weights come from a texture, one
 * fetch for all lanes). Wide layers with several taps take 8 x 16 rather than 16 x 8: the same
 * accumulators, fewer lane-varying source loads. tools/step-kernels.js --only conv_spatial on a
 * tiny-cpu step: ~125 -> ~100 CPU ms (bench/RESULTS.md).
 */
export function pickBlock(cols: number, channels: number, taps = 2): { tm: number; tn: number } {
  const wide = channels >= 16;
  const tm = cols <= 4 ? 4 : cols <= 8 || taps <= 1 || wide ? 8 : 16;
  // 3 to 7 channels take 8 too: one pipeline less per geometry (such layers are the small predictors).
  const tn = channels < 3 ? channels : wide && (taps <= 1 || cols > 8) ? 16 : 8;
  return { tm, tn };
}
