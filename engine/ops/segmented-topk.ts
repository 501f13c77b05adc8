// segmentedTopk: torch.topk over every segment of the last dim at once (kernels/segmented-topk.ts),
// in a number of dispatches that does not grow with the number of segments or rows: 3 radix-select
// passes of 2 dispatches, a compaction, the bitonic sort of the [segments, P] selected pairs
// (P = next power of two of the largest k: 1 dispatch up to 512, 6 at 2048) and an output pass.
// argsortRuns: the argsort of rows whose segments are each already sorted (segmentedTopk's output),
// by one merge dispatch instead of a sort.
import {
  topkHistKernel, topkSelectKernel, topkCompactKernel, topkOutputKernel, topkMeta, mergeRunsKernel, TOPK_BINS, TOPK_PASSES,
  TOPK_HIST_UNIFORMS, TOPK_SELECT_UNIFORMS, TOPK_COMPACT_UNIFORMS, TOPK_OUTPUT_UNIFORMS, MERGE_RUNS_MAX, MERGE_RUNS_UNIFORMS,
} from '../../kernels/segmented-topk.js';
import { sortPadded } from '../../kernels/sort.js';
import { grid, WORKGROUP } from '../../kernels/common.js';
import { getBackend } from '../backend.js';
import { Tensor, empty, fromData, shapeStr } from '../tensor.js';
import { contiguous } from './elementwise.js';
import { argsort, recordSelectedValues, sortKeyPairs, type SortResult } from './sort.js';

const kernels = new Map<string, { wgsl: string; entry: string }>();
function cached(key: string, make: () => { wgsl: string; entry: string }) {
  let k = kernels.get(key);
  if (!k) kernels.set(key, (k = make()));
  return k;
}

/**
 * The top-k of every segment of each row: x float32 [N, R], `lengths` the segments' sizes in order
 * (they tile the row, as torch.segment_reduce's lengths), `k` one count for every segment or one per
 * segment, each cut to its segment's length (torchvision's min(pre_nms_top_n, anchors) per level).
 * Returns values [N, C] and int32 indices [N, C] (C = the sum of the cut k's): per row, segment 0's
 * top k, then segment 1's, ..., each as torch.topk(x[n, start:start+length], k, largest=largest)
 * (sorted, equal values in column order, NaN the largest, -0 == +0), indices being columns of the
 * whole row. The values carry a gradient (scattered back to their columns); indices do not.
 */
