// Training checkpoints: ONE safetensors file holding the model's state dict under its own names
// (so a checkpoint is also a weights file for --weights / eval), the optimizer's momentum buffers
// under `optimizer.momentum.<flat param index>`, and everything else (iteration, data-loader
// position, RNG state, optimizer hyper-parameters, model config, categories) as JSON in the
// safetensors metadata. One file written through FileIO.writeBytes (temp file + fsync + rename)
// means a kill at any moment leaves either the previous checkpoint or the new one, never a mix.
// This file is the format (encode / decode); saving and restoring a training run is train/checkpoint.ts.
import { encodeSafetensors, findStateDict, loadPickledCheckpoint, loadSafetensors, nn, optim, type HostTensor, type Tensor } from '../engine/index.js';
import { toOurKeys } from './checkpoint-keys.js';
import type { FileIO } from '../data/io.js';
import type { LoaderPosition } from '../data/loader.js';
import { upgradeStoredConfig, type MaskRCNNConfig } from '../model/config.js';

export const CHECKPOINT_FORMAT = 'maskrcnn-webgpu-checkpoint-v1';
const MOMENTUM_PREFIX = 'optimizer.momentum.';

/** A dataset category, so a checkpoint maps its contiguous labels back to COCO category ids. */
export interface CheckpointCategory {
  id: number;
  name: string;
}

/** The non-tensor part of a checkpoint. */
export interface TrainingState {
  /** Iterations completed (the next one to run is iter + 1, counting from 1). */
  iter: number;
  /** Where the training data loader resumes. */
  loader: LoaderPosition;
  /** State of the generator that drives anchor / proposal sampling. */
  rngState: number;
  /** Optimizer step count and group hyper-parameters (momentum buffers are tensors in the file). */
  optimizer: Omit<optim.SGDState, 'momentumBuffers'>;
  /** The model's full configuration, so the checkpoint can be evaluated without naming a preset. */
  model: MaskRCNNConfig;
  /** categories[label - 1] is contiguous label `label`. */
  categories: CheckpointCategory[];
  /** Mixed-precision runs: the loss scaler's state (scale and clean-step count), restored on resume. */
  scaler?: optim.GradScalerState;
}

export interface LoadedCheckpoint {
  /** Null for a plain weights file (no training state). */
  state: TrainingState | null;
  /** Model tensors by state-dict name. */
  model: Record<string, HostTensor>;
  /** Momentum buffers by flat parameter index (as SGDState.momentumBuffers). */
  momentum: Record<string, HostTensor>;
  metadata: Record<string, string>;
}

async function host(t: Tensor): Promise<HostTensor> {
  if (t.isDisposed) throw new Error('checkpoint: a tensor to save was disposed');
  return { dtype: t.dtype, shape: [...t.shape], data: await t.data() };
}

/**
 * Serialises model + optimizer + state into checkpoint bytes. All GPU reads happen before any byte
 * is written, so the caller may keep training right after this resolves.
 */
export async function encodeCheckpoint(model: nn.Module, optimizer: optim.SGD | null, state: Omit<TrainingState, 'optimizer'> & { optimizer?: TrainingState['optimizer'] }): Promise<Uint8Array> {
  const named: Record<string, HostTensor> = {};
  for (const [k, t] of Object.entries(model.stateDict())) {
    if (k.startsWith(MOMENTUM_PREFIX)) throw new Error(`checkpoint: model tensor name '${k}' collides with the optimizer's prefix`);
    named[k] = await host(t);
  }
  let optState = state.optimizer;
  if (optimizer) {
    const { momentumBuffers, ...rest } = optimizer.stateDict();
    for (const [i, b] of Object.entries(momentumBuffers)) named[MOMENTUM_PREFIX + i] = await host(b as Tensor);
    optState = rest;
  }
  if (!optState) throw new Error('checkpoint: no optimizer state given');
  const full: TrainingState = { ...state, optimizer: optState };
  return encodeSafetensors(named, { format: CHECKPOINT_FORMAT, state: JSON.stringify(full) });
}

export const WEIGHTS_FORMAT = 'maskrcnn-webgpu-weights-v1';

/** Model weights only, plus the config and categories (for evaluation and the demo page), as bytes. */
export async function encodeWeights(model: nn.Module, info: { model: MaskRCNNConfig; categories: CheckpointCategory[]; iter: number }): Promise<Uint8Array> {
  const named: Record<string, HostTensor> = {};
  for (const [k, t] of Object.entries(model.stateDict())) named[k] = await host(t);
  return encodeSafetensors(named, { format: WEIGHTS_FORMAT, info: JSON.stringify(info) });
}

export type WeightsFormat = 'safetensors' | 'torch-zip' | 'pickle' | 'unknown';

