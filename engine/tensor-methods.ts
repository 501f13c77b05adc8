// Tensor methods, PyTorch style (x.add(y).relu().sum()), installed onto the prototype so that
// tensor.ts does not import every op.
import { Tensor, type DType } from './tensor.js';
import * as F from './ops/index.js';
import { backward, type BackwardOptions } from './autograd.js';
import type { Dims } from './ops/reduce.js';
import type { Operand } from './ops/elementwise.js';

declare module './tensor.js' {
  interface Tensor {
    add(o: Operand): Tensor;
    sub(o: Operand): Tensor;
    mul(o: Operand): Tensor;
    div(o: Operand): Tensor;
    pow(o: Operand): Tensor;
    neg(): Tensor;
    exp(): Tensor;
    log(): Tensor;
    sqrt(): Tensor;
    abs(): Tensor;
    relu(): Tensor;
    sigmoid(): Tensor;
    tanh(): Tensor;
    square(): Tensor;
    clamp(min?: number, max?: number): Tensor;
    matmul(o: Tensor): Tensor;
    sum(dims?: Dims, keepdim?: boolean): Tensor;
    mean(dims?: Dims, keepdim?: boolean): Tensor;
    max(dims?: Dims, keepdim?: boolean): Tensor;
    min(dims?: Dims, keepdim?: boolean): Tensor;
    argmax(dim?: number, keepdim?: boolean): Tensor;
    eq(o: Operand): Tensor;
    gt(o: Operand): Tensor;
    lt(o: Operand): Tensor;
    ge(o: Operand): Tensor;
    le(o: Operand): Tensor;
    reshape(...shape: number[] | [readonly number[]]): Tensor;
    view(shape: readonly number[], strides: readonly number[], offset: number): Tensor;
    permute(...dims: number[]): Tensor;
    transpose(d0?: number, d1?: number): Tensor;
    get T(): Tensor;
    slice(dim: number, start?: number, end?: number, step?: number): Tensor;
    expand(...shape: number[]): Tensor;
    unsqueeze(dim: number): Tensor;
    squeeze(dim?: number): Tensor;
    flatten(start?: number, end?: number): Tensor;
    contiguous(): Tensor;
    float(): Tensor;
    int(): Tensor;
    to(dtype: DType): Tensor;
    detach(): Tensor;
    clone(): Tensor;
    backward(grad?: Tensor | BackwardOptions): void;
    requiresGrad_(on?: boolean): Tensor;
  }
}

const shapeArgs = (args: number[] | [readonly number[]]): number[] => (Array.isArray(args[0]) ? [...(args[0] as number[])] : (args as number[]));
const P = Tensor.prototype as unknown as Record<string, unknown>;
const methods: Record<string, (this: Tensor, ...args: never[]) => unknown> = {
  add(this: Tensor, o: Operand) { return F.add(this, o); },
  sub(this: Tensor, o: Operand) { return F.sub(this, o); },
  mul(this: Tensor, o: Operand) { return F.mul(this, o); },
  div(this: Tensor, o: Operand) { return F.div(this, o); },
  pow(this: Tensor, o: Operand) { return F.pow(this, o); },
  neg(this: Tensor) { return F.neg(this); },
  exp(this: Tensor) { return F.exp(this); },
  log(this: Tensor) { return F.log(this); },
  sqrt(this: Tensor) { return F.sqrt(this); },
  abs(this: Tensor) { return F.abs(this); },
  relu(this: Tensor) { return F.relu(this); },
  sigmoid(this: Tensor) { return F.sigmoid(this); },
  tanh(this: Tensor) { return F.tanh(this); },
  square(this: Tensor) { return F.square(this); },
  clamp(this: Tensor, min?: number, max?: number) { return F.clamp(this, min, max); },
  matmul(this: Tensor, o: Tensor) { return F.matmul(this, o); },
  sum(this: Tensor, dims?: Dims, keepdim?: boolean) { return F.sum(this, dims, keepdim); },
  mean(this: Tensor, dims?: Dims, keepdim?: boolean) { return F.mean(this, dims, keepdim); },
  max(this: Tensor, dims?: Dims, keepdim?: boolean) { return F.max(this, dims, keepdim); },
  min(this: Tensor, dims?: Dims, keepdim?: boolean) { return F.min(this, dims, keepdim); },
  argmax(this: Tensor, dim?: number, keepdim?: boolean) { return F.argmax(this, dim, keepdim); },
  eq(this: Tensor, o: Operand) { return F.eq(this, o); },
  gt(this: Tensor, o: Operand) { return F.gt(this, o); },
  lt(this: Tensor, o: Operand) { return F.lt(this, o); },
  ge(this: Tensor, o: Operand) { return F.ge(this, o); },
  le(this: Tensor, o: Operand) { return F.le(this, o); },
  reshape(this: Tensor, ...shape: number[]) { return F.reshape(this, shapeArgs(shape)); },
  permute(this: Tensor, ...dims: number[]) { return F.permute(this, shapeArgs(dims)); },
  transpose(this: Tensor, d0?: number, d1?: number) { return F.transpose(this, d0, d1); },
  slice(this: Tensor, dim: number, start?: number, end?: number, step?: number) { return F.slice(this, dim, start, end, step); },
  expand(this: Tensor, ...shape: number[]) { return F.expand(this, shapeArgs(shape)); },
  unsqueeze(this: Tensor, dim: number) { return F.unsqueeze(this, dim); },
  squeeze(this: Tensor, dim?: number) { return F.squeeze(this, dim); },
  flatten(this: Tensor, start?: number, end?: number) { return F.flatten(this, start, end); },
  contiguous(this: Tensor) { return F.contiguous(this); },
  float(this: Tensor) { return F.cast(this, 'float32'); },
  int(this: Tensor) { return F.cast(this, 'int32'); },
  to(this: Tensor, dtype: DType) { return F.cast(this, dtype); },
  /** Same data, cut from the graph. */
  detach(this: Tensor) { return this.view(this.shape, this.strides, this.offset); },
  clone(this: Tensor) { return F.contiguous(this); },
  backward(this: Tensor, g?: Tensor | BackwardOptions) {
    backward(this, g instanceof Tensor ? { grad: g } : g);
  },
  requiresGrad_(this: Tensor, on = true) {
    if (on && this.dtype !== 'float32') throw new Error(`requiresGrad needs a float32 tensor, got ${this.dtype}`);
    this.requiresGrad = on;
    return this;
  },
};
for (const [name, fn] of Object.entries(methods)) P[name] = fn;
Object.defineProperty(Tensor.prototype, 'T', {
  get(this: Tensor) {
    return F.transpose(this, -2, -1);
  },
});
