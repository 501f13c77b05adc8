// Reverse-mode autodiff on a tape of GradNodes. An op records a node when grad mode is on and
// one of its inputs requires grad; the node keeps the tensors its backward rule needs (its own
// references, so the user may dispose the originals). backward() walks the graph in reverse
// topological order, accumulates into leaves' .grad, and frees the nodes it used.
import { Tensor, shapeStr } from './tensor.js';
import { keep, tidy, trackNode, untrackNode } from './scope.js';
import { currentRowCapacity, withRowCapacity, type RowCapacity } from './alloc-hints.js';

let gradEnabled = true;

export function isGradEnabled(): boolean {
  return gradEnabled;
}

/** Runs fn without recording a graph (inference, optimizer updates, backward rules). */
export function noGrad<T>(fn: () => T): T {
  const prev = gradEnabled;
  gradEnabled = false;
  try {
    return fn();
  } finally {
    gradEnabled = prev;
  }
}

export type BackwardFn = (gradOutput: Tensor, saved: Tensor[]) => (Tensor | null)[];

export class GradNode {
  released = false;
  /** The row capacity in force when the op ran: its backward's tensors are sized the same way. */
  readonly capacity: RowCapacity | null = currentRowCapacity();
  constructor(
    readonly op: string,
    /** The op's inputs, in order (not owned: only their requiresGrad/node/grad are used). */
    readonly inputs: Tensor[],
    /** Tensors the backward rule reads (owned views, freed by release()). */
    readonly saved: Tensor[],
    readonly backward: BackwardFn,
  ) {
    trackNode(this);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    untrackNode(this);
    for (const t of this.saved) t.dispose();
  }
}

/** Own view of t for a node to keep (untracked by scopes; the storage gains a reference). */
function saveView(t: Tensor): Tensor {
  return keep(t.view(t.shape, t.strides, t.offset));
}

/**
 * Connects `output` to its inputs in the graph, if any input requires grad and grad mode is on.
 * `save` lists the tensors (inputs or outputs) that `backward` will receive, in order.
 */
export function record(op: string, inputs: Tensor[], output: Tensor | Tensor[], save: Tensor[], backward: BackwardFn): void {
  if (!gradEnabled || !inputs.some((t) => t.requiresGrad)) return;
  const outputs = Array.isArray(output) ? output : [output];
  if (outputs.length !== 1) throw new Error(`internal: ${op} records a node for ${outputs.length} outputs; split it`);
  const out = outputs[0]!;
  if (out.dtype !== 'float32') return;
  out.node = new GradNode(op, inputs, save.map(saveView), backward);
  out.requiresGrad = true;
}

// Gradient arithmetic is provided by ops (add, sum-to-shape) to avoid an import cycle.
export interface GradMath {
  add(a: Tensor, b: Tensor): Tensor;
  /** (a + b) + c. */
  add3(a: Tensor, b: Tensor, c: Tensor): Tensor;
  onesLike(t: Tensor): Tensor;
}
let math: GradMath | undefined;
export function registerGradMath(m: GradMath): void {
  math = m;
}

/**
 * A tensor's gradient contributions so far: their running sum and at most one not yet added, so
 * contributions are summed three at a time ((a + b) + c: the same rounding as adding them one by
 * one, in half the dispatches; a shared RPN head's weights get one per pyramid level).
 */
interface Contributions {
  sum: Tensor;
  pending: Tensor | null;
}

function accumulate(map: Map<Tensor, Contributions>, t: Tensor, g: Tensor): void {
  const prev = map.get(t);
  if (!prev) {
    map.set(t, { sum: g, pending: null });
  } else if (!prev.pending) {
    prev.pending = g;
  } else {
    const s = math!.add3(prev.sum, prev.pending, g);
    for (const x of [prev.sum, prev.pending, g]) x.dispose();
    map.set(t, { sum: s, pending: null });
  }
}

