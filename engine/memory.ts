// memory() and counters(): what the public API reports about GPU memory and GPU work.
import { getBackend, type Counters } from './backend.js';
import type { PoolStats } from './pool.js';

/** GPU memory held by tensors and by the pool. */
export function memory(): PoolStats {
  return getBackend().memory();
}

/**
 * What the engine has asked of the GPU since init(), cumulative: dispatches, submits, buffers,
 * pipelines and bind groups created, and blocking host waits (count and milliseconds). Subtract
 * two snapshots to count a span of work, e.g. one training step.
 */
export function counters(): Counters {
  return getBackend().stats();
}
