// torch.cuda.amp.GradScaler (dynamic loss scaling for mixed-precision training), with its defaults
// and rules (torch/amp/grad_scaler.py):
//   scale(loss)       loss * scale, before backward, so small f16-rounded gradients do not vanish.
//   unscale_(opt)     each gradient *= 1/scale in place, and a found-inf flag set when any unscaled
//                     value is inf or NaN (on the GPU: kernels/optim.ts unscaleKernel, one dispatch
//                     per gradient, all writing one flag). Returns the flag tensor [1] (0 or 1) so the
//                     caller can read it together with other values (e.g. the losses) in one readback.
//   step(opt, found?) unscales if not done yet, then runs opt.step() unless the flag is set (the
//                     step is skipped). `found`: the flag's value when the caller already read it;
//                     otherwise step reads it back itself.
//   update()          flag set: scale *= backoffFactor and the count of clean steps restarts;
//                     else that count grows, and on reaching growthInterval scale *= growthFactor and
//                     the count restarts. Then the per-step flag is cleared.
// The scale and the count live on the host (the flag must come to the host anyway to skip the step).
import { UNSCALE_UNIFORMS, SGD_PER_THREAD, unscaleKernel } from '../../kernels/optim.js';
import { grid, WORKGROUP } from '../../kernels/common.js';
import { getBackend } from '../backend.js';
import { Tensor } from '../tensor.js';
import { keep } from '../scope.js';
import { noGrad } from '../autograd.js';
import { mul, contiguous } from '../ops/elementwise.js';
import { zeros } from '../ops/copy.js';
import type { SGD } from './sgd.js';

export interface GradScalerOptions {
  initScale?: number;
  growthFactor?: number;
  backoffFactor?: number;
  growthInterval?: number;
  /** false: scale() returns the loss as is, step() is plain opt.step(), update() does nothing. */
  enabled?: boolean;
}

/** torch's GradScaler.state_dict() (camelCase), plain numbers: JSON-safe for checkpoints. */
export interface GradScalerState {
  scale: number;
  growthFactor: number;
  backoffFactor: number;
  growthInterval: number;
  growthTracker: number;
}

let kernel: { wgsl: string; entry: string } | undefined;

export class GradScaler {
  readonly enabled: boolean;
  private scaleValue: number;
  private growthFactor: number;
  private backoffFactor: number;
  private growthInterval: number;
  /** Clean steps since the scale last changed (torch's _growth_tracker). */
  private growthTracker = 0;
  /** This step's found-inf flag on the GPU (set by unscale_), and its host value once known. */
  private found: Tensor | null = null;
  private foundValue: number | null = null;

  constructor(opts: GradScalerOptions = {}) {
    this.enabled = opts.enabled ?? true;
    this.scaleValue = opts.initScale ?? 2 ** 16;
    this.growthFactor = opts.growthFactor ?? 2;
    this.backoffFactor = opts.backoffFactor ?? 0.5;
    this.growthInterval = opts.growthInterval ?? 2000;
    check({ scale: this.scaleValue, growthFactor: this.growthFactor, backoffFactor: this.backoffFactor, growthInterval: this.growthInterval, growthTracker: 0 }, 'GradScaler');
  }

  /** The current scale (1 when disabled). */
  getScale(): number {
    return this.enabled ? this.scaleValue : 1;
  }

  /** loss * scale (a new tensor in the autograd graph). */
  scale(loss: Tensor): Tensor {
    return this.enabled ? mul(loss, this.scaleValue) : loss;
  }

