// PyTorch and NumPy checkpoint files read without Python: torch.save's zip format (data.pkl +
// data/<key> storages), torch.save's legacy format (pickles followed by raw storages), and plain
// pickles of numpy arrays (Detectron2's model-zoo .pkl). The pickle reader (pickle.ts) only lets
// through the reconstructors listed here (OrderedDict, torch's tensor/parameter rebuilders and
// storage types, numpy's array/dtype/scalar reconstructors, _codecs.encode for protocol-2 bytes).
import { unpickle, type PickleGlobal, type PickleValue } from './pickle.js';
import { hostTensorFromBytes, type HostTensor } from './safetensors.js';
import { sizeOf } from './tensor.js';
import { isZip, readZip } from './zip.js';

// torch storage classes and numpy dtype codes -> safetensors dtype codes (hostTensorFromBytes).
const TORCH_STORAGES: Record<string, string> = {
  FloatStorage: 'F32', DoubleStorage: 'F64', HalfStorage: 'F16', BFloat16Storage: 'BF16',
  LongStorage: 'I64', IntStorage: 'I32', ShortStorage: 'I16', CharStorage: 'I8', ByteStorage: 'U8', BoolStorage: 'BOOL',
};
const NUMPY_DTYPES: Record<string, string> = {
  f8: 'F64', f4: 'F32', f2: 'F16', i8: 'I64', i4: 'I32', i2: 'I16', i1: 'I8', u8: 'U64', u4: 'U32', u2: 'U16', u1: 'U8', b1: 'BOOL',
};
const ITEM_BYTES: Record<string, number> = { F64: 8, F32: 4, F16: 2, BF16: 2, I64: 8, U64: 8, I32: 4, U32: 4, I16: 2, U16: 2, I8: 1, U8: 1, BOOL: 1 };

/** A torch storage named by a persistent id; its bytes are attached when known. */
interface Storage { dtype: string; key: string; numel: number; bytes?: Uint8Array; decoded?: HostTensor }
/** A tensor as torch pickles it: a strided view of a storage, made concrete after loading. */
class LazyTensor {
  constructor(readonly storage: Storage, readonly offset: number, readonly size: number[], readonly stride: number[]) {}
}
/** numpy's ndarray between _reconstruct and BUILD. */
class NdArray {
  shape: number[] = [];
  dtype = '';
  fortran = false;
  data: Uint8Array | null = null;
  setState(s: PickleValue): void {
    const [, shape, dtype, fortran, data] = s as [number, number[], NpDtype, boolean, Uint8Array | string];
    if (!(dtype instanceof NpDtype)) throw new Error('numpy array state without a dtype');
    if (!(data instanceof Uint8Array)) throw new Error(`numpy array of dtype ${dtype.code} holds Python objects, not numbers`);
    this.shape = [...shape].map(Number);
    this.dtype = dtype.dtype();
    this.fortran = !!fortran;
    this.data = data;
  }
}
class NpDtype {
  littleEndian = true;
  constructor(readonly code: string) {}
  setState(s: PickleValue): void {
    this.littleEndian = (s as unknown[])[1] !== '>';
  }
  dtype(): string {
    const t = NUMPY_DTYPES[this.code.replace(/^[<>|=]/, '')];
    if (!t) throw new Error(`numpy dtype '${this.code}' is not a number type the engine reads`);
    if (!this.littleEndian && ITEM_BYTES[t]! > 1) throw new Error(`numpy dtype '${this.code}' is big-endian`);
    return t;
  }
}

const fn = (name: string, call: (a: PickleValue[]) => PickleValue): PickleGlobal => ({ name, call });
const NUMPY_MODULES = new Set(['numpy.core.multiarray', 'numpy._core.multiarray']);

