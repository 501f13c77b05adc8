// One declaration per kernel uniform block, read by both sides of the contract: the WGSL struct
// (fields by name, so a renamed or removed field fails to compile instead of reading another
// field's bits) and the TypeScript packer (offsets computed once per declaration, so the op cannot
// write the words in another order than the kernel reads them).
//
// Layout (WGSL uniform address space): scalars (u32, i32, f32) take 4 bytes each in declaration
// order. Arrays need a 16-byte element stride in uniform space, so an array of n scalars is declared
// as array<vec4<T>, ceil(n/4)>, starts on a 16-byte boundary and is read through at(), which emits
// the vec4 index and lane. The packed block is padded to a multiple of 16 bytes.

export type UniformScalar = 'u32' | 'i32' | 'f32';
/** A scalar field, or an array of `length` scalars. */
export type UniformField = UniformScalar | readonly [UniformScalar, number];
export type UniformSpec = Readonly<Record<string, UniformField>>;
type FieldValue<F> = F extends readonly [UniformScalar, number] ? ArrayLike<number> : number;
/** The values pack() takes: a number per scalar field, `length` numbers per array field. */
export type UniformValues<S extends UniformSpec> = { readonly [K in keyof S]: FieldValue<S[K]> };
/** The values a block's pack() takes. */
export type BlockValues<B> = B extends UniformBlock<infer S> ? UniformValues<S> : never;

const KIND = { u32: 0, i32: 1, f32: 2 } as const;
const LANES = ['x', 'y', 'z', 'w'];
// f32 -> bits without a view per call.
const F32 = new Float32Array(1);
const F32_AS_U32 = new Uint32Array(F32.buffer);

export class UniformBlock<S extends UniformSpec = UniformSpec> {
  /** The struct declaration and `@group(0) @binding(0) var<uniform> u`. */
  readonly wgsl: string;
  /** Packed size in 32-bit words (a multiple of 4). */
  readonly words: number;
  /** Field names in declaration order. */
  readonly names: readonly string[];
  private readonly kinds: number[] = [];
  private readonly offsets: number[] = [];
  /** Element count of each field; -1 for a scalar. */
  private readonly lengths: number[] = [];
  private readonly fields: Map<string, number> = new Map();
  /** WGSL expression of each scalar field (`u.name`), for generators that splice many of them. */
  readonly ref = {} as { readonly [K in keyof S]: string };

  constructor(
    readonly name: string,
    spec: S,
  ) {
    const members: string[] = [];
    const names: string[] = [];
    this.names = names;
    let word = 0;
    for (const [field, decl] of Object.entries(spec)) {
      if (!/^[A-Za-z][A-Za-z0-9]*$/.test(field)) throw new Error(`uniforms ${name}: field name '${field}' is not a plain WGSL identifier`);
      const type = typeof decl === 'string' ? decl : decl[0];
      if (!(type in KIND)) throw new Error(`uniforms ${name}: field '${field}' has unknown type '${type}'`);
      this.fields.set(field, names.length);
      names.push(field);
      this.kinds.push(KIND[type]);
      if (typeof decl === 'string') {
        (this.ref as Record<string, string>)[field] = `u.${field}`;
        this.offsets.push(word++);
        this.lengths.push(-1);
        members.push(`${field}: ${type}`);
      } else {
        const n = decl[1];
        if (!Number.isInteger(n) || n < 0) throw new Error(`uniforms ${name}: field '${field}' has length ${n}`);
        // A zero-length array has no WGSL member (WGSL has no empty arrays) and takes no space.
        if (n > 0) word = Math.ceil(word / 4) * 4;
        this.offsets.push(word);
        this.lengths.push(n);
        word += 4 * Math.ceil(n / 4);
        if (n > 0) members.push(`${field}: array<vec4<${type}>, ${Math.ceil(n / 4)}>`);
      }
    }
    if (members.length === 0) throw new Error(`uniforms ${name}: a uniform block needs at least one non-empty field`);
    this.words = Math.max(4, Math.ceil(word / 4) * 4);
    const struct = `U_${name.replace(/[^A-Za-z0-9]/g, '_')}`;
    this.wgsl = `struct ${struct} {\n  ${members.join(',\n  ')},\n}\n@group(0) @binding(0) var<uniform> u: ${struct};`;
  }

