// Box arithmetic on the host, one implementation at two precisions. In float32 (every step rounded
// with Math.fround where torchvision computes in float32, so thresholds flip exactly where
// torchvision's do) it is the detector's host path: model/ runs its data-dependent glue (matching,
// detection NMS, postprocessing) with it, and it is the reference of the RPN's GPU proposal
// selection (model/rpn-proposals.ts), whose ties it defines. In float64 (no rounding) it is the reference of the box kernels (boxes.ts, nms.ts): the
// same expressions in the same order, so the two precisions cannot drift apart.
// Boxes are packed [n, 4] (x1, y1, x2, y2) arrays; widths are x2 - x1 (no +1), as torchvision.

/** BoxCoder weights (wx, wy, ww, wh): torchvision's box head uses (10, 10, 5, 5), its RPN (1, 1, 1, 1). */
export type BoxWeights = readonly [number, number, number, number];

/** torchvision's BoxCoder clamp on dw/dh: log(1000 / 16). */
export const BBOX_XFORM_CLIP = Math.log(1000 / 16);

/** The box functions at one precision; A is the array type they return (Float32Array or Float64Array). */
export interface BoxMath<A extends Float32Array | Float64Array> {
  /** Pairwise IoU [a.length/4, b.length/4] (torchvision.ops.box_iou; NaN for two empty boxes). */
  boxIou(a: ArrayLike<number>, b: ArrayLike<number>): A;
  /** Regression targets of `boxes` relative to `refs` (BoxCoder.encode_single), [n, 4]. */
  encodeBoxes(boxes: ArrayLike<number>, refs: ArrayLike<number>, w: BoxWeights): A;
  /**
   * Boxes from deltas [n, perRef*4] applied to refs [n, 4] (BoxCoder.decode_single), [n, perRef*4];
   * dw, dh clamped above at BBOX_XFORM_CLIP; corners are centre -/+ half size.
   */
  decodeBoxes(deltas: ArrayLike<number>, refs: ArrayLike<number>, w: BoxWeights, perRef?: number): A;
  /** Clips boxes in place to [0, width] x [0, height] (torchvision.ops.clip_boxes_to_image). */
  clipBoxes<T extends A>(boxes: T, height: number, width: number): T;
  /** Indices (ascending) of boxes whose width and height are both >= minSize (remove_small_boxes). */
  keepLargeBoxes(boxes: ArrayLike<number>, minSize: number): number[];
  /**
   * Greedy NMS (torchvision.ops.nms): visit boxes by descending score (ties: lower index first), drop
   * any later box whose IoU with a kept one exceeds the threshold. Kept indices in score order.
   */
  nms(boxes: ArrayLike<number>, scores: ArrayLike<number>, iouThreshold: number, candidates?: readonly number[]): number[];
  /** NMS within groups (classes or levels): boxes of different groups never suppress each other. */
  batchedNms(boxes: ArrayLike<number>, scores: ArrayLike<number>, groups: ArrayLike<number>, iouThreshold: number, candidates?: readonly number[]): number[];
}

