// The run's plot as a PNG, drawn into an RGB buffer here (no plotting library): on the left the
// training losses per iteration on a log scale (total in black, each term in its colour, smoothed
// over a window), on the right box and mask AP at each evaluation. Labels use a 3x5 pixel font.
import { encodePng } from '../data/image.js';
import { LOSS_TERMS } from '../model/maskrcnn.js';
import type { EvalRecord, IterRecord, MetricsRecord } from './progress.js';

type Rgb = readonly [number, number, number];

// 3x5 glyphs, rows top to bottom, 3 bits each (MSB = left column).
const FONT: Record<string, number[]> = {
  '0': [7, 5, 5, 5, 7], '1': [2, 6, 2, 2, 7], '2': [7, 1, 7, 4, 7], '3': [7, 1, 7, 1, 7], '4': [5, 5, 7, 1, 1],
  '5': [7, 4, 7, 1, 7], '6': [7, 4, 7, 5, 7], '7': [7, 1, 1, 2, 2], '8': [7, 5, 7, 5, 7], '9': [7, 5, 7, 1, 7],
  '.': [0, 0, 0, 0, 2], '-': [0, 0, 7, 0, 0], ' ': [0, 0, 0, 0, 0], '_': [0, 0, 0, 0, 7], ':': [0, 2, 0, 2, 0],
  a: [2, 5, 7, 5, 5], b: [6, 5, 6, 5, 6], c: [7, 4, 4, 4, 7], d: [6, 5, 5, 5, 6], e: [7, 4, 6, 4, 7], f: [7, 4, 6, 4, 4],
  g: [7, 4, 5, 5, 7], h: [5, 5, 7, 5, 5], i: [7, 2, 2, 2, 7], j: [1, 1, 1, 5, 7], k: [5, 5, 6, 5, 5], l: [4, 4, 4, 4, 7],
  m: [5, 7, 7, 5, 5], n: [6, 5, 5, 5, 5], o: [7, 5, 5, 5, 7], p: [7, 5, 7, 4, 4], q: [7, 5, 5, 7, 1], r: [6, 5, 6, 5, 5],
  s: [7, 4, 7, 1, 7], t: [7, 2, 2, 2, 2], u: [5, 5, 5, 5, 7], v: [5, 5, 5, 5, 2], w: [5, 5, 7, 7, 5], x: [5, 5, 2, 5, 5],
  y: [5, 5, 2, 2, 2], z: [7, 1, 2, 4, 7],
};

const TERM_COLOURS: Rgb[] = [[230, 120, 20], [200, 170, 0], [40, 160, 60], [30, 120, 220], [200, 40, 160]];
const BLACK: Rgb = [0, 0, 0];
const GREY: Rgb = [200, 200, 200];
const BOX_COLOUR: Rgb = [30, 100, 230];
const MASK_COLOUR: Rgb = [220, 40, 40];

class Canvas {
  readonly px: Uint8Array;
  constructor(readonly w: number, readonly h: number) {
    this.px = new Uint8Array(w * h * 3).fill(255);
  }
  set(x: number, y: number, c: Rgb): void {
    x = Math.round(x);
    y = Math.round(y);
    if (x < 0 || y < 0 || x >= this.w || y >= this.h) return;
    const o = (y * this.w + x) * 3;
    this.px[o] = c[0];
    this.px[o + 1] = c[1];
    this.px[o + 2] = c[2];
  }
  /** A line by stepping along its longer axis (Bresenham-like, no anti-aliasing). */
  line(x0: number, y0: number, x1: number, y1: number, c: Rgb): void {
    const n = Math.max(1, Math.ceil(Math.max(Math.abs(x1 - x0), Math.abs(y1 - y0))));
    for (let i = 0; i <= n; i++) this.set(x0 + ((x1 - x0) * i) / n, y0 + ((y1 - y0) * i) / n, c);
  }
  rect(x: number, y: number, w: number, h: number, c: Rgb): void {
    for (let j = 0; j < h; j++) for (let i = 0; i < w; i++) this.set(x + i, y + j, c);
  }
  text(x: number, y: number, s: string, c: Rgb, scale = 2): void {
    for (const ch of s.toLowerCase()) {
      const g = FONT[ch] ?? FONT[' ']!;
      g.forEach((row, r) => {
        for (let col = 0; col < 3; col++) if (row & (4 >> col)) this.rect(x + col * scale, y + r * scale, scale, scale, c);
      });
      x += 4 * scale;
    }
  }
}

interface Panel {
  x: number;
  y: number;
  w: number;
  h: number;
}

const fmtTick = (v: number): string => (v >= 1000 ? `${Math.round(v / 100) / 10}k` : Math.abs(v) >= 1 || v === 0 ? String(Math.round(v * 100) / 100) : v.toPrecision(1));

