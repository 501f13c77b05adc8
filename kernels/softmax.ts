// Softmax family row kernels. A softmax over dim d of a dense tensor viewed as [outer, N, inner]
// works on M = outer*inner rows of N elements each: row r starts at (r / inner) * N * inner +
// r % inner and steps by `inner`, so softmax over a middle dim (channels of NCHW) needs no permute.
// Forward and backward are the same shape of computation (one or two row reductions, then an
// elementwise write), so all four variants are generated from one table. Long rows get a
// workgroup each (tree reductions in workgroup memory); short rows get one thread each.
import { F32_BITS, LINEAR_GROUP, WORKGROUP, type RefTensor } from './common.js';
import { uniformBlock } from './uniforms.js';

export type SoftmaxMode = 'softmax' | 'log_softmax' | 'softmax_grad' | 'log_softmax_grad';

/**
 * Rows at most this long are handled by a single thread. Measured on lavapipe, a workgroup per
 * 91-element row was ~40x slower than a thread per row (barriers are costly there); on GPUs a
 * few hundred serial elements per thread is still cheap.
 */
export const SOFTMAX_SHORT_ROW = 256;

/** Strided rows (inner > 1) use a thread each once there are this many: reads coalesce across rows. */
export const SOFTMAX_MANY_ROWS = 1024;

/** Whether the thread-per-row kernel suits `rows` rows of length n with element stride `inner`. */
export function softmaxShortRows(rows: number, n: number, inner: number): boolean {
  return n <= SOFTMAX_SHORT_ROW || (inner > 1 && rows >= SOFTMAX_MANY_ROWS);
}

interface ModeSpec {
  /** Inputs a (and b), read at the same row position. Forward: a = x. Backward: a = y, b = dy. */
  inputs: 1 | 2;
  /** Row reductions in order; each defines `name` and may use the ones before it. */
  passes: { name: string; op: 'max' | 'sum'; expr: string }[];
  /** The output element. */
  out: string;
}

// Max-subtraction keeps exp() in range: rows of +-100 (or +-1e30) stay finite.
const SPECS: Record<SoftmaxMode, ModeSpec> = {
  softmax: {
    inputs: 1,
    passes: [
      { name: 'm', op: 'max', expr: 'a' },
      { name: 's', op: 'sum', expr: 'exp(a - m)' },
    ],
    out: 'exp(a - m) / s',
  },
  log_softmax: {
    inputs: 1,
    passes: [
      { name: 'm', op: 'max', expr: 'a' },
      { name: 's', op: 'sum', expr: 'exp(a - m)' },
    ],
    out: 'a - m - log(s)',
  },
  // dx = y * (dy - sum(dy * y))
  softmax_grad: { inputs: 2, passes: [{ name: 's', op: 'sum', expr: 'a * b' }], out: 'a * (b - s)' },
  // dx = dy - exp(y) * sum(dy)
  log_softmax_grad: { inputs: 2, passes: [{ name: 's', op: 'sum', expr: 'b' }], out: 'b - exp(a) * s' },
};

const INIT = { max: 'f32_bits(0xff800000u)', sum: '0.0' };
const COMBINE = { max: (acc: string, v: string) => `max(${acc}, ${v})`, sum: (acc: string, v: string) => `${acc} + ${v}` };

/** rows = outer * inner; n: the softmax dim's length; bOffset: 0 for the one-input modes. */
export const SOFTMAX_UNIFORMS = uniformBlock('softmax', { rows: 'u32', n: 'u32', inner: 'u32', aOffset: 'u32', bOffset: 'u32' });

