// conv_transpose2d with kernel = stride (kernels/conv-transpose-ks.ts): the forward and the input
// gradient as one dispatch each, on CPU adapters. conv.ts's convTranspose2d asks ksApplies() and
// otherwise runs the generic phase kernels; the weight gradient is the generic one either way.
import { convTransposeKsKernel, ksChannelBlock, CONV_TRANSPOSE_KS_UNIFORMS, KS_JB, KS_WG, type ConvTransposeKsSpec } from '../../kernels/conv-transpose-ks.js';
import type { ConvGeom } from '../../kernels/conv.js';
import { getBackend } from '../backend.js';
import { adapterIsCpu, adapterSubgroupsExactly } from '../device.js';
// autocastSpec: the caller's state, which in the backward is the forward's (underForwardAutocast).
import { autocastSpec } from '../autocast.js';
import { Tensor, empty } from '../tensor.js';
import { inVec4Binding } from './vec4-binding.js';

const kernels = new Map<string, { wgsl: string; entry: string }>();
function kernel(s: ConvTransposeKsSpec): { wgsl: string; entry: string } {
  const key = JSON.stringify(s);
  let k = kernels.get(key);
  if (!k) kernels.set(key, (k = convTransposeKsKernel(s)));
  return k;
}

let forced: boolean | null = null;

/**
 * Forces the kernel = stride form on or off (tests compare it with the generic kernels; benchmarks);
 * null restores the default: on for CPU adapters (measured on lavapipe, bench/RESULTS.md), off on
 * GPUs, which keep the phase kernels until it is measured there.
 */
export function setConvTransposeKs(on: boolean | null): void {
  forced = on;
}

/**
 * Whether conv_transpose2d on g (conv2d naming: the conv whose input gradient it is) takes this
 * form: kernel = stride, no padding or output padding, dilation 1, one group, and subgroups of
 * exactly 8 lanes (the kernels share weights by subgroupBroadcast).
 */
export function ksApplies(g: ConvGeom, outputPadding: [number, number]): boolean {
  if (!(forced ?? adapterIsCpu()) || !adapterSubgroupsExactly(8)) return false;
  return g.KH === g.sh && g.KW === g.sw && g.ph === 0 && g.pw === 0 && g.dh === 1 && g.dw === 1 && g.groups === 1 && outputPadding[0] === 0 && outputPadding[1] === 0;
}

/** The ConvGeom of a conv_transpose2d in its own naming: x [N, Ci, H, W], w [Ci, Co, KH, KW], y [N, Co, OH, OW]. */
function sizes(g: ConvGeom) {
  // g is conv2d's: its input [N, Cin, H, W] is the transposed conv's output, its output [OH, OW] the transposed conv's input.
  return { N: g.N, Ci: g.Cout, H: g.OH, W: g.OW, Co: g.Cin, OH: g.H, OW: g.W, KH: g.KH, KW: g.KW, jBlocks: Math.ceil(g.OW / KS_JB) };
}

/** The sizes the uniforms carry (the kernel size is the kernel's own). */
function fields(s: ReturnType<typeof sizes>) {
  const { KH: _kh, KW: _kw, ...rest } = s;
  return rest;
}

/** The transposed conv's output [N, Co, OH, OW] from dense x and w, with the bias and ReLU applied. */
export function convTransposeKsForward(x: Tensor, w: Tensor, bias: Tensor | null, relu: boolean, g: ConvGeom): Tensor {
  const s = sizes(g);
  const out = empty([s.N, s.Co, s.OH, s.OW]);
  if (out.size === 0) return out;
  const cb = ksChannelBlock('forward', s.KH, s.KW, s.Co);
  const vec4 = s.OW % 4 === 0 && (s.KW * KS_JB) % 4 === 0 && inVec4Binding(out);
  getBackend().dispatch({
    kernel: kernel({ mode: 'forward', KH: s.KH, KW: s.KW, cb, vec4, ...autocastSpec() }),
    buffers: [x.storage.buffer, w.storage.buffer, (bias ?? w).storage.buffer, out.storage.buffer],
    uniforms: CONV_TRANSPOSE_KS_UNIFORMS.pack({ ...fields(s), srcOffset: x.offset, wOffset: w.offset, bOffset: bias?.offset ?? 0, bias: bias ? 1 : 0, relu: relu ? 1 : 0 }),
    workgroups: [Math.ceil((s.N * s.H * s.jBlocks) / KS_WG), Math.ceil(s.Co / cb)],
    label: `conv_transpose2d k=s x[${s.N},${s.Ci},${s.H},${s.W}] w[${s.Ci},${s.Co},${s.KH},${s.KW}]`,
  });
  return out;
}

/** The gradient of the transposed conv's input [N, Ci, H, W] from dense dy [N, Co, OH, OW] and w. */
export function convTransposeKsInputGrad(dy: Tensor, w: Tensor, g: ConvGeom): Tensor {
  const s = sizes(g);
  const dx = empty([s.N, s.Ci, s.H, s.W]);
  if (dx.size === 0) return dx;
  const cb = ksChannelBlock('dx', s.KH, s.KW, s.Ci);
  const vec4 = s.OW % 4 === 0 && (s.KW * KS_JB) % 4 === 0 && dy.offset % 4 === 0 && inVec4Binding(dy);
  getBackend().dispatch({
    kernel: kernel({ mode: 'dx', KH: s.KH, KW: s.KW, cb, vec4, ...autocastSpec() }),
    buffers: [dy.storage.buffer, w.storage.buffer, dx.storage.buffer],
    uniforms: CONV_TRANSPOSE_KS_UNIFORMS.pack({ ...fields(s), srcOffset: dy.offset, wOffset: w.offset, bOffset: 0, bias: 0, relu: 0 }),
    workgroups: [Math.ceil((s.N * s.H * s.jBlocks) / KS_WG), Math.ceil(s.Ci / cb)],
    label: `conv_transpose2d k=s input grad x[${s.N},${s.Ci},${s.H},${s.W}] w[${s.Ci},${s.Co},${s.KH},${s.KW}]`,
  });
  return dx;
}