/** The allow-list: every global a torch or numpy checkpoint needs, and nothing else. */
function findGlobal(module: string, name: string): PickleGlobal | undefined {
  const full = `${module}.${name}`;
  if (full === 'collections.OrderedDict') return fn(full, () => new Map());
  if (module === 'torch' && name in TORCH_STORAGES) return { ...fn(full, () => { throw new Error(`${full} called`); }), storageDtype: TORCH_STORAGES[name] } as PickleGlobal;
  if (full === 'torch._utils._rebuild_tensor_v2' || full === 'torch._utils._rebuild_tensor') {
    return fn(full, (a) => new LazyTensor(a[0] as Storage, Number(a[1]), (a[2] as number[]).map(Number), (a[3] as number[]).map(Number)));
  }
  if (full === 'torch._utils._rebuild_parameter') return fn(full, (a) => a[0]);
  if (NUMPY_MODULES.has(module) && name === '_reconstruct') return fn(full, () => new NdArray());
  if (full === 'numpy.ndarray') return fn(full, () => new NdArray());
  if (full === 'numpy.dtype') return fn(full, (a) => new NpDtype(String(a[0])));
  if (NUMPY_MODULES.has(module) && name === 'scalar') {
    return fn(full, (a) => {
      const t = (a[0] as NpDtype).dtype();
      return hostTensorFromBytes({ name: 'scalar', dtype: t, shape: [] }, a[1] as Uint8Array, 0, 'numpy').data[0];
    });
  }
  // Python 3 pickles bytes under protocol 2 as _codecs.encode(latin-1 text, 'latin1').
  if (full === '_codecs.encode') return fn(full, (a) => Uint8Array.from(String(a[0]), (c) => c.charCodeAt(0) & 0xff));
  return undefined;
}

function storageFromPid(pid: PickleValue, source: string): Storage {
  const p = pid as unknown[];
  if (!Array.isArray(p) || p[0] !== 'storage') throw new Error(`${source}: unknown persistent id ${JSON.stringify(p?.[0])}`);
  const dtype = (p[1] as { storageDtype?: string })?.storageDtype;
  if (!dtype) throw new Error(`${source}: storage of unknown type ${(p[1] as PickleGlobal)?.name ?? String(p[1])}`);
  return { dtype, key: String(p[2]), numel: Number(p[4]) };
}

/** A LazyTensor or NdArray as a contiguous host tensor (strides and Fortran order gathered). */
function materialise(v: LazyTensor | NdArray, name: string, source: string): HostTensor {
  let flat: HostTensor, offset: number, size: number[], stride: number[];
  if (v instanceof NdArray) {
    if (!v.data) throw new Error(`${source}: numpy array '${name}' has no data`);
    size = v.shape;
    flat = hostTensorFromBytes({ name, dtype: v.dtype, shape: [sizeOf(size)] }, v.data, 0, source);
    offset = 0;
    stride = size.map((_, i) => (v.fortran ? sizeOf(size.slice(0, i)) : sizeOf(size.slice(i + 1))));
  } else {
    const s = v.storage;
    if (!s.bytes) throw new Error(`${source}: tensor '${name}': storage ${s.key} is missing from the file`);
    s.decoded ??= hostTensorFromBytes({ name, dtype: s.dtype, shape: [s.bytes.length / ITEM_BYTES[s.dtype]!] }, s.bytes, 0, source);
    ({ offset, size, stride } = v);
    flat = s.decoded;
  }
  const n = sizeOf(size);
  const contiguous = size.every((d, i) => d === 1 || stride[i] === sizeOf(size.slice(i + 1)));
  let data;
  if (contiguous) {
    if (offset + n > flat.data.length) throw new Error(`${source}: tensor '${name}' reads past the end of its storage`);
    data = flat.data.slice(offset, offset + n);
  } else {
    data = new (flat.data.constructor as Float32ArrayConstructor)(n) as HostTensor['data'];
    const idx = new Array<number>(size.length).fill(0);
    for (let i = 0; i < n; i++) {
      let at = offset;
      for (let d = 0; d < size.length; d++) at += idx[d]! * stride[d]!;
      if (at >= flat.data.length) throw new Error(`${source}: tensor '${name}' reads past the end of its storage`);
      data[i] = flat.data[at]!;
      for (let d = size.length - 1; d >= 0 && ++idx[d]! === size[d]; d--) idx[d] = 0;
    }
  }
  return { dtype: flat.dtype, shape: [...size], data, ...(flat.sourceDtype ? { sourceDtype: flat.sourceDtype } : {}) };
}

/** Replaces every lazy tensor / numpy array in a loaded structure by a HostTensor. */
function resolve(v: PickleValue, name: string, source: string): PickleValue {
  if (v instanceof LazyTensor || v instanceof NdArray) return materialise(v, name, source);
  if (v instanceof Map) {
    const out = new Map<PickleValue, PickleValue>();
    for (const [k, x] of v) out.set(k, resolve(x, String(k), source));
    return out;
  }
  if (Array.isArray(v)) return v.map((x, i) => resolve(x, `${name}[${i}]`, source));
  return v;
}

const LEGACY_MAGIC = 0x1950a86a20f9469cfc6cn;

