// torch.sort / argsort / topk on the GPU (stable bitonic sort, kernels/sort.ts). Any dim is moved
// last and made dense; results come back in the input's layout. Sorted values carry a gradient
// (scattered back to the positions they came from); indices are int32.
import {
  sortInitKernel, sortStepKernel, sortLocalKernel, sortOutputKernel, sortScatterKernel, sortHalveKernel, sortPadded, SORT_BLOCK,
  SORT_INIT_UNIFORMS, SORT_STEP_UNIFORMS, SORT_LOCAL_UNIFORMS, SORT_OUTPUT_UNIFORMS, SORT_SCATTER_UNIFORMS, SORT_HALVE_UNIFORMS,
} from '../../kernels/sort.js';
import { grid, WORKGROUP } from '../../kernels/common.js';
import { getBackend } from '../backend.js';
import { Tensor, empty, shapeStr } from '../tensor.js';
import { record } from '../autograd.js';
import { tidy } from '../scope.js';
import { contiguous } from './elementwise.js';
import { zeros } from './copy.js';
import { normDim, permute } from './view.js';

const kernels = new Map<string, { wgsl: string; entry: string }>();
function cached(key: string, make: () => { wgsl: string; entry: string }) {
  let k = kernels.get(key);
  if (!k) kernels.set(key, (k = make()));
  return k;
}

/**
 * Sorted (rank, index) pairs of each row of dense [rows, n] x, rows padded to P. With `k` <=
 * SORT_BLOCK (a top-k) the rows are cut instead of merged once their blocks are sorted: each round
 * keeps the better half of every pair of blocks (sortHalveKernel) and sorts it, until one block a row
 * is left (P = SORT_BLOCK), its first k the top k. No autodiff.
 */
function sortPairs(x: Tensor, rows: number, n: number, descending: boolean, label: string, k = n): { kv: Tensor; P: number } {
  let P = sortPadded(n);
  let kv = empty([rows * P * 2], 'int32');
  const be = getBackend();
  be.dispatch({
    kernel: cached('init', sortInitKernel),
    buffers: [x.storage.buffer, kv.storage.buffer],
    uniforms: SORT_INIT_UNIFORMS.pack({ count: rows * P, P, n, xOffset: x.offset, descending: descending ? 1 : 0 }),
    workgroups: grid(Math.ceil((rows * P) / WORKGROUP)),
    label: `${label} init`,
  });
  if (k <= SORT_BLOCK) {
    merge(be, kv, rows, P, 'sort', 0, label);
    while (P > SORT_BLOCK) {
      const half = empty([rows * P], 'int32'); // rows * P/2 pairs
      be.dispatch({
        kernel: cached('halve', sortHalveKernel),
        buffers: [kv.storage.buffer, half.storage.buffer],
        uniforms: SORT_HALVE_UNIFORMS.pack({ count: (rows * P) / 2, P }),
        workgroups: grid(Math.ceil((rows * P) / 2 / WORKGROUP)),
        label: `${label} halve P=${P}`,
      });
      kv.dispose();
      kv = half;
      P /= 2;
      // Sort each kept block, in alternating directions again (the first ascending: in the end, the answer).
      merge(be, kv, rows, P, 'merge', SORT_BLOCK, label);
    }
    return { kv, P };
  }
  sortKeyPairs(kv, rows, P, label);
  return { kv, P };
}

/** One in-workgroup pass over every BLOCK of kv: the block sort, or merge stage `stage`. */
function merge(be: ReturnType<typeof getBackend>, kv: Tensor, rows: number, P: number, kind: 'sort' | 'merge', stage: number, label: string): void {
  be.dispatch({ kernel: cached(kind, () => sortLocalKernel(kind)), buffers: [kv.storage.buffer], uniforms: SORT_LOCAL_UNIFORMS.pack({ P, k: stage }), workgroups: grid((rows * P) / SORT_BLOCK), label: `${label} ${kind === 'sort' ? 'block sort' : `merge k=${stage}`}` });
}

/**
 * Sorts each row of kv ([rows, P] (rank, index) pairs as sortInitKernel writes them, P a power of
 * two >= SORT_BLOCK) in place, ascending by (rank, index). No autodiff.
 */
export function sortKeyPairs(kv: Tensor, rows: number, P: number, label: string): void {
  const be = getBackend();
  merge(be, kv, rows, P, 'sort', 0, label);
  for (let stage = 2 * SORT_BLOCK; stage <= P; stage *= 2) {
    for (let j = stage / 2; j >= SORT_BLOCK; j /= 2) {
      be.dispatch({
        kernel: cached('step', sortStepKernel),
        buffers: [kv.storage.buffer],
        uniforms: SORT_STEP_UNIFORMS.pack({ count: (rows * P) / 2, P, k: stage, j }),
        workgroups: grid(Math.ceil((rows * P) / 2 / WORKGROUP)),
        label: `${label} step k=${stage} j=${j}`,
      });
    }
    merge(be, kv, rows, P, 'merge', stage, label);
  }
}

