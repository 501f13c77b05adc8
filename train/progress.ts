// Training progress: one console line per interval (iteration/total, each loss term averaged over
// the interval, learning rate, images/s, GPU memory, ETA) and a JSONL metrics log in the run folder
// with one record per iteration and one per evaluation. On resume the log is cut back to the
// checkpoint's iteration, so the records of iterations that are re-run appear once. File access goes
// through FileIO (data/io.ts), so this runs in a page too (with no log, or a page's own FileIO).
import type { FileIO } from '../data/io.js';
import { LOSS_TERMS, type LossTerm } from '../model/maskrcnn.js';

const SHORT: Record<LossTerm, string> = {
  loss_objectness: 'obj',
  loss_rpn_box_reg: 'rpn_box',
  loss_classifier: 'cls',
  loss_box_reg: 'box',
  loss_mask: 'mask',
};

/** One iteration's record in metrics.jsonl. */
export interface IterRecord {
  type: 'iter';
  /** 1-based iteration number. */
  iter: number;
  losses: Record<LossTerm, number>;
  total: number;
  lr: number;
  /** Seconds this iteration took (data wait included). */
  seconds: number;
  images: number;
  /** --amp runs: the loss scale of the step and whether the scaler skipped its update. */
  amp?: { scale: number; skipped: boolean };
}

/** An evaluation's record in metrics.jsonl. */
export interface EvalRecord {
  type: 'eval';
  iter: number;
  bboxAP: number;
  segmAP: number;
  bboxStats: number[];
  segmStats: number[];
  seconds: number;
  images: number;
}

export type MetricsRecord = IterRecord | EvalRecord;

export function formatDuration(s: number): string {
  if (!Number.isFinite(s)) return '?';
  // Round to whole seconds first, so 419.6 s reads 7m00s rather than 6m60s.
  const t = Math.round(s);
  if (t < 60) return `${t}s`;
  if (t < 3600) return `${Math.floor(t / 60)}m${String(t % 60).padStart(2, '0')}s`;
  return `${Math.floor(t / 3600)}h${String(Math.floor((t % 3600) / 60)).padStart(2, '0')}m`;
}

const fmtLoss = (v: number): string => (Math.abs(v) >= 100 || (v !== 0 && Math.abs(v) < 1e-3) ? v.toExponential(2) : v.toFixed(4));

/** Reads metrics.jsonl (missing file: empty); a torn last line from a kill is ignored. */
export async function readMetrics(io: FileIO, path: string): Promise<MetricsRecord[]> {
  if (!(await io.exists(path))) return [];
  const out: MetricsRecord[] = [];
  for (const line of (await io.readText(path)).split('\n')) {
    if (!line.trim()) continue;
    try {
      out.push(JSON.parse(line) as MetricsRecord);
    } catch {
      // A line cut short by SIGKILL: everything after it would be re-run anyway.
    }
  }
  return out;
}

export interface ProgressOptions {
  /** metrics.jsonl path (null: no log) and the FileIO that writes it. */
  logPath: string | null;
  io?: FileIO;
  totalIters: number;
  /** Print a line every this many iterations (and at the last). */
  every: number;
  /** Where lines go (default console.log). */
  print?: (line: string) => void;
  /** GPU bytes in use, for the line. */
  memory?: () => { liveBytes: number; peakLiveBytes: number };
}

/** Iterations whose mean time gives the ETA. */
export const ETA_WINDOW = 50;

export class ProgressReporter {
  private readonly print: (line: string) => void;
  private interval: IterRecord[] = [];
  /** Iterations and seconds since the run (or resume) began, for the ETA; the first iteration
   *  compiles every kernel's pipeline and is left out once there are others. */
  private timed: { iters: number; seconds: number; first: number | null } = { iters: 0, seconds: 0, first: null };
  /** The last ETA_WINDOW iterations' seconds (the first iteration left out), for the ETA: the speed
   *  of the first minutes of a run on a cold shader cache is a poor guide to the rest (kernels
   *  still compiling in the background; lavapipe's first run: 2 img/s at iteration 20, 19 from 160
   *  on, and an ETA from the whole-run mean said 28 minutes for a run that took 6). */
  private recent: number[] = [];

  constructor(private readonly opts: ProgressOptions) {
    this.print = opts.print ?? ((l) => console.log(l));
    if (opts.logPath && !opts.io) throw new Error('ProgressReporter: a log path needs a FileIO');
  }

  /** Starts (fresh: empties the log) or resumes (keeps only records up to `fromIter`). */
  async start(fromIter: number): Promise<void> {
    const p = this.opts.logPath;
    if (!p) return;
    const io = this.opts.io!;
    if (fromIter === 0) {
      await io.writeText(p, '');
      return;
    }
    const kept = (await readMetrics(io, p)).filter((r) => r.iter <= fromIter);
    await io.writeText(p, kept.map((r) => JSON.stringify(r) + '\n').join(''));
  }

