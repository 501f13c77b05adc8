// Checkpoints in the page: safetensors, PyTorch .pth or Detectron2 .pkl bytes from a picked file or
// a URL, parsed on the CPU by the library's readers (model/checkpoint.ts, the same code Node uses;
// .pth/.pkl names are mapped to ours), summarised for display. The host tensors are kept so a model
// can load them (uploading happens when a model takes them).
import * as L from './lib.js';

export interface LoadedCheckpoint {
  source: string;
  bytes: number;
  /** The file's bytes (the model adapter decodes checkpoints with model/checkpoint.ts from them). */
  raw: Uint8Array;
  file: L.Safetensors;
  tensors: number;
  /** Total element count over all tensors. */
  values: number;
  dtypes: Record<string, number>;
  ms: number;
}

export function parseCheckpoint(bytes: Uint8Array, source: string): LoadedCheckpoint {
  const t0 = performance.now();
  let file: L.Safetensors;
  if (L.detectWeightsFormat(bytes) === 'safetensors') file = L.loadSafetensors(bytes);
  else {
    const c = L.decodeCheckpoint(bytes, source);
    file = { tensors: c.model, metadata: c.metadata };
  }
  const dtypes: Record<string, number> = {};
  let values = 0;
  for (const t of Object.values(file.tensors)) {
    const key = t.sourceDtype ?? t.dtype;
    dtypes[key] = (dtypes[key] ?? 0) + 1;
    values += t.data.length;
  }
  return { source, bytes: bytes.length, raw: bytes, file, tensors: Object.keys(file.tensors).length, values, dtypes, ms: performance.now() - t0 };
}

export async function checkpointFromFile(f: File): Promise<LoadedCheckpoint> {
  return parseCheckpoint(new Uint8Array(await f.arrayBuffer()), f.name);
}

export async function checkpointFromUrl(url: string): Promise<LoadedCheckpoint> {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status} ${res.statusText}`);
  return parseCheckpoint(new Uint8Array(await res.arrayBuffer()), url);
}

/** A few lines describing the checkpoint (sizes, dtypes, metadata, the first tensor names). */
export function describeCheckpoint(c: LoadedCheckpoint, maxNames = 8): string {
  const names = Object.keys(c.file.tensors);
  const lines = [
    `${c.source}: ${c.tensors} tensors, ${c.values.toLocaleString('en')} values, ${(c.bytes / 2 ** 20).toFixed(2)} MiB, parsed in ${c.ms.toFixed(0)} ms`,
    `dtypes: ${Object.entries(c.dtypes).map(([k, v]) => `${k} x${v}`).join(', ')}`,
  ];
  const meta = Object.entries(c.file.metadata);
  if (meta.length) lines.push(`metadata: ${meta.map(([k, v]) => `${k}=${v.length > 60 ? v.slice(0, 57) + '...' : v}`).join(', ')}`);
  for (const n of names.slice(0, maxNames)) {
    const t = c.file.tensors[n]!;
    lines.push(`  ${n}  ${t.sourceDtype ?? t.dtype}[${t.shape.join(',')}]`);
  }
  if (names.length > maxNames) lines.push(`  ... and ${names.length - maxNames} more`);
  return lines.join('\n');
}

/** Safetensors bytes as a download (the training tab's checkpoint button). */
export function downloadBytes(bytes: Uint8Array, name: string): void {
  const url = URL.createObjectURL(new Blob([bytes as BlobPart], { type: 'application/octet-stream' }));
  const a = document.createElement('a');
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 10_000);
}