export function segmentedTopk(x: Tensor, lengths: readonly number[], k: number | readonly number[], largest = true): SortResult {
  const op = 'segmented_topk';
  if (x.dtype !== 'float32' || x.ndim !== 2) throw new Error(`${op}: x must be float32 [N,R], got ${x.dtype}${shapeStr(x.shape)}`);
  const [N, R] = x.shape as [number, number];
  const L = lengths.length;
  if (lengths.some((len) => !Number.isInteger(len) || len < 0) || lengths.reduce((a, c) => a + c, 0) !== R) {
    throw new Error(`${op}: segment lengths ${lengths.join('+')} do not tile a row of ${R} (x ${shapeStr(x.shape)})`);
  }
  const ks = typeof k === 'number' ? lengths.map(() => k) : [...k];
  if (ks.length !== L || ks.some((v) => !Number.isInteger(v) || v < 0)) throw new Error(`${op}: k ${JSON.stringify(k)} must be a non-negative integer or one per segment (${L})`);
  const take = ks.map((v, l) => Math.min(v, lengths[l]!));
  const C = take.reduce((a, c) => a + c, 0);
  const values = empty([N, C]), indices = empty([N, C], 'int32');
  const Kmax = Math.max(0, ...take);
  if (N * C > 0) {
    const label = `${op}(${shapeStr(x.shape)}, ${L} segments, k<=${Kmax})`;
    const S = N * L;
    const { meta, chunks } = topkMeta(N, lengths, take);
    const P = sortPadded(Kmax);
    // The table's upload first: an upload ends the recorded batch, so before x's copy (if any).
    const segs = fromData(new Int32Array(meta.buffer), [meta.length], 'int32');
    const xd = x.isContiguous ? x : contiguous(x);
    const hist = empty([chunks * TOPK_BINS], 'int32');
    const state = empty([S * 4], 'int32');
    const tieBefore = empty([chunks], 'int32');
    const slots = empty([S], 'int32');
    const kv = empty([S * P * 2], 'int32');
    const be = getBackend();
    const descending = largest ? 1 : 0;
    TOPK_PASSES.forEach(([shift, bits], phase) => {
      be.dispatch({
        kernel: cached('hist', topkHistKernel),
        buffers: [xd.storage.buffer, segs.storage.buffer, state.storage.buffer, hist.storage.buffer],
        uniforms: TOPK_HIST_UNIFORMS.pack({ chunks, S, R, xOffset: xd.offset, descending, shift, bits, phase }),
        workgroups: grid(chunks),
        label: `${label} histogram ${phase}`,
      });
      be.dispatch({
        kernel: cached('select', topkSelectKernel),
        buffers: [segs.storage.buffer, hist.storage.buffer, state.storage.buffer, tieBefore.storage.buffer, slots.storage.buffer],
        uniforms: TOPK_SELECT_UNIFORMS.pack({ S, shift, bits, phase, last: phase === TOPK_PASSES.length - 1 ? 1 : 0 }),
        workgroups: grid(S),
        label: `${label} select ${phase}`,
      });
    });
    be.dispatch({
      kernel: cached('compact', topkCompactKernel),
      buffers: [xd.storage.buffer, segs.storage.buffer, state.storage.buffer, tieBefore.storage.buffer, slots.storage.buffer, kv.storage.buffer],
      uniforms: TOPK_COMPACT_UNIFORMS.pack({ chunks, S, R, xOffset: xd.offset, descending, P }),
      workgroups: grid(chunks),
      label: `${label} compact`,
    });
    sortKeyPairs(kv, S, P, label);
    be.dispatch({
      kernel: cached('output', topkOutputKernel),
      buffers: [kv.storage.buffer, xd.storage.buffer, segs.storage.buffer, values.storage.buffer, indices.storage.buffer],
      uniforms: TOPK_OUTPUT_UNIFORMS.pack({ count: N * C, C, L, R, xOffset: xd.offset, P }),
      workgroups: grid(Math.ceil((N * C) / WORKGROUP)),
      label: `${label} output`,
    });
    for (const t of [segs, hist, state, tieBefore, slots, kv]) t.dispose();
    if (xd !== x) xd.dispose();
  }
  recordSelectedValues(op, x, values, indices, C, R);
  return { values, indices };
}

/**
 * torch.argsort(x, dim=-1, descending, stable=True) of x float32 [B, n] whose segments `lengths`
 * (tiling the row) are each already in that order, equal values in column order (as segmentedTopk
 * returns them): one merge dispatch instead of a sort. A row whose segments are not sorted to the
 * last bit gets no meaningful order (not even a permutation); note that the GPU's sigmoid of sorted
 * logits is not always sorted (1-ulp inversions). More than MERGE_RUNS_MAX segments fall back to
 * argsort. int32 [B, n]; no gradient (indices).
 */
export function argsortRuns(x: Tensor, lengths: readonly number[], descending = false): Tensor {
  const op = 'argsort_runs';
  if (x.dtype !== 'float32' || x.ndim !== 2) throw new Error(`${op}: x must be float32 [B,n], got ${x.dtype}${shapeStr(x.shape)}`);
  const [B, n] = x.shape as [number, number];
  if (lengths.some((len) => !Number.isInteger(len) || len < 0) || lengths.reduce((a, c) => a + c, 0) !== n) {
    throw new Error(`${op}: run lengths ${lengths.join('+')} do not tile a row of ${n} (x ${shapeStr(x.shape)})`);
  }
  if (lengths.length > MERGE_RUNS_MAX) return argsort(x, 1, descending);
  const order = empty([B, n], 'int32');
  if (order.size === 0) return order;
  const xd = x.isContiguous ? x : contiguous(x);
  const starts = new Array<number>(MERGE_RUNS_MAX + 1).fill(n);
  lengths.reduce((s, len, l) => ((starts[l] = s), s + len), 0);
  getBackend().dispatch({
    kernel: cached('merge', mergeRunsKernel),
    buffers: [xd.storage.buffer, order.storage.buffer],
    uniforms: MERGE_RUNS_UNIFORMS.pack({ count: B * n, n, L: lengths.length, xOffset: xd.offset, descending: descending ? 1 : 0, starts }),
    workgroups: grid(Math.ceil((B * n) / WORKGROUP)),
    label: `${op}(${shapeStr(x.shape)}, ${lengths.length} runs)`,
  });
  if (xd !== x) xd.dispose();
  return order;
}
