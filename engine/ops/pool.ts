// max_pool2d (torch.nn.functional.max_pool2d semantics, kernels/pool.ts) with its backward, which
// routes each output's gradient to its argmax (the first maximum in window scan order).
import { maxPool2dKernel, poolCandidates, poolOutputSize, POOL_UNIFORMS, type Pool2d } from '../../kernels/pool.js';
import { grid, WORKGROUP } from '../../kernels/common.js';
import { getBackend } from '../backend.js';
import { Tensor, empty, shapeStr } from '../tensor.js';
import { record } from '../autograd.js';
import { elementwise as ew } from './elementwise.js';

export type Pair = number | readonly [number, number];

const kernels = new Map<string, { wgsl: string; entry: string }>();
/** Windows with at most this many candidate outputs per input element get the unrolled backward. */
const MAX_UNROLLED = 16;
let unrolledOn = true;
/** The backward's unrolled form on (default) or off: the loop form, for tests that compare the two. */
export function setMaxPoolBackwardUnrolled(on: boolean): void {
  unrolledOn = on;
}
function kernel(dir: 'forward' | 'backward', p?: Pool2d) {
  const c = dir === 'backward' && p && unrolledOn ? poolCandidates(p) : null;
  const cand = c && c[0] * c[1] <= MAX_UNROLLED ? c : undefined;
  const key = cand ? `${dir} ${cand.join('x')}` : dir;
  let k = kernels.get(key);
  if (!k) kernels.set(key, (k = maxPool2dKernel(dir, cand)));
  return k;
}

const pair = (v: Pair): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

function words(p: Pool2d, n: number, H: number, W: number, OH: number, OW: number, offset: number, idxOffset: number): Uint32Array {
  const { kH, kW, sH, sW, pH, pW, dH, dW } = p;
  return POOL_UNIFORMS.pack({ n, H, W, OH, OW, kH, kW, sH, sW, pH, pW, dH, dW, offset, idxOffset });
}

/**
 * torch.nn.functional.max_pool2d(input, kernel_size, stride=kernel_size, padding=0, dilation=1,
 * ceil_mode=False, return_indices=True) on [N, C, H, W] or [C, H, W]: returns the pooled values
 * and the argmax of each window as a flat index h*W + w into its input plane (int32).
 */
export function maxPool2dWithIndices(x: Tensor, kernelSize: Pair, stride?: Pair | null, padding: Pair = 0, dilation: Pair = 1, ceilMode = false): [Tensor, Tensor] {
  const [kH, kW] = pair(kernelSize);
  const [sH, sW] = pair(stride ?? kernelSize);
  const [pH, pW] = pair(padding);
  const [dH, dW] = pair(dilation);
  const desc = `max_pool2d(${x.dtype}${shapeStr(x.shape)}, kernel=[${kH},${kW}], stride=[${sH},${sW}], padding=[${pH},${pW}], dilation=[${dH},${dW}])`;
  if (x.dtype !== 'float32') throw new Error(`${desc}: needs a float32 input`);
  if (x.ndim !== 3 && x.ndim !== 4) throw new Error(`${desc}: expects a 3D [C,H,W] or 4D [N,C,H,W] input`);
  const all = [kH, kW, sH, sW, dH, dW];
  if (all.some((v) => !Number.isInteger(v) || v <= 0) || [pH, pW].some((v) => !Number.isInteger(v) || v < 0)) {
    throw new Error(`${desc}: kernel, stride and dilation must be positive integers and padding non-negative`);
  }
  if (pH > kH / 2 || pW > kW / 2) throw new Error(`${desc}: pad should be at most half of kernel size`);
  const p: Pool2d = { kH, kW, sH, sW, pH, pW, dH, dW, ceilMode };
  const H = x.shape[x.ndim - 2]!, W = x.shape[x.ndim - 1]!;
  const OH = poolOutputSize(H, kH, sH, pH, dH, ceilMode), OW = poolOutputSize(W, kW, sW, pW, dW, ceilMode);
  if (OH < 1 || OW < 1) throw new Error(`${desc}: given input size ${H}x${W}, the calculated output size ${OH}x${OW} is too small`);
  const outShape = [...x.shape.slice(0, -2), OH, OW];
  const y = empty(outShape);
  const idx = empty(outShape, 'int32');
  if (y.size > 0) {
    const xd = x.isContiguous ? x : ew('copy', [x]);
    getBackend().dispatch({
      kernel: kernel('forward'),
      buffers: [xd.storage.buffer, y.storage.buffer, idx.storage.buffer],
      uniforms: words(p, y.size, H, W, OH, OW, xd.offset, 0),
      workgroups: grid(Math.ceil(y.size / WORKGROUP)),
      label: desc,
    });
    if (xd !== x) xd.dispose();
  }
  record('max_pool2d', [x], y, [idx], (g, [ix]) => {
    const gd = g.isContiguous ? g : ew('copy', [g]);
    const gx = empty(x.shape);
    if (gx.size === 0) return [gx];
    getBackend().dispatch({
      kernel: kernel('backward', p),
      buffers: [gd.storage.buffer, ix!.storage.buffer, gx.storage.buffer],
      uniforms: words(p, gx.size, H, W, OH, OW, gd.offset, ix!.offset),
      workgroups: grid(Math.ceil(gx.size / WORKGROUP)),
      label: `${desc} backward`,
    });
    return [gx];
  });
  return [y, idx];
}

/** torch.nn.functional.max_pool2d(input, kernel_size, stride=kernel_size, padding=0, dilation=1, ceil_mode=False). */
export function maxPool2d(x: Tensor, kernelSize: Pair, stride?: Pair | null, padding: Pair = 0, dilation: Pair = 1, ceilMode = false): Tensor {
  const [y, idx] = maxPool2dWithIndices(x, kernelSize, stride, padding, dilation, ceilMode);
  idx.dispose();
  return y;
}
