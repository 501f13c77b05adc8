// The safetensors format (huggingface/safetensors): an 8-byte little-endian header length N, N bytes
// of JSON {name: {dtype, shape, data_offsets: [begin, end]}, "__metadata__": {string: string}}, then
// the raw little-endian tensor bytes. Offsets are relative to the end of the header and must tile the
// data section exactly. Writing follows the reference implementation: tensors ordered by dtype size
// (largest first) then name, so every tensor stays aligned, and the header padded with spaces to a
// multiple of 8 bytes. Pure TypeScript: file I/O is the caller's business (cli/ in Node).
import { Tensor, fromData, shapeStr, sizeOf, type DType } from './tensor.js';

/** A tensor on the CPU: what loading produces and what can be uploaded. */
export interface HostTensor {
  dtype: DType;
  shape: number[];
  data: Float32Array | Int32Array | Uint32Array;
  /** The dtype in the file (e.g. 'I64', 'F16') when it was converted on load. */
  sourceDtype?: string;
}

export interface Safetensors {
  tensors: Record<string, HostTensor>;
  metadata: Record<string, string>;
}

const BYTES: Record<string, number> = {
  BOOL: 1, U8: 1, I8: 1, F8_E5M2: 1, F8_E4M3: 1,
  I16: 2, U16: 2, F16: 2, BF16: 2,
  I32: 4, U32: 4, F32: 4,
  I64: 8, U64: 8, F64: 8,
};
const FLOAT_DTYPES = new Set(['F16', 'BF16', 'F32', 'F64']);
const INT_DTYPES = new Set(['U8', 'I8', 'I16', 'U16', 'I32', 'U32', 'I64', 'U64']);
const FILE_DTYPE: Record<DType, string> = { float32: 'F32', int32: 'I32', bool: 'BOOL' };
// The reference implementation refuses headers over 100 MB (a guard against corrupt lengths).
const MAX_HEADER = 100_000_000;

/** Serialises CPU tensors (names in any order) with optional string metadata. */
export function encodeSafetensors(named: Record<string, HostTensor>, metadata?: Record<string, string>): Uint8Array {
  const names = Object.keys(named);
  for (const name of names) {
    if (name === '__metadata__') throw new Error("safetensors: '__metadata__' is reserved and cannot name a tensor");
    const t = named[name]!;
    if (t.data.length !== sizeOf(t.shape)) {
      throw new Error(`safetensors: tensor '${name}' has ${t.data.length} values for shape ${shapeStr(t.shape)}`);
    }
  }
  const size = (n: string): number => BYTES[FILE_DTYPE[named[n]!.dtype]]!;
  names.sort((a, b) => size(b) - size(a) || (a < b ? -1 : a > b ? 1 : 0));
  const header: Record<string, unknown> = {};
  if (metadata && Object.keys(metadata).length) {
    for (const [k, v] of Object.entries(metadata)) {
      if (typeof v !== 'string') throw new Error(`safetensors: metadata '${k}' must be a string, got ${typeof v}`);
    }
    header.__metadata__ = metadata;
  }
  let offset = 0;
  for (const name of names) {
    const t = named[name]!;
    const bytes = t.data.length * size(name);
    header[name] = { dtype: FILE_DTYPE[t.dtype], shape: [...t.shape], data_offsets: [offset, offset + bytes] };
    offset += bytes;
  }
  const json = new TextEncoder().encode(JSON.stringify(header));
  const headerLen = Math.ceil(json.length / 8) * 8;
  const out = new Uint8Array(8 + headerLen + offset);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(headerLen), true);
  out.set(json, 8);
  out.fill(0x20, 8 + json.length, 8 + headerLen);
  let pos = 8 + headerLen;
  for (const name of names) {
    const t = named[name]!;
    if (t.dtype === 'bool') {
      for (let i = 0; i < t.data.length; i++) out[pos + i] = t.data[i] ? 1 : 0;
      pos += t.data.length;
    } else {
      // Typed arrays are little-endian on every host WebGPU runs on: copy the bytes as they are.
      const src = t.dtype === 'float32' ? Float32Array.from(t.data) : Int32Array.from(t.data);
      out.set(new Uint8Array(src.buffer), pos);
      pos += src.byteLength;
    }
  }
  return out;
}

/** Reads every tensor back from the GPU and serialises them (safetensors bytes). */
export async function saveSafetensors(named: Record<string, Tensor>, metadata?: Record<string, string>): Promise<Uint8Array> {
  const host: Record<string, HostTensor> = {};
  for (const [name, t] of Object.entries(named)) {
    if (t.isDisposed) throw new Error(`saveSafetensors: tensor '${name}' was disposed`);
    host[name] = { dtype: t.dtype, shape: [...t.shape], data: await t.data() };
  }
  return encodeSafetensors(host, metadata);
}

