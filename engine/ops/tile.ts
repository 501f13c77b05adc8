// Packing several feature maps into one canvas and reading windows of a canvas back out, so a
// layer shared by all of them (an RPN head over the pyramid levels) runs as one dispatch per op
// instead of one per map. Both are pure copies; their gradients are the reverse copies.
import { Tensor, empty, shapeStr } from '../tensor.js';
import { record } from '../autograd.js';
import { copyManyInto, fillInPlace } from './copy.js';

/** A window of a [N, C, H, W] canvas: rows top..top+height, columns left..left+width. */
export interface Window {
  top: number;
  left: number;
  height: number;
  width: number;
}

/** The [N, C, h, w] view of window `w` of a dense-in-H,W tensor t. */
function windowView(t: Tensor, w: Window): Tensor {
  const [sN, sC, sH, sW] = t.strides as [number, number, number, number];
  return t.view([t.shape[0]!, t.shape[1]!, w.height, w.width], [sN, sC, sH, sW], t.offset + w.top * sH + w.left * sW);
}

function checkWindows(op: string, shape: readonly number[], windows: readonly Window[]): void {
  const [, , H, W] = shape as [number, number, number, number];
  windows.forEach((w, i) => {
    const ok = [w.top, w.left, w.height, w.width].every((v) => Number.isInteger(v) && v >= 0) && w.top + w.height <= H && w.left + w.width <= W;
    if (!ok) throw new Error(`${op}: window ${i} (top ${w.top}, left ${w.left}, ${w.height}x${w.width}) lies outside the ${H}x${W} canvas`);
  });
}

/**
 * Places each [N, C, h_i, w_i] map at its window's (top, left) on a zero [N, C, height, width]
 * canvas (windows must not overlap; the gaps stay 0). Gradient: each map gets its window of the
 * canvas gradient (a view, no copy).
 */
export function tile2d(maps: readonly Tensor[], windows: readonly Window[], height: number, width: number): Tensor {
  const op = 'tile2d';
  if (maps.length === 0 || maps.length !== windows.length) throw new Error(`${op}: ${maps.length} maps for ${windows.length} windows`);
  const [N, C] = maps[0]!.shape as [number, number];
  maps.forEach((m, i) => {
    const w = windows[i]!;
    if (m.ndim !== 4 || m.dtype !== 'float32' || m.shape[0] !== N || m.shape[1] !== C || m.shape[2] !== w.height || m.shape[3] !== w.width) {
      throw new Error(`${op}: map ${i} ${m.dtype}${shapeStr(m.shape)} does not fit window ${w.height}x${w.width} of a float32 [${N},${C},H,W] canvas`);
    }
  });
  const out = fillInPlace(empty([N, C, height, width]), 0);
  checkWindows(op, out.shape, windows);
  const regions = maps.map((_, i) => windowView(out, windows[i]!));
  copyManyInto(regions.map((r, i) => [r, maps[i]!] as const));
  regions.forEach((r) => r.dispose());
  record(op, [...maps], out, [], (g) => windows.map((w) => windowView(g, w)));
  return out;
}

/**
 * The windows of a [N, C, H, W] canvas, each flattened over its pixels and joined:
 * [N, C, sum(h_i * w_i)] (the windows' copies batched: copyManyInto). Gradient: a zero canvas with each window's
 * gradient copied back in.
 */
export function flattenWindows(canvas: Tensor, windows: readonly Window[]): Tensor {
  const op = 'flatten_windows';
  if (canvas.ndim !== 4 || canvas.dtype !== 'float32') throw new Error(`${op}: canvas must be float32 [N, C, H, W], got ${canvas.dtype}${shapeStr(canvas.shape)}`);
  checkWindows(op, canvas.shape, windows);
  const [N, C] = canvas.shape as [number, number];
  const starts: number[] = [];
  let total = 0;
  for (const w of windows) {
    starts.push(total);
    total += w.height * w.width;
  }
  const out = empty([N, C, total]);
  // Window i's part of out, as a [N, C, h, w] view (its pixels are consecutive within each row of out).
  const part = (t: Tensor, i: number): Tensor => {
    const w = windows[i]!;
    return t.view([N, C, w.height, w.width], [t.strides[0]!, t.strides[1]!, w.width * t.strides[2]!, t.strides[2]!], t.offset + starts[i]! * t.strides[2]!);
  };
  const fwd = windows.map((w, i) => [part(out, i), windowView(canvas, w)] as const);
  copyManyInto(fwd);
  fwd.forEach(([dst, src]) => (dst.dispose(), src.dispose()));
  record(op, [canvas], out, [], (g) => {
    const gc = fillInPlace(empty(canvas.shape), 0);
    const bwd = windows.map((w, i) => [windowView(gc, w), part(g, i)] as const);
    copyManyInto(bwd);
    bwd.forEach(([dst, src]) => (dst.dispose(), src.dispose()));
    return [gc];
  });
  return out;
}
