// Allreduce of R50-FPN Mask R-CNN's gradients (44.4M float32, 178 MB) between ranks on one host,
// against a plain memcpy of the same bytes: what data-parallel training (train/ddp.ts) pays per step
// to average gradients through host memory and Open MPI. Cases: one allreduce of the whole buffer,
// and DDP's 25 MB buckets issued one after another (what a step does).
//   node dist/bench/allreduce.js            runs itself under mpirun with 2 and 4 ranks
//   mpirun -np N node dist/bench/allreduce.js [--floats N] [--reps R]
// Prints ms and GB/s: algorithm bandwidth (bytes / time) and bus bandwidth (x 2(N-1)/N, the bytes
// each rank sends and receives in a ring allreduce, as nccl-tests report it). Skips (exit 0) where
// Open MPI or the addon is missing.
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { initMpi, MPI_ADDON_PATH } from '../native/mpi/collective.js';
import { parseArgs } from '../cli/args.js';
import { DEFAULT_BUCKET_BYTES } from '../train/ddp.js';
import { printTable } from './harness.js';

/** torchvision/Detectron2 R50-FPN Mask R-CNN: 44.4M parameters (trainable with frozen stem + res2: 44.0M). */
const R50_FPN_FLOATS = 44_000_000;

const { values } = parseArgs(process.argv.slice(2), [
  { name: 'floats', type: 'number', metavar: 'N', help: 'float32 values to reduce' },
  { name: 'reps', type: 'number', metavar: 'R', help: 'timed repetitions' },
  { name: 'ranks', type: 'string', metavar: 'LIST', help: 'rank counts when launching (default 2,4)' },
]);
const floats = (values.floats as number | undefined) ?? R50_FPN_FLOATS;
const reps = (values.reps as number | undefined) ?? 5;

const median = (xs: number[]): number => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

if (!process.env.OMPI_COMM_WORLD_SIZE && !process.env.PMI_SIZE) {
  // Launcher: run this file under mpirun for each rank count.
  if (!existsSync(MPI_ADDON_PATH) || spawnSync('mpirun', ['--version'], { stdio: 'ignore' }).status !== 0) {
    console.log('allreduce: skipped (Open MPI or the addon is missing; npm run setup builds it as root)');
    process.exit(0);
  }
  const self = fileURLToPath(import.meta.url);
  for (const n of ((values.ranks as string | undefined) ?? '2,4').split(',').map(Number)) {
    const r = spawnSync('mpirun', ['--oversubscribe', '--allow-run-as-root', '--bind-to', 'none', '-np', String(n), process.execPath, self, '--floats', String(floats), '--reps', String(reps)], { stdio: 'inherit', timeout: 600_000 });
    if (r.status !== 0) process.exit(r.status ?? 1);
  }
  process.exit(0);
}

const mpi = initMpi({ timeoutSeconds: 600 });
const bytes = floats * 4;
const buf = new Float32Array(floats).fill(1);
const copy = new Float32Array(floats);

/** Wall time of `fn`; collectives between barriers (the slowest rank's time), a local copy alone. */
async function time(fn: () => Promise<void> | void, collective: boolean): Promise<number> {
  if (collective) await mpi.barrier();
  const t0 = performance.now();
  await fn();
  if (collective) await mpi.barrier();
  return performance.now() - t0;
}

const bucketFloats = DEFAULT_BUCKET_BYTES / 4;
const cases: [string, () => Promise<void> | void][] = [
  ['memcpy (Float32Array.set)', () => copy.set(buf)],
  ['allreduce, one buffer', () => mpi.allreduceSum(buf)],
  [`allreduce, ${Math.ceil(floats / bucketFloats)} buckets of 25 MB in turn`, async () => {
    const pending: Promise<void>[] = [];
    for (let at = 0; at < floats; at += bucketFloats) pending.push(mpi.allreduceSum(buf.subarray(at, Math.min(floats, at + bucketFloats))));
    await Promise.all(pending);
  }],
];
const rows: (string | number)[][] = [];
for (const [name, fn] of cases) {
  const collective = !name.startsWith('memcpy');
  await time(fn, collective); // warm-up (page faults, shared-memory segments)
  const ms: number[] = [];
  for (let i = 0; i < reps; i++) ms.push(await time(fn, collective));
  const m = median(ms);
  const algo = bytes / (m / 1000) / 1e9;
  const bus = collective ? algo * (2 * (mpi.size - 1)) / mpi.size : algo;
  rows.push([name, m, algo, bus]);
}
if (mpi.rank === 0) {
  printTable(`${mpi.size} ranks on one host, ${(floats / 1e6).toFixed(1)}M float32 (${(bytes / 1e6).toFixed(0)} MB), median of ${reps}`, ['case', 'ms', 'GB/s (bytes/time)', 'bus GB/s'], rows);
}
mpi.finalize();