interface Entry {
  name: string;
  dtype: string;
  shape: number[];
  begin: number;
  end: number;
}

function parseHeader(bytes: Uint8Array): { entries: Entry[]; metadata: Record<string, string>; dataStart: number } {
  if (bytes.length < 8) throw new Error(`safetensors: ${bytes.length} bytes is too short for the 8-byte header length (truncated file?)`);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = Number(view.getBigUint64(0, true));
  if (n > MAX_HEADER) throw new Error(`safetensors: header length ${n} exceeds the ${MAX_HEADER}-byte limit (not a safetensors file?)`);
  if (8 + n > bytes.length) throw new Error(`safetensors: header of ${n} bytes runs past the end of the ${bytes.length}-byte file (truncated?)`);
  let header: unknown;
  try {
    const text = new TextDecoder('utf-8', { fatal: true }).decode(bytes.subarray(8, 8 + n));
    if (!text.startsWith('{')) throw new Error('the header does not start with {');
    header = JSON.parse(text);
  } catch (e) {
    throw new Error(`safetensors: invalid JSON header: ${(e as Error).message}`);
  }
  if (header === null || typeof header !== 'object' || Array.isArray(header)) throw new Error('safetensors: the header is not a JSON object');
  const metadata: Record<string, string> = {};
  const entries: Entry[] = [];
  for (const [name, info] of Object.entries(header as Record<string, unknown>)) {
    if (name === '__metadata__') {
      if (info === null || typeof info !== 'object') throw new Error('safetensors: __metadata__ is not an object');
      for (const [k, v] of Object.entries(info as Record<string, unknown>)) {
        if (typeof v !== 'string') throw new Error(`safetensors: __metadata__.${k} is not a string`);
        metadata[k] = v;
      }
      continue;
    }
    const e = info as { dtype?: unknown; shape?: unknown; data_offsets?: unknown };
    const bad = (why: string): Error => new Error(`safetensors: tensor '${name}': ${why}`);
    if (typeof e?.dtype !== 'string' || !(e.dtype in BYTES)) throw bad(`unknown dtype ${JSON.stringify(e?.dtype)}`);
    if (!Array.isArray(e.shape) || !e.shape.every((d) => Number.isInteger(d) && d >= 0)) throw bad(`bad shape ${JSON.stringify(e.shape)}`);
    const off = e.data_offsets;
    if (!Array.isArray(off) || off.length !== 2 || !off.every((d) => Number.isInteger(d) && d >= 0) || off[1] < off[0]) {
      throw bad(`bad data_offsets ${JSON.stringify(off)}`);
    }
    const shape = e.shape as number[];
    const want = sizeOf(shape) * BYTES[e.dtype]!;
    if (off[1] - off[0] !== want) throw bad(`data_offsets ${JSON.stringify(off)} span ${off[1] - off[0]} bytes, but ${e.dtype}${shapeStr(shape)} needs ${want}`);
    entries.push({ name, dtype: e.dtype, shape, begin: off[0], end: off[1] });
  }
  // The data section must be tiled exactly: no gaps, no overlaps, nothing past the end.
  const dataStart = 8 + n;
  const dataLen = bytes.length - dataStart;
  const sorted = [...entries].sort((a, b) => a.begin - b.begin || a.end - b.end);
  let pos = 0;
  for (const e of sorted) {
    if (e.end > dataLen) {
      throw new Error(`safetensors: tensor '${e.name}' (bytes ${e.begin}..${e.end}) runs past the end of the ${dataLen}-byte data section (truncated file?)`);
    }
    if (e.begin !== pos) throw new Error(`safetensors: tensor '${e.name}' starts at byte ${e.begin}, expected ${pos} (overlapping or gapped offsets)`);
    pos = e.end;
  }
  if (pos !== dataLen) throw new Error(`safetensors: ${dataLen - pos} bytes after the last tensor are not described by the header`);
  return { entries, metadata, dataStart };
}

function halfToFloat(h: number): number {
  const sign = h & 0x8000 ? -1 : 1;
  const exp = (h >> 10) & 0x1f;
  const frac = h & 0x3ff;
  if (exp === 0) return sign * frac * 2 ** -24;
  if (exp === 31) return frac ? NaN : sign * Infinity;
  return sign * (1 + frac / 1024) * 2 ** (exp - 15);
}

// Scratch for BF16 -> f32 (a BF16 value is the top half of an f32).
const bf16Bits = new Uint32Array(1);
const bf16Float = new Float32Array(bf16Bits.buffer);

/**
 * Little-endian tensor bytes (safetensors dtype codes: F64/F32/F16/BF16, I64..U8, BOOL; what
 * torch's storages and numpy's arrays hold too) at `at` as a host tensor: floats become float32,
 * integers int32 (an error names the tensor if a value does not fit), BOOL bool. `e.name` and
 * `format` only appear in errors.
 */
