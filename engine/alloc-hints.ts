// Hints for the buffer pool about tensors whose buffers should not follow the usual rule.
//
// Capacity-bounded allocations. A tensor whose row count follows the data (the mask branch's
// positive RoIs, padded to a bucket of rows) has a different size from step to step, and each new
// largest size makes the buffer pool create buffers. Inside withRowCapacity(rows, capacity, fn) a
// tensor with `rows` leading rows gets a buffer sized for `capacity` rows, while its shape and every
// dispatch on it stay at `rows`: all steps then request the same buffer sizes, whatever their rows.
// Gradient nodes recorded inside keep the bound (autograd.ts), so the backward's tensors of those
// rows are sized the same way. A tensor of another leading size is untouched (one that has `rows`
// leading rows by coincidence only gets a larger buffer).

/** The row bound in force: tensors of `rows` leading rows get buffers for `capacity` rows. */
export interface RowCapacity {
  readonly rows: number;
  readonly capacity: number;
}

let current: RowCapacity | null = null;

/** Runs fn with tensors of `rows` leading rows allocated for `capacity` rows (capacity >= rows). */
export function withRowCapacity<T>(bound: RowCapacity | null, fn: () => T): T {
  if (bound && !(bound.capacity >= bound.rows && bound.rows >= 0)) {
    throw new Error(`withRowCapacity: capacity ${bound.capacity} is below the ${bound.rows} rows it bounds`);
  }
  const prev = current;
  current = bound && bound.rows > 0 && bound.capacity > bound.rows ? bound : null;
  try {
    return fn();
  } finally {
    current = prev;
  }
}

/** The bound in force (null outside withRowCapacity): gradient nodes keep it for their backward. */
export function currentRowCapacity(): RowCapacity | null {
  return current;
}

/**
 * Rows of a batch of `rows` items as the bound in force sizes it: its capacity when `rows` is the
 * bounded row count, else `rows`. For work partitions that should not follow the data (the conv
 * weight gradient's split-K count: a split count that followed the rows would change the partial
 * sums' reduction from step to step).
 */
export function capacityRows(rows: number): number {
  return current && rows === current.rows ? current.capacity : rows;
}

/** Elements to allocate for a dense tensor of `shape` (`n` elements) under the bound in force. */
export function allocationElements(shape: readonly number[], n: number): number {
  if (!current || shape.length === 0 || shape[0] !== current.rows) return n;
  return (n / current.rows) * current.capacity;
}

// Persistent allocations: state that outlives the step (optimizer momentum, cached folded norms)
// takes new buffers rather than idle ones from the pool: an idle buffer it took on the first step is
// one the next step needs again and has to create (R50's first SGD step took ~50 such buffers).
let persistentDepth = 0;

/** Runs fn with its tensors allocated in new buffers, not idle ones (for state kept across steps). */
export function persistent<T>(fn: () => T): T {
  persistentDepth++;
  try {
    return fn();
  } finally {
    persistentDepth--;
  }
}

/** True inside persistent(). */
export function isPersistent(): boolean {
  return persistentDepth > 0;
}
