// torch.nn.functional.interpolate for 4D [N, C, H, W] inputs, modes 'nearest' and 'bilinear'
// (kernels/resize.ts), to an explicit size or by a scale factor, with backward (a gather: the
// exact transpose of the forward, no atomics).
import { resizeKernel, resizeScale, RESIZE_UNIFORMS, type ResizeMode } from '../../kernels/resize.js';
import { grid, WORKGROUP } from '../../kernels/common.js';
import { getBackend } from '../backend.js';
import { Tensor, empty, shapeStr } from '../tensor.js';
import { record } from '../autograd.js';
import { elementwise as ew } from './elementwise.js';

export interface InterpolateOptions {
  /** Output spatial size [H, W] (or one number for both). Exactly one of size / scaleFactor. */
  size?: number | readonly [number, number];
  /** Multiplier of the spatial size; the output size is floor(in * scaleFactor). */
  scaleFactor?: number | readonly [number, number];
  /** Default 'nearest', as torch. */
  mode?: ResizeMode;
  /** Bilinear only (default false); an error with 'nearest', as torch. */
  alignCorners?: boolean | null;
  /**
   * With scaleFactor: true uses scale = in/out of the computed output size; false/undefined passes
   * the given factor to the kernel (scale = 1/scaleFactor), as torch.
   */
  recomputeScaleFactor?: boolean | null;
}

const kernels = new Map<string, { wgsl: string; entry: string }>();
function kernel(mode: ResizeMode, dir: 'forward' | 'backward') {
  const key = `${mode}|${dir}`;
  let k = kernels.get(key);
  if (!k) kernels.set(key, (k = resizeKernel(mode, dir)));
  return k;
}

const pair = (v: number | readonly [number, number]): [number, number] => (typeof v === 'number' ? [v, v] : [v[0], v[1]]);

/**
 * torch.nn.functional.interpolate(input, size, scale_factor, mode, align_corners,
 * recompute_scale_factor) for mode 'nearest' (legacy: src = floor(dst * scale)) and 'bilinear'.
 */
export function interpolate(x: Tensor, opts: InterpolateOptions): Tensor {
  const mode = opts.mode ?? 'nearest';
  const desc = `interpolate(${x.dtype}${shapeStr(x.shape)}, mode=${mode})`;
  if (mode !== 'nearest' && mode !== 'bilinear') throw new Error(`${desc}: mode must be 'nearest' or 'bilinear'`);
  if (x.dtype !== 'float32') throw new Error(`${desc}: needs a float32 input`);
  if (x.ndim !== 4) throw new Error(`${desc}: expects a 4D [N,C,H,W] input`);
  if ((opts.size == null) === (opts.scaleFactor == null)) throw new Error(`${desc}: give exactly one of size and scaleFactor`);
  if (mode === 'nearest' && opts.alignCorners != null) {
    throw new Error(`${desc}: alignCorners can only be set with the interpolating modes (bilinear)`);
  }
  if (opts.size != null && opts.recomputeScaleFactor != null) throw new Error(`${desc}: recomputeScaleFactor is not meaningful with an explicit size`);
  const align = opts.alignCorners ?? false;
  const H = x.shape[2]!, W = x.shape[3]!;
  let OH: number, OW: number;
  let factors: [number | undefined, number | undefined] = [undefined, undefined];
  if (opts.size != null) {
    [OH, OW] = pair(opts.size);
  } else {
    const [fh, fw] = pair(opts.scaleFactor!);
    if (!(fh > 0 && fw > 0)) throw new Error(`${desc}: scaleFactor must be positive, got ${JSON.stringify(opts.scaleFactor)}`);
    OH = Math.floor(H * fh);
    OW = Math.floor(W * fw);
    if (!opts.recomputeScaleFactor) factors = [fh, fw];
  }
  if (![OH, OW].every((v) => Number.isInteger(v) && v > 0) || H <= 0 || W <= 0) {
    throw new Error(`${desc}: input and output sizes should be greater than 0, got input ${H}x${W} and output ${OH}x${OW}`);
  }
  const sh = resizeScale(mode, H, OH, align, factors[0]);
  const sw = resizeScale(mode, W, OW, align, factors[1]);
  const words = (n: number, offset: number): Uint32Array => RESIZE_UNIFORMS.pack({ n, H, W, OH, OW, scaleH: sh, scaleW: sw, alignCorners: align ? 1 : 0, offset });

  const y = empty([x.shape[0]!, x.shape[1]!, OH, OW]);
  if (y.size === 0) return y;
  const xd = x.isContiguous ? x : ew('copy', [x]);
  getBackend().dispatch({
    kernel: kernel(mode, 'forward'),
    buffers: [xd.storage.buffer, y.storage.buffer],
    uniforms: words(y.size, xd.offset),
    workgroups: grid(Math.ceil(y.size / WORKGROUP)),
    label: `${desc} to ${OH}x${OW}`,
  });
  if (xd !== x) xd.dispose();
  record(`interpolate_${mode}`, [x], y, [], (g) => {
    const gd = g.isContiguous ? g : ew('copy', [g]);
    const gx = empty(x.shape);
    getBackend().dispatch({
      kernel: kernel(mode, 'backward'),
      buffers: [gd.storage.buffer, gx.storage.buffer],
      uniforms: words(gx.size, gd.offset),
      workgroups: grid(Math.ceil(gx.size / WORKGROUP)),
      label: `${desc} backward from ${OH}x${OW}`,
    });
    return [gx];
  });
  return y;
}