/** Inputs and the output are dense [outer, N, inner]; the output is written at offset 0. */
export function softmaxKernel(mode: SoftmaxMode, shortRows: boolean): { wgsl: string; entry: string } {
  const spec = SPECS[mode];
  const entry = `${mode}_${shortRows ? 'short' : 'wg'}`;
  const loads = (k: string): string =>
    `let a = in0[u.aOffset + base + ${k} * inner];` + (spec.inputs === 2 ? ` let b = in1[u.bOffset + base + ${k} * inner];` : '');
  const decls =
    `@group(0) @binding(1) var<storage, read> in0: array<f32>;\n` +
    (spec.inputs === 2 ? `@group(0) @binding(2) var<storage, read> in1: array<f32>;\n` : '') +
    `@group(0) @binding(${spec.inputs + 1}) var<storage, read_write> out: array<f32>;`;
  const rowSetup = `let n = u.n;
  let inner = u.inner;
  let base = (row / inner) * n * inner + row % inner;`;
  const write = (k: string): string => `${loads(k)} out[base + ${k} * inner] = ${spec.out};`;

  if (shortRows) {
    const passes = spec.passes
      .map((p) => `var ${p.name}: f32 = ${INIT[p.op]};
  for (var k = 0u; k < n; k++) { ${loads('k')} ${p.name} = ${COMBINE[p.op](p.name, p.expr)}; }`)
      .join('\n  ');
    return {
      entry,
      wgsl: `${SOFTMAX_UNIFORMS.wgsl}
${F32_BITS}
${decls}
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = ${LINEAR_GROUP} * ${WORKGROUP}u + lid;
  if (row >= u.rows) { return; }
  ${rowSetup}
  ${passes}
  for (var k = 0u; k < n; k++) { ${write('k')} }
}
`,
    };
  }
  // Each thread folds a strided part of the row, then the workgroup combines the partials.
  const passes = spec.passes
    .map((p) => `var ${p.name}_part: f32 = ${INIT[p.op]};
  for (var k = lid; k < n; k += ${WORKGROUP}u) { ${loads('k')} ${p.name}_part = ${COMBINE[p.op](`${p.name}_part`, p.expr)}; }
  let ${p.name} = wg_${p.op}(${p.name}_part, lid);`)
    .join('\n  ');
  const used = [...new Set(spec.passes.map((p) => p.op))];
  const reducers = used
    .map((op) => `fn wg_${op}(v: f32, lid: u32) -> f32 {
  sv[lid] = v;
  workgroupBarrier();
  for (var s = ${WORKGROUP / 2}u; s > 0u; s = s >> 1u) {
    if (lid < s) { sv[lid] = ${COMBINE[op]('sv[lid]', 'sv[lid + s]')}; }
    workgroupBarrier();
  }
  let r = sv[0];
  // Everyone has read sv[0] before the next reduction overwrites it.
  workgroupBarrier();
  return r;
}`)
    .join('\n');
  return {
    entry,
    wgsl: `${SOFTMAX_UNIFORMS.wgsl}
${F32_BITS}
${decls}
var<workgroup> sv: array<f32, ${WORKGROUP}>;
${reducers}
@compute @workgroup_size(${WORKGROUP})
fn ${entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(num_workgroups) nwg: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
  let row = ${LINEAR_GROUP};
  if (row >= u.rows) { return; }
  ${rowSetup}
  ${passes}
  for (var k = lid; k < n; k += ${WORKGROUP}u) { ${write('k')} }
}
`,
  };
}

/** [outer, N, inner] split of `shape` around `dim`. */
export function splitAround(shape: readonly number[], dim: number): { outer: number; n: number; inner: number } {
  const prod = (s: readonly number[]): number => s.reduce((a, b) => a * b, 1);
  return { outer: prod(shape.slice(0, dim)), n: shape[dim] ?? 1, inner: prod(shape.slice(dim + 1)) };
}

/** float64 softmax (or log_softmax) of x over dim (already normalised), max-subtracted. */
export function softmaxReference(x: RefTensor, dim: number, log: boolean): RefTensor {
  const { outer, n, inner } = splitAround(x.shape, dim);
  const out = new Float64Array(x.data.length);
  for (let o = 0; o < outer; o++) {
    for (let i = 0; i < inner; i++) {
      const at = (k: number): number => o * n * inner + k * inner + i;
      let m = -Infinity;
      for (let k = 0; k < n; k++) m = Math.max(m, x.data[at(k)]!);
      let s = 0;
      for (let k = 0; k < n; k++) s += Math.exp(x.data[at(k)]! - m);
      for (let k = 0; k < n; k++) {
        const v = x.data[at(k)]! - m;
        out[at(k)] = log ? v - Math.log(s) : Math.exp(v) / s;
      }
    }
  }
  return { shape: [...x.shape], data: out };
}
