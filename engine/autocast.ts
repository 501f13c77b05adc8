// torch.autocast for this engine: inside autocast(fn), matmul (and so nn.Linear) and conv2d /
// conv_transpose2d run their GEMM kernels' roundF16 forms: every operand element rounded to the
// nearest f16 as it is loaded, products and sums in f32 (the numerics of autocast on tensor cores).
// Everything else (norms and their statistics, softmax, losses, box decoding, the optimizer and
// the f32 master weights) is unaffected. The state an op saw in its forward is the state its
// backward GEMMs (input and weight gradients) run with, whatever the state when backward() runs:
// torch gets the same by saving f16 copies of the operands. Tensors stay float32 in memory (f16
// storage of activations is future work, see README).
//
// The state is one flag of this module (the engine is single-threaded): autocastAsync keeps it on
// across awaits, so other work interleaved at those awaits sees it too.

let enabled = false;

/** torch.is_autocast_enabled(). */
export function isAutocastEnabled(): boolean {
  return enabled;
}

/** The kernel specs' autocast field: roundF16 under autocast, absent otherwise (so fp32 cache keys stay as they were). */
export function autocastSpec(): { roundF16?: true } {
  return enabled ? { roundF16: true } : {};
}

/** Runs fn with autocast on (or off, enabled = false), restoring the previous state afterwards. */
export function autocast<T>(fn: () => T, enabled_ = true): T {
  const prev = enabled;
  enabled = enabled_;
  try {
    const r = fn();
    if (r instanceof Promise) throw new Error('autocast: fn returned a Promise; use autocastAsync for async code');
    return r;
  } finally {
    enabled = prev;
  }
}

/** autocast for an async fn: the state holds until fn's promise settles. */
export async function autocastAsync<T>(fn: () => Promise<T>, enabled_ = true): Promise<T> {
  const prev = enabled;
  enabled = enabled_;
  try {
    return await fn();
  } finally {
    enabled = prev;
  }
}

/**
 * For backward rules: wraps `rule` so it runs under the autocast state of now (the forward's).
 * Internal (ops use it; not part of the public API).
 */
export function underForwardAutocast<A extends unknown[], R>(rule: (...args: A) => R): (...args: A) => R {
  const state = enabled;
  return (...args: A) => autocast(() => rule(...args), state);
}
