// safetensors: reading a file written by the Python safetensors library, hand-built files per the
// format spec (8-byte LE header length, JSON header, little-endian data), dtype conversions, our own
// round trip, and clear errors for truncated or corrupt files.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { ready } from './helpers/gpu.js';
import { settleGarbage } from './helpers/gc.js';
import { tensor, saveSafetensors, loadSafetensors, toTensors, encodeSafetensors, memory } from '../engine/index.js';

await ready;

const FIXTURE = '../shared/fixtures/torchvision-maskrcnn/case-000000555705/expected.safetensors';

/** Builds a file by hand: header JSON (unpadded) + data bytes. */
function build(header: object, data: number[] | Uint8Array): Uint8Array {
  const json = new TextEncoder().encode(JSON.stringify(header));
  const out = new Uint8Array(8 + json.length + data.length);
  new DataView(out.buffer).setBigUint64(0, BigInt(json.length), true);
  out.set(json, 8);
  out.set(data, 8 + json.length);
  return out;
}

test('reads the torchvision fixture written by Python safetensors', () => {
  const f = loadSafetensors(readFileSync(FIXTURE));
  // Expected values below were read with numpy directly from the file (struct + np.frombuffer).
  assert.equal(f.metadata, { score_thresh: '0.0', torch: '1.13.0a0', torchvision: '0.14.1a0', seed: '0', min_size: '256', max_size: '320' });
  assert.is(Object.keys(f.tensors).length, 44);
  const size = f.tensors['input.image_size']!;
  assert.is(size.dtype, 'int32');
  assert.is(size.sourceDtype, 'I64');
  assert.equal([...size.data], [185, 320]);
  assert.equal([...f.tensors['target.labels']!.data], [17, 17]);
  assert.equal([...f.tensors['det.labels']!.data.slice(0, 10)], [72, 71, 72, 72, 71, 71, 72, 71, 72, 72]);
  const masks = f.tensors['target.masks']!;
  assert.is(masks.sourceDtype, 'U8');
  assert.equal(masks.shape, [2, 371, 640]);
  let ones = 0;
  for (const v of masks.data) ones += v;
  assert.is(ones, 99957);
  const scores = f.tensors['det.scores']!;
  assert.is(scores.dtype, 'float32');
  assert.equal(scores.shape, [100]);
  assert.equal([...scores.data.slice(0, 3)], [0.0587000697851181, 0.0505484975874424, 0.049484334886074066]);
  assert.equal([...f.tensors['loss.loss_mask']!.data], [0.6942038536071777]);
  const fpn = f.tensors['fpn.0']!;
  assert.equal(fpn.shape, [1, 256, 48, 80]);
  let s = 0;
  for (const v of fpn.data) s += v;
  assert.ok(Math.abs(s - -11380.81359) < 1e-3, `fpn.0 sum ${s}`);
  assert.is(fpn.data[fpn.data.length - 1], 0.1955135464668274);
});

test('hand-built file per the spec: every dtype converts', () => {
  const bytes: number[] = [];
  const push = (arr: ArrayBufferView) => bytes.push(...new Uint8Array(arr.buffer, arr.byteOffset, arr.byteLength));
  const header: Record<string, unknown> = { __metadata__: { format: 'pt' } };
  const add = (name: string, dtype: string, shape: number[], arr: ArrayBufferView) => {
    header[name] = { dtype, shape, data_offsets: [bytes.length, bytes.length + arr.byteLength] };
    push(arr);
  };
  add('f64', 'F64', [2], new Float64Array([1.5, -0.1]));
  add('i64', 'I64', [3], new BigInt64Array([-2147483648n, 0n, 2147483647n]));
  add('f32', 'F32', [2, 1], new Float32Array([3.25, -7]));
  add('i32', 'I32', [], new Int32Array([-5]));
  // IEEE half: 0x3C00 = 1, 0xC000 = -2, 0x7BFF = 65504 (largest), 0x0001 = 2^-24 (smallest subnormal), 0x7C00 = inf.
  add('f16', 'F16', [5], new Uint16Array([0x3c00, 0xc000, 0x7bff, 0x0001, 0x7c00]));
  // bfloat16 is the top half of a float32: 0x3F80 = 1, 0xC040 = -3.
  add('bf16', 'BF16', [2], new Uint16Array([0x3f80, 0xc040]));
  add('u8', 'U8', [3], new Uint8Array([0, 200, 255]));
  add('bool', 'BOOL', [3], new Uint8Array([1, 0, 1]));
  const f = loadSafetensors(build(header, bytes));
  assert.equal(f.metadata, { format: 'pt' });
  const t = f.tensors;
  assert.equal([...t.f64!.data], [1.5, Math.fround(-0.1)]);
  assert.equal([...t.i64!.data], [-2147483648, 0, 2147483647]);
  assert.equal(t.f32!.shape, [2, 1]);
  assert.equal([...t.f32!.data], [3.25, -7]);
  assert.equal(t.i32!.shape, []);
  assert.equal([...t.i32!.data], [-5]);
  assert.equal([...t.f16!.data], [1, -2, 65504, 2 ** -24, Infinity]);
  assert.equal([...t.bf16!.data], [1, -3]);
  assert.equal([...t.u8!.data], [0, 200, 255]);
  assert.is(t.bool!.dtype, 'bool');
  assert.equal([...t.bool!.data], [1, 0, 1]);
});