  private async log(rec: MetricsRecord): Promise<void> {
    if (this.opts.logPath) await this.opts.io!.appendText(this.opts.logPath, JSON.stringify(rec) + '\n');
  }

  /** Records one iteration; prints the interval's line when due. */
  async iteration(r: Omit<IterRecord, 'type'>): Promise<void> {
    const rec: IterRecord = { type: 'iter', ...r };
    await this.log(rec);
    this.interval.push(rec);
    if (this.timed.first === null) this.timed.first = r.seconds;
    else {
      this.timed.iters++;
      this.timed.seconds += r.seconds;
      this.recent.push(r.seconds);
      if (this.recent.length > ETA_WINDOW) this.recent.shift();
    }
    if (r.iter % this.opts.every === 0 || r.iter === this.opts.totalIters) this.flush();
  }

  async evaluation(r: Omit<EvalRecord, 'type'>): Promise<void> {
    const rec: EvalRecord = { type: 'eval', ...r };
    await this.log(rec);
    this.print(`eval @ iter ${r.iter}: box AP ${r.bboxAP.toFixed(3)}  mask AP ${r.segmAP.toFixed(3)}  (${r.images} images, ${formatDuration(r.seconds)})`);
  }

  /** Seconds per iteration so far (steady state when available). */
  secondsPerIter(): number {
    if (this.timed.iters > 0) return this.timed.seconds / this.timed.iters;
    return this.timed.first ?? NaN;
  }

  /** Seconds per iteration over the last ETA_WINDOW iterations (the whole run's figure before any). */
  recentSecondsPerIter(): number {
    if (this.recent.length === 0) return this.secondsPerIter();
    return this.recent.reduce((a, b) => a + b, 0) / this.recent.length;
  }

  private flush(): void {
    const recs = this.interval;
    if (recs.length === 0) return;
    this.interval = [];
    const last = recs[recs.length - 1]!;
    const mean = (f: (r: IterRecord) => number): number => recs.reduce((a, r) => a + f(r), 0) / recs.length;
    const secs = recs.reduce((a, r) => a + r.seconds, 0);
    const imgs = recs.reduce((a, r) => a + r.images, 0);
    const width = String(this.opts.totalIters).length;
    const terms = LOSS_TERMS.map((k) => `${SHORT[k]} ${fmtLoss(mean((r) => r.losses[k]))}`).join(' ');
    const mem = this.opts.memory?.();
    const memStr = mem ? `  mem ${(mem.liveBytes / 2 ** 20).toFixed(0)} MiB (peak ${(mem.peakLiveBytes / 2 ** 20).toFixed(0)})` : '';
    const eta = (this.opts.totalIters - last.iter) * this.recentSecondsPerIter();
    this.print(
      `iter ${String(last.iter).padStart(width)}/${this.opts.totalIters}  loss ${fmtLoss(mean((r) => r.total))} (${terms})  ` +
        `lr ${last.lr.toPrecision(3)}  ${(imgs / secs).toFixed(2)} img/s${memStr}  ETA ${formatDuration(eta)}`,
    );
  }
}

/**
 * A status line while a step compiles kernels (the first step of a process builds every pipeline;
 * on a CPU adapter that takes minutes with an empty shader cache). After `firstMs`, then every
 * `everyMs`, prints how many pipelines were created since the start, if any were, and how long
 * it has been. Returns the function that stops it. On lavapipe the pipelines are created quickly
 * and most of the time goes into the driver's compile at each kernel's first dispatch, so the count
 * stops rising while the seconds go on. `background` tells how many fast kernel variants are still
 * compiling on the side (engine/tiering.ts): the step runs their quick variants meanwhile, and the
 * line says so, since the steps until they are done run slower.
 */
export function startCompileStatus(print: (line: string) => void, pipelines: () => number, firstMs = 5000, everyMs = 15000, background?: () => number): () => void {
  const p0 = pipelines();
  const t0 = performance.now();
  const report = (): void => {
    const n = pipelines() - p0;
    const bg = background?.() ?? 0;
    const side = bg > 0 ? `; ${bg} fast variants compiling in the background, quick ones running meanwhile` : '';
    if (n > 0) print(`first step: compiling kernels (${n} pipelines so far, ${formatDuration((performance.now() - t0) / 1000)}${side}) ...`);
  };
  let timer: ReturnType<typeof setInterval> | undefined;
  const first = setTimeout(() => {
    report();
    timer = setInterval(report, everyMs);
  }, firstMs);
  return () => {
    clearTimeout(first);
    if (timer !== undefined) clearInterval(timer);
  };
}
