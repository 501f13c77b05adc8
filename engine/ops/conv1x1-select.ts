// conv1x1Select: a 1x1 convolution that computes one output channel per row, conv2d(x, w, b)[r,
// channels[r]] (kernels/conv1x1-select.ts). Mask R-CNN's mask loss and mask inference read only
// each RoI's class channel of the predictor's 1x1 conv; computing just that channel does C times
// fewer FMAs and never makes the [R, C, H, W] logits (C = 91 for COCO's torchvision models).
import { conv1x1SelectKernel, CONV1X1_SELECT_UNIFORMS, SELECT_WG, type SelectKernelMode } from '../../kernels/conv1x1-select.js';
import { grid } from '../../kernels/common.js';
import { getBackend } from '../backend.js';
import { isAutocastEnabled, autocast } from '../autocast.js';
import { Tensor, empty, shapeStr } from '../tensor.js';
import { record } from '../autograd.js';
import { tidy } from '../scope.js';
import { elementwise as ew, denseView } from './elementwise.js';
import { tensor } from './create.js';
import { matmul } from './matmul.js';
import { reshape, slice, transpose } from './view.js';
import { inVec4Binding } from './vec4-binding.js';

const kernels = new Map<string, { wgsl: string; entry: string }>();
function kernel(mode: SelectKernelMode, vec: 1 | 4, roundF16: boolean): { wgsl: string; entry: string } {
  const key = `${mode}${vec}${roundF16}`;
  let k = kernels.get(key);
  if (!k) kernels.set(key, (k = conv1x1SelectKernel(mode, vec, roundF16)));
  return k;
}

/** vec4 when the pixel count is a multiple of 4 and every pixel-vector operand is aligned and within whole vec4s. */
function vecFor(P: number, ...ts: Tensor[]): 1 | 4 {
  return P % 4 === 0 && ts.every((t) => t.offset % 4 === 0 && inVec4Binding(t)) ? 4 : 1;
}

/**
 * conv2d(input, weight, bias)[r, channels[r]] for every row r: input [R, D, H, W], weight
 * [C, D, 1, 1], bias [C] or null, channels R integers in [0, C) (host values) -> [R, H, W].
 * Differentiable in input, weight and bias. Under autocast (the forward's state, for the backward
 * too) x, w and the output gradient are rounded to f16 at each load, as autocast's conv2d rounds its
 * GEMM operands.
 */
export function conv1x1Select(input: Tensor, weight: Tensor, bias: Tensor | null, channels: ArrayLike<number>): Tensor {
  const op = 'conv1x1_select';
  if (input.dtype !== 'float32' || weight.dtype !== 'float32' || (bias && bias.dtype !== 'float32')) throw new Error(`${op}: needs float32 input, weight and bias`);
  if (input.ndim !== 4) throw new Error(`${op}: input ${shapeStr(input.shape)} must be [R, D, H, W]`);
  const [R, D, H, W] = input.shape as [number, number, number, number];
  const ws = weight.shape;
  if (ws.length !== 4 || ws[1] !== D || ws[2] !== 1 || ws[3] !== 1) throw new Error(`${op}: weight ${shapeStr(ws)} must be [C, ${D}, 1, 1] for input ${shapeStr(input.shape)}`);
  const C = ws[0]!;
  if (bias && (bias.ndim !== 1 || bias.shape[0] !== C)) throw new Error(`${op}: bias ${shapeStr(bias.shape)} should be [${C}] for weight ${shapeStr(ws)}`);
  if (channels.length !== R) throw new Error(`${op}: ${channels.length} channels for ${R} rows of input ${shapeStr(input.shape)}`);
  for (let r = 0; r < R; r++) {
    const c = channels[r]!;
    if (!Number.isInteger(c) || c < 0 || c >= C) throw new Error(`${op}: channel ${c} of row ${r} is not in [0, ${C})`);
  }
  const P = H * W;
  const r16 = isAutocastEnabled();
  const be = getBackend();
  const out = empty([R, H, W]);
  if (out.size === 0) return out;
  const x = denseView(input);
  const w = denseView(weight);
  const b = bias ? denseView(bias) : null;
  const ch = tensor(Int32Array.from(channels), [R], 'int32');
  const fv = vecFor(P, x, out);
  be.dispatch({
    kernel: kernel('forward', fv, r16),
    buffers: [x.storage.buffer, w.storage.buffer, (b ?? w).storage.buffer, ch.storage.buffer, out.storage.buffer],
    uniforms: CONV1X1_SELECT_UNIFORMS.pack({ R, D, C, PV: P / fv, xOffset: x.offset, gOffset: 0, wOffset: w.offset, bOffset: b?.offset ?? 0, bias: b ? 1 : 0 }),
    workgroups: [Math.ceil(P / fv / SELECT_WG), R],
    label: `${op}(${shapeStr(input.shape)}, ${shapeStr(ws)})`,
  });
  const inputs = bias ? [input, weight, bias] : [input, weight];
  record(op, inputs, out, [x, w, ch], (gOut, [xs, wsv, chs]) => {
    const g = denseView(gOut);
    let gx: Tensor | null = null;
    if (input.requiresGrad) {
      gx = empty([R, D, H, W]);
      const v = vecFor(P, g, gx);
      be.dispatch({
        kernel: kernel('dx', v, r16),
        buffers: [g.storage.buffer, wsv!.storage.buffer, chs!.storage.buffer, gx.storage.buffer],
        uniforms: CONV1X1_SELECT_UNIFORMS.pack({ R, D, C, PV: P / v, xOffset: 0, gOffset: g.offset, wOffset: wsv!.offset, bOffset: 0, bias: 0 }),
        workgroups: [Math.ceil(P / v / SELECT_WG), R],
        label: `${op} backward dx`,
      });
    }
    let gw: Tensor | null = null, gb: Tensor | null = null;
    if (weight.requiresGrad || bias?.requiresGrad) {
      [gw, gb] = tidy(() => {
        // Per row: s[r, d] = sum_p g x (d < D) and sum_p g (d = D); then per channel the sum over its rows.
        const s = empty([R, D + 1]);
        const v = vecFor(P, g, xs!);
        be.dispatch({
          kernel: kernel('partial', v, r16),
          buffers: [g.storage.buffer, xs!.storage.buffer, s.storage.buffer],
          uniforms: CONV1X1_SELECT_UNIFORMS.pack({ R, D, C, PV: P / v, xOffset: xs!.offset, gOffset: g.offset, wOffset: 0, bOffset: 0, bias: 0 }),
          workgroups: grid(Math.ceil((R * (D + 1)) / SELECT_WG)),
          label: `${op} backward partial sums`,
        });
        // [R, C] (rows leading, as every row-sized tensor: engine/alloc-hints.ts sizes them by capacity), read transposed.
        const onehot = new Float32Array(R * C);
        for (let r = 0; r < R; r++) onehot[r * C + channels[r]!] = 1;
        // An exact selection of partial sums, not a GEMM of operands: never f16-rounded.
        const m = autocast(() => matmul(transpose(tensor(onehot, [R, C]), 0, 1), s), false);
        return [reshape(ew('copy', [slice(m, 1, 0, D)]), [C, D, 1, 1]), reshape(ew('copy', [slice(m, 1, D, D + 1)]), [C])];
      });
    }
    if (!weight.requiresGrad) gw?.dispose();
    if (!bias?.requiresGrad) gb?.dispose();
    const grads = [gx, weight.requiresGrad ? gw : null];
    if (bias) grads.push(bias.requiresGrad ? gb : null);
    return grads;
  });
  return out;
}