/** The weights file format, from the first bytes (not the file name). */
export function detectWeightsFormat(b: Uint8Array): WeightsFormat {
  if (b.length >= 4 && b[0] === 0x50 && b[1] === 0x4b && b[2] === 0x03 && b[3] === 0x04) return 'torch-zip';
  if (b.length >= 2 && b[0] === 0x80 && b[1]! >= 2 && b[1]! <= 5) return 'pickle';
  // safetensors: an 8-byte little-endian header length, then the JSON header.
  if (b.length >= 9 && b[8] === 0x7b && b[5] === 0 && b[6] === 0 && b[7] === 0) return 'safetensors';
  return 'unknown';
}

/** A .pth (torch.save, zip or legacy) or Detectron2 .pkl as a weights-only checkpoint under our names. */
function decodePickled(bytes: Uint8Array, source: string, format: WeightsFormat): LoadedCheckpoint {
  let found;
  try {
    found = findStateDict(loadPickledCheckpoint(bytes, source), source);
  } catch (e) {
    const what = format === 'torch-zip' ? 'a readable PyTorch .pth (torch.save zip) file' : 'a readable PyTorch .pth or Detectron2 .pkl file';
    const msg = (e as Error).message;
    throw new Error(`${source}: not ${what}: ${msg.startsWith(source + ': ') ? msg.slice(source.length + 2) : msg}`);
  }
  const { tensors, style } = toOurKeys(found.tensors);
  return { state: null, model: tensors, momentum: {}, metadata: { ...found.extra, format, keyStyle: style } };
}

/** Parses checkpoint or weights bytes (safetensors, PyTorch .pth, Detectron2 .pkl); errors name the file. */
export function decodeCheckpoint(bytes: Uint8Array, source = '<checkpoint>'): LoadedCheckpoint {
  const format = detectWeightsFormat(bytes);
  if (format === 'torch-zip' || format === 'pickle') return decodePickled(bytes, source, format);
  if (format === 'unknown') {
    const head = Array.from(bytes.subarray(0, 8), (v) => v.toString(16).padStart(2, '0')).join(' ');
    throw new Error(`${source}: not a safetensors, PyTorch .pth or Detectron2 .pkl file (first bytes ${head || 'none: empty file'})`);
  }
  let file;
  try {
    file = loadSafetensors(bytes);
  } catch (e) {
    throw new Error(`${source}: not a readable safetensors file: ${(e as Error).message}`);
  }
  const model: Record<string, HostTensor> = {};
  const momentum: Record<string, HostTensor> = {};
  for (const [k, t] of Object.entries(file.tensors)) {
    if (k.startsWith(MOMENTUM_PREFIX)) momentum[k.slice(MOMENTUM_PREFIX.length)] = t;
    else model[k] = t;
  }
  let state: TrainingState | null = null;
  if (file.metadata.state !== undefined) {
    if (file.metadata.format !== CHECKPOINT_FORMAT) throw new Error(`${source}: checkpoint format '${file.metadata.format}' is not ${CHECKPOINT_FORMAT}`);
    try {
      state = JSON.parse(file.metadata.state) as TrainingState;
    } catch (e) {
      throw new Error(`${source}: checkpoint state is not valid JSON: ${(e as Error).message}`);
    }
  }
  if (file.metadata.info !== undefined) {
    let info: unknown;
    try {
      info = JSON.parse(file.metadata.info);
    } catch (e) {
      throw new Error(`${source}: __metadata__ "info" is not valid JSON: ${(e as Error).message}`);
    }
    const i = info as { model?: unknown; categories?: unknown } | null;
    if (typeof i !== 'object' || i === null || typeof i.model !== 'object' || !Array.isArray(i.categories)) {
      throw new Error(`${source}: __metadata__ "info" must be an object with "model" and "categories" (saveWeights writes it)`);
    }
  }
  return { state, model, momentum, metadata: file.metadata };
}

/** "N of M values are NaN or infinite (in a, b, ...)" for tensors holding any, else null. */
export function describeNonFinite(tensors: Record<string, HostTensor>): string | null {
  let bad = 0, total = 0;
  const names: string[] = [];
  for (const [name, t] of Object.entries(tensors)) {
    let n = 0;
    for (let i = 0; i < t.data.length; i++) if (!Number.isFinite(t.data[i])) n++;
    if (n) names.push(name);
    bad += n;
    total += t.data.length;
  }
  if (!bad) return null;
  return `${bad} of ${total} values are NaN or infinite (in ${names.slice(0, 3).join(', ')}${names.length > 3 ? ` and ${names.length - 3} more tensors` : ''})`;
}

export async function loadCheckpoint(io: FileIO, path: string): Promise<LoadedCheckpoint> {
  return decodeCheckpoint(await io.readBytes(path), path);
}

/** The model config and categories stored in a checkpoint or a saveWeights() file, if any. */
export function checkpointInfo(c: LoadedCheckpoint): { model: MaskRCNNConfig; categories: CheckpointCategory[]; iter: number } | null {
  if (c.state) return { model: upgradeStoredConfig(c.state.model), categories: c.state.categories, iter: c.state.iter };
  if (c.metadata.info) {
    const info = JSON.parse(c.metadata.info) as { model: MaskRCNNConfig; categories: CheckpointCategory[]; iter: number };
    return { ...info, model: upgradeStoredConfig(info.model) };
  }
  return null;
}
