// conv2d and conv_transpose2d (torch.nn.functional semantics, NCHW) on the implicit-GEMM kernels of
// kernels/conv-gemm.ts. Three raw dispatchers (forward, input gradient = transposed convolution,
// weight gradient = split-K GEMM) serve both ops: conv_transpose2d's forward is conv2d's input
// gradient and its input gradient is conv2d's forward.
import { convKernel, convKernelKey, convTileSize, pickTile, CONV_UNIFORM_WORDS, type ConvMode, type ConvTile } from '../../kernels/conv-gemm.js';
import { convOutSize, convTransposeOutSize, type ConvGeom } from '../../kernels/conv.js';
import { Uniforms } from '../../kernels/common.js';
import { getBackend } from '../backend.js';
import { Tensor, empty, shapeStr } from '../tensor.js';
import { noGrad, record } from '../autograd.js';
import { tidy } from '../scope.js';
import { elementwise as ew } from './elementwise.js';
import { reshape } from './view.js';
import { sum } from './reduce.js';
import { fillInPlace } from './copy.js';

export type IntPair = number | readonly number[];
export type Activation = 'none' | 'relu';

export interface ConvOptions {
  /** Fused into the kernel's epilogue (and into the backward rule). */
  activation?: Activation;
}

const kernels = new Map<string, { wgsl: string; entry: string }>();

/** Beyond this many elements the f32 index tricks in the kernels are no longer exact. */
const MAX_INDEX = 1 << 24;

function pair(v: IntPair, what: string, op: string): [number, number] {
  const p = typeof v === 'number' ? [v, v] : [...v];
  if (p.length === 1) p.push(p[0]!);
  if (p.length !== 2 || p.some((x) => !Number.isInteger(x) || x < 0)) throw new Error(`${op}: ${what} must be a non-negative integer or a pair, got ${JSON.stringify(v)}`);
  return p as [number, number];
}

/** Dense, offset-0 version of t (t itself when it already is; a copy owned by the current scope otherwise). */
function dense(t: Tensor): Tensor {
  return t.isContiguous && t.offset === 0 ? t : ew('copy', [t]);
}

function dispatchConv(mode: ConvMode, g: ConvGeom, a: Tensor, b: Tensor, bias: Tensor | null, relu: boolean, out: Tensor, splits = 1, tile?: ConvTile): void {
  const cinG = g.Cin / g.groups, coutG = g.Cout / g.groups, KHW = g.KH * g.KW;
  const dims = {
    fwd: { M: g.N * g.OH * g.OW, N: coutG, K: cinG * KHW },
    bwdInput: { M: g.N * g.H * g.W, N: cinG, K: coutG * KHW },
    bwdWeight: { M: coutG, N: cinG * KHW, K: g.N * g.OH * g.OW },
  }[mode];
  const t = tile ?? pickTile(mode, dims.M, dims.N);
  const spec = { mode, KH: g.KH, KW: g.KW, sh: g.sh, sw: g.sw, ph: g.ph, pw: g.pw, dh: g.dh, dw: g.dw, bias: !!bias, relu, tile: t };
  const key = convKernelKey(spec);
  let kernel = kernels.get(key);
  if (!kernel) kernels.set(key, (kernel = convKernel(spec)));
  const { TM, TN } = convTileSize(t);
  const tpi = Math.ceil((g.OH * g.OW) / t.tk);
  const totalTiles = g.N * tpi;
  const perSplit = Math.ceil(totalTiles / splits);
  const u = new Uniforms().u(g.N, g.Cin, g.H, g.W, g.Cout, g.OH, g.OW, cinG, coutG, dims.M, dims.N, dims.K, splits, perSplit, tpi, totalTiles);
  if (u.length !== CONV_UNIFORM_WORDS) throw new Error('internal: conv uniform layout');
  getBackend().dispatch({
    kernel,
    buffers: [a.storage.buffer, b.storage.buffer, ...(bias ? [bias.storage.buffer] : []), out.storage.buffer],
    uniforms: u.bytes(),
    workgroups: [Math.ceil(dims.M / TM), Math.ceil(dims.N / TN), g.groups * splits],
    label: `conv ${mode} x[${g.N},${g.Cin},${g.H},${g.W}] w[${g.Cout},${cinG},${g.KH},${g.KW}] -> [${g.OH},${g.OW}]`,
  });
}