export interface SortResult {
  values: Tensor;
  indices: Tensor;
}

/** Sort + take the first k of each row along the last dim of a dense float32 [.., n] tensor. */
function sortLast(x: Tensor, k: number, descending: boolean, op: string): SortResult {
  const n = x.shape[x.ndim - 1]!;
  const rows = n === 0 ? 0 : x.size / n;
  const outShape = [...x.shape.slice(0, -1), k];
  const values = empty(outShape), indices = empty(outShape, 'int32');
  const label = `${op}(${x.dtype}${shapeStr(x.shape)})`;
  if (values.size > 0) {
    const xd = x.isContiguous ? x : contiguous(x);
    const { kv, P } = sortPairs(xd, rows, n, descending, label, k);
    getBackend().dispatch({
      kernel: cached('out', sortOutputKernel),
      buffers: [kv.storage.buffer, xd.storage.buffer, values.storage.buffer, indices.storage.buffer],
      uniforms: SORT_OUTPUT_UNIFORMS.pack({ count: rows * k, k, P, n, xOffset: xd.offset }),
      workgroups: grid(Math.ceil((rows * k) / WORKGROUP)),
      label: `${label} output`,
    });
    kv.dispose();
    if (xd !== x) xd.dispose();
  }
  recordSelectedValues(op, x, values, indices, k, n);
  return { values, indices };
}

/**
 * Records the backward of values selected from the rows of x (last dim n) at int32 `indices` (k per
 * row, distinct within a row: a sort, a top-k): each gradient goes back to its column, zeros elsewhere.
 */
export function recordSelectedValues(op: string, x: Tensor, values: Tensor, indices: Tensor, k: number, n: number): void {
  record(op, [x], values, [indices], (g, [idx]) => {
    const gx = zeros(x.shape);
    if (g.size === 0) return [gx];
    const gd = g.isContiguous && g.offset === 0 ? g : contiguous(g);
    getBackend().dispatch({
      kernel: cached('scatter', sortScatterKernel),
      buffers: [gd.storage.buffer, idx!.storage.buffer, gx.storage.buffer],
      uniforms: SORT_SCATTER_UNIFORMS.pack({ count: g.size, k, n }),
      workgroups: grid(Math.ceil(g.size / WORKGROUP)),
      label: `${op} backward`,
    });
    if (gd !== g) gd.dispose();
    return [gx];
  });
}

/** Runs fn over x with `dim` moved last, and moves the results' last dim back. */
function alongDim(x: Tensor, dim: number, op: string, fn: (t: Tensor) => SortResult): SortResult {
  if (x.dtype !== 'float32') throw new Error(`${op}: needs float32, got ${x.dtype}${shapeStr(x.shape)}`);
  if (x.ndim === 0) throw new Error(`${op}: needs at least one dimension`);
  const d = normDim(dim, x.ndim);
  if (d === x.ndim - 1) return fn(x);
  const perm = [...x.shape.keys()].filter((i) => i !== d).concat([d]);
  const inv = perm.map((_, i) => perm.indexOf(i));
  return tidy(() => {
    const r = fn(permute(x, perm));
    return { values: contiguous(permute(r.values, inv)), indices: contiguous(permute(r.indices, inv)) };
  });
}

/** torch.sort(x, dim=-1, descending=False, stable=True): values and int32 indices. */
export function sort(x: Tensor, dim = -1, descending = false): SortResult {
  return alongDim(x, dim, 'sort', (t) => sortLast(t, t.shape[t.ndim - 1]!, descending, 'sort'));
}

/** torch.argsort(x, dim=-1, descending=False, stable=True): int32 indices. */
export function argsort(x: Tensor, dim = -1, descending = false): Tensor {
  return tidy(() => sort(x, dim, descending).indices);
}

/**
 * torch.topk(x, k, dim=-1, largest=True, sorted=True): the k largest (smallest) along dim, in
 * order; equal values keep the lower index first.
 */
export function topk(x: Tensor, k: number, dim = -1, largest = true): SortResult {
  return alongDim(x, dim, 'topk', (t) => {
    const n = t.shape[t.ndim - 1]!;
    if (!Number.isInteger(k) || k < 0 || k > n) throw new Error(`topk: k = ${k} is out of range for a dimension of size ${n} (shape ${shapeStr(x.shape)})`);
    return sortLast(t, k, largest, 'topk');
  });
}
