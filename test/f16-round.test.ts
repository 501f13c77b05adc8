// The float64 reference for autocast's operand rounding (kernels/f16.ts roundToF16) on values whose
// nearest f16 is known by hand: exact values, ties to even (normal and subnormal), the subnormal
// range, overflow to infinity from 65520 up, NaN, signed zero, and the f32 rounding that comes first.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { roundToF16, roundArrayToF16 } from '../kernels/f16.js';

const CASES: [string, number, number][] = [
  ['one', 1, 1],
  ['exact f16 value 1 + 2^-10', 1 + 2 ** -10, 1 + 2 ** -10],
  ['tie 1 + 2^-11 goes to the even 1', 1 + 2 ** -11, 1],
  ['tie 1 + 3*2^-11 goes to the even 1 + 2^-9', 1 + 3 * 2 ** -11, 1 + 2 ** -9],
  ['just above a tie rounds up', 1 + 2 ** -11 + 2 ** -20, 1 + 2 ** -10],
  ['0.1 (f16 0x2E66)', 0.1, 0.0999755859375],
  ['-0.1', -0.1, -0.0999755859375],
  ['pi (f16 0x4248)', 3.14159, 3.140625],
  ['largest f16', 65504, 65504],
  ['65519 rounds down to 65504', 65519, 65504],
  ['65520 (the tie past the largest f16) overflows', 65520, Infinity],
  ['-70000 overflows', -70000, -Infinity],
  ['infinity', Infinity, Infinity],
  ['smallest subnormal 2^-24', 2 ** -24, 2 ** -24],
  ['tie 2^-25 goes to the even 0', 2 ** -25, 0],
  ['tie 1.5 * 2^-24 goes to 2 * 2^-24', 1.5 * 2 ** -24, 2 ** -23],
  ['tie 2.5 * 2^-24 goes to 2 * 2^-24', 2.5 * 2 ** -24, 2 ** -23],
  ['above the tie 2^-25 + 2^-40', 2 ** -25 + 2 ** -40, 2 ** -24],
  ['subnormal 100.3 * 2^-24', 100.3 * 2 ** -24, 100 * 2 ** -24],
  ['tie at the top of the subnormals rounds to the smallest normal 2^-14', 2 ** -14 - 2 ** -25, 2 ** -14],
  ['smallest normal plus half its spacing (tie) stays', 2 ** -14 + 2 ** -25, 2 ** -14],
  ['tiny value', 1e-9, 0],
  ['f32 rounding first: 1 + 2^-11 + 2^-30 is the f32 1 + 2^-11, a tie, so 1', 1 + 2 ** -11 + 2 ** -30, 1],
];

for (const [name, x, want] of CASES) {
  test(`roundToF16: ${name}`, () => {
    assert.is(roundToF16(x), want, `roundToF16(${x})`);
  });
}

test('roundToF16: NaN stays NaN, signed zeros keep their sign, negative ties mirror positive ones', () => {
  assert.ok(Number.isNaN(roundToF16(NaN)));
  assert.ok(Object.is(roundToF16(-0), -0));
  assert.ok(Object.is(roundToF16(-(2 ** -25)), -0));
  assert.is(roundToF16(-(1 + 3 * 2 ** -11)), -(1 + 2 ** -9));
});

test('roundToF16: f16 values across the range map to themselves, midpoints to the even neighbour', () => {
  // (k, q): the f16 value k * q with q its spacing: subnormals (q = 2^-24) and every binade's normals.
  const points: [number, number][] = [1, 2, 3, 511, 1023].map((k) => [k, 2 ** -24]);
  for (let e = -14; e <= 15; e++) for (const k of [1024, 1025, 1537, 2047]) points.push([k, 2 ** (e - 10)]);
  for (const [k, q] of points) {
    const v = k * q;
    assert.is(roundToF16(v), v, `f16 value ${v}`);
    const up = k % 2 === 0 ? v : v + q > 65504 ? Infinity : v + q;
    assert.is(roundToF16(v + q / 2), up, `midpoint above ${v}`);
  }
  assert.equal(Array.from(roundArrayToF16([1 + 2 ** -11, 65520])), [1, Infinity]);
});

test.run();
