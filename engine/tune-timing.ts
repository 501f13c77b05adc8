// GPU-synchronised timing of one tuning candidate (engine/autotune.ts): a warm-up run (it also
// compiles the pipeline), then the best of three batches of runs, each batch ended by waiting for the
// GPU. Batches hold enough runs for ~TARGET_FLOP of work, so small kernels are not measured as the
// cost of one submit-and-wait.
import { getBackend } from './backend.js';

const TARGET_FLOP = 1e8;
const MAX_RUNS = 64;

/** Seconds one call of `run` takes on the GPU; `flop` sizes the batches. Rejects on GPU errors. */
export async function timeOnGpu(runAny: () => void, flop: number): Promise<number> {
  const be = getBackend();
  // The fast variant of a tiered kernel is the one to time (engine/tiering.ts).
  const run = (): void => be.withFastKernels(runAny);
  const runs = Math.max(1, Math.min(MAX_RUNS, Math.round(TARGET_FLOP / Math.max(1, flop))));
  await be.sync();
  run();
  await be.sync();
  let best = Infinity;
  for (let r = 0; r < 3; r++) {
    const t0 = performance.now();
    for (let i = 0; i < runs; i++) run();
    await be.sync();
    best = Math.min(best, (performance.now() - t0) / 1e3 / runs);
  }
  return best;
}

/** timeOnGpu of `run` on zero-filled scratch buffers of the given sizes (floats), freed afterwards. */
export async function timeOnScratch(sizes: number[], run: (buffers: GPUBuffer[]) => void, flop: number): Promise<number> {
  const be = getBackend();
  const bufs = sizes.map((n) => {
    const b = be.malloc(4 * n);
    be.write(b, new Float32Array(n));
    return b;
  });
  try {
    return await timeOnGpu(() => run(bufs), flop);
  } finally {
    for (const b of bufs) be.free(b);
  }
}
