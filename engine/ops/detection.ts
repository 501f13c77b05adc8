// Detection box ops (torchvision.ops.boxes, torchvision's BoxCoder) and NMS. Boxes are float32
// [N, 4] (x1, y1, x2, y2). None of these carries a gradient: torchvision uses them on detached
// proposals and targets. Ops whose result size depends on the data (nms, remove_small_boxes) are
// async: they read a little back from the GPU.
import { boxIouKernel, encodeKernel, decodeKernel, clipKernel, BBOX_XFORM_CLIP, type BoxWeights } from '../../kernels/boxes.js';
import { BOX_IOU_UNIFORMS, BOX_ENCODE_UNIFORMS, BOX_DECODE_UNIFORMS, BOX_CLIP_UNIFORMS } from '../../kernels/boxes.js';
import { nmsMaskKernel, nmsGreedyKernel, greedyFromMask, NMS_BLOCK, NMS_UNIFORMS, NMS_GREEDY_UNIFORMS, NMS_GREEDY_MAX_BOXES } from '../../kernels/nms.js';
import { grid, WORKGROUP } from '../../kernels/common.js';
import { getBackend } from '../backend.js';
import { Tensor, empty, fromData, shapeStr } from '../tensor.js';
import { full, zeros } from './copy.js';
import { noGrad } from '../autograd.js';
import { tidy } from '../scope.js';
import { add, cast, elementwise as ew, mul, denseView } from './elementwise.js';
import { reduceRaw } from './reduce.js';
import { reshape, slice, unsqueeze } from './view.js';
import { argsort } from './sort.js';
import { argsortRuns } from './segmented-topk.js';

const kernels = new Map<string, { wgsl: string; entry: string }>();
function cached(key: string, make: () => { wgsl: string; entry: string }) {
  let k = kernels.get(key);
  if (!k) kernels.set(key, (k = make()));
  return k;
}

function checkBoxes(op: string, b: Tensor, name = 'boxes'): void {
  if (b.dtype !== 'float32' || b.ndim !== 2 || b.shape[1] !== 4) throw new Error(`${op}: ${name} must be float32 [N,4], got ${b.dtype}${shapeStr(b.shape)}`);
}

/** torchvision.ops.box_area: (x2 - x1) * (y2 - y1), [N]. */
export function boxArea(boxes: Tensor): Tensor {
  checkBoxes('box_area', boxes);
  return tidy(() => noGrad(() => reshape(mul(ew('sub', [slice(boxes, 1, 2, 3), slice(boxes, 1, 0, 1)]), ew('sub', [slice(boxes, 1, 3, 4), slice(boxes, 1, 1, 2)])), [-1])));
}

/** torchvision.ops.box_iou: [N, M] IoU matrix (NaN where both boxes have zero area). */
export function boxIou(boxes1: Tensor, boxes2: Tensor): Tensor {
  checkBoxes('box_iou', boxes1, 'boxes1');
  checkBoxes('box_iou', boxes2, 'boxes2');
  const N = boxes1.shape[0]!, M = boxes2.shape[0]!;
  const out = empty([N, M]);
  if (out.size === 0) return out;
  const a = denseView(boxes1), b = denseView(boxes2);
  getBackend().dispatch({
    kernel: cached('iou', boxIouKernel),
    buffers: [a.storage.buffer, b.storage.buffer, out.storage.buffer],
    uniforms: BOX_IOU_UNIFORMS.pack({ count: N * M, M, aOffset: a.offset, bOffset: b.offset }),
    workgroups: grid(Math.ceil((N * M) / WORKGROUP)),
    label: `box_iou(${shapeStr(boxes1.shape)}, ${shapeStr(boxes2.shape)})`,
  });
  a.dispose();
  b.dispose();
  return out;
}

/**
 * BoxCoder(weights).encode_single(reference_boxes, proposals): regression targets [N, 4] of the
 * matched (ground-truth) boxes relative to the proposals.
 */
