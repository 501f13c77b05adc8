// More Tensor methods (softmax and indexing families), installed onto the prototype the same way
// as tensor-methods.ts so that tensor.ts does not import these ops.
import { Tensor } from './tensor.js';
import * as F from './ops/index.js';

declare module './tensor.js' {
  interface Tensor {
    softmax(dim?: number): Tensor;
    logSoftmax(dim?: number): Tensor;
    gather(dim: number, index: Tensor): Tensor;
    indexSelect(dim: number, index: Tensor): Tensor;
    scatterAdd(dim: number, index: Tensor, src: Tensor): Tensor;
    indexAdd(dim: number, index: Tensor, src: Tensor): Tensor;
    maskedFill(mask: Tensor, value: number | Tensor): Tensor;
    take(index: Tensor): Tensor;
  }
}

const P = Tensor.prototype as unknown as Record<string, unknown>;
const methods: Record<string, (this: Tensor, ...args: never[]) => unknown> = {
  softmax(this: Tensor, dim?: number) { return F.softmax(this, dim); },
  logSoftmax(this: Tensor, dim?: number) { return F.logSoftmax(this, dim); },
  gather(this: Tensor, dim: number, index: Tensor) { return F.gather(this, dim, index); },
  indexSelect(this: Tensor, dim: number, index: Tensor) { return F.indexSelect(this, dim, index); },
  scatterAdd(this: Tensor, dim: number, index: Tensor, src: Tensor) { return F.scatterAdd(this, dim, index, src); },
  indexAdd(this: Tensor, dim: number, index: Tensor, src: Tensor) { return F.indexAdd(this, dim, index, src); },
  maskedFill(this: Tensor, mask: Tensor, value: number | Tensor) { return F.maskedFill(this, mask, value); },
  take(this: Tensor, index: Tensor) { return F.take(this, index); },
};
for (const [name, fn] of Object.entries(methods)) P[name] = fn;
