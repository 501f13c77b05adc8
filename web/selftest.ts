// The engine self-test panel: a handful of known answers (from the ops' definitions, computed here
// in float64) run on the page's WebGPU device. It proves the device and the bundle work; the real
// op tests run in the page through test/browser/ (npm run test:browser).
import * as L from './lib.js';

export interface CheckResult {
  name: string;
  ok: boolean;
  ms: number;
  detail: string;
}

const close = (got: ArrayLike<number>, want: ArrayLike<number>, tol: number): string | null => {
  if (got.length !== want.length) return `${got.length} values, expected ${want.length}`;
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i]! - want[i]!) <= tol * (1 + Math.abs(want[i]!)))) return `element ${i} is ${got[i]}, expected ${want[i]}`;
  }
  return null;
};

const CHECKS: { name: string; run: () => Promise<string | null> }[] = [
  {
    name: 'add with broadcasting [2,3] + [3]',
    run: async () => close(await L.add(L.tensor([[1, 2, 3], [4, 5, 6]]), L.tensor([10, 20, 30])).data(), [11, 22, 33, 14, 25, 36], 0),
  },
  {
    name: 'matmul [2,2] @ [2,2]',
    run: async () => close(await L.matmul(L.tensor([[1, 2], [3, 4]]), L.tensor([[5, 6], [7, 8]])).data(), [19, 22, 43, 50], 0),
  },
  {
    name: 'sum over dim 1 of [2,3]',
    run: async () => close(await L.sum(L.tensor([[1, 2, 3], [4, 5, 6]]), 1).data(), [6, 15], 0),
  },
  {
    name: 'softmax of [1, 2, 3]',
    run: async () => {
      const e = [1, 2, 3].map(Math.exp), s = e[0]! + e[1]! + e[2]!;
      return close(await L.softmax(L.tensor([1, 2, 3]), 0).data(), e.map((v) => v / s), 1e-6);
    },
  },
  {
    name: 'gradient of sum(3 x^2) is 6x',
    run: async () => {
      const x = L.tensor([-1.5, 0.25, 2]).requiresGrad_();
      L.tidy(() => L.sum(L.mul(L.square(x), 3))).backward();
      const err = close(await x.grad!.data(), [-9, 1.5, 12], 1e-6);
      x.grad!.dispose();
      x.dispose();
      return err;
    },
  },
  {
    name: 'tidy frees every intermediate',
    run: async () => {
      const before = L.memory().liveBytes;
      const kept = L.tidy(() => L.exp(L.add(L.ones([257]), L.ones([257]))));
      const during = L.memory().liveBytes;
      kept.dispose();
      const after = L.memory().liveBytes;
      return after === before && during > before ? null : `live bytes ${before} -> ${during} -> ${after}`;
    },
  },
];

export async function runSelfTest(onResult?: (r: CheckResult) => void): Promise<CheckResult[]> {
  const results: CheckResult[] = [];
  for (const c of CHECKS) {
    const t0 = performance.now();
    let detail: string | null;
    try {
      detail = await L.tidyAsync(c.run);
    } catch (e) {
      detail = e instanceof Error ? e.message : String(e);
    }
    const r = { name: c.name, ok: detail === null, ms: performance.now() - t0, detail: detail ?? 'ok' };
    results.push(r);
    onResult?.(r);
  }
  return results;
}