export function hostTensorFromBytes(e: { name: string; dtype: string; shape: readonly number[] }, bytes: Uint8Array, at: number, format = 'safetensors'): HostTensor {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const n = sizeOf(e.shape);
  const shape = [...e.shape];
  if (!(e.dtype in BYTES)) throw new Error(`${format}: tensor '${e.name}' has dtype ${e.dtype}, which the engine cannot represent`);
  if (at < 0 || at + n * BYTES[e.dtype]! > bytes.length) throw new Error(`${format}: tensor '${e.name}' (${e.dtype}${shapeStr(shape)}) runs past the end of its data`);
  // F32 and I32 are copied in one go into an aligned buffer (the data is little-endian, as are the
  // hosts WebGPU runs on). Not bytes.slice(): on a Node Buffer that is a view, not a copy.
  if (e.dtype === 'F32' || e.dtype === 'I32') {
    const copy = new Uint8Array(4 * n);
    copy.set(bytes.subarray(at, at + 4 * n));
    return e.dtype === 'F32' ? { dtype: 'float32', shape, data: new Float32Array(copy.buffer) } : { dtype: 'int32', shape, data: new Int32Array(copy.buffer) };
  }
  if (e.dtype === 'BOOL') {
    const data = new Uint32Array(n);
    for (let i = 0; i < n; i++) data[i] = view.getUint8(at + i) ? 1 : 0;
    return { dtype: 'bool', shape, data };
  }
  if (FLOAT_DTYPES.has(e.dtype)) {
    const data = new Float32Array(n);
    for (let i = 0; i < n; i++) {
      switch (e.dtype) {
        case 'F64': data[i] = view.getFloat64(at + 8 * i, true); break;
        case 'F16': data[i] = halfToFloat(view.getUint16(at + 2 * i, true)); break;
        default: // BF16
          bf16Bits[0] = view.getUint16(at + 2 * i, true) << 16;
          data[i] = bf16Float[0]!;
      }
    }
    return { dtype: 'float32', shape, data, sourceDtype: e.dtype };
  }
  if (INT_DTYPES.has(e.dtype)) {
    const data = new Int32Array(n);
    for (let i = 0; i < n; i++) {
      let v: number | bigint;
      switch (e.dtype) {
        case 'U8': v = view.getUint8(at + i); break;
        case 'I8': v = view.getInt8(at + i); break;
        case 'I16': v = view.getInt16(at + 2 * i, true); break;
        case 'U16': v = view.getUint16(at + 2 * i, true); break;
        case 'U32': v = view.getUint32(at + 4 * i, true); break;
        case 'I64': v = view.getBigInt64(at + 8 * i, true); break;
        default: v = view.getBigUint64(at + 8 * i, true); // U64
      }
      if (v > 2147483647 || v < -2147483648) {
        throw new Error(`${format}: tensor '${e.name}' (${e.dtype}${shapeStr(shape)}) element ${i} = ${v} does not fit in int32`);
      }
      data[i] = Number(v);
    }
    return { dtype: 'int32', shape, data, sourceDtype: e.dtype };
  }
  throw new Error(`${format}: tensor '${e.name}' has dtype ${e.dtype}, which the engine cannot represent`);
}

/**
 * Parses safetensors bytes into CPU tensors: floats become float32, integers int32 (an error names
 * the tensor if a value does not fit), BOOL bool. Throws clear errors for truncated/corrupt files.
 */
export function loadSafetensors(bytes: Uint8Array): Safetensors {
  const { entries, metadata, dataStart } = parseHeader(bytes);
  const tensors: Record<string, HostTensor> = {};
  for (const e of entries) tensors[e.name] = hostTensorFromBytes(e, bytes, dataStart + e.begin);
  return { tensors, metadata };
}

/** Uploads CPU tensors (or a loaded file) to the GPU; the caller owns the results. */
export function toTensors(loaded: Safetensors | Record<string, HostTensor>): Record<string, Tensor> {
  const host = isFile(loaded) ? loaded.tensors : (loaded as Record<string, HostTensor>);
  const out: Record<string, Tensor> = {};
  for (const [name, t] of Object.entries(host)) out[name] = fromData(t.data, t.shape, t.dtype);
  return out;
}

function isHost(v: unknown): boolean {
  return v !== null && typeof v === 'object' && 'shape' in v && 'data' in v && 'dtype' in v;
}

/** A loadSafetensors() result rather than a name -> HostTensor map. */
function isFile(v: Safetensors | Record<string, HostTensor>): v is Safetensors {
  const f = v as Partial<Safetensors>;
  return typeof f.tensors === 'object' && !isHost(f.tensors) && typeof f.metadata === 'object' && !isHost(f.metadata);
}
