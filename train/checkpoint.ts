// Saving and restoring a training run (the file format is model/checkpoint.ts): the checkpoint with
// the model, the optimizer's momentum buffers and step count, iteration, loader position and RNG
// state, written atomically through FileIO; the final weights file; and the restore, in which the
// run's configuration decides the hyper-parameters (lr, momentum, weight decay) and the checkpoint
// gives everything that is state.
import type { FileIO } from '../data/io.js';
import type { nn, optim } from '../engine/index.js';
import { encodeCheckpoint, encodeWeights, type CheckpointCategory, type LoadedCheckpoint, type TrainingState } from '../model/checkpoint.js';
import type { MaskRCNNConfig } from '../model/config.js';

/** Writes a checkpoint atomically (io.writeBytes renames a fully written temp file into place). */
export async function saveCheckpoint(io: FileIO, path: string, model: nn.Module, optimizer: optim.SGD | null, state: Omit<TrainingState, 'optimizer'>): Promise<void> {
  const bytes = await encodeCheckpoint(model, optimizer, state);
  await io.writeBytes(path, bytes);
}

/** Writes model weights only (plus the config and categories, for evaluation) atomically. */
export async function saveWeights(io: FileIO, path: string, model: nn.Module, info: { model: MaskRCNNConfig; categories: CheckpointCategory[]; iter: number }): Promise<void> {
  await io.writeBytes(path, await encodeWeights(model, info));
}

/**
 * Restores model tensors (strict) and, when given, the optimizer's momentum buffers and step count.
 * The optimizer keeps the hyper-parameters it was built with (from the run's configuration, which
 * command-line flags may have changed since the checkpoint), rather than the saved ones.
 */
export function restoreCheckpoint(c: LoadedCheckpoint, model: nn.Module, optimizer?: optim.SGD): void {
  model.loadStateDict(c.model);
  if (optimizer) {
    if (!c.state) throw new Error('restoreCheckpoint: this file holds weights only, no optimizer state');
    optimizer.loadStateDict({ ...c.state.optimizer, momentumBuffers: c.momentum }, { keepHyperParameters: true });
  }
}
