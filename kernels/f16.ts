// Rounding f32 values to the nearest f16 (IEEE binary16: round to nearest, ties to even; past the
// largest f16, 65504, values from 65520 up become +-inf as an f16 conversion does; NaN stays NaN),
// kept in f32: what autocast's "operands in f16, products and sums in f32" means (tensor cores read
// f16 operands and accumulate in f32). Used by the matmul and conv generators' `roundF16` variants
// at every operand load.
//
// Why bit arithmetic and not WGSL's unpack2x16float(pack2x16float(v)) or an f16 cast: the pack/
// unpack pair is folded to the identity by lavapipe's compiler (measured: 1 + 2^-11 comes back
// unrounded), pack2x16float of a value outside f16's range is an indeterminate value by the WGSL
// spec, and `f16` needs the optional shader-f16 feature. Bit arithmetic is core WGSL, exact and
// branch-free (selects only): normal range: add half an f16 ulp minus one plus the kept LSB
// (ties to even) at bit 13 of the f32 pattern and clear the 13 dropped bits (a carry into the
// exponent is the correct rounding up); f16's subnormal range (|x| < 2^-14): round(|x| * 2^24) * 2^-24
// (WGSL's round is ties-to-even; both scalings are exact).

/** WGSL functions f16r (f32) and f16r4 (vec4<f32>): the value rounded to f16, as f32. */
export const F16_ROUND_WGSL = ['f32', 'vec4<f32>'].map((T) => {
  const U = T === 'f32' ? 'u32' : 'vec4<u32>';
  const c = (x: string) => (T === 'f32' ? x : `${U}(${x})`);
  return `fn ${T === 'f32' ? 'f16r' : 'f16r4'}(x: ${T}) -> ${T} {
  let b = bitcast<${U}>(x); let s = b & ${c('0x80000000u')}; let a = b ^ s;
  let n = (a + ${c('0xfffu')} + ((a >> ${c('13u')}) & ${c('1u')})) & ${c('0xffffe000u')};
  let sub = bitcast<${U}>(round(bitcast<${T}>(a) * 16777216.0) * 5.9604644775390625e-8);
  var r = select(n, sub, a < ${c('0x38800000u')});
  r = select(r, ${c('0x7f800000u')}, a >= ${c('0x477ff000u')});
  r = select(r, a, a > ${c('0x7f800000u')});
  return bitcast<${T}>(s | r);
}`;
}).join('\n');

/** `expr` (of WGSL type f32 or vec4<f32>) rounded to f16 when `round`, else unchanged. */
export function f16Load(expr: string, round: boolean, vec4 = false): string {
  return round ? `${vec4 ? 'f16r4' : 'f16r'}(${expr})` : expr;
}

/**
 * The float64 reference: x rounded to f32, then to the nearest f16 (ties to even), as a number.
 * Written with plain arithmetic (exponent search, scaling by powers of two, which is exact), not
 * bit patterns, so it checks the kernels' bit arithmetic independently.
 */
export function roundToF16(x: number): number {
  const f = Math.fround(x);
  if (!Number.isFinite(f) || f === 0) return f;
  const a = Math.abs(f);
  let e = -14; // f16's smallest normal exponent; below it the spacing stays 2^-24 (subnormals)
  while (2 ** (e + 1) <= a) e++;
  const q = 2 ** (e - 10); // spacing of f16 values in [2^e, 2^(e+1))
  const m = a / q;
  const fl = Math.floor(m);
  const k = m - fl > 0.5 || (m - fl === 0.5 && fl % 2 === 1) ? fl + 1 : fl;
  const r = k * q;
  return Math.sign(f) * (r > 65504 ? Infinity : r);
}

/** Every element of a float64 array rounded to f16 (a copy). */
export function roundArrayToF16(data: ArrayLike<number>): Float64Array {
  return Float64Array.from(data, roundToF16);
}
