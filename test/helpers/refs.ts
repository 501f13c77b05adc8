// float64 index arithmetic shared by tests.
import type { RefTensor } from '../../kernels/common.js';

/** x permuted by `perm` (torch.permute), dense. */
export function permuteRef(x: RefTensor, perm: number[]): RefTensor {
  const shape = perm.map((i) => x.shape[i]!);
  const inStrides = x.shape.map((_, i) => x.shape.slice(i + 1).reduce((a, b) => a * b, 1));
  const n = x.data.length;
  const out = new Float64Array(n);
  for (let j = 0; j < n; j++) {
    let r = j, src = 0;
    for (let d = shape.length - 1; d >= 0; d--) {
      const c = r % shape[d]!;
      r = (r - c) / shape[d]!;
      src += c * inStrides[perm[d]!]!;
    }
    out[j] = x.data[src]!;
  }
  return { shape, data: out };
}