  /** WGSL expression for element `index` (a number, or a WGSL u32 expression) of array field `field`. */
  at(field: keyof S & string, index: number | string): string {
    const f = this.fields.get(field);
    const n = f === undefined ? -1 : this.lengths[f]!;
    if (n < 0) throw new Error(`uniforms ${this.name}: '${field}' is not an array field`);
    if (typeof index === 'string') return `u.${field}[(${index}) >> 2u][(${index}) & 3u]`;
    if (!Number.isInteger(index) || index < 0 || index >= n) throw new Error(`uniforms ${this.name}: index ${index} is outside '${field}' (length ${n})`);
    return `u.${field}[${index >> 2}].${LANES[index & 3]}`;
  }

  /** The block's bytes; throws naming the block and field on a missing, extra or malformed value. */
  pack(values: UniformValues<S>): Uint32Array {
    const out = new Uint32Array(this.words);
    const v = values as unknown as Record<string, unknown>;
    const n = this.names.length;
    for (let f = 0; f < n; f++) {
      const name = this.names[f]!;
      const value = v[name];
      const len = this.lengths[f]!;
      if (value === undefined) throw new Error(`uniforms ${this.name}: field '${name}' is missing`);
      if (len < 0) {
        this.write(out, this.offsets[f]!, this.kinds[f]!, value, name);
        continue;
      }
      const arr = value as ArrayLike<unknown>;
      if (typeof value !== 'object' || value === null || arr.length !== len) {
        const got = typeof value === 'object' && value !== null && typeof arr.length === 'number' ? `${arr.length} values` : String(value);
        throw new Error(`uniforms ${this.name}: field '${name}' needs ${len} values, got ${got}`);
      }
      for (let k = 0; k < len; k++) this.write(out, this.offsets[f]! + k, this.kinds[f]!, arr[k], name, k);
    }
    for (const key in v) {
      if (!this.fields.has(key)) throw new Error(`uniforms ${this.name}: '${key}' is not a field (fields: ${this.names.join(', ')})`);
    }
    return out;
  }

  /** Writes one scalar (element `index` of an array field, or -1). */
  private write(out: Uint32Array, word: number, kind: number, value: unknown, name: string, index = -1): void {
    if (typeof value !== 'number') this.fail(name, index, `must be a number, got ${String(value)}`);
    if (kind === KIND.f32) {
      F32[0] = value as number;
      out[word] = F32_AS_U32[0]!;
      return;
    }
    const x = value as number;
    const ok = Number.isInteger(x) && (kind === KIND.u32 ? x >= 0 && x <= 0xffffffff : x >= -0x80000000 && x <= 0x7fffffff);
    if (!ok) this.fail(name, index, `must be ${kind === KIND.u32 ? 'a u32' : 'an i32'}, got ${x}`);
    out[word] = x; // a negative i32 wraps to its two's-complement bits
  }

  private fail(name: string, index: number, problem: string): never {
    throw new Error(`uniforms ${this.name}: field '${index < 0 ? name : `${name}[${index}]`}' ${problem}`);
  }
}

/** Declares a uniform block; `name` names it in errors and in the WGSL struct. */
export function uniformBlock<const S extends UniformSpec>(name: string, spec: S): UniformBlock<S> {
  return new UniformBlock(name, spec);
}

/**
 * A family of blocks that differ by a generation-time key (rank, operand count, level count):
 * each variant is declared once and shared by the kernel generator and the op that packs it.
 */
export function blockVariants<K extends string | number, S extends UniformSpec>(make: (key: K) => UniformBlock<S>): (key: K) => UniformBlock<S> {
  const cache = new Map<K, UniformBlock<S>>();
  return (key) => {
    let b = cache.get(key);
    if (!b) cache.set(key, (b = make(key)));
    return b;
  };
}
