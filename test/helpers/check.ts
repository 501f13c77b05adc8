// Checking GPU results against float64 references, and GPU gradients against central finite
// differences of the reference.
import * as assert from 'uvu/assert';
import { Tensor, tensor, tidy, sum, mul, noGrad } from '../../engine/index.js';
import { Rng } from '../../engine/random.js';
import type { RefTensor } from '../../kernels/common.js';

export interface Tol {
  atol: number;
  rtol: number;
}

/** Seeded values in [lo, hi), optionally kept at least `gap` away from the points in `avoid`. */
export function values(n: number, seed: number, lo = -2, hi = 2, avoid: number[] = [], gap = 0.05): Float64Array {
  const rng = new Rng(seed);
  const out = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let v: number;
    do v = lo + (hi - lo) * rng.uniform();
    while (avoid.some((a) => Math.abs(v - a) < gap));
    out[i] = Math.fround(v);
  }
  return out;
}

export function ref(shape: number[], seed: number, lo = -2, hi = 2, avoid: number[] = []): RefTensor {
  return { shape, data: values(shape.reduce((a, b) => a * b, 1), seed, lo, hi, avoid) };
}

export function gpu(r: RefTensor, requiresGrad = false): Tensor {
  const t = tensor(Float32Array.from(r.data), r.shape);
  if (requiresGrad) t.requiresGrad = true;
  return t;
}

/** Asserts |got - want| <= atol + rtol*|want| elementwise, naming the worst element. */
export function assertClose(got: ArrayLike<number>, want: ArrayLike<number>, tol: Tol, what: string): void {
  assert.is(got.length, want.length, `${what}: ${got.length} values, expected ${want.length}`);
  let worst = -1, worstExcess = 0;
  for (let i = 0; i < want.length; i++) {
    const g = got[i]!, w = want[i]!;
    if (Number.isNaN(w) && Number.isNaN(g)) continue;
    if (w === g) continue;
    const excess = Math.abs(g - w) - (tol.atol + tol.rtol * Math.abs(w));
    if (!(excess <= 0) && (worst < 0 || excess > worstExcess || Number.isNaN(excess))) {
      worst = i;
      worstExcess = excess;
    }
  }
  if (worst >= 0) assert.unreachable(`${what}: element ${worst} is ${got[worst]}, expected ${want[worst]} (atol ${tol.atol}, rtol ${tol.rtol})`);
}

export async function expectRef(t: Tensor, want: RefTensor, tol: Tol, what: string): Promise<void> {
  assert.equal([...t.shape], want.shape, `${what}: shape`);
  assertClose(await t.data(), want.data, tol, what);
}

export interface GradCase {
  name: string;
  inputs: RefTensor[];
  /** Which inputs get a gradient check (default: all). */
  differentiable?: boolean[];
  gpu: (xs: Tensor[]) => Tensor;
  ref: (xs: RefTensor[]) => RefTensor;
  forwardTol?: Tol;
  gradTol?: Tol;
  /** Finite-difference step (float64). */
  eps?: number;
}

/**
 * Forward vs reference, then d(sum(out * W))/d(input) from the GPU backward vs central differences
 * of the float64 reference, for random weights W (so every output element matters differently).
 */
export async function checkOp(c: GradCase): Promise<void> {
  const forwardTol = c.forwardTol ?? { atol: 1e-5, rtol: 1e-5 };
  const gradTol = c.gradTol ?? { atol: 1e-4, rtol: 1e-3 };
  const eps = c.eps ?? 1e-6;
  const want = c.ref(c.inputs);
  const diff = c.differentiable ?? c.inputs.map(() => true);
  const xs = c.inputs.map((r, i) => gpu(r, diff[i]));
  const w = ref(want.shape, 99, -1, 1);
  const out = tidy(() => {
    const out = c.gpu(xs);
    const loss = sum(mul(out, gpu(w)));
    if (diff.some(Boolean)) loss.backward();
    return out;
  });
  await expectRef(out, want, forwardTol, `${c.name} forward`);
  out.dispose();
  const objective = (inputs: RefTensor[]): number => {
    const o = c.ref(inputs);
    let s = 0;
    for (let i = 0; i < o.data.length; i++) s += o.data[i]! * w.data[i]!;
    return s;
  };
  for (let k = 0; k < c.inputs.length; k++) {
    if (!diff[k]) continue;
    const base = c.inputs[k]!;
    const numeric = new Float64Array(base.data.length);
    for (let j = 0; j < base.data.length; j++) {
      const plus = c.inputs.map((r, i) => (i === k ? { shape: r.shape, data: Float64Array.from(r.data) } : r));
      const minus = c.inputs.map((r, i) => (i === k ? { shape: r.shape, data: Float64Array.from(r.data) } : r));
      plus[k]!.data[j]! += eps;
      minus[k]!.data[j]! -= eps;
      numeric[j] = (objective(plus) - objective(minus)) / (2 * eps);
    }
    const g = xs[k]!.grad;
    assert.ok(g, `${c.name}: input ${k} got no gradient`);
    assert.equal([...g!.shape], base.shape, `${c.name}: grad ${k} shape`);
    assertClose(await g!.data(), numeric, gradTol, `${c.name} grad of input ${k}`);
  }
  noGrad(() => xs.forEach((x) => x.dispose()));
}
