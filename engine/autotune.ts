// The kernel autotuner: where a kernel family has several variants (matmul's register blocks, a
// subgroup variant where the adapter has subgroups), the best one depends on the adapter and the
// shape. The first time a (family, shape class) is met, the op runs the fixed fallback choice and
// queues a tuning job; at the next readback (engine/backend.ts read()) every queued job times each
// candidate once on the GPU (a warm-up, then the best of a few GPU-synchronised runs), keeps the
// fastest, and saves it through the injected TuneStore under a versioned key, so later runs (and
// later processes, with a persistent store) start with the tuned choice.
//
// Off by default (tests and CI get the fixed fallback table, which is the hand-measured choice of
// each adapter kind); the CLIs switch it on for GPUs, or with --tune, unless `--no-tune`,
// MASKRCNN_NO_TUNE=1 or CI (cli/node-tune.ts, whose store is a JSON file under the user's cache
// folder). A readback spends at most TUNE_BUDGET_S on queued classes (the rest wait for the next
// one), so tuning spreads over the first steps instead of stalling one. Browser-safe: no Node here.
import { adapterReport } from './device.js';

/**
 * Bump when the candidates or the timing method change in a way that makes old choices stale: every
 * key carries it, so a cache written by another version is ignored (and overwritten as it retunes).
 */
export const TUNER_VERSION = 3;

/** Seconds of tuning one readback may spend (a class in progress finishes; it is never cut short). */
export const TUNE_BUDGET_S = 2;

/** Where tuned choices persist: key -> variant name. load() may be async (IndexedDB, files). */
export interface TuneStore {
  load(): Record<string, string> | Promise<Record<string, string>>;
  /** Writes the given entries (all the tuner knows; a store may merge them with what it holds). */
  save(entries: Record<string, string>): void | Promise<void>;
}

/** A store that lives as long as the page or process (the default, and browsers' store). */
export function memoryTuneStore(initial: Record<string, string> = {}): TuneStore {
  let held = { ...initial };
  return {
    load: () => ({ ...held }),
    save: (entries) => {
      held = { ...held, ...entries };
    },
  };
}

/** Seconds one run of a candidate takes; rejects if the candidate cannot run. */
export type CandidateTimer = (name: string) => Promise<number>;

interface TuneJob {
  key: string;
  candidates: readonly string[];
  time: CandidateTimer;
}

export interface AutotunerOptions {
  /** Whether unseen shape classes are timed (false: every choice is the fallback). */
  enabled?: boolean;
  store?: TuneStore;
  /** Overrides TUNER_VERSION (tests of invalidation). */
  version?: number;
  /** The adapter's identity in keys (default: vendor/architecture/description of the engine's adapter). */
  adapter?: () => string;
}

export class Autotuner {
  enabled: boolean;
  private store: TuneStore;
  private readonly version: number;
  private readonly adapter: () => string;
  private choices = new Map<string, string>();
  private jobs = new Map<string, TuneJob>();
  private running = false;

  constructor(opts: AutotunerOptions = {}) {
    this.enabled = opts.enabled ?? false;
    this.store = opts.store ?? memoryTuneStore();
    this.version = opts.version ?? TUNER_VERSION;
    this.adapter = opts.adapter ?? adapterIdentity;
  }

  /** Replaces the store and loads its choices of this version (others are ignored). */
  async useStore(store: TuneStore): Promise<void> {
    this.store = store;
    await this.load();
  }

  /** Reads the store's entries into memory (only keys of this tuner's version count). */
  async load(): Promise<void> {
    const entries = await this.store.load();
    const prefix = `tune-v${this.version}|`;
    for (const [k, v] of Object.entries(entries)) if (k.startsWith(prefix) && typeof v === 'string') this.choices.set(k, v);
  }

  /** The versioned cache key of a shape class of a kernel family on this adapter. */
  key(family: string, shapeClass: string): string {
    return `tune-v${this.version}|${family}|${this.adapter()}|${shapeClass}`;
  }

  /**
   * The variant to run (synchronous: ops dispatch without awaiting). A stored choice that is still a
   * candidate wins; otherwise the fallback, and when tuning is on the class is queued for timing.
   */
  choose(family: string, shapeClass: string, candidates: readonly string[], fallback: string, time: CandidateTimer): string {
    if (!this.enabled || candidates.length < 2) return fallback;
    const key = this.key(family, shapeClass);
    const known = this.choices.get(key);
    if (known !== undefined && candidates.includes(known)) return known;
    if (!this.jobs.has(key)) this.jobs.set(key, { key, candidates: [...candidates], time });
    return fallback;
  }

  /** The choices held (key -> variant; tests and benchmarks). */
  entries(): Record<string, string> {
    return Object.fromEntries(this.choices);
  }

  get pending(): number {
    return this.jobs.size;
  }

  /**
   * Times every queued class's candidates, keeps the fastest of each and saves all choices. A
   * candidate whose timer rejects is skipped; a class none of whose candidates ran keeps its fallback
   * (and is not queued again). After `budgetS` seconds no further class starts (at least one does).
   * Re-entrant calls (a timer that reads back) return at once.
   */
  async tunePending(budgetS = Infinity): Promise<void> {
    if (this.running || this.jobs.size === 0) return;
    this.running = true;
    const t0 = performance.now();
    try {
      const jobs = [...this.jobs.values()];
      for (const job of jobs) {
        if (job !== jobs[0] && performance.now() - t0 >= budgetS * 1e3) break;
        let best: string | undefined, bestS = Infinity;
        for (const name of job.candidates) {
          let s: number;
          try {
            s = await job.time(name);
          } catch {
            continue;
          }
          if (s < bestS) [best, bestS] = [name, s];
        }
        if (best !== undefined) this.choices.set(job.key, best);
        this.jobs.delete(job.key);
      }
      await this.store.save(Object.fromEntries(this.choices));
    } finally {
      this.running = false;
    }
  }

  /** Forgets queued jobs and in-memory choices (the store keeps what it saved). */
  reset(): void {
    this.choices.clear();
    this.jobs.clear();
  }
}

function adapterIdentity(): string {
  const r = adapterReport;
  return r ? [r.vendor, r.architecture, r.description].map((s) => s || '-').join('/') : 'unknown';
}

/** The engine's tuner (matmul's variant choice consults it). */
export const engineTuner = new Autotuner();

export interface AutotuneOptions {
  /** Time unseen shape classes and keep the fastest variant (default false: the fixed fallback table). */
  enabled: boolean;
  /** Where choices persist (default: in memory). */
  store?: TuneStore;
}

/**
 * Switches the kernel autotuner on or off and, given a store, loads its saved choices. Off (the
 * default), every kernel choice is the fixed per-adapter fallback table.
 */
export async function setAutotune(opts: AutotuneOptions): Promise<void> {
  engineTuner.enabled = opts.enabled;
  if (opts.store) await engineTuner.useStore(opts.store);
}
