// Convolution geometry (PyTorch's output-size formulas) and the float64 references: conv2d and
// conv_transpose2d as direct loops straight from their definitions, plus conv2d's two gradients
// written independently (as the adjoint loops), so the GPU backward kernels can be checked on
// shapes too big for finite differences. The GPU kernels live in conv-gemm.ts.
import type { RefTensor } from './common.js';

/** Everything about one conv2d, in conv2d naming: x [N, Cin, H, W] * w [Cout, Cin/groups, KH, KW] -> y [N, Cout, OH, OW]. */
export interface ConvGeom {
  N: number;
  Cin: number;
  H: number;
  W: number;
  Cout: number;
  KH: number;
  KW: number;
  OH: number;
  OW: number;
  sh: number;
  sw: number;
  /** Padding before the first row / column (padding after is implied by OH / OW). */
  ph: number;
  pw: number;
  dh: number;
  dw: number;
  groups: number;
}

/** conv2d output length along one axis (torch.nn.Conv2d docs). */
export function convOutSize(size: number, k: number, stride: number, pad: number, dil: number): number {
  return Math.floor((size + 2 * pad - dil * (k - 1) - 1) / stride) + 1;
}

/** conv_transpose2d output length along one axis (torch.nn.ConvTranspose2d docs). */
export function convTransposeOutSize(size: number, k: number, stride: number, pad: number, dil: number, outPad: number): number {
  return (size - 1) * stride - 2 * pad + dil * (k - 1) + outPad + 1;
}

export interface Conv2dRefParams {
  stride: [number, number];
  /** Padding before the first row/column; the far side gets whatever makes OH/OW (see `out`). */
  padding: [number, number];
  dilation: [number, number];
  groups: number;
  /** Explicit output size (for asymmetric 'same' padding); default from convOutSize with symmetric padding. */
  out?: [number, number];
}

export function refGeom(xs: readonly number[], ws: readonly number[], p: Conv2dRefParams): ConvGeom {
  const [N, Cin, H, W] = xs as [number, number, number, number];
  const [Cout, , KH, KW] = ws as [number, number, number, number];
  const OH = p.out?.[0] ?? convOutSize(H, KH, p.stride[0], p.padding[0], p.dilation[0]);
  const OW = p.out?.[1] ?? convOutSize(W, KW, p.stride[1], p.padding[1], p.dilation[1]);
  return {
    N, Cin, H, W, Cout, KH, KW, OH, OW,
    sh: p.stride[0], sw: p.stride[1], ph: p.padding[0], pw: p.padding[1], dh: p.dilation[0], dw: p.dilation[1],
    groups: p.groups,
  };
}

/**
 * Calls f(xIndex, wIndex, yIndex) for every term of the conv2d sum
 * y[n,co,oh,ow] += x[n, g*Cin_g+ci, oh*sh-ph+kh*dh, ow*sw-pw+kw*dw] * w[co,ci,kh,kw] whose input pixel
 * is inside the image (padding contributes zeros). All three references are this one loop nest.
 */
function forEachTerm(g: ConvGeom, f: (xi: number, wi: number, yi: number) => void): void {
  const cinG = g.Cin / g.groups, coutG = g.Cout / g.groups;
  for (let n = 0; n < g.N; n++) {
    for (let co = 0; co < g.Cout; co++) {
      const grp = Math.floor(co / coutG);
      for (let oh = 0; oh < g.OH; oh++) {
        for (let ow = 0; ow < g.OW; ow++) {
          const yi = ((n * g.Cout + co) * g.OH + oh) * g.OW + ow;
          for (let ci = 0; ci < cinG; ci++) {
            for (let kh = 0; kh < g.KH; kh++) {
              const ih = oh * g.sh - g.ph + kh * g.dh;
              if (ih < 0 || ih >= g.H) continue;
              for (let kw = 0; kw < g.KW; kw++) {
                const iw = ow * g.sw - g.pw + kw * g.dw;
                if (iw < 0 || iw >= g.W) continue;
                const xi = ((n * g.Cin + grp * cinG + ci) * g.H + ih) * g.W + iw;
                const wi = ((co * cinG + ci) * g.KH + kh) * g.KW + kw;
                f(xi, wi, yi);
              }
            }
          }
        }
      }
    }
  }
}

/** float64 conv2d: y = x (*) w + bias, torch.nn.functional.conv2d semantics. */
export function conv2dReference(x: RefTensor, w: RefTensor, bias: RefTensor | null, p: Conv2dRefParams): RefTensor {
  const g = refGeom(x.shape, w.shape, p);
  const y = new Float64Array(g.N * g.Cout * g.OH * g.OW);
  forEachTerm(g, (xi, wi, yi) => {
    y[yi]! += x.data[xi]! * w.data[wi]!;
  });
  if (bias) for (let i = 0; i < y.length; i++) y[i]! += bias.data[Math.floor(i / (g.OH * g.OW)) % g.Cout]!;
  return { shape: [g.N, g.Cout, g.OH, g.OW], data: y };
}