function makeBoxMath<A extends Float32Array | Float64Array>(f: (x: number) => number, Arr: new (n: number) => A): BoxMath<A> {
  const boxIou = (a: ArrayLike<number>, b: ArrayLike<number>): A => {
    const n = a.length / 4, m = b.length / 4;
    const out = new Arr(n * m);
    const areaB = new Arr(m);
    for (let j = 0; j < m; j++) areaB[j] = f(f(b[4 * j + 2]! - b[4 * j]!) * f(b[4 * j + 3]! - b[4 * j + 1]!));
    for (let i = 0; i < n; i++) {
      const x1 = a[4 * i]!, y1 = a[4 * i + 1]!, x2 = a[4 * i + 2]!, y2 = a[4 * i + 3]!;
      const areaA = f(f(x2 - x1) * f(y2 - y1));
      for (let j = 0; j < m; j++) {
        const w = Math.max(f(Math.min(x2, b[4 * j + 2]!) - Math.max(x1, b[4 * j]!)), 0);
        const h = Math.max(f(Math.min(y2, b[4 * j + 3]!) - Math.max(y1, b[4 * j + 1]!)), 0);
        const inter = f(w * h);
        out[i * m + j] = f(inter / f(f(areaA + areaB[j]!) - inter));
      }
    }
    return out;
  };

  const encodeBoxes = (boxes: ArrayLike<number>, refs: ArrayLike<number>, [wx, wy, ww, wh]: BoxWeights): A => {
    const n = boxes.length / 4;
    const out = new Arr(n * 4);
    for (let i = 0; i < n; i++) {
      const pw = f(refs[4 * i + 2]! - refs[4 * i]!), ph = f(refs[4 * i + 3]! - refs[4 * i + 1]!);
      const px = f(refs[4 * i]! + f(0.5 * pw)), py = f(refs[4 * i + 1]! + f(0.5 * ph));
      const gw = f(boxes[4 * i + 2]! - boxes[4 * i]!), gh = f(boxes[4 * i + 3]! - boxes[4 * i + 1]!);
      const gx = f(boxes[4 * i]! + f(0.5 * gw)), gy = f(boxes[4 * i + 1]! + f(0.5 * gh));
      // wx * (gx - px) / pw, evaluated left to right as in torchvision.
      out[4 * i] = f(f(f(wx) * f(gx - px)) / pw);
      out[4 * i + 1] = f(f(f(wy) * f(gy - py)) / ph);
      out[4 * i + 2] = f(f(ww) * f(Math.log(f(gw / pw))));
      out[4 * i + 3] = f(f(wh) * f(Math.log(f(gh / ph))));
    }
    return out;
  };

  const decodeBoxes = (deltas: ArrayLike<number>, refs: ArrayLike<number>, [wx, wy, ww, wh]: BoxWeights, perRef = 1): A => {
    const n = refs.length / 4;
    const out = new Arr(n * perRef * 4);
    const clip = f(BBOX_XFORM_CLIP);
    for (let i = 0; i < n; i++) {
      const pw = f(refs[4 * i + 2]! - refs[4 * i]!), ph = f(refs[4 * i + 3]! - refs[4 * i + 1]!);
      const px = f(refs[4 * i]! + f(0.5 * pw)), py = f(refs[4 * i + 1]! + f(0.5 * ph));
      for (let k = 0; k < perRef; k++) {
        const o = 4 * (i * perRef + k);
        const dx = f(deltas[o]! / f(wx)), dy = f(deltas[o + 1]! / f(wy));
        const dw = Math.min(f(deltas[o + 2]! / f(ww)), clip), dh = Math.min(f(deltas[o + 3]! / f(wh)), clip);
        const cx = f(f(dx * pw) + px), cy = f(f(dy * ph) + py);
        const hw = f(f(0.5) * f(f(Math.exp(dw)) * pw)), hh = f(f(0.5) * f(f(Math.exp(dh)) * ph));
        out[o] = f(cx - hw);
        out[o + 1] = f(cy - hh);
        out[o + 2] = f(cx + hw);
        out[o + 3] = f(cy + hh);
      }
    }
    return out;
  };

  const clipBoxes = <T extends A>(boxes: T, height: number, width: number): T => {
    for (let i = 0; i < boxes.length; i += 4) {
      boxes[i] = Math.min(Math.max(boxes[i]!, 0), width);
      boxes[i + 1] = Math.min(Math.max(boxes[i + 1]!, 0), height);
      boxes[i + 2] = Math.min(Math.max(boxes[i + 2]!, 0), width);
      boxes[i + 3] = Math.min(Math.max(boxes[i + 3]!, 0), height);
    }
    return boxes;
  };

  const keepLargeBoxes = (boxes: ArrayLike<number>, minSize: number): number[] => {
    const keep: number[] = [];
    for (let i = 0; i < boxes.length / 4; i++) {
      if (f(boxes[4 * i + 2]! - boxes[4 * i]!) >= minSize && f(boxes[4 * i + 3]! - boxes[4 * i + 1]!) >= minSize) keep.push(i);
    }
    return keep;
  };

  // The boxes are first copied in visiting order with their areas, so the O(n^2) loop reads memory
  // in sequence.
  const nms = (boxes: ArrayLike<number>, scores: ArrayLike<number>, iouThreshold: number, candidates?: readonly number[]): number[] => {
    const order = argsortDesc(scores, candidates);
    const n = order.length;
    const x1 = new Arr(n), y1 = new Arr(n), x2 = new Arr(n), y2 = new Arr(n), area = new Arr(n);
    for (let a = 0; a < n; a++) {
      const i = order[a]!;
      x1[a] = boxes[4 * i]!;
      y1[a] = boxes[4 * i + 1]!;
      x2[a] = boxes[4 * i + 2]!;
      y2[a] = boxes[4 * i + 3]!;
      area[a] = f(f(x2[a]! - x1[a]!) * f(y2[a]! - y1[a]!));
    }
    // A pair that does not overlap has IoU 0 (or NaN for two empty boxes): suppressed only below 0.
    const skipDisjoint = iouThreshold >= 0;
    const removed = new Uint8Array(n);
    const keep: number[] = [];
    for (let a = 0; a < n; a++) {
      if (removed[a]) continue;
      keep.push(order[a]!);
      const ax1 = x1[a]!, ay1 = y1[a]!, ax2 = x2[a]!, ay2 = y2[a]!, areaA = area[a]!;
      for (let b = a + 1; b < n; b++) {
        if (removed[b]) continue;
        const w = Math.max(f(Math.min(ax2, x2[b]!) - Math.max(ax1, x1[b]!)), 0);
        if (w === 0 && skipDisjoint) continue;
        const h = Math.max(f(Math.min(ay2, y2[b]!) - Math.max(ay1, y1[b]!)), 0);
        const inter = f(w * h);
        if (f(inter / f(f(areaA + area[b]!) - inter)) > iouThreshold) removed[b] = 1;
      }
    }
    return keep;
  };

  const batchedNms = (boxes: ArrayLike<number>, scores: ArrayLike<number>, groups: ArrayLike<number>, iouThreshold: number, candidates?: readonly number[]): number[] => {
    const byGroup = new Map<number, number[]>();
    for (const i of candidates ?? Array.from({ length: scores.length }, (_, k) => k)) {
      const g = groups[i]!;
      let list = byGroup.get(g);
      if (!list) byGroup.set(g, (list = []));
      list.push(i);
    }
    const keep: number[] = [];
    for (const list of byGroup.values()) keep.push(...nms(boxes, scores, iouThreshold, list));
    return argsortDesc(scores, keep);
  };

  return { boxIou, encodeBoxes, decodeBoxes, clipBoxes, keepLargeBoxes, nms, batchedNms };
}

