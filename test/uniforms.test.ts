// Uniform block declarations (kernels/uniforms.ts): the packer's offsets must be the WGSL uniform
// layout of the struct it declares. A kernel reads every field by name (fixed and run-time array
// indices) and stores its bits; they must equal the values given to pack(). Plus pack()'s errors and
// a struct that names a missing field failing to compile.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { ready } from './helpers/gpu.js';
import { getBackend } from '../engine/index.js';
import { empty } from '../engine/tensor.js';
import { uniformBlock } from '../kernels/uniforms.js';

await ready;

// Scalars before an array that is not 16-byte aligned, arrays of every type and of lengths 1..5 (a
// partial last vec4), a scalar between arrays, an empty array, a scalar at the end.
const BLOCK = uniformBlock('layout_probe', {
  n: 'u32',
  bias: 'f32',
  shift: 'i32',
  dims: ['u32', 5],
  scale: 'f32',
  taps: ['f32', 3],
  none: ['u32', 0],
  offsets: ['i32', 2],
  one: ['u32', 1],
  last: 'u32',
});

const VALUES = {
  n: 4294967295,
  bias: -1.5e-7,
  shift: -123456789,
  dims: [1, 2, 3, 4, 5],
  scale: Infinity,
  taps: [0.25, -0, 3.4e38],
  none: [],
  offsets: [-1, 2147483647],
  one: [77],
  last: 0x80000001,
};

/** The expected u32 bit patterns, field by field, computed here (not from pack()). */
function expectedBits(): number[] {
  const f = new Float32Array(1), u = new Uint32Array(f.buffer);
  const fbits = (v: number): number => ((f[0] = v), u[0]!);
  return [
    VALUES.n,
    fbits(VALUES.bias),
    VALUES.shift >>> 0,
    ...VALUES.dims,
    fbits(VALUES.scale),
    ...VALUES.taps.map(fbits),
    ...VALUES.offsets.map((v) => v >>> 0),
    ...VALUES.one,
    VALUES.last,
  ];
}

/** A kernel storing every field's bits in declaration order, arrays read with fixed or run-time indices. */
function probeKernel(runtimeIndex: boolean): { wgsl: string; entry: string } {
  const lines: string[] = [];
  let k = 0;
  const put = (expr: string): void => void lines.push(`out[${k++}u] = bitcast<u32>(${expr});`);
  const arr = (field: 'dims' | 'taps' | 'offsets' | 'one', n: number): void => {
    if (!runtimeIndex) {
      for (let d = 0; d < n; d++) put(BLOCK.at(field, d));
      return;
    }
    lines.push(`for (var d = 0u; d < ${n}u; d++) { out[${k}u + d] = bitcast<u32>(${BLOCK.at(field, 'd')}); }`);
    k += n;
  };
  put('u.n');
  put('u.bias');
  put('u.shift');
  arr('dims', 5);
  put('u.scale');
  arr('taps', 3);
  arr('offsets', 2);
  arr('one', 1);
  put('u.last');
  return {
    entry: 'probe',
    wgsl: `${BLOCK.wgsl}
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(1)
fn probe() {
  ${lines.join('\n  ')}
}
`,
  };
}

async function runProbe(kernel: { wgsl: string; entry: string }, uniforms: Uint32Array, words: number): Promise<number[]> {
  const out = empty([words], 'int32');
  getBackend().dispatch({ kernel, buffers: [out.storage.buffer], uniforms, workgroups: [1], label: 'uniform layout probe' });
  const data = await out.data();
  out.dispose();
  return Array.from(new Uint32Array(data.buffer, data.byteOffset, data.length));
}

test('the packed block is the WGSL struct layout: every field read by name gives the packed value', async () => {
  const want = expectedBits();
  const packed = BLOCK.pack(VALUES);
  assert.is(packed.length % 4, 0, 'padded to whole vec4s');
  assert.is(packed.length, BLOCK.words);
  assert.equal(await runProbe(probeKernel(false), packed, want.length), want, 'fixed indices');
  assert.equal(await runProbe(probeKernel(true), packed, want.length), want, 'run-time indices');
});