function frame(cv: Canvas, p: Panel, title: string, xMax: number, yTicks: { v: number; y: number }[]): void {
  for (const t of yTicks) {
    cv.line(p.x, t.y, p.x + p.w, t.y, GREY);
    cv.text(p.x - 4 - 8 * fmtTick(t.v).length, t.y - 5, fmtTick(t.v), BLACK);
  }
  cv.line(p.x, p.y, p.x, p.y + p.h, BLACK);
  cv.line(p.x, p.y + p.h, p.x + p.w, p.y + p.h, BLACK);
  for (let k = 0; k <= 4; k++) {
    const x = p.x + (p.w * k) / 4;
    cv.line(x, p.y + p.h, x, p.y + p.h + 4, BLACK);
    const s = fmtTick((xMax * k) / 4);
    cv.text(x - 4 * s.length, p.y + p.h + 8, s, BLACK);
  }
  cv.text(p.x, p.y - 16, title, BLACK);
}

/** Moving average over a window, so noisy per-iteration losses read as a curve. */
function smooth(v: number[], window: number): number[] {
  const out: number[] = [];
  let acc = 0;
  for (let i = 0; i < v.length; i++) {
    acc += v[i]!;
    if (i >= window) acc -= v[i - window]!;
    out.push(acc / Math.min(i + 1, window));
  }
  return out;
}

/** PNG bytes of the loss / AP plot of a metrics log. */
export function plotMetrics(records: MetricsRecord[], width = 960, height = 420): Uint8Array {
  const cv = new Canvas(width, height);
  const iters = records.filter((r): r is IterRecord => r.type === 'iter' && Number.isFinite(r.total));
  const evals = records.filter((r): r is EvalRecord => r.type === 'eval');
  const xMax = Math.max(1, ...iters.map((r) => r.iter), ...evals.map((r) => r.iter));
  const loss: Panel = { x: 70, y: 40, w: width / 2 - 110, h: height - 110 };
  const ap: Panel = { x: width / 2 + 60, y: 40, w: width / 2 - 90, h: height - 110 };
  // Losses, log scale.
  const window = Math.max(1, Math.round(iters.length / 100));
  const series = [{ name: 'total', colour: BLACK, v: smooth(iters.map((r) => r.total), window) }, ...LOSS_TERMS.map((k, i) => ({ name: k.replace('loss_', ''), colour: TERM_COLOURS[i]!, v: smooth(iters.map((r) => r.losses[k]), window) }))];
  const positive = series.flatMap((s) => s.v).filter((v) => v > 0 && Number.isFinite(v));
  const lo = Math.floor(Math.log10(Math.min(1, ...positive)));
  const hi = Math.ceil(Math.log10(Math.max(1e-3, ...positive)));
  const ly = (v: number): number => loss.y + loss.h - ((Math.log10(Math.max(v, 10 ** lo)) - lo) / Math.max(1, hi - lo)) * loss.h;
  const lx = (it: number): number => loss.x + (it / xMax) * loss.w;
  const ticks = [];
  for (let e = lo; e <= hi; e++) ticks.push({ v: 10 ** e, y: ly(10 ** e) });
  frame(cv, loss, 'training loss (log)', xMax, ticks);
  for (const s of series) {
    for (let i = 1; i < s.v.length; i++) cv.line(lx(iters[i - 1]!.iter), ly(s.v[i - 1]!), lx(iters[i]!.iter), ly(s.v[i]!), s.colour);
  }
  series.forEach((s, i) => {
    const x = loss.x + (i % 3) * 120;
    const y = height - 44 + Math.floor(i / 3) * 16;
    cv.rect(x, y, 10, 10, s.colour);
    cv.text(x + 14, y, s.name, BLACK);
  });
  // AP in [0, 1].
  const ay = (v: number): number => ap.y + ap.h - Math.max(0, Math.min(1, v)) * ap.h;
  const ax = (it: number): number => ap.x + (it / xMax) * ap.w;
  frame(cv, ap, 'validation ap', xMax, [0, 0.25, 0.5, 0.75, 1].map((v) => ({ v, y: ay(v) })));
  for (const [get, colour] of [[(r: EvalRecord) => r.bboxAP, BOX_COLOUR], [(r: EvalRecord) => r.segmAP, MASK_COLOUR]] as const) {
    evals.forEach((r, i) => {
      cv.rect(ax(r.iter) - 2, ay(get(r)) - 2, 5, 5, colour);
      if (i > 0) cv.line(ax(evals[i - 1]!.iter), ay(get(evals[i - 1]!)), ax(r.iter), ay(get(r)), colour);
    });
  }
  [['box ap', BOX_COLOUR], ['mask ap', MASK_COLOUR]].forEach(([name, colour], i) => {
    const x = ap.x + i * 120;
    cv.rect(x, height - 44, 10, 10, colour as Rgb);
    cv.text(x + 14, height - 44, name as string, BLACK);
  });
  return encodePng(cv.px, width, height, 3);
}