/** The detector's host box math: float32, rounding as torchvision does. */
export const boxes32: BoxMath<Float32Array> = makeBoxMath(Math.fround, Float32Array);
/** The box kernels' float64 reference: the same expressions without rounding. */
export const boxes64: BoxMath<Float64Array> = makeBoxMath((x) => x, Float64Array);

/**
 * Indices sorted by descending score, ties by ascending index (a stable sort). NaN scores come
 * first, as in torch.sort(descending=True), so a NaN never scrambles the order of the rest.
 */
export function argsortDesc(scores: ArrayLike<number>, indices?: readonly number[]): number[] {
  const idx = indices ? [...indices] : Array.from({ length: scores.length }, (_, i) => i);
  return idx.sort((a, b) => {
    const x = scores[a]!, y = scores[b]!;
    if (x !== x) return y !== y ? a - b : -1;
    if (y !== y) return 1;
    return y - x || a - b;
  });
}

/**
 * The first k of argsortDesc over the index range [start, start + count): the k best scores in
 * descending order, ties by ascending index. The RPN takes its pre-NMS top 1000-2000 of up to ~10^5
 * anchors per level; a native sort of the values finds the k-th score, and only the k selected are
 * sorted with the comparator (a full comparator sort of every anchor took ~70 ms per R50 image).
 */
export function topKDesc(scores: ArrayLike<number>, start: number, count: number, k: number): number[] {
  if (k >= count) return argsortDesc(scores, Array.from({ length: count }, (_, i) => start + i));
  if (k <= 0) return [];
  const values = new Float64Array(count);
  for (let i = 0; i < count; i++) values[i] = scores[start + i]!;
  values.sort(); // ascending, NaN last: NaN ranks above every number, as in argsortDesc
  const kth = values[count - k]!;
  const picked: number[] = [];
  if (Number.isNaN(kth)) {
    for (let i = start; i < start + count && picked.length < k; i++) if (Number.isNaN(scores[i])) picked.push(i);
    return picked;
  }
  for (let i = start; i < start + count; i++) if (scores[i]! > kth || Number.isNaN(scores[i])) picked.push(i);
  for (let i = start; i < start + count && picked.length < k; i++) if (scores[i] === kth) picked.push(i);
  return argsortDesc(scores, picked);
}
