// The k-loop of the 'subgroup' matmul family (needs the 'subgroups' feature and a subgroup size of
// exactly S). The rest is 'direct' (kernels/matmul.ts): a workgroup is one subgroup of S invocations
// along N, each holding a tm x tn register block of C and reading its own B columns. A, which every
// lane needs in full, is not read by every lane: for each S-step slice of K, lane l reads
// A[row, k0 + l] of each of the tm rows (one lane-varying read per row per S steps, contiguous across
// lanes), and step kk takes A[row, k0 + kk] from lane kk with subgroupBroadcast. On a CPU adapter
// (lavapipe: S = 8 SIMD lanes) this trades tm x S uniform loads per slice for tm gathers and tm x S
// lane broadcasts; on a GPU it cuts A's reads through the cache by S. The K tail reads a clamped
// index and zeroes A, so the loop has no branches. The float64 reference is matmulReference.
import type { MatmulVariant, RegisterBlock } from './matmul.js';
import { f16Load } from './f16.js';

const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i);

/** The k-loop lines (names as in RegisterBlock; `sl` is the subgroup invocation id). */
export function subgroupLoop(v: MatmulVariant, { tm, tnv, T, roundF16 }: RegisterBlock): string[] {
  const S = v.subgroup;
  if (!S || v.wgN !== S || v.wgM !== 1) throw new Error(`matmul variant ${v.name}: a subgroup variant's workgroup is one subgroup (wgN = subgroup, wgM = 1)`);
  const lines = [`for (var k0 = 0u; k0 < K; k0 += ${S}u) {`, '  let kl = k0 + sl;', '  let kc = min(kl, K - 1u);'];
  // This lane's share of A: column k0 + lane of every row (zero past K).
  for (const i of range(tm)) lines.push(`  let as${i} = select(0.0, ${f16Load(`a[ar${i} + kc * aK]`, roundF16)}, kl < K);`);
  for (const kk of range(S)) {
    lines.push(`  let k${kk} = min(k0 + ${kk}u, K - 1u);`);
    for (const j of range(tnv)) lines.push(`  let b${kk}_${j} = ${f16Load(`b[bc${j} + k${kk} * bKv]`, roundF16, T !== 'f32')};`);
    for (const i of range(tm)) lines.push(`  let a${kk}_${i} = ${T}(subgroupBroadcast(as${i}, ${kk}u));`);
    for (const i of range(tm)) for (const j of range(tnv)) lines.push(`  acc${i}_${j} = fma(a${kk}_${i}, b${kk}_${j}, acc${i}_${j});`);
  }
  lines.push('}');
  return lines;
}