/**
 * float64 conv2d with the spatial kernel's full epilogue (ConvOptions): relu?(conv(x, w) * scale[c]
 * + bias[c] + residual), in that order (torchvision's conv, FrozenBatchNorm2d, + identity, relu).
 */
export function conv2dEpilogueReference(x: RefTensor, w: RefTensor, scale: RefTensor | null, bias: RefTensor | null, residual: RefTensor | null, relu: boolean, p: Conv2dRefParams): RefTensor {
  const y = conv2dReference(x, w, null, p);
  const [, C, OH, OW] = y.shape as [number, number, number, number];
  const data = y.data.map((v, i) => {
    const c = Math.floor(i / (OH * OW)) % C;
    const z = v * (scale ? scale.data[c]! : 1) + (bias ? bias.data[c]! : 0) + (residual ? residual.data[i]! : 0);
    return relu ? Math.max(z, 0) : z;
  });
  return { shape: y.shape, data };
}

/** float64 d(sum(y*gy))/dx for conv2d: the adjoint loop (scatter of gy through w). */
export function conv2dInputGradReference(gy: RefTensor, w: RefTensor, xShape: readonly number[], p: Conv2dRefParams): RefTensor {
  const g = refGeom(xShape, w.shape, p);
  const gx = new Float64Array(xShape.reduce((a, b) => a * b, 1));
  forEachTerm(g, (xi, wi, yi) => {
    gx[xi]! += gy.data[yi]! * w.data[wi]!;
  });
  return { shape: [...xShape], data: gx };
}

/** float64 d(sum(y*gy))/dw for conv2d. */
export function conv2dWeightGradReference(gy: RefTensor, x: RefTensor, wShape: readonly number[], p: Conv2dRefParams): RefTensor {
  const g = refGeom(x.shape, wShape, p);
  const gw = new Float64Array(wShape.reduce((a, b) => a * b, 1));
  forEachTerm(g, (xi, wi, yi) => {
    gw[wi]! += gy.data[yi]! * x.data[xi]!;
  });
  return { shape: [...wShape], data: gw };
}

export interface ConvTranspose2dRefParams {
  stride: [number, number];
  padding: [number, number];
  outputPadding: [number, number];
  dilation: [number, number];
  groups: number;
}

/**
 * float64 conv_transpose2d, written as its definition (torch.nn.ConvTranspose2d): every input pixel
 * scatters x[n,ci,ih,iw] * w[ci,co,kh,kw] to y[n, g*Cout_g+co, ih*s-p+kh*d, iw*s-p+kw*d], with
 * w [Cin, Cout/groups, KH, KW]; taps that land outside the output are dropped.
 */
export function convTranspose2dReference(x: RefTensor, w: RefTensor, bias: RefTensor | null, p: ConvTranspose2dRefParams): RefTensor {
  const [N, Cin, H, W] = x.shape as [number, number, number, number];
  const [, coutG, KH, KW] = w.shape as [number, number, number, number];
  const Cout = coutG * p.groups, cinG = Cin / p.groups;
  const OH = convTransposeOutSize(H, KH, p.stride[0], p.padding[0], p.dilation[0], p.outputPadding[0]);
  const OW = convTransposeOutSize(W, KW, p.stride[1], p.padding[1], p.dilation[1], p.outputPadding[1]);
  const y = new Float64Array(N * Cout * OH * OW);
  for (let n = 0; n < N; n++) {
    for (let ci = 0; ci < Cin; ci++) {
      const grp = Math.floor(ci / cinG);
      for (let ih = 0; ih < H; ih++) {
        for (let iw = 0; iw < W; iw++) {
          const v = x.data[((n * Cin + ci) * H + ih) * W + iw]!;
          for (let co = 0; co < coutG; co++) {
            for (let kh = 0; kh < KH; kh++) {
              const oh = ih * p.stride[0] - p.padding[0] + kh * p.dilation[0];
              if (oh < 0 || oh >= OH) continue;
              for (let kw = 0; kw < KW; kw++) {
                const ow = iw * p.stride[1] - p.padding[1] + kw * p.dilation[1];
                if (ow < 0 || ow >= OW) continue;
                y[((n * Cout + grp * coutG + co) * OH + oh) * OW + ow]! += v * w.data[((ci * coutG + co) * KH + kh) * KW + kw]!;
              }
            }
          }
        }
      }
    }
  }
  if (bias) for (let i = 0; i < y.length; i++) y[i]! += bias.data[Math.floor(i / (OH * OW)) % Cout]!;
  return { shape: [N, Cout, OH, OW], data: y };
}
