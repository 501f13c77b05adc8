// max_pool2d kernels and float64 reference, following PyTorch's CPU kernel exactly: the window of
// output (oh, ow) starts at oh*stride - pad, skips padded positions (as -inf padding would), scans
// rows then columns and keeps the first maximum (a later element wins only when strictly greater,
// or when it is NaN). The argmax is stored as the flat index h*W + w within the input plane, as
// torch's return_indices gives. The backward is a gather (no atomics): each input element sums
// the gradients of the outputs whose argmax it is; at most one window offset per output can hit it.
import { F32_BITS, LINEAR_GROUP, WORKGROUP, type RefTensor } from './common.js';
import { uniformBlock } from './uniforms.js';

export interface Pool2d {
  kH: number;
  kW: number;
  sH: number;
  sW: number;
  pH: number;
  pW: number;
  dH: number;
  dW: number;
  ceilMode: boolean;
}

/** torch's pooling_output_shape: floor (or ceil) division, and a last window must start inside input + left pad. */
export function poolOutputSize(inSize: number, k: number, s: number, p: number, d: number, ceilMode: boolean): number {
  const span = inSize + 2 * p - d * (k - 1) - 1 + (ceilMode ? s - 1 : 0);
  let out = Math.floor(span / s) + 1;
  if (ceilMode && (out - 1) * s >= inSize + p) out--;
  return out;
}

/** n: threads; offset: of x (forward) or g (backward); idxOffset: of the indices (backward). */
export const POOL_UNIFORMS = uniformBlock('max_pool2d', {
  n: 'u32',
  H: 'u32',
  W: 'u32',
  OH: 'u32',
  OW: 'u32',
  kH: 'u32',
  kW: 'u32',
  sH: 'u32',
  sW: 'u32',
  pH: 'u32',
  pW: 'u32',
  dH: 'u32',
  dW: 'u32',
  offset: 'u32',
  idxOffset: 'u32',
});

/**
 * 'forward': one thread per output: out[i] = window max, idx[i] = its flat input index.
 * 'backward': one thread per input element: gx[i] = sum of g over the outputs whose index is i.
 */
export function maxPool2dKernel(dir: 'forward' | 'backward', cand?: readonly [number, number]): { wgsl: string; entry: string } {
  const { n, H, W, OH, OW, kH, kW, sH, sW, pH, pW, dH, dW, offset: off, idxOffset: idxOff } = POOL_UNIFORMS.ref;
  const entry = `max_pool2d_${dir}`;
  const shell = (decls: string, body: string): string => `${POOL_UNIFORMS.wgsl}
${F32_BITS}
// Bit test: compilers may fold v != v away under fast-math assumptions.
fn is_nan(v: f32) -> bool { return (bitcast<u32>(v) & 0x7fffffffu) > 0x7f800000u; }
${decls}
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (i >= ${n}) { return; }
  ${body}
}
`;
  if (dir === 'forward') {
    return {
      entry,
      wgsl: shell(
        `@group(0) @binding(1) var<storage, read> x: array<f32>;
@group(0) @binding(2) var<storage, read_write> out: array<f32>;
@group(0) @binding(3) var<storage, read_write> idx: array<i32>;`,
        `let ow = i32(i % ${OW});
  let t = i / ${OW};
  let oh = i32(t % ${OH});
  let plane = t / ${OH};
  let H = i32(${H});
  let W = i32(${W});
  let dh = i32(${dH});
  let dw = i32(${dW});
  var h0 = oh * i32(${sH}) - i32(${pH});
  var w0 = ow * i32(${sW}) - i32(${pW});
  let h1 = min(h0 + (i32(${kH}) - 1) * dh + 1, H);
  let w1 = min(w0 + (i32(${kW}) - 1) * dw + 1, W);
  // First in-bounds tap of the dilated window (padding is never read).
  if (h0 < 0) { h0 += ((-h0 + dh - 1) / dh) * dh; }
  if (w0 < 0) { w0 += ((-w0 + dw - 1) / dw) * dw; }
  let base = ${off} + plane * u32(H * W);
  var best = f32_bits(0xff800000u);
  var arg = h0 * W + w0;
  for (var h = h0; h < h1; h += dh) {
    for (var w = w0; w < w1; w += dw) {
      let v = x[base + u32(h * W + w)];
      if (v > best || is_nan(v)) {
        best = v;
        arg = h * W + w;
      }
    }
  }
  out[i] = best;
  idx[i] = arg;`,
      ),
    };
  }
  return {
    entry,
    wgsl: shell(
      `@group(0) @binding(1) var<storage, read> g: array<f32>;
@group(0) @binding(2) var<storage, read> idx: array<i32>;
@group(0) @binding(3) var<storage, read_write> out: array<f32>;`,
      `let iw = i32(i % ${W});
  let t = i / ${W};
  let ih = i32(t % ${H});
  let plane = t / ${H};
  let want = ih * i32(${W}) + iw;
  let sh = i32(${sH});
  let sw = i32(${sW});
  let dh = i32(${dH});
  let dw = i32(${dW});
  let th = ih + i32(${pH});
  let tw = iw + i32(${pW});
  // Outputs whose window can cover (ih, iw): oh*s in [ih + p - (k-1)*d, ih + p], on the dilation grid.
  let oh0 = max((th - (i32(${kH}) - 1) * dh + sh - 1), 0) / sh;
  let oh1 = min(th / sh, i32(${OH}) - 1);
  let ow0 = max((tw - (i32(${kW}) - 1) * dw + sw - 1), 0) / sw;
  let ow1 = min(tw / sw, i32(${OW}) - 1);
  let base = plane * ${OH} * ${OW};
  var acc = 0.0;
${cand ? unrolledCandidates(cand, OW, off, idxOff) : `  for (var oh = oh0; oh <= oh1; oh++) {
    if ((th - oh * sh) % dh != 0) { continue; }
    for (var ow = ow0; ow <= ow1; ow++) {
      if ((tw - ow * sw) % dw != 0) { continue; }
      let o = base + u32(oh) * ${OW} + u32(ow);
      if (idx[${idxOff} + o] == want) { acc += g[${off} + o]; }
    }
  }`}
  out[i] = acc;`,
    ),
  };
}