export function encodeBoxes(referenceBoxes: Tensor, proposals: Tensor, weights: BoxWeights): Tensor {
  checkBoxes('encode_boxes', referenceBoxes, 'reference_boxes');
  checkBoxes('encode_boxes', proposals, 'proposals');
  if (referenceBoxes.shape[0] !== proposals.shape[0]) throw new Error(`encode_boxes: ${shapeStr(referenceBoxes.shape)} reference boxes for ${shapeStr(proposals.shape)} proposals`);
  const N = proposals.shape[0]!;
  const out = empty([N, 4]);
  if (N === 0) return out;
  const g = denseView(referenceBoxes), p = denseView(proposals);
  getBackend().dispatch({
    kernel: cached('encode', encodeKernel),
    buffers: [g.storage.buffer, p.storage.buffer, out.storage.buffer],
    uniforms: BOX_ENCODE_UNIFORMS.pack({ count: N, gtOffset: g.offset, prOffset: p.offset, wx: weights[0], wy: weights[1], ww: weights[2], wh: weights[3] }),
    workgroups: grid(Math.ceil(N / WORKGROUP)),
    label: `encode_boxes(${shapeStr(proposals.shape)})`,
  });
  g.dispose();
  p.dispose();
  return out;
}

/**
 * BoxCoder(weights).decode_single(rel_codes, boxes): rel_codes [N, 4C] (C boxes per row, e.g. one per class)
 * applied to boxes [N, 4] -> [N, 4C]; dw, dh clamped above at log(1000/16).
 */
export function decodeBoxes(relCodes: Tensor, boxes: Tensor, weights: BoxWeights, clip = BBOX_XFORM_CLIP): Tensor {
  checkBoxes('decode_boxes', boxes);
  if (relCodes.dtype !== 'float32' || relCodes.ndim !== 2 || relCodes.shape[1]! % 4 !== 0 || relCodes.shape[0] !== boxes.shape[0]) {
    throw new Error(`decode_boxes: rel_codes must be float32 [N,4C] with N = ${boxes.shape[0]} boxes, got ${relCodes.dtype}${shapeStr(relCodes.shape)}`);
  }
  const N = boxes.shape[0]!, C = relCodes.shape[1]! / 4;
  const out = empty([N, 4 * C]);
  if (out.size === 0) return out;
  const r = denseView(relCodes), b = denseView(boxes);
  getBackend().dispatch({
    kernel: cached('decode', decodeKernel),
    buffers: [r.storage.buffer, b.storage.buffer, out.storage.buffer],
    uniforms: BOX_DECODE_UNIFORMS.pack({
      count: N * C,
      C,
      codesOffset: r.offset,
      boxesOffset: b.offset,
      wx: weights[0],
      wy: weights[1],
      ww: weights[2],
      wh: weights[3],
      clip,
    }),
    workgroups: grid(Math.ceil((N * C) / WORKGROUP)),
    label: `decode_boxes(${shapeStr(relCodes.shape)}, ${shapeStr(boxes.shape)})`,
  });
  r.dispose();
  b.dispose();
  return out;
}

/** torchvision.ops.clip_boxes_to_image(boxes [..., 2k], size [height, width]). */
export function clipBoxesToImage(boxes: Tensor, size: readonly [number, number]): Tensor {
  if (boxes.dtype !== 'float32' || boxes.ndim === 0 || boxes.shape[boxes.ndim - 1]! % 2 !== 0) {
    throw new Error(`clip_boxes_to_image: boxes must be float32 [..., 2k], got ${boxes.dtype}${shapeStr(boxes.shape)}`);
  }
  const out = empty(boxes.shape);
  if (out.size === 0) return out;
  const x = denseView(boxes);
  getBackend().dispatch({
    kernel: cached('clip', clipKernel),
    buffers: [x.storage.buffer, out.storage.buffer],
    uniforms: BOX_CLIP_UNIFORMS.pack({ count: out.size, cols: boxes.shape[boxes.ndim - 1]!, offset: x.offset, width: size[1], height: size[0] }),
    workgroups: grid(Math.ceil(out.size / WORKGROUP)),
    label: `clip_boxes_to_image(${shapeStr(boxes.shape)}, [${size.join(',')}])`,
  });
  x.dispose();
  return out;
}

