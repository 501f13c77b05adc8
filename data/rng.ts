// Data-side randomness: the project's generator (engine/random.ts) and the per-epoch permutation
// that lets a loader resume mid-epoch from {seed, epoch, index} alone.
import { mixSeed, Rng } from '../engine/index.js';

export { Rng, mixSeed };

/** The permutation of 0..n-1 used for one epoch: a pure function of (seed, epoch), which is what
 *  lets a loader resume mid-epoch from {epoch, index} alone. */
export function epochPermutation(n: number, seed: number, epoch: number): Int32Array {
  const order = Array.from({ length: n }, (_, i) => i);
  new Rng(mixSeed(seed, epoch, 0x5eed)).shuffle(order);
  return Int32Array.from(order);
}