/**
 * Most outputs along each axis whose window can cover one input element, floor((k-1)*d / s) + 1: the
 * backward's candidate counts when baked into the kernel (maxPool2dKernel's `cand`).
 */
export function poolCandidates(p: Pick<Pool2d, 'kH' | 'kW' | 'sH' | 'sW' | 'dH' | 'dW'>): [number, number] {
  return [Math.floor(((p.kH - 1) * p.dH) / p.sH) + 1, Math.floor(((p.kW - 1) * p.dW) / p.sW) + 1];
}

/**
 * The backward's candidate outputs as straight-line code: cH x cW fixed slots from (oh0, ow0), each
 * read with a clamped index and counted only when it is in range, on the dilation grid and its
 * argmax is this element. In ascending (oh, ow) order as the loops, so the sums are the same. On
 * CPU adapters the loops' per-lane trip counts were masked loops with a blend per iteration.
 */
function unrolledCandidates([cH, cW]: readonly [number, number], OW: string, off: string, idxOff: string): string {
  const L: string[] = [];
  for (let a = 0; a < cH; a++) {
    L.push(`  let ch${a} = oh0 + ${a}; let okh${a} = ch${a} <= oh1 && (th - ch${a} * sh) % dh == 0;`);
    for (let b = 0; b < cW; b++) {
      if (a === 0) L.push(`  let cw${b} = ow0 + ${b}; let okw${b} = cw${b} <= ow1 && (tw - cw${b} * sw) % dw == 0;`);
      L.push(`  { let ok = okh${a} && okw${b}; let o = base + u32(select(0, ch${a}, ok)) * ${OW} + u32(select(0, cw${b}, ok));`);
      L.push(`    acc += select(0.0, g[${off} + o], ok && idx[${idxOff} + o] == want); }`);
    }
  }
  return L.join('\n');
}

/** float64 torch.nn.functional.max_pool2d(x, ..., return_indices=True) over [..., H, W]. */
export function maxPool2dReference(x: RefTensor, p: Pool2d): { y: RefTensor; indices: RefTensor } {
  const H = x.shape[x.shape.length - 2]!, W = x.shape[x.shape.length - 1]!;
  const planes = x.data.length / (H * W);
  const OH = poolOutputSize(H, p.kH, p.sH, p.pH, p.dH, p.ceilMode);
  const OW = poolOutputSize(W, p.kW, p.sW, p.pW, p.dW, p.ceilMode);
  const shape = [...x.shape.slice(0, -2), OH, OW];
  const y = new Float64Array(planes * OH * OW);
  const ind = new Float64Array(planes * OH * OW);
  for (let q = 0; q < planes; q++) {
    for (let oh = 0; oh < OH; oh++) {
      for (let ow = 0; ow < OW; ow++) {
        let h0 = oh * p.sH - p.pH, w0 = ow * p.sW - p.pW;
        const h1 = Math.min(h0 + (p.kH - 1) * p.dH + 1, H), w1 = Math.min(w0 + (p.kW - 1) * p.dW + 1, W);
        while (h0 < 0) h0 += p.dH;
        while (w0 < 0) w0 += p.dW;
        let best = -Infinity, arg = h0 * W + w0;
        for (let h = h0; h < h1; h += p.dH) {
          for (let w = w0; w < w1; w += p.dW) {
            const v = x.data[q * H * W + h * W + w]!;
            if (v > best || Number.isNaN(v)) {
              best = v;
              arg = h * W + w;
            }
          }
        }
        y[(q * OH + oh) * OW + ow] = best;
        ind[(q * OH + oh) * OW + ow] = arg;
      }
    }
  }
  return { y: { shape, data: y }, indices: { shape, data: ind } };
}
