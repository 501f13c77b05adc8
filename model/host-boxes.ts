// Box arithmetic on the host, for the data-dependent glue of detection (matching, sampling,
// proposal filtering, NMS) that torchvision also runs with host synchronisation. Float32 at every
// step where torchvision computes in float32, so thresholds flip exactly where torchvision's do.
// Boxes are packed [n, 4] (x1, y1, x2, y2) Float32Arrays.

const f = Math.fround;

/** Pairwise IoU [a.length/4, b.length/4] (torchvision.ops.box_iou). */
export function boxIou(a: Float32Array, b: Float32Array): Float32Array {
  const n = a.length / 4, m = b.length / 4;
  const out = new Float32Array(n * m);
  const areaB = new Float32Array(m);
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
}

export interface CoderWeights {
  wx: number;
  wy: number;
  ww: number;
  wh: number;
}

/** torchvision's BoxCoder clamp on dw/dh: log(1000 / 16). */
export const BBOX_XFORM_CLIP = Math.log(1000 / 16);

/** Regression targets of `boxes` relative to `refs` (BoxCoder.encode_single), [n, 4]. */
export function encodeBoxes(boxes: Float32Array, refs: Float32Array, w: CoderWeights): Float32Array {
  const n = boxes.length / 4;
  const out = new Float32Array(n * 4);
  for (let i = 0; i < n; i++) {
    const pw = f(refs[4 * i + 2]! - refs[4 * i]!), ph = f(refs[4 * i + 3]! - refs[4 * i + 1]!);
    const px = f(refs[4 * i]! + f(0.5 * pw)), py = f(refs[4 * i + 1]! + f(0.5 * ph));
    const gw = f(boxes[4 * i + 2]! - boxes[4 * i]!), gh = f(boxes[4 * i + 3]! - boxes[4 * i + 1]!);
    const gx = f(boxes[4 * i]! + f(0.5 * gw)), gy = f(boxes[4 * i + 1]! + f(0.5 * gh));
    // wx * (gx - px) / pw, evaluated left to right as in torchvision.
    out[4 * i] = f(f(f(w.wx) * f(gx - px)) / pw);
    out[4 * i + 1] = f(f(f(w.wy) * f(gy - py)) / ph);
    out[4 * i + 2] = f(f(w.ww) * f(Math.log(f(gw / pw))));
    out[4 * i + 3] = f(f(w.wh) * f(Math.log(f(gh / ph))));
  }
  return out;
}

/**
 * Boxes from deltas [n, k*4] applied to refs [n, 4] (BoxCoder.decode_single), [n, k*4].
 * torchvision's decoded corners are centre -/+ half size, in float32.
 */
export function decodeBoxes(deltas: Float32Array, refs: Float32Array, w: CoderWeights, perRef = 1): Float32Array {
  const n = refs.length / 4;
  const out = new Float32Array(n * perRef * 4);
  const clip = f(BBOX_XFORM_CLIP);
  for (let i = 0; i < n; i++) {
    const pw = f(refs[4 * i + 2]! - refs[4 * i]!), ph = f(refs[4 * i + 3]! - refs[4 * i + 1]!);
    const px = f(refs[4 * i]! + f(0.5 * pw)), py = f(refs[4 * i + 1]! + f(0.5 * ph));
    for (let k = 0; k < perRef; k++) {
      const o = 4 * (i * perRef + k);
      const dx = f(deltas[o]! / f(w.wx)), dy = f(deltas[o + 1]! / f(w.wy));
      const dw = Math.min(f(deltas[o + 2]! / f(w.ww)), clip), dh = Math.min(f(deltas[o + 3]! / f(w.wh)), clip);
      const cx = f(f(dx * pw) + px), cy = f(f(dy * ph) + py);
      const hw = f(f(0.5) * f(f(Math.exp(dw)) * pw)), hh = f(f(0.5) * f(f(Math.exp(dh)) * ph));
      out[o] = f(cx - hw);
      out[o + 1] = f(cy - hh);
      out[o + 2] = f(cx + hw);
      out[o + 3] = f(cy + hh);
    }
  }
  return out;
}

/** Clips boxes in place to [0, width] x [0, height]. */
export function clipBoxes(boxes: Float32Array, height: number, width: number): Float32Array {
  for (let i = 0; i < boxes.length; i += 4) {
    boxes[i] = Math.min(Math.max(boxes[i]!, 0), width);
    boxes[i + 1] = Math.min(Math.max(boxes[i + 1]!, 0), height);
    boxes[i + 2] = Math.min(Math.max(boxes[i + 2]!, 0), width);
    boxes[i + 3] = Math.min(Math.max(boxes[i + 3]!, 0), height);
  }
  return boxes;
}

/** Indices (ascending) of boxes whose width and height are both >= minSize. */
export function keepLargeBoxes(boxes: Float32Array, minSize: number): number[] {
  const keep: number[] = [];
  for (let i = 0; i < boxes.length / 4; i++) {
    if (f(boxes[4 * i + 2]! - boxes[4 * i]!) >= minSize && f(boxes[4 * i + 3]! - boxes[4 * i + 1]!) >= minSize) keep.push(i);
  }
  return keep;
}

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

/**
 * Greedy NMS (torchvision.ops.nms): visit boxes by descending score, drop any later box whose IoU
 * with a kept one exceeds the threshold. Returns kept indices in score order. The boxes are first
 * copied in visiting order with their areas, so the O(n^2) loop reads memory in sequence.
 */
export function nms(boxes: Float32Array, scores: ArrayLike<number>, iouThreshold: number, candidates?: readonly number[]): number[] {
  const order = argsortDesc(scores, candidates);
  const n = order.length;
  const x1 = new Float32Array(n), y1 = new Float32Array(n), x2 = new Float32Array(n), y2 = new Float32Array(n), area = new Float32Array(n);
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
}

/** NMS within groups (classes or levels): boxes of different groups never suppress each other. */
export function batchedNms(boxes: Float32Array, scores: ArrayLike<number>, groups: ArrayLike<number>, iouThreshold: number, candidates?: readonly number[]): number[] {
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
}
