// Data movement: a strided copy from any view into any view (the primitive under pad, concat,
// slice's backward and scatter into views), and a fill. Both sides are read/written with strides.
import { LINEAR_GROUP, WORKGROUP, type RefTensor } from './common.js';
import { blockVariants, uniformBlock } from './uniforms.js';
import type { WType } from './elementwise.js';

/** The strided copy's uniforms for rank `ndim`. */
export const copyUniforms = blockVariants((ndim: number) =>
  uniformBlock(`copy${ndim}`, { n: 'u32', shape: ['u32', ndim], srcOffset: 'u32', srcStrides: ['u32', ndim], dstOffset: 'u32', dstStrides: ['u32', ndim] }),
);

/** The fill's uniforms for element type `type`. */
export const fillUniforms = blockVariants((type: WType) => uniformBlock(`fill_${type}`, { n: 'u32', offset: 'u32', value: type }));

export function stridedCopyKernel(type: WType, ndim: number): { wgsl: string; entry: string } {
  const U = copyUniforms(ndim);
  const lines: string[] = ['var r = i;'];
  let src = 'u.srcOffset';
  let dst = 'u.dstOffset';
  for (let d = ndim - 1; d >= 0; d--) {
    lines.push(`let c${d} = r % ${U.at('shape', d)};`);
    if (d > 0) lines.push(`r = r / ${U.at('shape', d)};`);
  }
  for (let d = 0; d < ndim; d++) {
    src += ` + c${d} * ${U.at('srcStrides', d)}`;
    dst += ` + c${d} * ${U.at('dstStrides', d)}`;
  }
  const entry = 'strided_copy';
  return {
    entry,
    wgsl: `${U.wgsl}
@group(0) @binding(1) var<storage, read> src: array<${type}>;
@group(0) @binding(2) var<storage, read_write> dst: array<${type}>;
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (i >= u.n) { return; }
  ${lines.join('\n  ')}
  dst[${dst}] = src[${src}];
}
`,
  };
}

/** Fills a dense range. */
export function fillKernel(type: WType): { wgsl: string; entry: string } {
  const entry = 'fill';
  return {
    entry,
    wgsl: `${fillUniforms(type).wgsl}
@group(0) @binding(1) var<storage, read_write> dst: array<${type}>;
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (i >= u.n) { return; }
  dst[u.offset + i] = u.value;
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
