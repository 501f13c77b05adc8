// memory(): what the public API reports about GPU memory.
import { getBackend } from './backend.js';
import type { PoolStats } from './pool.js';

/** GPU memory held by tensors and by the pool. */
export function memory(): PoolStats {
  return getBackend().memory();
}
