// Compares two tensor dumps name by name: `node cli/infer.js ... --dump OURS.safetensors` against a
// parity fixture (shared/fixtures/torchvision-maskrcnn/<case>/expected.safetensors) or another dump.
//
//   node dist/tools/compare-dump.js A.safetensors B.safetensors [--tol T] [--box-tol PX] [--only REGEX]
//
// For every name in both files of the same shape: the scaled error max|a - b| / max|b| (B is the
// reference) and the largest absolute difference. Box sets (rpn.proposals, det.boxes) may be
// reordered by near-ties, so they are also compared as matched sets: the share of B's boxes with a
// box of A within --box-tol pixels on every coordinate. Rows of box.* and mask.logits follow the
// proposals / detections each side computed them for, so they only line up when those match.
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
const BOX_SETS = new Set(['rpn.proposals', 'det.boxes']);

export interface Comparison {
  name: string;
  shapeA: number[];
  shapeB: number[];
  /** max |a - b| / max |b| (null when the shapes differ). */
  scaled: number | null;
  maxAbs: number | null;
  /** For box sets: share of B's boxes matched by a box of A. */
  matched?: number;
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
  const used = new Uint8Array(na);
  let hits = 0;
  for (let i = 0; i < nb; i++) {
    for (let j = 0; j < na; j++) {
      if (used[j]) continue;
      let ok = true;
      for (let k = 0; k < 4 && ok; k++) ok = Math.abs(a[4 * j + k]! - b[4 * i + k]!) <= tol;
      if (ok) {
        used[j] = 1;
        hits++;
        break;
      }
    }
  }
  return hits / nb;
}

const sameShape = (a: HostTensor, b: HostTensor): boolean => a.shape.length === b.shape.length && a.shape.every((d, i) => d === b.shape[i]);

/** Compares the tensors both dumps have. */
export function compareDumps(A: Record<string, HostTensor>, B: Record<string, HostTensor>, boxTol = 0.05, only?: RegExp): { rows: Comparison[]; onlyA: string[]; onlyB: string[] } {
  const keep = (n: string): boolean => !only || only.test(n);
  const rows: Comparison[] = [];
  for (const name of Object.keys(B).filter(keep).sort()) {
    const a = A[name], b = B[name]!;
    if (!a) continue;
    const row: Comparison = { name, shapeA: a.shape, shapeB: b.shape, scaled: null, maxAbs: null };
    if (sameShape(a, b)) Object.assign(row, scaledError(a.data, b.data));
    if (BOX_SETS.has(name) && a.shape.at(-1) === 4 && b.shape.at(-1) === 4) row.matched = matchedBoxes(a.data, b.data, boxTol);
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
    const bad = tol !== undefined && r.scaled !== null && !(r.scaled <= tol);
    if (bad) { failed++; notes.push(`> ${tol}`); }
    if (r.scaled !== null && Number.isFinite(r.scaled)) worst = Math.max(worst, r.scaled);
    const se = r.scaled === null ? '-' : r.scaled.toExponential(2);
    const ma = r.maxAbs === null ? '-' : r.maxAbs.toExponential(2);
    console.log(`${r.name.padEnd(w)}${shape(r.shapeB).padEnd(20)}${se.padStart(12)}${ma.padStart(12)}  ${notes.join('; ')}`);
  }
  if (onlyA.length) console.log(`\nonly in A: ${onlyA.join(', ')}`);
  if (onlyB.length) console.log(`only in B: ${onlyB.join(', ')}`);
  const compared = rows.filter((r) => r.scaled !== null).length;
  console.log(`\n${rows.length} common tensors, ${compared} of the same shape; worst scaled error ${worst.toExponential(2)}` +
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
