// The Collective (train/collective.ts) over Open MPI, through the native addon beside this file
// (built by `npm run setup` where Open MPI is installed): the addon's own TypeScript face, so
// cli/train.ts and bench/allreduce.ts both use it without going through cli/.
// Collectives are issued one at a time in call order (MPI needs every rank to issue the same
// collectives in the same order, and the addon runs each on a worker thread). Each has a timeout:
// a rank that died or hangs would otherwise leave the others waiting forever inside MPI, so on
// timeout this rank prints what it waited for and aborts the whole job (MPI_Abort), as
// torch.distributed's collective timeout does.
import { existsSync } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';
import type { Collective } from '../../train/collective.js';

interface Addon {
  init(): { rank: number; size: number; library: string };
  finalize(): void;
  abort(code: number): never;
  barrier(): Promise<void>;
  broadcast(buf: Float32Array | Uint8Array, root: number): Promise<void>;
  allreduceSum(buf: Float32Array | Float64Array): Promise<void>;
  allgather(send: Float64Array | Uint8Array, recv: Float64Array | Uint8Array): Promise<void>;
  allgatherv(send: Uint8Array, recv: Uint8Array, counts: Int32Array): Promise<void>;
}

// This file runs from dist/native/mpi/; the addon is built in the source tree's native/mpi/build/.
const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..', '..');
export const MPI_ADDON_PATH = path.join(REPO_ROOT, 'native', 'mpi', 'build', 'Release', 'mpi_addon.node');

/** Thrown when --distributed is asked for and the MPI addon is not there or will not load. */
export class MpiUnavailableError extends Error {
  override name = 'MpiUnavailableError';
}

function loadAddon(): Addon {
  if (!existsSync(MPI_ADDON_PATH)) {
    throw new MpiUnavailableError(
      `--distributed needs the MPI addon (${path.relative(process.cwd(), MPI_ADDON_PATH)}), which is not built: ` +
        'install Open MPI (Debian: apt-get install openmpi-bin libopenmpi-dev) and run npm run setup (or npm run build:mpi)',
    );
  }
  try {
    return createRequire(import.meta.url)(MPI_ADDON_PATH) as Addon;
  } catch (e) {
    throw new MpiUnavailableError(`--distributed: the MPI addon ${MPI_ADDON_PATH} does not load (${(e as Error).message}); rebuild it with npm run build:mpi`);
  }
}

export interface MpiCollective extends Collective {
  /** The MPI library's version string. */
  readonly library: string;
  /** Node-local rank (for picking this host's GPU): Open MPI's or Slurm's, else the global rank. */
  readonly localRank: number;
  /** Ends this process's MPI (call once, at the end, on every rank). */
  finalize(): void;
  /** Ends the whole job at once (every rank), after printing `message`. */
  abort(message: string, code?: number): never;
}

export interface MpiOptions {
  /** Seconds one collective may wait for the other ranks before the job is aborted. */
  timeoutSeconds: number;
  /** Where the abort message goes (default stderr). */
  printError?: (line: string) => void;
}

/** Initialises MPI (mpirun / srun set up the ranks; a plain `node` is a 1-rank job) and returns the Collective. */
export function initMpi(o: MpiOptions): MpiCollective {
  const addon = loadAddon();
  const { rank, size, library } = addon.init();
  const printError = o.printError ?? ((l: string) => process.stderr.write(l + '\n'));
  const localRank = Number(process.env.OMPI_COMM_WORLD_LOCAL_RANK ?? process.env.SLURM_LOCALID ?? rank);
  // MPI_TRACE=1 prints every collective as it starts and ends (for debugging a stuck job).
  const trace = process.env.MPI_TRACE ? (l: string) => process.stderr.write(l + '\n') : null;
  let queue: Promise<unknown> = Promise.resolve();
  let seq = 0;
  const abort = (message: string, code = 1): never => {
    printError(`error (rank ${rank} of ${size}): ${message}`);
    return addon.abort(code);
  };
  /** Runs `op` after the previous collective, with the timeout. */
  const run = <T>(what: string, op: () => Promise<T>): Promise<T> => {
    const n = ++seq;
    const p = queue.then(() => {
      let timer: NodeJS.Timeout | undefined;
      const timeout = new Promise<never>(() => {
        timer = setTimeout(
          () => abort(`${what} (collective #${n}) waited ${o.timeoutSeconds} s for the other ranks: one of them died or hangs; aborting the job (the last checkpoint is kept)`),
          o.timeoutSeconds * 1000,
        );
      });
      if (trace) trace(`rank ${rank}: ${what} #${n} starts`);
      return Promise.race([op(), timeout]).finally(() => {
        clearTimeout(timer);
        if (trace) trace(`rank ${rank}: ${what} #${n} done`);
      });
    });
    queue = p.catch(() => undefined);
    return p;
  };
  return {
    rank, size, library, localRank,
    barrier: () => run('barrier', () => addon.barrier()),
    broadcast: (buf, root) => run(`broadcast of ${buf.length} values`, () => addon.broadcast(buf, root)),
    allreduceSum: (buf) => run(`allreduce of ${buf.length} values`, () => addon.allreduceSum(buf)),
    allgather: (values) =>
      run(`allgather of ${values.length} values`, async () => {
        const out = new Float64Array(values.length * size);
        await addon.allgather(values, out);
        return out;
      }),
    allgatherBytes: (bytes) =>
      run(`allgather of ${bytes.length} bytes`, async () => {
        const lens = new Float64Array(size);
        await addon.allgather(new Float64Array([bytes.length]), lens);
        const counts = Int32Array.from(lens);
        const all = new Uint8Array(counts.reduce((a, b) => a + b, 0));
        await addon.allgatherv(bytes, all, counts);
        const parts: Uint8Array[] = [];
        let at = 0;
        for (const c of counts) {
          parts.push(all.slice(at, at + c));
          at += c;
        }
        return parts;
      }),
    finalize: () => addon.finalize(),
    abort,
  };
}