/** torchvision.ops.remove_small_boxes: int32 indices of the boxes with width and height >= minSize. */
export async function removeSmallBoxes(boxes: Tensor, minSize: number): Promise<Tensor> {
  checkBoxes('remove_small_boxes', boxes);
  if (boxes.shape[0] === 0) return empty([0], 'int32');
  const ok = tidy(() =>
    noGrad(() => {
      const ws = ew('sub', [slice(boxes, 1, 2, 3), slice(boxes, 1, 0, 1)]);
      const hs = ew('sub', [slice(boxes, 1, 3, 4), slice(boxes, 1, 1, 2)]);
      return ew('logical_and', [ew('ge', [ws, minSize]), ew('ge', [hs, minSize])]);
    }),
  );
  const flags = await ok.data();
  ok.dispose();
  const keep: number[] = [];
  flags.forEach((f, i) => f && keep.push(i));
  return fromData(keep, [keep.length], 'int32');
}

/**
 * torchvision.ops.nms(boxes, scores, iou_threshold): int32 indices of the kept boxes in decreasing
 * score order (equal scores: lower index first). A box is suppressed by a kept higher-scored box when
 * their IoU is > iou_threshold (exactly at the threshold is kept).
 */
export async function nms(boxes: Tensor, scores: Tensor, iouThreshold: number): Promise<Tensor> {
  checkBoxes('nms', boxes);
  if (scores.dtype !== 'float32' || scores.ndim !== 1 || scores.shape[0] !== boxes.shape[0]) {
    throw new Error(`nms: scores must be float32 [${boxes.shape[0]}], got ${scores.dtype}${shapeStr(scores.shape)}`);
  }
  const n = boxes.shape[0]!;
  if (n === 0) return empty([0], 'int32');
  const blocks = Math.ceil(n / NMS_BLOCK);
  const { order, mask } = tidy(() =>
    noGrad(() => {
      const order = argsort(scores, 0, true);
      const b = denseView(boxes);
      const mask = empty([n * blocks * 2], 'int32');
      getBackend().dispatch({
        kernel: cached('nms', () => nmsMaskKernel()),
        buffers: [b.storage.buffer, order.storage.buffer, mask.storage.buffer],
        uniforms: NMS_UNIFORMS.pack({ n, colBlocks: blocks, boxesOffset: b.offset, groupsOffset: 0, thr: iouThreshold }),
        workgroups: [blocks, blocks, 1],
        label: `nms(${shapeStr(boxes.shape)})`,
      });
      return { order, mask };
    }),
  );
  const [o, m] = await Promise.all([order.data(), mask.data()]);
  order.dispose();
  mask.dispose();
  const keep = greedyFromMask(new Uint32Array(m.buffer, m.byteOffset, m.length), n).map((pos) => o[pos]!);
  return fromData(keep, [keep.length], 'int32');
}

/**
 * torchvision.ops.batched_nms(boxes, scores, idxs, iou_threshold): NMS within each category idxs
 * (int32 or float32 [N]), by torchvision's coordinate trick: every box is shifted by
 * idxs * (max coordinate + 1) so boxes of different categories cannot overlap.
 */
export async function batchedNms(boxes: Tensor, scores: Tensor, idxs: Tensor, iouThreshold: number): Promise<Tensor> {
  checkBoxes('batched_nms', boxes);
  if (idxs.ndim !== 1 || idxs.shape[0] !== boxes.shape[0]) throw new Error(`batched_nms: idxs must be [${boxes.shape[0]}], got ${idxs.dtype}${shapeStr(idxs.shape)}`);
  if (boxes.shape[0] === 0) return empty([0], 'int32');
  const shifted = tidy(() =>
    noGrad(() => {
      const maxCoordinate = reduceRaw(boxes, 'max', undefined);
      const offsets = mul(cast(idxs, 'float32'), add(maxCoordinate, 1));
      return add(boxes, unsqueeze(offsets, 1));
    }),
  );
  try {
    return await nms(shifted, scores, iouThreshold);
  } finally {
    shifted.dispose();
  }
}