test('arrays take whole vec4s from a 16-byte boundary; the struct names each field', () => {
  assert.match(BLOCK.wgsl, /struct U_layout_probe \{/);
  assert.match(BLOCK.wgsl, /dims: array<vec4<u32>, 2>/);
  assert.match(BLOCK.wgsl, /taps: array<vec4<f32>, 1>/);
  assert.match(BLOCK.wgsl, /offsets: array<vec4<i32>, 1>/);
  assert.ok(!/none/.test(BLOCK.wgsl), 'an empty array has no member');
  assert.match(BLOCK.wgsl, /@group\(0\) @binding\(0\) var<uniform> u: U_layout_probe;/);
  // n bias shift | pad | dims (2 vec4) | scale | pad | taps | offsets | one | last.
  assert.is(BLOCK.words, 4 + 8 + 4 + 4 + 4 + 4 + 4);
  const small = uniformBlock('small', { a: 'u32', b: 'f32' });
  assert.is(small.words, 4);
  assert.equal(Array.from(small.pack({ a: 7, b: 1 })), [7, 0x3f800000, 0, 0]);
});

test('pack names the block and the field when a value is missing, extra, mistyped or of the wrong length', () => {
  const err = (values: unknown): string => {
    try {
      BLOCK.pack(values as typeof VALUES);
    } catch (e) {
      return (e as Error).message;
    }
    return 'no error';
  };
  const { last: _last, ...missing } = VALUES;
  assert.is(err(missing), "uniforms layout_probe: field 'last' is missing");
  assert.match(err({ ...VALUES, extra: 1 }), /^uniforms layout_probe: 'extra' is not a field \(fields: n, bias, shift, dims, /);
  assert.is(err({ ...VALUES, dims: [1, 2, 3, 4] }), "uniforms layout_probe: field 'dims' needs 5 values, got 4 values");
  assert.is(err({ ...VALUES, dims: 3 }), "uniforms layout_probe: field 'dims' needs 5 values, got 3");
  assert.is(err({ ...VALUES, n: [1] }), "uniforms layout_probe: field 'n' must be a number, got 1");
  assert.is(err({ ...VALUES, n: -1 }), "uniforms layout_probe: field 'n' must be a u32, got -1");
  assert.is(err({ ...VALUES, n: 2.5 }), "uniforms layout_probe: field 'n' must be a u32, got 2.5");
  assert.is(err({ ...VALUES, n: 2 ** 32 }), "uniforms layout_probe: field 'n' must be a u32, got 4294967296");
  assert.is(err({ ...VALUES, shift: 2 ** 31 }), "uniforms layout_probe: field 'shift' must be an i32, got 2147483648");
  assert.is(err({ ...VALUES, offsets: [0, NaN] }), "uniforms layout_probe: field 'offsets[1]' must be an i32, got NaN");
  assert.is(err({ ...VALUES, bias: '1' }), "uniforms layout_probe: field 'bias' must be a number, got 1");
  // f32 fields take any number, NaN and infinities included.
  assert.ok(BLOCK.pack({ ...VALUES, bias: NaN, scale: -Infinity }) instanceof Uint32Array);
});

test('declaration and accessor mistakes fail at generation time', () => {
  assert.throws(() => BLOCK.at('n' as 'dims', 0), /uniforms layout_probe: 'n' is not an array field/);
  assert.throws(() => BLOCK.at('dims', 5), /uniforms layout_probe: index 5 is outside 'dims' \(length 5\)/);
  assert.throws(() => uniformBlock('bad', { 'a-b': 'u32' }), /uniforms bad: field name 'a-b' is not a plain WGSL identifier/);
  assert.throws(() => uniformBlock('bad', { a: 'f64' as 'f32' }), /uniforms bad: field 'a' has unknown type 'f64'/);
  assert.throws(() => uniformBlock('bad', { a: ['u32', 0] }), /uniforms bad: a uniform block needs at least one non-empty field/);
});

test('a kernel reading a field the block does not declare fails to compile instead of reading other bits', async () => {
  const kernel = {
    entry: 'renamed',
    wgsl: `${BLOCK.wgsl}
@group(0) @binding(1) var<storage, read_write> out: array<u32>;
@compute @workgroup_size(1)
fn renamed() { out[0] = u.count; }
`,
  };
  const out = empty([4], 'int32');
  let message = '';
  try {
    getBackend().dispatch({ kernel, buffers: [out.storage.buffer], uniforms: BLOCK.pack(VALUES), workgroups: [1], label: 'renamed field' });
    await getBackend().sync();
  } catch (e) {
    message = (e as Error).message;
  }
  out.dispose();
  assert.match(message, /count/);
});

test.run();