/** y = conv2d(x, w) + bias (then relu), all dense. */
export function conv2dForwardRaw(x: Tensor, w: Tensor, bias: Tensor | null, g: ConvGeom, relu = false, tile?: ConvTile): Tensor {
  const y = empty([g.N, g.Cout, g.OH, g.OW]);
  if (y.size === 0) return y;
  if (g.Cin === 0 || g.KH * g.KW === 0) return fillInPlace(y, 0);
  dispatchConv('fwd', g, x, w, bias, relu, y, 1, tile);
  return y;
}

/** dx = the transposed convolution of dy with w (+ bias over dx's channels, for conv_transpose2d). */
export function conv2dInputGradRaw(dy: Tensor, w: Tensor, g: ConvGeom, bias: Tensor | null = null, relu = false, tile?: ConvTile): Tensor {
  const dx = empty([g.N, g.Cin, g.H, g.W]);
  if (dx.size === 0) return dx;
  dispatchConv('bwdInput', g, dy, w, bias, relu, dx, 1, tile);
  return dx;
}

/** Split count for the weight gradient: enough workgroups to fill the device, each with a long K run. */
function weightGradSplits(g: ConvGeom, tile: ConvTile): number {
  const { TM, TN } = convTileSize(tile);
  const cinG = g.Cin / g.groups, coutG = g.Cout / g.groups;
  const base = Math.ceil(coutG / TM) * Math.ceil((cinG * g.KH * g.KW) / TN) * g.groups;
  const tiles = g.N * Math.ceil((g.OH * g.OW) / tile.tk);
  const want = Math.ceil(WEIGHT_GRAD_TARGET_GROUPS / base);
  return Math.max(1, Math.min(want, Math.floor(tiles / MIN_TILES_PER_SPLIT), Math.floor(65535 / g.groups)));
}
const WEIGHT_GRAD_TARGET_GROUPS = 64;
const MIN_TILES_PER_SPLIT = 8;

/** dw = sum over images and output pixels of dy x patches: [Cout, Cin/groups, KH, KW]. */
export function conv2dWeightGradRaw(dy: Tensor, x: Tensor, g: ConvGeom, tile?: ConvTile, splits?: number): Tensor {
  const cinG = g.Cin / g.groups;
  const shape = [g.Cout, cinG, g.KH, g.KW];
  if (g.Cout * cinG * g.KH * g.KW === 0) return empty(shape);
  if (g.N * g.OH * g.OW === 0) return fillInPlace(empty(shape), 0);
  const t = tile ?? pickTile('bwdWeight', g.Cout / g.groups, cinG * g.KH * g.KW);
  const s = splits ?? weightGradSplits(g, t);
  if (s === 1) {
    const dw = empty(shape);
    dispatchConv('bwdWeight', g, dy, x, null, false, dw, 1, t);
    return dw;
  }
  return tidy(() => {
    const partial = empty([s, ...shape]);
    dispatchConv('bwdWeight', g, dy, x, null, false, partial, s, t);
    return noGrad(() => sum(partial, 0));
  });
}

function checkIndexRange(op: string, g: ConvGeom): void {
  const big = Math.max(g.N * g.Cin * g.H * g.W, g.N * g.Cout * g.OH * g.OW);
  if (big >= MAX_INDEX * 64) throw new Error(`${op}: tensors of ${big} elements are beyond this kernel's index range`);
  if (g.OH * g.OW >= MAX_INDEX) throw new Error(`${op}: ${g.OH}x${g.OW} output pixels per image exceed 2^24`);
}

function checkFloat(op: string, ...ts: (Tensor | null)[]): void {
  for (const t of ts) if (t && t.dtype !== 'float32') throw new Error(`${op}: needs float32 tensors, got ${t.dtype}${shapeStr(t.shape)}`);
}

