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

/**
 * The strided copy. One element per invocation (`run` 1), or with `run` > 1 a run of that many
 * consecutive elements of the last dim per invocation (u.n then counts invocations: the other dims'
 * sizes times ceil(last / run)). The index arithmetic (a division and a remainder per dim, which
 * LLVM does lane by lane on lavapipe) is then paid once per run instead of once per element.
 */
export function stridedCopyKernel(type: WType, ndim: number, run = 1): { wgsl: string; entry: string } {
  const U = copyUniforms(ndim);
  const last = ndim - 1;
  const lines: string[] = ['var r = i;'];
  let src = 'u.srcOffset';
  let dst = 'u.dstOffset';
  for (let d = last; d >= 0; d--) {
    const size = run > 1 && d === last ? `((${U.at('shape', d)} + ${run - 1}u) / ${run}u)` : U.at('shape', d);
    lines.push(`let c${d} = r % ${size};`);
    if (d > 0) lines.push(`r = r / ${size};`);
  }
  for (let d = 0; d < ndim; d++) {
    const c = run > 1 && d === last ? `(c${d} * ${run}u)` : `c${d}`;
    src += ` + ${c} * ${U.at('srcStrides', d)}`;
    dst += ` + ${c} * ${U.at('dstStrides', d)}`;
  }
  const entry = run > 1 ? `strided_copy_run${run}` : 'strided_copy';
  const body =
    run > 1
      ? `let s0 = ${src};
  let d0 = ${dst};
  let left = ${U.at('shape', last)} - c${last} * ${run}u;
  for (var k = 0u; k < min(left, ${run}u); k++) { dst[d0 + k * ${U.at('dstStrides', last)}] = src[s0 + k * ${U.at('srcStrides', last)}]; }`
      : `dst[${dst}] = src[${src}];`;
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
  ${body}
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

/** Fills a dense range, one element per invocation (ranges that reach past the last whole vec4 of the buffer). */
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

/** vec4s written per invocation by fillVec4Kernel. */
export const FILL_VEC4S = 4;

/**
 * Fills a dense range [offset, offset + n) of a buffer seen as vec4s: each invocation stores
 * FILL_VEC4S vec4s, grid-strided (neighbouring invocations, neighbouring vec4s). On lavapipe every
 * store to a lane-varying address is a loop over the SIMD lanes, so a vec4 per store and 4 per
 * invocation (fewer workgroups) made a 174k-element fill ~6x cheaper in CPU time than one element
 * per invocation. The range's first and last vec4 may hold other elements: those two are read,
 * merged and written back (no other dispatch runs meanwhile). The caller checks that the range lies
 * within the binding's whole vec4s (a partial tail vec4 is out of bounds for array<vec4>).
 */
export function fillVec4Kernel(type: WType): { wgsl: string; entry: string } {
  const entry = 'fill_vec4';
  return {
    entry,
    wgsl: `${fillUniforms(type).wgsl}
@group(0) @binding(1) var<storage, read_write> dst: array<vec4<${type}>>;
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let i = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  let stride = nwg.x * nwg.y * ${WORKGROUP}u;
  let value = vec4<${type}>(u.value);
  let end = u.offset + u.n;
  for (var j = 0u; j < ${FILL_VEC4S}u; j++) {
    let v = u.offset / 4u + i + j * stride;
    let e = vec4<u32>(4u * v) + vec4<u32>(0u, 1u, 2u, 3u);
    let inside = (e >= vec4<u32>(u.offset)) & (e < vec4<u32>(end));
    if (all(inside)) { dst[v] = value; }
    else if (any(inside)) { dst[v] = select(dst[v], value, inside); }
  }
}
`,
  };
}

/** Invocations of fillVec4Kernel for n elements from element `offset`. */
export function fillVec4Invocations(n: number, offset: number): number {
  const vec4s = Math.ceil((offset + n) / 4) - Math.floor(offset / 4);
  return Math.ceil(vec4s / FILL_VEC4S);
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
