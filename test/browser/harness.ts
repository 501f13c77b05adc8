// The in-page test harness: runs the cases that the engine's own test files registered (through
// uvu-shim.ts) one by one, and publishes the results on window.__browserTests for
// test/browser/run.js, logging one line per case as it goes. The files themselves are imported by
// suites.ts, the bundle's entry (web/build.js makes <dist>/web/tests.js of it).
import { takeGroups } from './uvu-shim.js';
import { adapterReport } from '../../engine/index.js';

export interface Suite {
  file: string;
  /** Only the cases whose name matches (a filter that matches nothing is a failure: names moved). */
  grep?: RegExp;
}

export interface CaseResult {
  file: string;
  name: string;
  ok: boolean;
  ms: number;
  error?: string;
}

export interface BrowserTestState {
  done: boolean;
  results: CaseResult[];
  skipped: number;
  userAgent: string;
  adapter?: unknown;
  totalMs?: number;
}

const CASE_TIMEOUT_MS = 180_000;

function describe(e: unknown): string {
  if (e instanceof Error) return `${e.name}: ${e.message}${e.stack ? '\n' + e.stack.split('\n').slice(1, 6).join('\n') : ''}`;
  return String(e);
}

async function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, fail) => {
    timer = setTimeout(() => fail(new Error(`${what}: no result after ${ms / 1000} s`)), ms);
  });
  try {
    return await Promise.race([p, timeout]);
  } finally {
    clearTimeout(timer);
  }
}

export async function runSuites(suites: Suite[], only?: RegExp): Promise<BrowserTestState> {
  const state: BrowserTestState = { done: false, results: [], skipped: 0, userAgent: navigator.userAgent };
  (globalThis as { __browserTests?: BrowserTestState }).__browserTests = state;
  const t0 = performance.now();
  const report = (r: CaseResult) => {
    state.results.push(r);
    console.log(`[case] ${r.ok ? 'ok  ' : 'FAIL'} ${r.file} > ${r.name} (${r.ms.toFixed(0)} ms)${r.ok ? '' : '\n' + r.error}`);
  };
  // Each file ends with one test.run(): the groups come in import order, one per file.
  const groups = takeGroups();
  if (groups.length !== suites.length) {
    report({ file: 'harness', name: '(file list)', ok: false, ms: 0, error: `${groups.length} files called test.run() but suites.ts lists ${suites.length}: keep its imports and SUITES in step` });
  }
  for (const [i, suite] of suites.entries()) {
    const group = groups[i] ?? { cases: [], skipped: 0 };
    state.skipped += group.skipped;
    let chosen = suite.grep ? group.cases.filter((c) => suite.grep!.test(c.name)) : group.cases;
    if (chosen.length === 0 && !only) {
      report({ file: suite.file, name: `(filter ${suite.grep ?? 'none'})`, ok: false, ms: 0, error: `no case selected out of ${group.cases.length}: were they renamed?` });
    }
    if (only) chosen = chosen.filter((c) => only.test(`${suite.file} > ${c.name}`));
    for (const c of chosen) {
      const s = performance.now();
      try {
        await withTimeout(Promise.resolve().then(c.fn), CASE_TIMEOUT_MS, c.name);
        report({ file: suite.file, name: c.name, ok: true, ms: performance.now() - s });
      } catch (e) {
        report({ file: suite.file, name: c.name, ok: false, ms: performance.now() - s, error: describe(e) });
      }
    }
  }
  state.adapter = adapterReport;
  state.totalMs = performance.now() - t0;
  state.done = true;
  return state;
}
