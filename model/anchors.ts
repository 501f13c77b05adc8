// Anchors (Ren et al. 2015, as torchvision's AnchorGenerator and Detectron2's DefaultAnchorGenerator).
// Cell anchors per level are centred boxes for each (aspect ratio, size); they are shifted over the
// feature grid with the level's stride. Computed on the CPU in float32 arithmetic (Math.fround at
// every step torch does in float32), cached per (grid sizes, image size), uploaded once.

export interface AnchorConfig {
  /** Sizes per level, e.g. [[32], [64], [128], [256], [512]]. */
  sizes: number[][];
  /** Aspect ratios (h/w) per level, e.g. [[0.5, 1, 2], ...]. */
  aspectRatios: number[][];
  /** torchvision rounds cell anchors to integers; Detectron2 does not. */
  style: 'torchvision' | 'detectron2';
  /** Detectron2's grid offset (0 by default there); torchvision has none. */
  offset?: number;
}

const f = Math.fround;

/** Rounds half to even, as torch.round does. */
function roundHalfEven(x: number): number {
  const r = Math.round(x);
  return Math.abs(x % 1) === 0.5 && r % 2 !== 0 ? r - 1 : r;
}

/** Cell anchors [A, 4] (x1, y1, x2, y2) of one level, in the reference's order. */
export function cellAnchors(sizes: number[], ratios: number[], style: AnchorConfig['style']): Float32Array {
  const out: number[] = [];
  if (style === 'torchvision') {
    // ws = (w_ratios[:, None] * scales[None, :]).view(-1): ratio-major, all float32.
    for (const ratio of ratios) {
      const h = f(Math.sqrt(f(ratio)));
      const w = f(1 / h);
      for (const size of sizes) {
        const ws = f(w * f(size)), hs = f(h * f(size));
        out.push(...[-ws, -hs, ws, hs].map((v) => roundHalfEven(f(v / 2))));
      }
    }
  } else {
    // Detectron2: size-major, float64 maths, then stored as float32.
    for (const size of sizes) {
      for (const ratio of ratios) {
        const w = Math.sqrt((size * size) / ratio);
        const h = ratio * w;
        out.push(-w / 2, -h / 2, w / 2, h / 2);
      }
    }
  }
  return Float32Array.from(out);
}

export interface LevelGrid {
  /** Feature map height and width. */
  height: number;
  width: number;
}

/**
 * Anchors of all levels concatenated, [sum_l H_l*W_l*A_l, 4], location-major (y, x, then cell),
 * which is the order of the RPN head's outputs after permuting to (N, H, W, A).
 * Strides are the padded image size integer-divided by the grid size, as torchvision computes them.
 */
export function gridAnchors(cfg: AnchorConfig, grids: LevelGrid[], imageHeight: number, imageWidth: number): Float32Array {
  if (grids.length !== cfg.sizes.length) {
    throw new Error(`anchors: ${grids.length} feature levels but ${cfg.sizes.length} anchor size groups are configured`);
  }
  const parts: Float32Array[] = [];
  let total = 0;
  grids.forEach((g, level) => {
    const cells = cellAnchors(cfg.sizes[level]!, cfg.aspectRatios[level] ?? cfg.aspectRatios[0]!, cfg.style);
    const A = cells.length / 4;
    const sy = Math.floor(imageHeight / g.height), sx = Math.floor(imageWidth / g.width);
    const off = cfg.style === 'detectron2' ? (cfg.offset ?? 0) : 0;
    const out = new Float32Array(g.height * g.width * A * 4);
    let k = 0;
    for (let y = 0; y < g.height; y++) {
      const shiftY = f((y + off) * sy);
      for (let x = 0; x < g.width; x++) {
        const shiftX = f((x + off) * sx);
        for (let a = 0; a < A; a++) {
          out[k++] = f(shiftX + cells[4 * a]!);
          out[k++] = f(shiftY + cells[4 * a + 1]!);
          out[k++] = f(shiftX + cells[4 * a + 2]!);
          out[k++] = f(shiftY + cells[4 * a + 3]!);
        }
      }
    }
    parts.push(out);
    total += out.length;
  });
  const all = new Float32Array(total);
  let at = 0;
  for (const p of parts) {
    all.set(p, at);
    at += p.length;
  }
  return all;
}

/** Number of anchors per location for each level. */
export function anchorsPerLocation(cfg: AnchorConfig): number[] {
  return cfg.sizes.map((s, l) => s.length * (cfg.aspectRatios[l] ?? cfg.aspectRatios[0]!).length);
}

/** Memoises gridAnchors by its arguments (the grid of a fixed input size never changes). */
export class AnchorCache {
  private cache = new Map<string, Float32Array>();
  constructor(readonly cfg: AnchorConfig) {}

  get(grids: LevelGrid[], imageHeight: number, imageWidth: number): Float32Array {
    const key = `${imageHeight}x${imageWidth}:${grids.map((g) => `${g.height}x${g.width}`).join(',')}`;
    let a = this.cache.get(key);
    if (!a) {
      if (this.cache.size > 32) this.cache.clear();
      this.cache.set(key, (a = gridAnchors(this.cfg, grids, imageHeight, imageWidth)));
    }
    return a;
  }
}
