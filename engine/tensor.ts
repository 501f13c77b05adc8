// The Tensor: a strided view (shape, strides, offset) onto a reference-counted GPU storage.
// Views (reshape of contiguous data, permute, slice, expand) share storage and cost nothing;
// kernels that need dense input call contiguous(). Memory is freed by dispose(), by the scope
// (tidy) a tensor was made in, or, as a last resort, when JS garbage-collects the Tensor object.
import { getBackend, type WebGPUBackend } from './backend.js';
import { trackTensor, untrackTensor } from './scope.js';
import { allocationElements, isPersistent } from './alloc-hints.js';
import type { GradNode } from './autograd.js';

export type DType = 'float32' | 'int32' | 'bool';
export type TypedArrayFor<D extends DType> = D extends 'float32' ? Float32Array : D extends 'int32' ? Int32Array : Uint32Array;

/** WGSL storage element type of each dtype (bool is stored as u32 0/1). */
export const WGSL_TYPE: Record<DType, 'f32' | 'i32' | 'u32'> = { float32: 'f32', int32: 'i32', bool: 'u32' };

export class Storage {
  refs = 1;
  constructor(
    readonly buffer: GPUBuffer,
    readonly length: number,
    /** The backend that allocated the buffer (after shutdown() its buffers are gone with the device). */
    private readonly owner: WebGPUBackend = getBackend(),
  ) {}

  retain(): void {
    this.refs++;
  }

  release(): void {
    if (--this.refs === 0 && !this.owner.isShutDown) this.owner.free(this.buffer);
    if (this.refs < 0) throw new Error('internal: storage released twice');
  }
}

// Safety net for tensors the user forgot: when a Tensor object is collected, its storage
// reference is released. dispose() unregisters, so nothing is released twice.
const collected = new FinalizationRegistry<Storage>((storage) => storage.release());

let nextId = 1;

export function contiguousStrides(shape: readonly number[]): number[] {
  const strides = new Array<number>(shape.length);
  let s = 1;
  for (let i = shape.length - 1; i >= 0; i--) {
    strides[i] = s;
    s *= shape[i]!;
  }
  return strides;
}

export function sizeOf(shape: readonly number[]): number {
  let n = 1;
  for (const d of shape) n *= d;
  return n;
}

export function shapeStr(shape: readonly number[]): string {
  return `[${shape.join(',')}]`;
}

/** Values being read back (Tensor.dataLater). */
export interface PendingData<T> {
  /** Whether the values are on the host already (taking them then does not wait). */
  readonly ready: boolean;
  /** The values; the same promise on every call. */
  result(): Promise<T>;
}

