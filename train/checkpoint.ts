// Saving and restoring a training run (the file format is model/checkpoint.ts): the checkpoint with
// the model, the optimizer's momentum buffers and step count, iteration, loader position and RNG
// state, written atomically through FileIO; the final weights file; and the restore, in which the
// run's configuration decides the hyper-parameters (lr, momentum, weight decay) and the checkpoint
// gives everything that is state.
import type { FileIO } from '../data/io.js';
import { nn, type optim } from '../engine/index.js';
import { encodeCheckpoint, encodeWeights, type CheckpointCategory, type LoadedCheckpoint, type TrainingState } from '../model/checkpoint.js';
import type { MaskRCNNConfig } from '../model/config.js';
import { isClassSpecificKey } from '../model/checkpoint-keys.js';

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

/**
 * Initial weights for fine-tuning (Detectron2's custom-dataset recipe): every tensor whose name and
 * shape match is loaded; the class-specific layers (box classifier, box regression, mask predictor)
 * are re-initialised when the checkpoint was trained for another number of classes; any other shape
 * mismatch means another architecture and is refused, naming the tensors. Returns the report lines.
 */
export function loadInitialWeights(model: nn.Module, weights: Record<string, nn.StateValue>, file: string, numClasses: number): string[] {
  const report = model.loadStateDict(weights, { strict: false });
  const reinit = report.shapeMismatches.filter((m) => isClassSpecificKey(m.key));
  const other = report.shapeMismatches.filter((m) => !isClassSpecificKey(m.key));
  if (other.length) {
    throw new Error(`--weights ${file}: ${other.length} tensor(s) outside the class-specific layers have other shapes than the model's ` +
      `(a checkpoint of another architecture or preset?): ${other.slice(0, 5).map((m) => `${m.key} (checkpoint [${m.got.join(',')}], model [${m.expected.join(',')}])`).join(', ')}`);
  }
  const lines = [`initial weights ${file}: ${report.loaded.length} tensors loaded` +
    (report.missingKeys.length || report.unexpectedKeys.length ? `; ${nn.describeLoadReport({ ...report, shapeMismatches: [] })}` : '')];
  if (reinit.length) {
    const cls = weights['roi_heads.box_predictor.cls_score.weight'];
    const theirs = cls ? ` (the checkpoint has ${cls.shape[0]})` : '';
    lines.push(`fine-tuning for ${numClasses} classes including background${theirs}: re-initialised ${reinit.map((m) => m.key).join(', ')}`);
  }
  return lines;
}
