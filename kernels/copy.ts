// Data movement: a strided copy from any view into any view (the primitive under pad, concat,
// slice's backward and scatter into views), and a fill. Both sides are read/written with strides.
import { LINEAR_GROUP, WORKGROUP, uniformDecl, uword, type RefTensor } from './common.js';
import type { WType } from './elementwise.js';

/** Uniform words: n, shape[ndim], srcOffset, srcStrides[ndim], dstOffset, dstStrides[ndim]. */
export function stridedCopyKernel(type: WType, ndim: number): { wgsl: string; entry: string } {
  const lines: string[] = ['var r = i;'];
  let src = uword(1 + ndim);
  let dst = uword(2 + 2 * ndim);
  for (let d = ndim - 1; d >= 0; d--) {
    lines.push(`let c${d} = r % ${uword(1 + d)};`);
    if (d > 0) lines.push(`r = r / ${uword(1 + d)};`);
  }
  for (let d = 0; d < ndim; d++) {
    src += ` + c${d} * ${uword(2 + ndim + d)}`;
    dst += ` + c${d} * ${uword(3 + 2 * ndim + d)}`;
  }
  const entry = 'strided_copy';
  return {
    entry,
    wgsl: `${uniformDecl(Math.ceil((3 + 3 * ndim) / 4))}
@group(0) @binding(1) var<storage, read> src: array<${type}>;
@group(0) @binding(2) var<storage, read_write> dst: array<${type}>;
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (i >= ${uword(0)}) { return; }
  ${lines.join('\n  ')}
  dst[${dst}] = src[${src}];
}
`,
  };
}

/** Uniform words: n, offset, value bits. Fills a dense range. */
export function fillKernel(type: WType): { wgsl: string; entry: string } {
  const entry = 'fill';
  const value = type === 'f32' ? `bitcast<f32>(${uword(2)})` : type === 'i32' ? `bitcast<i32>(${uword(2)})` : uword(2);
  return {
    entry,
    wgsl: `${uniformDecl(1)}
@group(0) @binding(1) var<storage, read_write> dst: array<${type}>;
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (i >= ${uword(0)}) { return; }
  dst[${uword(1)} + i] = ${value};
}
`,
  };
}

/** float64 reference of a strided copy: dst[dstOff + c.dstStrides] = src[srcOff + c.srcStrides]. */
export function stridedCopyReference(
  src: RefTensor,
  dst: RefTensor,
  shape: readonly number[],
  srcView: { offset: number; strides: readonly number[] },
  dstView: { offset: number; strides: readonly number[] },
): RefTensor {
  const out = { shape: [...dst.shape], data: Float64Array.from(dst.data) };
  const n = shape.reduce((a, b) => a * b, 1);
  for (let i = 0; i < n; i++) {
    let r = i, s = srcView.offset, d = dstView.offset;
    for (let k = shape.length - 1; k >= 0; k--) {
      const c = r % shape[k]!;
      r = (r - c) / shape[k]!;
      s += c * srcView.strides[k]!;
      d += c * dstView.strides[k]!;
    }
    out.data[d] = src.data[s]!;
  }
  return out;
}