export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly strides: readonly number[];
  readonly offset: number;
  readonly dtype: DType;
  readonly size: number;
  /** Set on leaves by the user; derived tensors require grad when any input does (outside noGrad). */
  requiresGrad = false;
  /** Accumulated gradient of a leaf after backward(). */
  grad: Tensor | null = null;
  /** The op that made this tensor, when it is part of a graph being recorded. */
  node: GradNode | null = null;
  private _storage: Storage | null;

  constructor(storage: Storage, shape: readonly number[], dtype: DType, strides?: readonly number[], offset = 0) {
    for (const d of shape) {
      if (!Number.isInteger(d) || d < 0) throw new Error(`invalid shape ${shapeStr(shape)}: dimensions must be non-negative integers`);
    }
    this._storage = storage;
    this.shape = Object.freeze([...shape]);
    this.strides = Object.freeze(strides ? [...strides] : contiguousStrides(shape));
    this.offset = offset;
    this.dtype = dtype;
    this.size = sizeOf(shape);
    collected.register(this, storage, this);
    trackTensor(this);
  }

  get ndim(): number {
    return this.shape.length;
  }

  get isDisposed(): boolean {
    return this._storage === null;
  }

  /** The storage; throws a clear error for a disposed tensor. */
  get storage(): Storage {
    if (!this._storage) throw new Error(`tensor #${this.id} ${this.dtype}${shapeStr(this.shape)} was disposed and cannot be used`);
    return this._storage;
  }

  get isContiguous(): boolean {
    const c = contiguousStrides(this.shape);
    return this.shape.every((d, i) => d === 1 || this.strides[i] === c[i]);
  }

  /** A new Tensor object over the same storage (the storage gains a reference). */
  view(shape: readonly number[], strides: readonly number[], offset: number): Tensor {
    const s = this.storage;
    s.retain();
    return new Tensor(s, shape, this.dtype, strides, offset);
  }

  /** Frees this tensor's hold on its GPU memory (the memory goes when no view uses it). Idempotent. */
  dispose(): void {
    if (!this._storage) return;
    collected.unregister(this);
    untrackTensor(this);
    const s = this._storage;
    this._storage = null;
    s.release();
    if (this.grad) {
      this.grad.dispose();
      this.grad = null;
    }
  }

  /** Reads the values (row-major) back to the CPU. */
  async data(): Promise<TypedArrayFor<this['dtype']>> {
    return this.dataLater().result();
  }

  /**
   * Starts reading the values back now and returns at once; result() gives them. The tensor may be
   * disposed meanwhile. Taking the result after the GPU has finished the work recorded before this
   * call (e.g. after a later readback) does not make the host wait (see Counters.blockingSyncs).
   */
  dataLater(): PendingData<TypedArrayFor<this['dtype']>> {
    const dense = this.isContiguous && this.offset === 0 ? this : contiguousCopy(this);
    const pending = getBackend().readLater(dense.storage.buffer, dense.offset * 4, this.size * 4);
    if (dense !== this) dense.dispose();
    const dtype = this.dtype;
    let values: Promise<TypedArrayFor<DType>> | undefined;
    return {
      get ready() {
        return pending.ready;
      },
      result: () =>
        (values ??= pending.result().then((bytes) => {
          const arr = dtype === 'float32' ? new Float32Array(bytes) : dtype === 'int32' ? new Int32Array(bytes) : new Uint32Array(bytes);
          return arr as TypedArrayFor<DType>;
        })) as Promise<TypedArrayFor<this['dtype']>>,
    };
  }

  /** The values of a float32 tensor (throws naming the dtype otherwise). */
  async floatData(): Promise<Float32Array> {
    if (this.dtype !== 'float32') throw new Error(`floatData(): tensor #${this.id} is ${this.dtype}${shapeStr(this.shape)}, not float32`);
    return (await this.data()) as Float32Array;
  }

  /** Nested JS arrays of the values (numbers; booleans for bool tensors). */
  async toArray(): Promise<unknown> {
    const flat = Array.from(await this.data(), (v) => (this.dtype === 'bool' ? v !== 0 : v));
    if (this.ndim === 0) return flat[0];
    const build = (dim: number, start: number): unknown[] => {
      const n = this.shape[dim]!;
      const step = sizeOf(this.shape.slice(dim + 1));
      return Array.from({ length: n }, (_, i) => (dim === this.ndim - 1 ? flat[start + i] : build(dim + 1, start + i * step)));
    };
    return build(0, 0);
  }

  /** The first element as a JS number. */
  async item(): Promise<number> {
    if (this.size !== 1) throw new Error(`item() needs a tensor with one element, got shape ${shapeStr(this.shape)}`);
    return (await this.data())[0]!;
  }

  toString(): string {
    return `Tensor(${this.dtype}${shapeStr(this.shape)}${this.requiresGrad ? ', requiresGrad' : ''})`;
  }
}

// Filled in by ops (avoids an import cycle): copies a strided view into fresh dense storage.
let contiguousCopy: (t: Tensor) => Tensor = () => {
  throw new Error('internal: contiguous copy not registered');
};
export function registerContiguousCopy(fn: (t: Tensor) => Tensor): void {
  contiguousCopy = fn;
}

/** Allocates an uninitialised dense tensor. */
export function empty(shape: readonly number[], dtype: DType = 'float32'): Tensor {
  const n = sizeOf(shape);
  const buffer = getBackend().malloc(allocationElements(shape, n) * 4, isPersistent());
  return new Tensor(new Storage(buffer, n), shape, dtype);
}

/** Makes a dense tensor from CPU values. */
export function fromData(values: ArrayLike<number>, shape: readonly number[], dtype: DType = 'float32'): Tensor {
  const n = sizeOf(shape);
  if (values.length !== n) throw new Error(`tensor(): ${values.length} values do not fill shape ${shapeStr(shape)} (${n} elements)`);
  const t = empty(shape, dtype);
  const arr = dtype === 'float32' ? Float32Array.from(values) : dtype === 'int32' ? Int32Array.from(values) : Uint32Array.from(values, (v) => (v ? 1 : 0));
  if (n > 0) getBackend().write(t.storage.buffer, arr);
  return t;
}