/** The object in a torch.save file (zip or legacy) or a plain pickle (numpy arrays), with tensors
 *  and arrays as HostTensors and dicts as Maps. */
export function loadPickledCheckpoint(bytes: Uint8Array, source = 'checkpoint'): PickleValue {
  if (isZip(bytes)) {
    const zip = readZip(bytes, source);
    const pkl = [...zip.keys()].find((k) => k.endsWith('data.pkl') && !k.slice(0, -8).replace(/\/$/, '').includes('/'));
    if (!pkl) throw new Error(`${source}: a ZIP archive without data.pkl is not a torch.save file`);
    const prefix = pkl.slice(0, -'data.pkl'.length);
    const order = zip.get(prefix + 'byteorder');
    if (order && new TextDecoder().decode(order.data).trim() !== 'little') throw new Error(`${source}: big-endian torch file`);
    const { value } = unpickle(zip.get(pkl)!.data, {
      findGlobal,
      source: `${source} (${pkl})`,
      persistentLoad: (pid) => {
        const s = storageFromPid(pid, source);
        s.bytes = zip.get(`${prefix}data/${s.key}`)?.data;
        return s;
      },
    });
    return resolve(value, '', source);
  }
  const opts = { findGlobal, source };
  const first = unpickle(bytes, opts);
  if (first.value !== LEGACY_MAGIC && first.value !== Number(LEGACY_MAGIC)) return resolve(first.value, '', source);
  // Legacy torch.save: magic, protocol version, sys info, the object, the storage keys, then each
  // storage as an int64 element count and its bytes, in the order of the keys.
  const version = unpickle(bytes, { ...opts, offset: first.end });
  const info = unpickle(bytes, { ...opts, offset: version.end });
  const storages = new Map<string, Storage>();
  const obj = unpickle(bytes, {
    ...opts,
    offset: info.end,
    persistentLoad: (pid) => {
      const s = storageFromPid(pid, source);
      if ((pid as unknown[])[5]) throw new Error(`${source}: legacy storage views are not supported`);
      if (!storages.has(s.key)) storages.set(s.key, s);
      return storages.get(s.key)!;
    },
  });
  const keys = unpickle(bytes, { ...opts, offset: obj.end });
  let pos = keys.end;
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  for (const key of keys.value as string[]) {
    const s = storages.get(String(key));
    if (!s || pos + 8 > bytes.length) throw new Error(`${source}: legacy storage ${key} is missing or truncated`);
    const len = Number(view.getBigInt64(pos, true)) * ITEM_BYTES[s.dtype]!;
    if (pos + 8 + len > bytes.length) throw new Error(`${source}: legacy storage ${key} is truncated`);
    s.bytes = bytes.subarray(pos + 8, pos + 8 + len);
    pos += 8 + len;
  }
  return resolve(obj.value, '', source);
}

function isHostTensor(v: unknown): v is HostTensor {
  return typeof v === 'object' && v !== null && 'shape' in v && 'data' in v && 'dtype' in v;
}

/**
 * The state dict in a loaded checkpoint: the top-level name -> tensor dict, or the one under
 * 'model' / 'state_dict' (Detectron2's and training scripts' wrappers). Non-tensor entries of that
 * dict are skipped; `extra` gets the wrapper's string entries (e.g. Detectron2's __author__).
 */
export function findStateDict(v: PickleValue, source = 'checkpoint'): { tensors: Record<string, HostTensor>; extra: Record<string, string> } {
  const extra: Record<string, string> = {};
  if (!(v instanceof Map)) throw new Error(`${source}: holds a ${Array.isArray(v) ? 'list' : typeof v}, not a dict of tensors`);
  const tensorsOf = (m: Map<PickleValue, PickleValue>): Record<string, HostTensor> => {
    const out: Record<string, HostTensor> = {};
    for (const [k, t] of m) if (isHostTensor(t)) out[String(k)] = t;
    return out;
  };
  for (const [k, x] of v) if (typeof x === 'string') extra[String(k)] = x;
  for (const key of ['model', 'state_dict']) {
    const inner = v.get(key);
    if (inner instanceof Map && Object.keys(tensorsOf(inner)).length) return { tensors: tensorsOf(inner), extra };
  }
  const tensors = tensorsOf(v);
  if (!Object.keys(tensors).length) throw new Error(`${source}: no tensors found (keys: ${[...v.keys()].slice(0, 8).map(String).join(', ')})`);
  return { tensors, extra };
}