  /**
   * Divides every gradient of the optimizer's parameters by the scale, in place, and returns the
   * found-inf flag tensor [1] (owned by the scaler until update(): do not dispose it). Gradients
   * shared by several parameters are unscaled once. As torch: at most once per step.
   */
  unscale_(optimizer: SGD): Tensor {
    if (!this.enabled) throw new Error('GradScaler.unscale_: the scaler is disabled');
    if (this.found) throw new Error('GradScaler.unscale_: already called since the last update()');
    kernel ??= unscaleKernel();
    const found = keep(zeros([1]));
    const inv = 1 / this.scaleValue;
    const done = new Map<GPUBuffer, Set<number>>();
    noGrad(() => {
      for (const p of optimizer.params()) {
        if (!p.grad || p.grad.size === 0) continue;
        if (!p.grad.isContiguous) {
          const dense = keep(contiguous(p.grad));
          p.grad.dispose();
          p.grad = dense;
        }
        const g = p.grad;
        const seen = done.get(g.storage.buffer) ?? new Set<number>();
        done.set(g.storage.buffer, seen);
        if (seen.has(g.offset)) continue;
        seen.add(g.offset);
        getBackend().dispatch({
          kernel: kernel!,
          buffers: [g.storage.buffer, found.storage.buffer],
          uniforms: UNSCALE_UNIFORMS.pack({ n: g.size, offset: g.offset, invScale: inv }),
          workgroups: grid(Math.ceil(g.size / (WORKGROUP * SGD_PER_THREAD))),
          label: 'grad scaler unscale',
        });
      }
    });
    this.found = found;
    return found;
  }

  /**
   * opt.step() unless this step's gradients held inf/NaN; returns whether it stepped. `foundInf`:
   * the flag's value if the caller read it already (with the losses); else it is read back here.
   */
  async step(optimizer: SGD, foundInf?: number): Promise<boolean> {
    if (!this.enabled) {
      optimizer.step();
      return true;
    }
    if (!this.found) this.unscale_(optimizer);
    this.foundValue = foundInf ?? (await this.found!.data())[0]!;
    if (this.foundValue !== 0) return false;
    optimizer.step();
    return true;
  }

  /** Adjusts the scale from this step's flag (torch's rules above), or sets it to `newScale`. */
  update(newScale?: number): void {
    if (!this.enabled) return;
    if (newScale !== undefined) {
      if (!(newScale > 0) || !Number.isFinite(newScale)) throw new Error(`GradScaler.update: newScale must be a positive finite number, got ${newScale}`);
      this.scaleValue = newScale;
    } else {
      if (this.foundValue === null) throw new Error('GradScaler.update: no step() since the last update() (nothing to update from)');
      if (this.foundValue !== 0) {
        this.scaleValue *= this.backoffFactor;
        this.growthTracker = 0;
      } else if (++this.growthTracker === this.growthInterval) {
        this.scaleValue *= this.growthFactor;
        this.growthTracker = 0;
      }
    }
    this.found?.dispose();
    this.found = null;
    this.foundValue = null;
  }

  stateDict(): GradScalerState {
    return { scale: this.scaleValue, growthFactor: this.growthFactor, backoffFactor: this.backoffFactor, growthInterval: this.growthInterval, growthTracker: this.growthTracker };
  }

  loadStateDict(s: GradScalerState): void {
    check(s, 'GradScaler.loadStateDict');
    this.scaleValue = s.scale;
    this.growthFactor = s.growthFactor;
    this.backoffFactor = s.backoffFactor;
    this.growthInterval = s.growthInterval;
    this.growthTracker = s.growthTracker;
  }

  /** Frees this step's flag, if any. */
  dispose(): void {
    this.found?.dispose();
    this.found = null;
  }
}

function check(s: GradScalerState, where: string): void {
  const bad = (what: string, v: unknown) => new Error(`${where}: ${what} must be ${v}, got ${JSON.stringify(s[what as keyof GradScalerState])}`);
  if (typeof s !== 'object' || s === null) throw new Error(`${where}: expected a state object, got ${JSON.stringify(s)}`);
  if (!(s.scale > 0) || !Number.isFinite(s.scale)) throw bad('scale', 'a positive finite number');
  if (!(s.growthFactor > 1)) throw bad('growthFactor', '> 1');
  if (!(s.backoffFactor > 0 && s.backoffFactor < 1)) throw bad('backoffFactor', 'in (0, 1)');
  if (!Number.isInteger(s.growthInterval) || s.growthInterval < 1) throw bad('growthInterval', 'a positive integer');
  if (!Number.isInteger(s.growthTracker) || s.growthTracker < 0 || s.growthTracker >= s.growthInterval) throw bad('growthTracker', 'an integer in [0, growthInterval)');
}