/**
 * batched_nms on each row of a batch at a fixed capacity, with nothing read back (a training step
 * can select its proposals without waiting for the GPU): boxes [B, n, 4], scores [B, n], idxs [B, n]
 * (int32 categories: boxes of different categories never suppress each other) and valid [B, n]
 * (int32 or bool, nonzero = take part: an invalid box is neither kept nor suppresses). Returns keep
 * [B, k] (int32: per row, the kept boxes' indices in decreasing score order, equal scores lower index
 * first, as batched_nms(...)[:k] on the valid boxes; -1 past the row's count) and count [B] (int32).
 * `sortedRuns`, when given, are the lengths of segments tiling each row whose scores are already in
 * descending order to the last bit (equal scores in index order; e.g. segmentedTopk's values): the
 * score order then comes from one merge (argsortRuns) instead of a full sort.
 */
export function batchedNmsPadded(boxes: Tensor, scores: Tensor, idxs: Tensor, valid: Tensor, iouThreshold: number, k: number, sortedRuns?: readonly number[]): { keep: Tensor; count: Tensor } {
  const op = 'batched_nms_padded';
  if (boxes.dtype !== 'float32' || boxes.ndim !== 3 || boxes.shape[2] !== 4) throw new Error(`${op}: boxes must be float32 [B,n,4], got ${boxes.dtype}${shapeStr(boxes.shape)}`);
  const [B, n] = boxes.shape as [number, number];
  const rowShape = (t: Tensor): boolean => t.ndim === 2 && t.shape[0] === B && t.shape[1] === n;
  if (scores.dtype !== 'float32' || !rowShape(scores)) throw new Error(`${op}: scores must be float32 [${B},${n}], got ${scores.dtype}${shapeStr(scores.shape)}`);
  if (idxs.dtype !== 'int32' || !rowShape(idxs)) throw new Error(`${op}: idxs must be int32 [${B},${n}], got ${idxs.dtype}${shapeStr(idxs.shape)}`);
  if (valid.dtype === 'float32' || !rowShape(valid)) throw new Error(`${op}: valid must be int32 or bool [${B},${n}], got ${valid.dtype}${shapeStr(valid.shape)}`);
  if (!Number.isInteger(k) || k < 0) throw new Error(`${op}: capacity k = ${k} must be a non-negative integer`);
  if (n > NMS_GREEDY_MAX_BOXES) throw new Error(`${op}: ${n} boxes per row, more than the ${NMS_GREEDY_MAX_BOXES} the GPU greedy pass holds`);
  const keep = empty([B, k], 'int32');
  const count = empty([B], 'int32');
  if (B === 0) return { keep, count };
  if (n === 0 || k === 0) {
    keep.dispose();
    count.dispose();
    return { keep: full([B, k], -1, 'int32'), count: zeros([B], 'int32') };
  }
  const blocks = Math.ceil(n / NMS_BLOCK);
  tidy(() =>
    noGrad(() => {
      const order = sortedRuns ? argsortRuns(scores, sortedRuns, true) : argsort(scores, 1, true);
      const b = denseView(boxes), g = denseView(idxs), v = denseView(valid);
      const mask = empty([B * n * blocks * 2], 'int32');
      const be = getBackend();
      be.dispatch({
        kernel: cached('nms-grouped', () => nmsMaskKernel(true)),
        buffers: [b.storage.buffer, order.storage.buffer, mask.storage.buffer, g.storage.buffer],
        uniforms: NMS_UNIFORMS.pack({ n, colBlocks: blocks, boxesOffset: b.offset, groupsOffset: g.offset, thr: iouThreshold }),
        workgroups: [blocks, blocks, B],
        label: `${op}(${shapeStr(boxes.shape)}) mask`,
      });
      // The removed-bits array is sized by powers of two, so a few kernels serve every n.
      let words = 64;
      while (words < 2 * blocks) words *= 2;
      be.dispatch({
        kernel: cached(`nms-greedy-${words}`, () => nmsGreedyKernel(words)),
        buffers: [mask.storage.buffer, order.storage.buffer, v.storage.buffer, keep.storage.buffer, count.storage.buffer],
        uniforms: NMS_GREEDY_UNIFORMS.pack({ n, colBlocks: blocks, k, validOffset: v.offset }),
        workgroups: [B],
        label: `${op}(${shapeStr(boxes.shape)}, k=${k}) greedy`,
      });
      for (const t of [b, g, v]) t.dispose();
    }),
  );
  return { keep, count };
}