/** torch.nn.functional.conv2d(input, weight, bias, stride, padding, dilation, groups), plus a fused activation. */
export function conv2d(
  input: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  stride: IntPair = 1,
  padding: IntPair | 'same' | 'valid' = 0,
  dilation: IntPair = 1,
  groups = 1,
  opts: ConvOptions = {},
): Tensor {
  const op = 'conv2d';
  checkFloat(op, input, weight, bias);
  if (input.ndim === 3) {
    // Unbatched input [C, H, W], as torch accepts.
    return tidy(() => {
      const y = conv2d(reshape(input, [1, ...input.shape]), weight, bias, stride, padding, dilation, groups, opts);
      return reshape(y, y.shape.slice(1));
    });
  }
  const g = convShape(op, input.shape, weight.shape, stride, padding, dilation, groups);
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== g.Cout)) throw new Error(`${op}: bias ${shapeStr(bias.shape)} should be [${g.Cout}] for weight ${shapeStr(weight.shape)}`);
  checkIndexRange(op, g);
  const relu = (opts.activation ?? 'none') === 'relu';
  const out = noGrad(() => tidy(() => conv2dForwardRaw(dense(input), dense(weight), bias ? dense(bias) : null, g, relu)));
  const inputs = bias ? [input, weight, bias] : [input, weight];
  record(op, inputs, out, relu ? [input, weight, out] : [input, weight], (gy, saved) => {
    const [xs, ws, ys] = saved as [Tensor, Tensor, Tensor | undefined];
    const gyd = dense(ys ? ew('relu_grad', [gy, ys]) : gy);
    const gx = input.requiresGrad ? conv2dInputGradRaw(gyd, dense(ws), g) : null;
    const gw = weight.requiresGrad ? conv2dWeightGradRaw(gyd, dense(xs), g) : null;
    const gb = bias?.requiresGrad ? sum(gyd, [0, 2, 3]) : null;
    return [gx, gw, gb];
  });
  return out;
}

/** Validates conv2d arguments and returns the geometry (PyTorch's error cases, with shapes named). */
function convShape(op: string, xs: readonly number[], ws: readonly number[], stride: IntPair, padding: IntPair | 'same' | 'valid', dilation: IntPair, groups: number): ConvGeom {
  if (xs.length !== 4) throw new Error(`${op}: input ${shapeStr(xs)} must be [N, C, H, W] (or [C, H, W])`);
  if (ws.length !== 4) throw new Error(`${op}: weight ${shapeStr(ws)} must be [Cout, Cin/groups, KH, KW]`);
  if (!Number.isInteger(groups) || groups < 1) throw new Error(`${op}: groups must be a positive integer, got ${groups}`);
  const [N, Cin, H, W] = xs as [number, number, number, number];
  const [Cout, cinG, KH, KW] = ws as [number, number, number, number];
  if (Cin !== cinG * groups) {
    throw new Error(`${op}: input ${shapeStr(xs)} has ${Cin} channels, weight ${shapeStr(ws)} with groups=${groups} expects ${cinG * groups}`);
  }
  if (Cout % groups !== 0) throw new Error(`${op}: weight ${shapeStr(ws)} has ${Cout} output channels, not divisible by groups=${groups}`);
  const [sh, sw] = pair(stride, 'stride', op);
  const [dh, dw] = pair(dilation, 'dilation', op);
  if (sh < 1 || sw < 1 || dh < 1 || dw < 1) throw new Error(`${op}: stride and dilation must be >= 1`);
  let ph: number, pw: number, OH: number, OW: number;
  if (padding === 'same') {
    if (sh !== 1 || sw !== 1) throw new Error(`${op}: padding='same' is not supported for strided convolutions`);
    // torch pads total d*(k-1), the odd one extra at the bottom/right.
    ph = Math.floor((dh * (KH - 1)) / 2);
    pw = Math.floor((dw * (KW - 1)) / 2);
    OH = H;
    OW = W;
  } else {
    [ph, pw] = padding === 'valid' ? [0, 0] : pair(padding, 'padding', op);
    OH = convOutSize(H, KH, sh, ph, dh);
    OW = convOutSize(W, KW, sw, pw, dw);
  }
  if (OH < 1 || OW < 1) {
    throw new Error(`${op}: input ${shapeStr(xs)} (padded ${H + 2 * ph}x${W + 2 * pw}) is smaller than the dilated kernel ${dh * (KH - 1) + 1}x${dw * (KW - 1) + 1} of weight ${shapeStr(ws)}`);
  }
  return { N, Cin, H, W, Cout, KH, KW, OH, OW, sh, sw, ph, pw, dh, dw, groups };
}

