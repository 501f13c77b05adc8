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

/** Copies one batched strided copy does at most (each binds its source; the destinations share one buffer). */
export const COPY_MANY_MAX = 8;

/**
 * The uniforms of k strided copies of rank `ndim` in one dispatch: per member j its element count
 * n{j}, first linear invocation start{j} (the prefix sum of the counts before it), shape, and the
 * offset and strides of its source and of its destination.
 */
export const copyManyUniforms = blockVariants((key: string) => {
  const [ndim, k] = key.split('x').map(Number) as [number, number];
  const spec: Record<string, 'u32' | ['u32', number]> = { total: 'u32' };
  for (let j = 0; j < k; j++) {
    Object.assign(spec, { [`n${j}`]: 'u32', [`start${j}`]: 'u32', [`shape${j}`]: ['u32', ndim], [`srcOffset${j}`]: 'u32', [`srcStrides${j}`]: ['u32', ndim], [`dstOffset${j}`]: 'u32', [`dstStrides${j}`]: ['u32', ndim] });
  }
  return uniformBlock(`copy_many${ndim}x${k}`, spec);
});

/**
 * k strided copies (a cat's inputs into their parts of the output, a canvas's windows) in one
 * dispatch: one invocation per element of all of them, member j from start{j}. Bindings: the k
 * sources (src0 .. src(k-1)), then the destination they all write (one buffer, disjoint parts).
 */
export function stridedCopyManyKernel(type: WType, ndim: number, k: number): { wgsl: string; entry: string } {
  if (!Number.isInteger(k) || k < 1 || k > COPY_MANY_MAX) throw new Error(`stridedCopyManyKernel: ${k} copies per dispatch`);
  const U = copyManyUniforms(`${ndim}x${k}`);
  const member = (j: number): string => {
    const lines: string[] = [`var r = i - u.start${j};`];
    let src = `u.srcOffset${j}`;
    let dst = `u.dstOffset${j}`;
    for (let d = ndim - 1; d >= 0; d--) {
      lines.push(`let c${d} = r % ${U.at(`shape${j}`, d)};`);
      if (d > 0) lines.push(`r = r / ${U.at(`shape${j}`, d)};`);
    }
    for (let d = 0; d < ndim; d++) {
      src += ` + c${d} * ${U.at(`srcStrides${j}`, d)}`;
      dst += ` + c${d} * ${U.at(`dstStrides${j}`, d)}`;
    }
    return `case ${j}u: {
      ${lines.join('\n      ')}
      dst[${dst}] = src${j}[${src}];
    }`;
  };
  const decls = Array.from({ length: k }, (_, j) => `@group(0) @binding(${j + 1}) var<storage, read> src${j}: array<${type}>;`);
  const pick = Array.from({ length: k - 1 }, (_, j) => `if (i >= u.start${j + 1}) { j = ${j + 1}u; }`).join(' ');
  const entry = `strided_copy_x${k}`;
  return {
    entry,
    wgsl: `${U.wgsl}
${decls.join('\n')}
@group(0) @binding(${k + 1}) var<storage, read_write> dst: array<${type}>;
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (i >= u.total) { return; }
  var j = 0u; ${pick}
  switch j {
    ${Array.from({ length: k }, (_, j) => member(j)).join('\n    ')}
    default: {}
  }
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
