// The tile loop shared by the tensor-core kernels (kernels/matmul-subgroup-matrix.ts, the GEMM;
// kernels/conv-subgroup-matrix.ts, the implicit-GEMM conv and its gradients): C[GM, GN] = A B
// with f16 operands and f32 sums through Dawn's `chromium-experimental-subgroup-matrix`. A workgroup
// is sgM x sgN subgroups of S invocations (subgroup g = invocations g*S .. g*S+S-1, as NVIDIA forms
// them; the subgroup-matrix calls then sit in control flow uniform per subgroup with per-subgroup
// offsets, so the `chromium.subgroup_matrix_uniformity` diagnostic, which asks for workgroup
// uniformity, is turned off for them); each subgroup computes tilesM x tilesN result matrices of
// D x D, so a workgroup a TM x TN tile of C (TM = sgM*tilesM*D, TN = sgN*tilesN*D). Per KB-wide
// slice of K (KB = kSteps*D) the whole workgroup stages A (TM x KB) and B (KB x TN) in workgroup
// memory, every element rounded to f16 with f16r and zero past GM, GN and the K range; each
// subgroup then loads its left / right matrices from there and multiply-accumulates, kSteps times.
// At the end each subgroup hands its result matrices one by one through its own D x D scratch in
// workgroup memory, so each kernel's store is bounds-checked per element and may apply an epilogue.
// Larger workgroup tiles read less per multiply-accumulate: staging A and B for a KB slice costs
// (TM + TN) * KB loads for TM * TN * KB products. No double buffering yet.
//
// `emulate` replaces the subgroup-matrix operations (declare, multiply-accumulate, store to the
// scratch) with plain f32 arithmetic on the same f16 workgroup-memory tiles at the same offsets
// (f16 values are exact in f32; the accumulators live in workgroup memory, Cacc, each element owned
// by one lane of its subgroup: lavapipe runs away with large private arrays kept across barriers;
// needs shader-f16 like the real form): everything else (the loads of A and B with their index
// arithmetic and tails, the staging layout, each subgroup's offsets, the final store and epilogue)
// is the same text. Adapters without subgroup matrices (lavapipe, CI) run the emulated form against
// the float64 reference, which proves all but the three builtins; the real form is checked on the
// device at init() (engine/ops/tensor-cores.ts).
import { F16_ROUND_WGSL } from './f16.js';

export interface SubgroupMatrixTileSpec {
  /** Invocations per subgroup: the adapter's (fixed) subgroup size. */
  S: number;
  /** Square matrix size of the configuration (M = N = K = D). */
  D: number;
  /** Result matrices per subgroup along M and N. */
  tilesM: number;
  tilesN: number;
  /** Subgroups per workgroup along M and N (default 1 each). */
  sgM?: number;
  sgN?: number;
  /** D-wide steps of K per staged slice (default 1). */
  kSteps?: number;
  /** Plain f32 arithmetic instead of subgroup matrices (see the header). */
  emulate?: boolean;
}

