// Compares two tensor dumps name by name: `node cli/infer.js ... --dump OURS.safetensors` against a
// parity fixture (shared/fixtures/torchvision-maskrcnn/<case>/expected.safetensors) or another dump.
//
//   node dist/tools/compare-dump.js A.safetensors B.safetensors [--tol T] [--box-tol PX] [--only REGEX]
//
// For every name in both files of the same shape: the scaled error max|a - b| / max|b| (B is the
// reference) and the largest absolute difference. Box sets (rpn.proposals, det.boxes) may be
// reordered by near-ties, so they are also compared as matched sets: the share of B's boxes with a
// box of A within --box-tol pixels on every coordinate. Tensors whose rows follow those boxes
// (proposal scores and box-head outputs follow rpn.proposals; det.* and mask.logits follow
// det.boxes) are then compared row by row through that matching, on the matched rows only.
// With --tol, the exit code is 1 when a compared tensor's scaled error exceeds it.
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { loadSafetensors, type HostTensor } from '../engine/safetensors.js';
import { ArgsError, formatHelp, parseArgs, type OptionSpec } from '../cli/args.js';

const USAGE = 'node dist/tools/compare-dump.js A.safetensors B.safetensors [--tol T] [--box-tol PX] [--only REGEX]';
const SPECS: OptionSpec[] = [
  { name: 'tol', type: 'number', metavar: 'T', help: 'fail (exit 1) when a scaled error exceeds T' },
  { name: 'box-tol', type: 'number', metavar: 'PX', default: 0.05, help: 'coordinate tolerance of box matching' },
  { name: 'only', type: 'string', metavar: 'REGEX', help: 'compare only names matching REGEX' },
  { name: 'help', type: 'boolean', short: 'h', help: 'show this help' },
];
/** Row-aligned tensors, by the box set whose order they follow. */
const ROWS_FOLLOW: Record<string, string> = {
  'rpn.proposals': 'rpn.proposals', 'rpn.proposal_scores': 'rpn.proposals', 'box.class_logits': 'rpn.proposals', 'box.box_regression': 'rpn.proposals',
  'det.boxes': 'det.boxes', 'det.scores': 'det.boxes', 'det.labels': 'det.boxes', 'det.masks[0:5]': 'det.boxes', 'mask.logits[0:5]': 'det.boxes',
};

export interface Comparison {
  name: string;
  shapeA: number[];
  shapeB: number[];
  /** max |a - b| / max |b| (null when the shapes differ). */
  scaled: number | null;
  maxAbs: number | null;
  /** For box sets: share of B's boxes matched by a box of A. */
  matched?: number;
  /** For row-aligned tensors: the error over rows paired through their box set's matching. */
  paired?: { scaled: number; maxAbs: number; rows: number; of: number; via: string };
}

/** max |a - b| / max |b| and max |a - b| (NaN anywhere gives NaN). */
export function scaledError(a: ArrayLike<number>, b: ArrayLike<number>): { scaled: number; maxAbs: number } {
  let d = 0, m = 0;
  for (let i = 0; i < b.length; i++) {
    const e = Math.abs(a[i]! - b[i]!);
    if (Number.isNaN(e)) return { scaled: NaN, maxAbs: NaN };
    d = Math.max(d, e);
    m = Math.max(m, Math.abs(b[i]!));
  }
  return { scaled: d / (m || 1), maxAbs: d };
}

/** Share of B's [n, 4] boxes that a distinct box of A matches within tol on every coordinate. */
export function matchedBoxes(a: ArrayLike<number>, b: ArrayLike<number>, tol: number): number {
  const nb = b.length / 4, na = a.length / 4;
  if (nb === 0) return na === 0 ? 1 : 0;
  return boxPairs(a, b, tol).length / nb;
}

/** Greedy matching: [row of B, row of A] for each box of B with a box of A within tol. */
export function boxPairs(a: ArrayLike<number>, b: ArrayLike<number>, tol: number): [number, number][] {
  const nb = b.length / 4, na = a.length / 4;
  const used = new Uint8Array(na);
  const pairs: [number, number][] = [];
  for (let i = 0; i < nb; i++) {
    for (let j = 0; j < na; j++) {
      if (used[j]) continue;
      let ok = true;
      for (let k = 0; k < 4 && ok; k++) ok = Math.abs(a[4 * j + k]! - b[4 * i + k]!) <= tol;
      if (ok) {
        used[j] = 1;
        pairs.push([i, j]);
        break;
      }
    }
  }
  return pairs;
}

/** Error over the rows of A and B paired by `pairs` (rows beyond either tensor are skipped). */
function pairedError(a: HostTensor, b: HostTensor, pairs: [number, number][]): { scaled: number; maxAbs: number; rows: number } | null {
  const rest = (t: HostTensor): number[] => t.shape.slice(1);
  if (a.shape.length === 0 || rest(a).length !== rest(b).length || rest(a).some((d, i) => d !== rest(b)[i])) return null;
  const n = rest(a).reduce((x, y) => x * y, 1);
  const usable = pairs.filter(([i, j]) => i < b.shape[0]! && j < a.shape[0]!);
  const pa = new Float64Array(usable.length * n), pb = new Float64Array(usable.length * n);
  usable.forEach(([i, j], k) => {
    for (let e = 0; e < n; e++) {
      pa[k * n + e] = a.data[j * n + e]!;
      pb[k * n + e] = b.data[i * n + e]!;
    }
  });
  return { ...scaledError(pa, pb), rows: usable.length };
}

const sameShape = (a: HostTensor, b: HostTensor): boolean => a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);

