// torch.matmul: 1-D operands, batch broadcasting, transposed views read in place.
import { matmulKernel, matmulTile, DEFAULT_MATMUL } from '../../kernels/matmul.js';
import { Uniforms } from '../../kernels/common.js';
import { broadcastShapes } from '../../kernels/elementwise.js';
import { getBackend } from '../backend.js';
import { Tensor, empty, shapeStr, sizeOf } from '../tensor.js';
import { noGrad, record } from '../autograd.js';
import { tidy } from '../scope.js';
import { contiguous } from './elementwise.js';
import { expand, reshape, transpose, squeeze, unsqueeze } from './view.js';
import { sumToShape } from './reduce.js';
import { fillInPlace } from './copy.js';

const kernel = matmulKernel(DEFAULT_MATMUL);
const tile = matmulTile(DEFAULT_MATMUL);

/** Batch dims of t (all but the last two) as one (count, stride), copying when they do not fold. */
function foldBatch(t: Tensor): { t: Tensor; stride: number } {
  const dims = t.shape.slice(0, -2).map((d, i) => ({ d, s: t.strides[i]! })).filter((e) => e.d !== 1);
  let ok = true;
  for (let k = 0; k + 1 < dims.length; k++) if (dims[k]!.s !== dims[k + 1]!.s * dims[k + 1]!.d) ok = false;
  if (ok) return { t, stride: dims.length ? dims[dims.length - 1]!.s : 0 };
  const c = contiguous(t);
  return { t: c, stride: t.shape[t.ndim - 1]! * t.shape[t.ndim - 2]! };
}

/** a [..., M, K] @ b [..., K, N] for operands of equal rank >= 2 whose batch dims broadcast. */
function bmm(a: Tensor, b: Tensor): Tensor {
  const M = a.shape[a.ndim - 2]!, K = a.shape[a.ndim - 1]!, N = b.shape[b.ndim - 1]!;
  const batch = broadcastShapes([a.shape.slice(0, -2), b.shape.slice(0, -2)]);
  const out = empty([...batch, M, N]);
  if (out.size === 0) return out;
  if (K === 0) return fillInPlace(out, 0);
  return tidy(() => {
    const fa = foldBatch(expand(a, [...batch, M, K]));
    const fb = foldBatch(expand(b, [...batch, K, N]));
    const nb = sizeOf(batch);
    const u = new Uniforms().u(
      M, N, K, nb,
      fa.t.offset, fa.stride, fa.t.strides[fa.t.ndim - 2]!, fa.t.strides[fa.t.ndim - 1]!,
      fb.t.offset, fb.stride, fb.t.strides[fb.t.ndim - 2]!, fb.t.strides[fb.t.ndim - 1]!,
      M * N,
    );
    getBackend().dispatch({
      kernel,
      buffers: [fa.t.storage.buffer, fb.t.storage.buffer, out.storage.buffer],
      uniforms: u.bytes(),
      workgroups: [Math.ceil(N / tile.tileN), Math.ceil(M / tile.tileM), nb],
      label: `matmul(${shapeStr(a.shape)}, ${shapeStr(b.shape)})`,
    });
    return out;
  });
}

/** torch.matmul semantics (vectors are promoted and the added dim removed). */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.dtype !== 'float32' || b.dtype !== 'float32') throw new Error(`matmul: needs float32 operands, got ${a.dtype} and ${b.dtype}`);
  if (a.ndim === 0 || b.ndim === 0) throw new Error('matmul: operands must have at least one dimension');
  const K1 = a.shape[a.ndim - 1]!, K2 = b.ndim === 1 ? b.shape[0]! : b.shape[b.ndim - 2]!;
  if (K1 !== K2) throw new Error(`matmul: shapes ${shapeStr(a.shape)} and ${shapeStr(b.shape)} cannot be multiplied (${K1} != ${K2})`);
  const out = noGrad(() => tidy(() => {
    let a2 = a.ndim === 1 ? unsqueeze(a, 0) : a;
    let b2 = b.ndim === 1 ? unsqueeze(b, 1) : b;
    while (a2.ndim < b2.ndim) a2 = unsqueeze(a2, 0);
    while (b2.ndim < a2.ndim) b2 = unsqueeze(b2, 0);
    let y = bmm(a2, b2);
    if (a.ndim === 1) y = squeeze(y, -2);
    if (b.ndim === 1) y = squeeze(y, -1);
    return y;
  }));
  record('matmul', [a, b], out, [a, b], (g, [as, bs]) => {
    // Work in >= 2-D: vectors become rows/columns again.
    const A = as!.ndim === 1 ? unsqueeze(as!, 0) : as!;
    const B = bs!.ndim === 1 ? unsqueeze(bs!, 1) : bs!;
    let G = g;
    if (a.ndim === 1) G = unsqueeze(G, -2);
    if (b.ndim === 1) G = unsqueeze(G, -1);
    const ga = bmmBroadcast(G, transpose(B, -1, -2));
    const gb = bmmBroadcast(transpose(A, -1, -2), G);
    return [reshape(sumToShape(ga, padLeft(A.shape, ga.ndim)), a.shape), reshape(sumToShape(gb, padLeft(B.shape, gb.ndim)), b.shape)];
  });
  return out;
}

function padLeft(shape: readonly number[], ndim: number): number[] {
  return [...new Array<number>(Math.max(0, ndim - shape.length)).fill(1), ...shape];
}

function bmmBroadcast(a: Tensor, b: Tensor): Tensor {
  while (a.ndim < b.ndim) a = unsqueeze(a, 0);
  while (b.ndim < a.ndim) b = unsqueeze(b, 0);
  return bmm(a, b);
}
