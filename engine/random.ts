// Seeded random numbers on the CPU: one small generator for the whole project (initialisation,
// sampling, augmentation, synthetic data), because reproducibility from a seed is the point:
// a checkpoint stores the state (one integer) and must replay exactly. Math.random is unseedable.

/** Mixes 32-bit integers into one well-scrambled 32-bit seed (murmur3 finaliser per step), so that
 *  streams for (seed, epoch) and (seed, epoch, sample) are independent of each other. */
export function mixSeed(...parts: number[]): number {
  let h = 0x9e3779b9 | 0;
  for (const p of parts) {
    // Fold in both halves of values beyond 32 bits (seeds typed by users can be large).
    const lo = p >>> 0;
    const hi = Math.floor(p / 4294967296) >>> 0;
    for (const v of [lo, hi]) {
      h = Math.imul(h ^ v, 0x85ebca6b);
      h ^= h >>> 13;
      h = Math.imul(h, 0xc2b2ae35);
      h ^= h >>> 16;
      h = (h + 0x6a09e667) | 0;
    }
  }
  return h >>> 0;
}

/** SplitMix32-style generator: 32-bit state, full period 2^32, good enough statistical quality for
 *  augmentation and shuffling, and trivially serialisable (state is one integer). */
export class Rng {
  private state: number;

  constructor(seed = 0) {
    this.state = mixSeed(seed);
  }

  /** Next raw 32-bit unsigned integer. */
  nextU32(): number {
    this.state = (this.state + 0x9e3779b9) | 0;
    let z = this.state;
    z = Math.imul(z ^ (z >>> 16), 0x21f0aaad);
    z = Math.imul(z ^ (z >>> 15), 0x735a2d97);
    return (z ^ (z >>> 15)) >>> 0;
  }

  /** Uniform float in [0, 1) with 32 bits of randomness. */
  next(): number {
    return this.nextU32() / 4294967296;
  }

  /** Uniform float in [lo, hi), by default [0, 1). */
  uniform(lo = 0, hi = 1): number {
    return lo + (hi - lo) * this.next();
  }

  /** Uniform integer in [0, n) (n <= 2^32). Rejection sampling avoids modulo bias. */
  int(n: number): number {
    if (!(n >= 1) || n > 4294967296 || !Number.isInteger(n)) throw new Error(`Rng.int: bad range ${n}`);
    const limit = 4294967296 - (4294967296 % n);
    for (;;) {
      const v = this.nextU32();
      if (v < limit) return v % n;
    }
  }

  /** Uniform integer in [lo, hi] inclusive. */
  intIn(lo: number, hi: number): number {
    return lo + this.int(hi - lo + 1);
  }

  choice<T>(items: readonly T[]): T {
    if (items.length === 0) throw new Error('Rng.choice: empty list');
    return items[this.int(items.length)]!;
  }

  /** Fisher-Yates shuffle in place. */
  shuffle<T>(items: T[]): T[] {
    for (let i = items.length - 1; i > 0; i--) {
      const j = this.int(i + 1);
      const t = items[i]!;
      items[i] = items[j]!;
      items[j] = t;
    }
    return items;
  }

  /** The generator's whole state (one integer), for checkpoints. */
  getState(): number {
    return this.state >>> 0;
  }

  setState(s: number): void {
    this.state = s | 0;
  }

  /** Standard normal via Box-Muller. */
  normal(): number {
    const u = 1 - this.next();
    const v = this.next();
    return Math.sqrt(-2 * Math.log(u)) * Math.cos(2 * Math.PI * v);
  }
}

let globalRng = new Rng(0);

/** Seeds the engine's default generator (used by rand/randn and nn initialisers). */
export function manualSeed(seed: number): void {
  globalRng = new Rng(seed);
}

export function defaultRng(): Rng {
  return globalRng;
}