/** A spec's workgroup tile: rows TM, columns TN, K slice KB, invocations WG, subgroups SG. */
export function tileShape(s: SubgroupMatrixTileSpec): { TM: number; TN: number; KB: number; WG: number; SG: number } {
  const sgM = s.sgM ?? 1, sgN = s.sgN ?? 1;
  return { TM: sgM * s.tilesM * s.D, TN: sgN * s.tilesN * s.D, KB: (s.kSteps ?? 1) * s.D, WG: sgM * sgN * s.S, SG: sgM * sgN };
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

/** Workgroup memory of a spec's kernel, in bytes: f16 A and B slices, each subgroup's f32 scratch, and the emulated form's f32 accumulators. */
export function tileMemory(s: SubgroupMatrixTileSpec): number {
  const { TM, TN, KB, SG } = tileShape(s);
  return 2 * (TM * KB + KB * TN) + 4 * SG * s.D * s.D + (s.emulate ? 4 * TM * TN : 0);
}

/** A tile's name: `sgmat${D}_${tilesM}x${tilesN}`, then `_w${sgM}x${sgN}` and `_k${kSteps}` where not 1, `_emulated` for the emulated form. */
export function tileName(s: SubgroupMatrixTileSpec): string {
  const sg = (s.sgM ?? 1) * (s.sgN ?? 1) > 1 ? `_w${s.sgM ?? 1}x${s.sgN ?? 1}` : '';
  const k = (s.kSteps ?? 1) > 1 ? `_k${s.kSteps}` : '';
  return `sgmat${s.D}_${s.tilesM}x${s.tilesN}${sg}${k}${s.emulate ? '_emulated' : ''}`;
}

/** A tile kernel's entry point: `${prefix}_${tileName}`. */
export function tileEntry(prefix: string, s: SubgroupMatrixTileSpec): string {
  return `${prefix}_${tileName(s)}`;
}

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/**
 * The f16 of an f16r-rounded f32 (representable, or +-inf / NaN). WGSL leaves the conversion of an
 * infinite or NaN f32 to f16 undefined, and an overflow that became a finite value would hide from
 * the GradScaler's inf check, so those are built from their bits (sign, all-ones exponent, a quiet
 * NaN's mantissa bit).
 */
const TO_F16_WGSL = `fn toF16(v: f32) -> f16 {
  let b = bitcast<u32>(v);
  let bits = ((b >> 16u) & 0x8000u) | 0x7c00u | select(0u, 0x200u, (b & 0x7fffffu) != 0u);
  return select(f16(v), bitcast<vec2<f16>>(bits).x, (b & 0x7f800000u) == 0x7f800000u);
}`;

/** The kernel's WGSL. Workgroups: (ceil(GN / TN), ceil(GM / TM), any z the prelude reads) (tileShape). */
export function subgroupMatrixTileWgsl(s: SubgroupMatrixTileSpec, p: TileParts): string {
  const { S, D, tilesM, tilesN } = s;
  const sgN = s.sgN ?? 1, kSteps = s.kSteps ?? 1;
  const emu = !!s.emulate;
  if (![8, 16].includes(D)) throw new Error(`subgroupMatrixKernel: matrix size ${D} (written for 8 or 16)`);
  const counts = [tilesM, tilesN, s.sgM ?? 1, sgN, kSteps];
  if (!(Number.isInteger(S) && S >= 4 && S <= 128) || !counts.every((c) => Number.isInteger(c) && c >= 1)) throw new Error(`subgroupMatrixKernel: bad spec ${JSON.stringify(s)}`);
  const { TM, TN, KB, WG, SG } = tileShape(s);
  if (WG > 256) throw new Error(`subgroupMatrixKernel: ${WG} invocations per workgroup (at most 256)`);
  const { start: kStart, end: kEnd } = p.kRange ?? { start: '0u', end: 'GK' };
  const ij = range(tilesM).flatMap((i) => range(tilesN).map((j) => [i, j] as const));
  // Offsets (in elements, WGSL u32 expressions of the result matrix (i, j) and the K step kk,
  // literals in the real form, loop variables in the emulated one) shared by both forms: subgroup
  // sg = (sm, sn) owns rows (sm*tilesM + i)*D of As (row stride KB) and columns (sn*tilesN + j)*D of
  // Bs (row stride TN).
  const aOff = (i: string, kk: string): string => `(sm * ${tilesM * D}u + ${i} * ${D}u) * ${KB}u + ${kk} * ${D}u`;
  const bOff = (j: string, kk: string): string => `${kk} * ${D * TN}u + sn * ${tilesN * D}u + ${j} * ${D}u`;
  /** Row and column of element (r, c) of result matrix (i, j) in the workgroup tile. */
  const cRow = (i: string, r: string): string => `sm * ${tilesM * D}u + ${i} * ${D}u + ${r}`;
  const cCol = (j: string, c: string): string => `sn * ${tilesN * D}u + ${j} * ${D}u + ${c}`;
  const accInit = emu
    ? `  for (var e = lid; e < ${TM * TN}u; e += ${WG}u) { Cacc[e] = 0.0; }\n  workgroupBarrier();`
    : ij.map(([i, j]) => `  var acc${i}_${j} = subgroup_matrix_result<f32, ${D}, ${D}>();`).join('\n');
  /** Emulation: element e (< D*D) of result matrix (i, j) in Cacc, the workgroup tile's accumulators. */
  const cAt = (i: string, j: string, e: string): string => `(${cRow(i, `${e} / ${D}u`)}) * ${TN}u + ${cCol(j, `${e} % ${D}u`)}`;
  // Emulated: loops (not unrolled: lavapipe's compile time grows fast with the unrolled size).
  const mma = emu
    ? `    for (var kk = 0u; kk < ${kSteps}u; kk++) {
      for (var i = 0u; i < ${tilesM}u; i++) {
        for (var j = 0u; j < ${tilesN}u; j++) {
          for (var e = lane; e < ${D * D}u; e += ${S}u) {
            let r = e / ${D}u; let cc = e % ${D}u; let at = ${cAt('i', 'j', 'e')};
            var s = Cacc[at];
            for (var q = 0u; q < ${D}u; q++) { s = s + f32(As[${aOff('i', 'kk')} + r * ${KB}u + q]) * f32(Bs[${bOff('j', 'kk')} + q * ${TN}u + cc]); }
            Cacc[at] = s;
          }
        }
      }
    }`
    : range(kSteps).map((kk) => [
        ...range(tilesM).map((i) => `    let l${i}_${kk} = subgroupMatrixLoad<subgroup_matrix_left<f16, ${D}, ${D}>>(&As, ${aOff(`${i}u`, `${kk}u`)}, false, ${KB}u);`),
        ...range(tilesN).map((j) => `    let r${j}_${kk} = subgroupMatrixLoad<subgroup_matrix_right<f16, ${D}, ${D}>>(&Bs, ${bOff(`${j}u`, `${kk}u`)}, false, ${TN}u);`),
        ...ij.map(([i, j]) => `    acc${i}_${j} = subgroupMatrixMultiplyAccumulate(l${i}_${kk}, r${j}_${kk}, acc${i}_${j});`),
      ].join('\n')).join('\n');
  // Each result matrix through the subgroup's scratch, then stored by the subgroup's lanes.
  const store = ij.map(([i, j]) => `  ${emu ? `for (var e = lane; e < ${D * D}u; e += ${S}u) { Cscr[scr + e] = Cacc[${cAt(`${i}u`, `${j}u`, 'e')}]; }` : `subgroupMatrixStore(&Cscr, scr, acc${i}_${j}, false, ${D}u);`}
  workgroupBarrier();
  for (var e = lane; e < ${D * D}u; e += ${S}u) {
    let r = row0 + ${cRow(`${i}u`, `e / ${D}u`)}; let col = col0 + ${cCol(`${j}u`, `e % ${D}u`)};
    if (r < GM && col < GN) { ${p.store('r', 'col', 'Cscr[scr + e]')} }
  }
  workgroupBarrier();`).join('\n');
  return `enable f16;\n${emu ? '' : 'enable chromium_experimental_subgroup_matrix;\ndiagnostic(off, chromium.subgroup_matrix_uniformity);\n'}${F16_ROUND_WGSL}
${TO_F16_WGSL}
${p.decls}
var<workgroup> As: array<f16, ${TM * KB}>;
var<workgroup> Bs: array<f16, ${KB * TN}>;
var<workgroup> Cscr: array<f32, ${SG * D * D}>;
${emu ? `var<workgroup> Cacc: array<f32, ${TM * TN}>;\n` : ''}${p.helpers ?? ''}
@compute @workgroup_size(${WG})
fn ${p.entry}(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_index) lid: u32) {
${p.prelude}
  let row0 = wid.y * ${TM}u;
  let col0 = wid.x * ${TN}u;
  let sg = lid / ${S}u; let lane = lid % ${S}u;
  let sm = sg / ${sgN}u; let sn = sg % ${sgN}u;
  let scr = sg * ${D * D}u;
${accInit}
  for (var k0 = ${kStart}; k0 < ${kEnd}; k0 += ${KB}u) {
    for (var e = lid; e < ${TM * KB}u; e += ${WG}u) {
      let r = row0 + e / ${KB}u; let k = k0 + e % ${KB}u;
      let v = f16r(${p.loadA('r', 'k')});
      As[e] = toF16(select(0.0, v, r < GM && k < ${kEnd}));
    }
    for (var e = lid; e < ${KB * TN}u; e += ${WG}u) {
      let k = k0 + e / ${TN}u; let col = col0 + e % ${TN}u;
      let v = f16r(${p.loadB('k', 'col')});
      Bs[e] = toF16(select(0.0, v, k < ${kEnd} && col < GN));
    }
    workgroupBarrier();
${mma}
    workgroupBarrier();
  }
${store}
}
`;
}
