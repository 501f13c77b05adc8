// softmax / log_softmax over any dim (torch.softmax, torch.log_softmax). Forward and backward are
// each one row kernel (kernels/softmax.ts) over the dense [outer, N, inner] layout: no permutes.
import { softmaxKernel, softmaxShortRows, splitAround, SOFTMAX_UNIFORMS, type SoftmaxMode } from '../../kernels/softmax.js';
import { grid, WORKGROUP } from '../../kernels/common.js';
import { getBackend } from '../backend.js';
import { Tensor, empty, shapeStr } from '../tensor.js';
import { record } from '../autograd.js';
import { elementwise } from './elementwise.js';
import { normDim } from './view.js';

const kernels = new Map<string, { wgsl: string; entry: string }>();

/** A dense view of t (t itself when already dense), plus whether it is a new temporary. */
function dense(t: Tensor): { t: Tensor; temp: boolean } {
  return t.isContiguous ? { t, temp: false } : { t: elementwise('copy', [t]), temp: true };
}

/** Runs one softmax-family row kernel over `dim` of the inputs (same shape); no autodiff. */
function run(mode: SoftmaxMode, inputs: Tensor[], dim: number, label: string): Tensor {
  const shape = inputs[0]!.shape;
  const out = empty(shape, 'float32');
  if (out.size === 0) return out;
  const { n, inner } = splitAround(shape, dim);
  const rows = out.size / n;
  const short = softmaxShortRows(rows, n, inner);
  const key = `${mode}|${short}`;
  let kernel = kernels.get(key);
  if (!kernel) kernels.set(key, (kernel = softmaxKernel(mode, short)));
  const ds = inputs.map(dense);
  getBackend().dispatch({
    kernel,
    buffers: [...ds.map((d) => d.t.storage.buffer), out.storage.buffer],
    uniforms: SOFTMAX_UNIFORMS.pack({ rows, n, inner, aOffset: ds[0]!.t.offset, bOffset: ds[1]?.t.offset ?? 0 }),
    workgroups: grid(short ? Math.ceil(rows / WORKGROUP) : rows),
    label,
  });
  for (const d of ds) if (d.temp) d.t.dispose();
  return out;
}

function family(log: boolean) {
  const name = log ? 'log_softmax' : 'softmax';
  return (x: Tensor, dim = -1): Tensor => {
    if (x.dtype !== 'float32') throw new Error(`${name}: needs a float32 tensor, got ${x.dtype}${shapeStr(x.shape)}`);
    const d = x.ndim === 0 ? 0 : normDim(dim, x.ndim);
    const label = `${name}(${x.dtype}${shapeStr(x.shape)}, dim=${d})`;
    const y = run(log ? 'log_softmax' : 'softmax', [x], d, label);
    record(name, [x], y, [y], (g, [ys]) => [run(log ? 'log_softmax_grad' : 'softmax_grad', [ys!, g], d, `${name} backward ${shapeStr(x.shape)}`)]);
    return y;
  };
}

/** torch.softmax(x, dim): exp(x - max) / sum(exp(x - max)) along dim (default: the last). */
export const softmax = family(false);
/** torch.log_softmax(x, dim): x - max - log(sum(exp(x - max))) along dim (default: the last). */
export const logSoftmax = family(true);