/** Compares the tensors both dumps have. */
export function compareDumps(A: Record<string, HostTensor>, B: Record<string, HostTensor>, boxTol = 0.05, only?: RegExp): { rows: Comparison[]; onlyA: string[]; onlyB: string[] } {
  const keep = (n: string): boolean => !only || only.test(n);
  const rows: Comparison[] = [];
  const pairsOf = new Map<string, [number, number][]>();
  for (const set of new Set(Object.values(ROWS_FOLLOW))) {
    const a = A[set], b = B[set];
    if (a && b && a.shape.at(-1) === 4 && b.shape.at(-1) === 4) pairsOf.set(set, boxPairs(a.data, b.data, boxTol));
  }
  for (const name of Object.keys(B).filter(keep).sort()) {
    const a = A[name], b = B[name]!;
    if (!a) continue;
    const row: Comparison = { name, shapeA: a.shape, shapeB: b.shape, scaled: null, maxAbs: null };
    if (sameShape(a, b)) Object.assign(row, scaledError(a.data, b.data));
    const via = ROWS_FOLLOW[name];
    const pairs = via ? pairsOf.get(via) : undefined;
    if (pairs && name === via) row.matched = b.shape[0] ? pairs.length / b.shape[0] : 1;
    if (pairs) {
      const p = pairedError(a, b, pairs);
      if (p) row.paired = { ...p, of: b.shape[0]!, via };
    }
    rows.push(row);
  }
  return {
    rows,
    onlyA: Object.keys(A).filter((n) => keep(n) && !(n in B)).sort(),
    onlyB: Object.keys(B).filter((n) => keep(n) && !(n in A)).sort(),
  };
}

function readDump(file: string): Record<string, HostTensor> {
  let bytes: Uint8Array;
  try {
    bytes = new Uint8Array(readFileSync(file));
  } catch (e) {
    throw new Error(`${file}: ${(e as NodeJS.ErrnoException).code === 'ENOENT' ? 'no such file' : (e as Error).message}`);
  }
  try {
    return loadSafetensors(bytes).tensors;
  } catch (e) {
    throw new Error(`${file}: ${(e as Error).message}`);
  }
}

export function main(argv: string[]): number {
  let values, positionals;
  try {
    ({ values, positionals } = parseArgs(argv, SPECS));
    if (values.help) {
      console.log(formatHelp(USAGE, SPECS));
      return 0;
    }
    if (positionals.length !== 2) throw new ArgsError(`expected two files, got ${positionals.length}`);
  } catch (e) {
    if (!(e instanceof ArgsError)) throw e;
    console.error(`compare-dump: ${e.message}\n\n${formatHelp(USAGE, SPECS)}`);
    return 2;
  }
  let only: RegExp | undefined;
  try {
    only = typeof values.only === 'string' ? new RegExp(values.only) : undefined;
  } catch (e) {
    console.error(`compare-dump: --only: ${(e as Error).message}`);
    return 2;
  }
  const [fa, fb] = positionals as [string, string];
  let A, B;
  try {
    A = readDump(fa);
    B = readDump(fb);
  } catch (e) {
    console.error(`compare-dump: ${(e as Error).message}`);
    return 1;
  }
  const tol = values.tol as number | undefined;
  const { rows, onlyA, onlyB } = compareDumps(A, B, values['box-tol'] as number, only);
  const shape = (s: number[]): string => `[${s.join(',')}]`;
  const w = Math.max(4, ...rows.map((r) => r.name.length)) + 2;
  console.log(`A = ${fa}\nB = ${fb} (reference)\n`);
  console.log(`${'name'.padEnd(w)}${'shape'.padEnd(20)}${'scaled err'.padStart(12)}${'max abs'.padStart(12)}  notes`);
  let worst = 0, failed = 0;
  for (const r of rows) {
    const notes: string[] = [];
    if (r.scaled === null) notes.push(`shape differs: A ${shape(r.shapeA)}`);
    if (r.matched !== undefined) notes.push(`${(100 * r.matched).toFixed(1)}% of B's boxes matched within ${values['box-tol']} px`);
    if (r.paired) notes.push(`rows paired through ${r.paired.via}: ${r.paired.rows} of ${r.paired.of}, scaled err ${r.paired.scaled.toExponential(2)}, max abs ${r.paired.maxAbs.toExponential(2)}`);
    // The verdict uses the paired rows when there are any (the plain order may differ by near-ties).
    const err = r.paired && r.paired.rows > 0 ? r.paired.scaled : r.scaled;
    const bad = tol !== undefined && err !== null && !(err <= tol);
    if (bad) { failed++; notes.push(`> ${tol}`); }
    if (err !== null && Number.isFinite(err)) worst = Math.max(worst, err);
    const se = r.scaled === null ? '-' : r.scaled.toExponential(2);
    const ma = r.maxAbs === null ? '-' : r.maxAbs.toExponential(2);
    console.log(`${r.name.padEnd(w)}${shape(r.shapeB).padEnd(20)}${se.padStart(12)}${ma.padStart(12)}  ${notes.join('; ')}`);
  }
  if (onlyA.length) console.log(`\nonly in A: ${onlyA.join(', ')}`);
  if (onlyB.length) console.log(`only in B: ${onlyB.join(', ')}`);
  const compared = rows.filter((r) => r.scaled !== null || r.paired).length;
  console.log(`\n${rows.length} common tensors, ${compared} compared; worst scaled error ${worst.toExponential(2)} (paired rows where given)` +
    (tol !== undefined ? `; ${failed} over ${tol}` : ''));
  return failed ? 1 : 0;
}

if (import.meta.url === pathToFileURL(process.argv[1] ?? '').href) {
  try {
    process.exitCode = main(process.argv.slice(2));
  } catch (e) {
    console.error(`compare-dump: ${(e as Error).message}`);
    process.exitCode = 1;
  }
}