/**
 * torch.nn.functional.conv_transpose2d(input, weight, bias, stride, padding, output_padding, groups, dilation)
 * with weight [Cin, Cout/groups, KH, KW]; plus a fused activation.
 */
export function convTranspose2d(
  input: Tensor,
  weight: Tensor,
  bias: Tensor | null = null,
  stride: IntPair = 1,
  padding: IntPair = 0,
  outputPadding: IntPair = 0,
  groups = 1,
  dilation: IntPair = 1,
  opts: ConvOptions = {},
): Tensor {
  const op = 'conv_transpose2d';
  checkFloat(op, input, weight, bias);
  const xs = input.shape, ws = weight.shape;
  if (xs.length !== 4) throw new Error(`${op}: input ${shapeStr(xs)} must be [N, C, H, W]`);
  if (ws.length !== 4) throw new Error(`${op}: weight ${shapeStr(ws)} must be [Cin, Cout/groups, KH, KW]`);
  if (!Number.isInteger(groups) || groups < 1) throw new Error(`${op}: groups must be a positive integer, got ${groups}`);
  const [N, Cin, H, W] = xs as [number, number, number, number];
  const [wCin, coutG, KH, KW] = ws as [number, number, number, number];
  if (Cin !== wCin) throw new Error(`${op}: input ${shapeStr(xs)} has ${Cin} channels, weight ${shapeStr(ws)} expects ${wCin}`);
  if (Cin % groups !== 0) throw new Error(`${op}: ${Cin} input channels are not divisible by groups=${groups}`);
  const [sh, sw] = pair(stride, 'stride', op);
  const [ph, pw] = pair(padding, 'padding', op);
  const [oph, opw] = pair(outputPadding, 'output_padding', op);
  const [dh, dw] = pair(dilation, 'dilation', op);
  if (sh < 1 || sw < 1 || dh < 1 || dw < 1) throw new Error(`${op}: stride and dilation must be >= 1`);
  if ((oph >= sh && oph >= dh) || (opw >= sw && opw >= dw)) {
    throw new Error(`${op}: output_padding (${oph}, ${opw}) must be smaller than either stride (${sh}, ${sw}) or dilation (${dh}, ${dw})`);
  }
  const Cout = coutG * groups;
  const OH = convTransposeOutSize(H, KH, sh, ph, dh, oph), OW = convTransposeOutSize(W, KW, sw, pw, dw, opw);
  if (OH < 1 || OW < 1) throw new Error(`${op}: input ${shapeStr(xs)} with weight ${shapeStr(ws)} gives an empty output ${OH}x${OW}`);
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== Cout)) throw new Error(`${op}: bias ${shapeStr(bias.shape)} should be [${Cout}] for weight ${shapeStr(ws)} and groups=${groups}`);
  // The conv2d whose input gradient this is: it maps [N, Cout, OH, OW] to [N, Cin, H, W].
  const g: ConvGeom = { N, Cin: Cout, H: OH, W: OW, Cout: Cin, KH, KW, OH: H, OW: W, sh, sw, ph, pw, dh, dw, groups };
  checkIndexRange(op, g);
  const relu = (opts.activation ?? 'none') === 'relu';
  const out = noGrad(() => tidy(() => conv2dInputGradRaw(dense(input), dense(weight), g, bias ? dense(bias) : null, relu)));
  const inputs = bias ? [input, weight, bias] : [input, weight];
  record(op, inputs, out, relu ? [input, weight, out] : [input, weight], (gy, saved) => {
    const [xsv, wsv, ys] = saved as [Tensor, Tensor, Tensor | undefined];
    const gyd = dense(ys ? ew('relu_grad', [gy, ys]) : gy);
    const gx = input.requiresGrad ? conv2dForwardRaw(gyd, dense(wsv), null, g) : null;
    const gw = weight.requiresGrad ? conv2dWeightGradRaw(dense(xsv), gyd, g) : null;
    const gb = bias?.requiresGrad ? sum(gyd, [0, 2, 3]) : null;
    return [gx, gw, gb];
  });
  return out;
}