/** The total of a tensor's contributions. */
function settle(c: Contributions): Tensor {
  if (!c.pending) return c.sum;
  const s = math!.add(c.sum, c.pending);
  c.sum.dispose();
  c.pending.dispose();
  return s;
}

export interface BackwardOptions {
  /** Gradient of the output; defaults to 1 for a scalar. */
  grad?: Tensor;
  /** Keep the graph so backward() can run again through it. */
  retainGraph?: boolean;
  /**
   * Called once per leaf as soon as its gradient for this backward is complete (in reverse
   * topological order, before the rest of the backward is recorded): data-parallel training starts
   * copying and reducing early gradients while the GPU computes the others (PyTorch DDP's hooks).
   */
  onLeafGrad?: (leaf: Tensor) => void;
}

/** Computes d(output)/d(leaf) for every leaf that requires grad, adding into leaf.grad. */
export function backward(output: Tensor, opts: BackwardOptions = {}): void {
  if (!output.requiresGrad) throw new Error(`backward(): ${output} does not require grad (no input had requiresGrad = true)`);
  if (!opts.grad && output.size !== 1) {
    throw new Error(`backward() without a gradient needs a scalar output, got shape ${shapeStr(output.shape)}`);
  }
  // Topological order of the nodes reachable from output (iterative DFS: graphs can be deep).
  const order: Tensor[] = [];
  const seen = new Set<Tensor>();
  const stack: [Tensor, number][] = [[output, 0]];
  while (stack.length) {
    const top = stack[stack.length - 1]!;
    const [t, i] = top;
    if (i === 0) {
      if (seen.has(t)) {
        stack.pop();
        continue;
      }
      seen.add(t);
    }
    const inputs = t.node?.inputs ?? [];
    if (i < inputs.length) {
      top[1]++;
      const next = inputs[i]!;
      if (next.requiresGrad && !seen.has(next)) stack.push([next, 0]);
    } else {
      stack.pop();
      order.push(t);
    }
  }
  for (const t of order) {
    if (t.node?.released) throw new Error(`backward(): the graph through ${t.node.op} was already freed (use retainGraph to run backward twice)`);
  }

  noGrad(() => {
    const grads = new Map<Tensor, Contributions>();
    accumulate(grads, output, opts.grad ? opts.grad.view(opts.grad.shape, opts.grad.strides, opts.grad.offset) : math!.onesLike(output));
    for (let k = order.length - 1; k >= 0; k--) {
      const t = order[k]!;
      const c = grads.get(t);
      if (!c) continue;
      grads.delete(t);
      const g = settle(c);
      if (!t.node) {
        // A leaf: accumulate into .grad, which outlives every scope.
        if (t.grad) {
          const sum = math!.add(t.grad, g);
          t.grad.dispose();
          g.dispose();
          t.grad = keep(sum);
        } else {
          t.grad = keep(g);
        }
        opts.onLeafGrad?.(t);
        continue;
      }
      const node = t.node;
      // Rules may pass g through or return one tensor for two inputs: give each use its own view.
      const owned = new Set<Tensor>();
      const inputGrads = tidy(() => withRowCapacity(node.capacity, () => node.backward(g, node.saved))).map((ig) => {
        if (!ig) return ig;
        const mine = ig === g || owned.has(ig) ? ig.view(ig.shape, ig.strides, ig.offset) : ig;
        owned.add(mine);
        return mine;
      });
      g.dispose();
      node.inputs.forEach((input, i) => {
        const ig = inputGrads[i];
        if (!ig) return;
        if (!input.requiresGrad) {
          ig.dispose();
          return;
        }
        if (ig.shape.length !== input.shape.length || ig.shape.some((d, j) => d !== input.shape[j])) {
          throw new Error(`internal: ${node.op} backward gave grad ${shapeStr(ig.shape)} for input ${shapeStr(input.shape)}`);
        }
        accumulate(grads, input, ig);
      });
      if (!opts.retainGraph) node.release();
    }
    for (const c of grads.values()) {
      c.sum.dispose();
      c.pending?.dispose();
    }
  });
}