test('int64 values beyond int32 are a clear error naming the tensor', () => {
  const file = build({ big: { dtype: 'I64', shape: [2], data_offsets: [0, 16] } }, new Uint8Array(new BigInt64Array([1n, 2147483648n]).buffer));
  assert.throws(() => loadSafetensors(file), /'big'.*element 1 = 2147483648 does not fit in int32/);
});

test('round trip of our own file: values, shapes, dtypes, metadata, alignment', async () => {
  await settleGarbage();
  const before = memory().liveBytes;
  const a = tensor(Float32Array.from({ length: 35 }, (_, i) => Math.sin(i) * 1e3), [5, 7]);
  const b = tensor(Int32Array.from([-3, 0, 7, 2147483647, -2147483648]), [5], 'int32');
  const c = tensor([[true, false, true]]);
  const d = tensor([2.5], []);
  const e = tensor(new Float32Array(0), [0, 3]);
  const bytes = await saveSafetensors({ weight: a, idx: b, mask: c, scalar: d, empty: e }, { note: 'hello', step: '12' });
  const n = Number(new DataView(bytes.buffer, bytes.byteOffset).getBigUint64(0, true));
  assert.is(n % 8, 0, 'header padded to 8 bytes');
  const headerText = new TextDecoder().decode(bytes.subarray(8, 8 + n));
  assert.ok(/ *$/.test(headerText) && JSON.parse(headerText).__metadata__.note === 'hello');
  // The reference writer orders data by dtype size (largest first), then by name.
  const header = JSON.parse(headerText) as Record<string, { data_offsets: [number, number] }>;
  const order = ['empty', 'idx', 'scalar', 'weight', 'mask'];
  order.forEach((name, i) => {
    if (i > 0) assert.ok(header[name]!.data_offsets[0] === header[order[i - 1]!]!.data_offsets[1], `${name} follows ${order[i - 1]}`);
  });
  const f = loadSafetensors(bytes);
  assert.equal(f.metadata, { note: 'hello', step: '12' });
  assert.equal([...f.tensors.weight!.data], [...(await a.data())]);
  assert.equal(f.tensors.weight!.shape, [5, 7]);
  assert.equal([...f.tensors.idx!.data], [-3, 0, 7, 2147483647, -2147483648]);
  assert.is(f.tensors.mask!.dtype, 'bool');
  assert.equal(f.tensors.mask!.shape, [1, 3]);
  assert.equal([...f.tensors.mask!.data], [1, 0, 1]);
  assert.equal(f.tensors.scalar!.shape, []);
  assert.equal(f.tensors.empty!.shape, [0, 3]);
  const back = toTensors(f);
  assert.equal(await back.weight!.toArray(), await a.toArray());
  assert.equal(await back.mask!.toArray(), [[true, false, true]]);
  assert.is(back.idx!.dtype, 'int32');
  for (const t of [a, b, c, d, e, ...Object.values(back)]) t.dispose();
  assert.is(memory().liveBytes, before, 'all tensors freed');
});

test('strided views are saved as their logical (row-major) values', async () => {
  const a = tensor([[1, 2, 3], [4, 5, 6]]);
  const t = a.T;
  const f = loadSafetensors(await saveSafetensors({ t }));
  assert.equal(f.tensors.t!.shape, [3, 2]);
  assert.equal([...f.tensors.t!.data], [1, 4, 2, 5, 3, 6]);
  t.dispose();
  a.dispose();
});

test('truncated and corrupt files give errors that say what is wrong', () => {
  const good = encodeSafetensors({
    alpha: { dtype: 'float32', shape: [4], data: new Float32Array([1, 2, 3, 4]) },
    beta: { dtype: 'float32', shape: [2], data: new Float32Array([5, 6]) },
  });
  assert.ok(loadSafetensors(good).tensors.beta);
  assert.throws(() => loadSafetensors(good.subarray(0, 5)), /too short.*truncated/);
  assert.throws(() => loadSafetensors(good.subarray(0, 20)), /header of \d+ bytes runs past the end/);
  assert.throws(() => loadSafetensors(good.subarray(0, good.length - 3)), /'beta'.*runs past the end.*truncated/);
  const extra = new Uint8Array(good.length + 4);
  extra.set(good);
  assert.throws(() => loadSafetensors(extra), /4 bytes after the last tensor/);
  const bogus = new Uint8Array(good);
  new DataView(bogus.buffer).setBigUint64(0, 1n << 40n, true);
  assert.throws(() => loadSafetensors(bogus), /exceeds the .* limit/);
  assert.throws(() => loadSafetensors(build({ x: { dtype: 'F32', shape: [2], data_offsets: [0, 4] } }, [0, 0, 0, 0])), /'x'.*span 4 bytes, but F32\[2\] needs 8/);
  assert.throws(() => loadSafetensors(build({ x: { dtype: 'Q7', shape: [1], data_offsets: [0, 1] } }, [0])), /'x'.*unknown dtype "Q7"/);
  assert.throws(
    () => loadSafetensors(build({ x: { dtype: 'U8', shape: [2], data_offsets: [0, 2] }, y: { dtype: 'U8', shape: [2], data_offsets: [1, 3] } }, [0, 0, 0])),
    /'y' starts at byte 1, expected 2/,
  );
  const badJson = build({ x: 1 }, []);
  badJson[9] = 0x7e; // breaks the JSON after '{'
  assert.throws(() => loadSafetensors(badJson), /invalid JSON header/);
  assert.throws(() => encodeSafetensors({ w: { dtype: 'float32', shape: [3], data: new Float32Array(2) } }), /'w' has 2 values for shape \[3\]/);
});

test.run();
