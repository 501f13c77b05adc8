// Worker thread of cli/worker-loader.ts: loads the COCO dataset once, then turns (index, seed)
// requests into transformed samples with the very same CocoSampleSource code as the in-thread
// loader, so results do not depend on which thread made them.
import { parentPort, workerData } from 'node:worker_threads';
import { nodeIO } from './node-io.js';
import { CocoDataset } from '../data/coco.js';
import { CocoSampleSource } from '../data/coco-source.js';
import type { Sample } from '../data/transforms.js';
import type { CocoWorkerSpec, WorkerReply, WorkerRequest } from './worker-loader.js';

const port = parentPort;
if (!port) throw new Error('worker-loader-worker.js must run as a worker thread');

const spec = workerData as CocoWorkerSpec;

function transferables(s: Sample): ArrayBuffer[] {
  const set = new Set<ArrayBuffer>();
  for (const a of [s.image, s.boxes, s.labels, s.masks]) if (a.buffer instanceof ArrayBuffer) set.add(a.buffer);
  return [...set];
}

try {
  const dataset = await CocoDataset.load(nodeIO, spec.annotationFile);
  const source = new CocoSampleSource(dataset, nodeIO, spec);
  const names = spec.sendNames ? Array.from({ length: source.size }, (_, i) => source.name(i)) : undefined;
  port.postMessage({ type: 'ready', size: source.size, maxInstances: source.maxInstances, names } satisfies WorkerReply);
  port.on('message', (req: WorkerRequest) => {
    source.load(req.index, req.seed).then(
      (sample) => port.postMessage({ type: 'sample', id: req.id, sample } satisfies WorkerReply, transferables(sample)),
      (e: unknown) => port.postMessage({ type: 'error', id: req.id, message: (e as Error)?.message ?? String(e) } satisfies WorkerReply),
    );
  });
} catch (e) {
  port.postMessage({ type: 'fatal', message: (e as Error)?.message ?? String(e) } satisfies WorkerReply);
}
