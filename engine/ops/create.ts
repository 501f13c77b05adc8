// Creating tensors from CPU values: literal data, ranges and seeded random numbers.
import { fromData, shapeStr, type DType, type Tensor } from '../tensor.js';
import { defaultRng, type Rng } from '../random.js';

type Nested = number | boolean | Nested[];

function flattenNested(v: Nested, shape: number[], depth: number, out: number[]): void {
  if (Array.isArray(v)) {
    if (shape.length <= depth) shape.push(v.length);
    else if (shape[depth] !== v.length) throw new Error(`tensor(): ragged nested array (length ${v.length} where ${shape[depth]} expected at depth ${depth})`);
    for (const e of v) flattenNested(e, shape, depth + 1, out);
  } else {
    if (shape.length !== depth) throw new Error('tensor(): ragged nested array');
    out.push(typeof v === 'boolean' ? Number(v) : v);
  }
}

/**
 * torch.tensor: from nested arrays, or a flat array/typed array with an explicit shape.
 * The dtype defaults to int32 for Int32Array, bool for nested booleans, float32 otherwise.
 */
export function tensor(values: Nested | ArrayLike<number>, shapeOrDtype?: readonly number[] | DType, dtypeArg?: DType): Tensor {
  const explicitShape = Array.isArray(shapeOrDtype) ? (shapeOrDtype as readonly number[]) : undefined;
  let dtype: DType | undefined = typeof shapeOrDtype === 'string' ? shapeOrDtype : dtypeArg;
  if (explicitShape) {
    const flat = values as ArrayLike<number>;
    dtype ??= flat instanceof Int32Array ? 'int32' : 'float32';
    return fromData(flat, explicitShape, dtype);
  }
  if (ArrayBuffer.isView(values)) {
    const flat = values as unknown as ArrayLike<number>;
    return fromData(flat, [flat.length], dtype ?? (values instanceof Int32Array ? 'int32' : 'float32'));
  }
  const shape: number[] = [];
  const flat: number[] = [];
  flattenNested(values as Nested, shape, 0, flat);
  const isBool = JSON.stringify(values).match(/true|false/) !== null;
  return fromData(flat, shape, dtype ?? (isBool ? 'bool' : 'float32'));
}

export const scalar = (v: number, dtype: DType = 'float32'): Tensor => fromData([v], [], dtype);

/** torch.arange(start, end, step). */
export function arange(start: number, end?: number, step = 1, dtype: DType = 'float32'): Tensor {
  if (end === undefined) [start, end] = [0, start];
  if (step === 0) throw new Error('arange: step must be non-zero');
  const n = Math.max(0, Math.ceil((end - start) / step));
  return fromData(Array.from({ length: n }, (_, i) => start + i * step), [n], dtype);
}

/** Uniform in [low, high), from a seeded generator. */
export function rand(shape: readonly number[], opts: { low?: number; high?: number; rng?: Rng } = {}): Tensor {
  const { low = 0, high = 1, rng = defaultRng() } = opts;
  const n = shape.reduce((a, b) => a * b, 1);
  if (!Number.isFinite(n)) throw new Error(`rand: bad shape ${shapeStr(shape)}`);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = low + (high - low) * rng.uniform();
  return fromData(data, shape);
}

/** Normal(mean, std), from a seeded generator. */
export function randn(shape: readonly number[], opts: { mean?: number; std?: number; rng?: Rng } = {}): Tensor {
  const { mean = 0, std = 1, rng = defaultRng() } = opts;
  const n = shape.reduce((a, b) => a * b, 1);
  const data = new Float32Array(n);
  for (let i = 0; i < n; i++) data[i] = mean + std * rng.normal();
  return fromData(data, shape);
}
