// Joining and splitting along a dimension, built from cat and slice.
import type { Tensor } from '../tensor.js';
import { cat } from './copy.js';
import { normDim, slice, unsqueeze } from './view.js';
import { tidy } from '../scope.js';

/** torch.stack: joins tensors of one shape along a new dim. */
export function stack(tensors: readonly Tensor[], dim = 0): Tensor {
  if (tensors.length === 0) throw new Error('stack: needs at least one tensor');
  return tidy(() => cat(tensors.map((t) => unsqueeze(t, dim)), dim));
}

/** torch.split: pieces of `size` (or of the given sizes) along dim, as views. */
export function split(x: Tensor, sizes: number | readonly number[], dim = 0): Tensor[] {
  const d = normDim(dim, x.ndim);
  const n = x.shape[d]!;
  const lens = typeof sizes === 'number' ? Array.from({ length: Math.ceil(n / sizes) }, (_, i) => Math.min(sizes, n - i * sizes)) : [...sizes];
  if (lens.reduce((a, b) => a + b, 0) !== n) throw new Error(`split: sizes [${lens.join(',')}] do not add up to ${n} along dim ${dim}`);
  let at = 0;
  return lens.map((len) => {
    const piece = slice(x, d, at, at + len);
    at += len;
    return piece;
  });
}

/** torch.chunk: `chunks` nearly equal pieces along dim. */
export function chunk(x: Tensor, chunks: number, dim = 0): Tensor[] {
  const n = x.shape[normDim(dim, x.ndim)]!;
  return split(x, Math.ceil(n / chunks), dim);
}
