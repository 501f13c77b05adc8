// A fixed mix of engine work for comparing the browser with Node on the same machine: a fixed
// conv2d feature layer (relu, mean-pool) under a small MLP classifier trained by one step (matmul,
// log-softmax, cross-entropy, backward, SGD). The conv weights are not trained: on Chromium's
// SwiftShader some of conv-gemm's backward tiles take minutes to compile (see the README), so the
// mix keeps to the conv forward until that is fixed. Pipelines are compiled in warm-up steps, then
// steps are timed with a read-back each (so queued GPU work is counted).
import * as T from './lib.js';

export interface OpMixResult {
  steps: number;
  warmupMs: number;
  /** Median milliseconds per step after warm-up. */
  medianMs: number;
  minMs: number;
  firstLoss: number;
  lastLoss: number;
}

const now = (): number => (globalThis.performance ?? Date).now();

export async function runOpMix(steps = 10, warmup = 2): Promise<OpMixResult> {
  const rng = new T.Rng(7);
  const x = T.randn([4, 8, 24, 24], { rng });
  const labels = T.tensor(Int32Array.from({ length: 4 }, (_, i) => i % 10), [4], 'int32');
  const conv = T.randn([16, 8, 3, 3], { std: 0.1, rng });
  const w1 = T.randn([16, 64], { std: 0.2, rng }).requiresGrad_();
  const w2 = T.randn([64, 10], { std: 0.2, rng }).requiresGrad_();
  const params = [w1, w2];
  const opt = new T.optim.SGD(params, { lr: 0.05, momentum: 0.9 });
  const step = (): T.Tensor =>
    T.tidy(() => {
      opt.zeroGrad();
      const h = T.relu(T.conv2d(x, conv, null, 1, 1));
      const pooled = T.mean(h, [2, 3]);
      const logits = T.matmul(T.relu(T.matmul(pooled, w1)), w2);
      const loss = T.crossEntropy(T.logSoftmax(logits, 1), labels);
      loss.backward();
      opt.step();
      return loss;
    });
  const times: number[] = [];
  let firstLoss = NaN, lastLoss = NaN;
  const t0 = now();
  try {
    for (let i = 0; i < warmup + steps; i++) {
      const s = now();
      const loss = step();
      const v = await loss.item();
      loss.dispose();
      if (i === 0) firstLoss = v;
      lastLoss = v;
      if (i >= warmup) times.push(now() - s);
    }
  } finally {
    for (const t of [x, labels, conv, ...params]) t.dispose();
  }
  const sorted = [...times].sort((a, b) => a - b);
  const warmupMs = now() - t0 - times.reduce((a, b) => a + b, 0);
  return { steps, warmupMs, medianMs: sorted[Math.floor(sorted.length / 2)]!, minMs: sorted[0]!, firstLoss, lastLoss };
}
