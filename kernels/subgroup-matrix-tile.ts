// The tile loop shared by the tensor-core kernels (kernels/matmul-subgroup-matrix.ts, the GEMM;
// kernels/conv-subgroup-matrix.ts, the implicit-GEMM conv and its gradients): C[GM, GN] = A B
// with f16 operands and f32 sums through Dawn's `chromium-experimental-subgroup-matrix`. A workgroup
// is exactly one subgroup of S invocations (so every subgroup-matrix call sits in uniform control
// flow with uniform offsets) computing a TM x TN tile of C as tilesM x tilesN result matrices of
// D x D. Per D-wide slice of K it stages A (TM x D) and B (D x TN) in workgroup memory, every element
// rounded to f16 with f16r and zero past GM, GN and GK, loads the left / right matrices from there and
// multiply-accumulates; at the end the result matrices go through workgroup memory (Cs), so each
// kernel's store is bounds-checked per element and may apply an epilogue. A first, simple form: no
// double buffering, one subgroup per workgroup.
//
// `emulate` replaces the three subgroup-matrix operations (declare, multiply-accumulate, store to Cs)
// with plain f32 arithmetic on the same workgroup-memory tiles (f16-rounded values are exact in f32):
// everything else (the loads of A and B with their index arithmetic and tails, the staging layout, the
// final store and epilogue) is the same text. Adapters without subgroup matrices (lavapipe, CI) run
// the emulated form against the float64 reference, which proves all but the three builtins; the real
// form is checked on the device at init() (engine/ops/tensor-cores.ts).
import { F16_ROUND_WGSL } from './f16.js';

export interface SubgroupMatrixTileSpec {
  /** Invocations per workgroup: the adapter's (fixed) subgroup size. */
  S: number;
  /** Square matrix size of the configuration (M = N = K = D). */
  D: number;
  /** Result matrices per workgroup along M and N. */
  tilesM: number;
  tilesN: number;
  /** Plain f32 arithmetic instead of subgroup matrices (see the header). */
  emulate?: boolean;
}

/** What a kernel supplies around the shared loop. */
export interface TileParts {
  entry: string;
  /** Uniform block and storage bindings. */
  decls: string;
  /** Helper functions (after the declarations). */
  helpers?: string;
  /** Statements defining GM, GN, GK (u32) and anything the loads and the store use. */
  prelude: string;
  /** f32 expression of A[r, k] (unrounded; in bounds even for r >= GM or k >= GK: clamp). */
  loadA: (r: string, k: string) => string;
  /** f32 expression of B[k, col] (same rules). */
  loadB: (k: string, col: string) => string;
  /** Statements storing v (an f32 expression) as C[r, col], for r < GM and col < GN. */
  store: (r: string, col: string, v: string) => string;
  /** The K range this workgroup sums (split-K: names the prelude defines; workgroup-uniform): default 0 .. GK. */
  kRange?: { start: string; end: string };
}

/** A tile kernel's entry point: `${prefix}_sgmat${D}_${tilesM}x${tilesN}`, `_emulated` for the emulated form. */
export function tileEntry(prefix: string, s: SubgroupMatrixTileSpec): string {
  return `${prefix}_sgmat${s.D}_${s.tilesM}x${s.tilesN}${s.emulate ? '_emulated' : ''}`;
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** The kernel's WGSL. Workgroups: (ceil(GN / (tilesN*D)), ceil(GM / (tilesM*D)), any z the prelude reads). */
export function subgroupMatrixTileWgsl(s: SubgroupMatrixTileSpec, p: TileParts): string {
  const { S, D, tilesM, tilesN } = s;
  const emu = !!s.emulate;
  if (![8, 16].includes(D)) throw new Error(`subgroupMatrixKernel: matrix size ${D} (written for 8 or 16)`);
  if (!(Number.isInteger(S) && S >= 4 && S <= 128) || tilesM < 1 || tilesN < 1) throw new Error(`subgroupMatrixKernel: bad spec ${JSON.stringify(s)}`);
  const TM = tilesM * D, TN = tilesN * D;
  const E = emu ? 'f32' : 'f16';
  const { start: kStart, end: kEnd } = p.kRange ?? { start: '0u', end: 'GK' };
  const ij = range(tilesM).flatMap((i) => range(tilesN).map((j) => [i, j] as const));
  const accInit = emu
    ? `  for (var e = lid; e < ${TM * TN}u; e += ${S}u) { Cs[e] = 0.0; }`
    : ij.map(([i, j]) => `  var acc${i}_${j} = subgroup_matrix_result<f32, ${D}, ${D}>();`).join('\n');
  const mma = emu
    ? `    for (var e = lid; e < ${TM * TN}u; e += ${S}u) {
      let r = e / ${TN}u; let cc = e % ${TN}u;
      var s = Cs[e];
      for (var kk = 0u; kk < ${D}u; kk++) { s = s + As[r * ${D}u + kk] * Bs[kk * ${TN}u + cc]; }
      Cs[e] = s;
    }`
    : [
        ...range(tilesM).map((i) => `    let l${i} = subgroupMatrixLoad<subgroup_matrix_left<f16, ${D}, ${D}>>(&As, ${i * D * D}u, false, ${D}u);`),
        ...range(tilesN).map((j) => `    let r${j} = subgroupMatrixLoad<subgroup_matrix_right<f16, ${D}, ${D}>>(&Bs, ${j * D}u, false, ${TN}u);`),
        ...ij.map(([i, j]) => `    acc${i}_${j} = subgroupMatrixMultiplyAccumulate(l${i}, r${j}, acc${i}_${j});`),
      ].join('\n');
  const toCs = emu ? '' : `${ij.map(([i, j]) => `  subgroupMatrixStore(&Cs, ${i * D * TN + j * D}u, acc${i}_${j}, false, ${TN}u);`).join('\n')}\n  workgroupBarrier();\n`;
  return `${emu ? '' : 'enable f16;\nenable chromium_experimental_subgroup_matrix;\n'}${F16_ROUND_WGSL}
${p.decls}
var<workgroup> As: array<${E}, ${TM * D}>;
var<workgroup> Bs: array<${E}, ${D * TN}>;
var<workgroup> Cs: array<f32, ${TM * TN}>;
${p.helpers ?? ''}
@compute @workgroup_size(${S})
fn ${p.entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
${p.prelude}
  let row0 = wid.y * ${TM}u;
  let col0 = wid.x * ${TN}u;
${accInit}
  for (var k0 = ${kStart}; k0 < ${kEnd}; k0 += ${D}u) {
    for (var e = lid; e < ${TM * D}u; e += ${S}u) {
      let r = row0 + e / ${D}u; let k = k0 + e % ${D}u;
      let v = f16r(${p.loadA('r', 'k')});
      As[e] = ${E}(select(0.0, v, r < GM && k < ${kEnd}));
    }
    for (var e = lid; e < ${D * TN}u; e += ${S}u) {
      let k = k0 + e / ${TN}u; let col = col0 + e % ${TN}u;
      let v = f16r(${p.loadB('k', 'col')});
      Bs[e] = ${E}(select(0.0, v, k < ${kEnd} && col < GN));
    }
    workgroupBarrier();
${mma}
    workgroupBarrier();
  }
${toCs}  for (var e = lid; e < ${TM * TN}u; e += ${S}u) {
    let r = row0 + e / ${TN}u; let col = col0 + e % ${TN}u;
    if (r < GM && col < GN) { ${p.store('r', 'col', 'Cs[e]')} }
  }
}
`;
}
