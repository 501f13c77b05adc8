// torch.cuda.amp.GradScaler (dynamic loss scaling for mixed-precision training), with its defaults
// and rules (torch/amp/grad_scaler.py), its state on the device as torch keeps it, so a training
// step never waits for the GPU to decide whether to step:
//   scale(loss)       loss * scale (the scale read on the GPU), before backward, so small
//                     f16-rounded gradients do not vanish.
//   unscale_(opt)     every gradient *= 1/scale in place, several per dispatch, and a found-inf flag
//                     set when any unscaled value is inf or NaN (kernels/optim.ts unscaleKernel;
//                     `alsoCheck` tensors are checked, not scaled). Returns the flag as a [1] tensor
//                     to read back with other values (scaleTensor() likewise).
//   step(opt)         unscales if not done yet, then the optimizer's update, skipped on the GPU when
//                     the flag is set (torch's fused optimizers with found_inf; SGD's skip variant).
//                     Momentum with dampening cannot start its buffer on the device without knowing
//                     whether the step ran: then step() reads the flag back and steps on the host.
//   update()          on the GPU (torch's _amp_update_scale_): flag set: scale *= backoffFactor and
//                     the count of clean steps restarts; else that count grows, and on reaching
//                     growthInterval scale *= growthFactor and the count restarts. The flag is cleared.
// getScale() and stateDict() read the state back (torch's get_scale() syncs too).
import { unscaleUniforms, unscaleKernel, scalerUpdateKernel, SCALER_UPDATE_UNIFORMS, SGD_PER_THREAD, SCALER_FOUND, SCALER_SCALE, SCALER_TRACKER, SCALER_STATE } from '../../kernels/optim.js';
import { grid, WORKGROUP } from '../../kernels/common.js';
import { getBackend } from '../backend.js';
import { Tensor, fromData } from '../tensor.js';
import { keep } from '../scope.js';
import { persistent } from '../alloc-hints.js';
import { noGrad } from '../autograd.js';
import { mul, contiguous } from '../ops/elementwise.js';
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

const unscaleKernels = new Map<number, { wgsl: string; entry: string }>();
let updateKernel: { wgsl: string; entry: string } | undefined;

/** At most this many tensors per unscale dispatch (a WGSL switch of 8 cases, as SGD's). */
const UNSCALE_PER_DISPATCH = 8;

export class GradScaler {
  readonly enabled: boolean;
  growthFactor: number;
  backoffFactor: number;
  growthInterval: number;
  /** [found, scale, tracker] on the device (kernels/optim.ts SCALER_*). */
  private state: Tensor | null = null;
  /** This step's progress: unscale_() done, step() done (update() needs a step, as torch's). */
  private unscaled = false;
  private stepped = false;

  constructor(opts: GradScalerOptions = {}) {
    this.enabled = opts.enabled ?? true;
    this.growthFactor = opts.growthFactor ?? 2;
    this.backoffFactor = opts.backoffFactor ?? 0.5;
    this.growthInterval = opts.growthInterval ?? 2000;
    const initScale = opts.initScale ?? 2 ** 16;
    check({ scale: initScale, growthFactor: this.growthFactor, backoffFactor: this.backoffFactor, growthInterval: this.growthInterval, growthTracker: 0 }, 'GradScaler');
    if (this.enabled) this.setState(initScale, 0);
  }

  private setState(scale: number, tracker: number): void {
    const v = new Float32Array(SCALER_STATE);
    v[SCALER_SCALE] = scale;
    v[SCALER_TRACKER] = tracker;
    this.state?.dispose();
    this.state = keep(persistent(() => fromData(v, [SCALER_STATE])));
  }

  private get live(): Tensor {
    if (!this.state) throw new Error('GradScaler: used after dispose()');
    return this.state;
  }

  /** A [1] view of state element `at`. */
  private slot(at: number): Tensor {
    return this.live.view([1], [1], at);
  }

  /** The current scale, read back from the device (1 when disabled). */
  async getScale(): Promise<number> {
    return this.enabled ? (await this.slot(SCALER_SCALE).data())[0]! : 1;
  }

  /**
   * The scale as a [1] tensor (a view of the device state; dispose it, the state stays): read it
   * back with other values. Before update() it is the scale this step's loss was scaled by.
   */
  scaleTensor(): Tensor {
    return this.slot(SCALER_SCALE);
  }

  /** loss * scale (a new tensor in the autograd graph, which holds a view of the scale). */
  scale(loss: Tensor): Tensor {
    return this.enabled ? mul(loss, this.live.view([], [], SCALER_SCALE)) : loss;
  }

  /**
   * Divides every gradient of the optimizer's parameters by the scale, in place, and returns this
   * step's found-inf flag as a [1] tensor (a view: dispose it, the state stays). `alsoCheck`:
   * tensors whose inf / NaN values set the flag too, left unchanged (a training step's losses).
   * Gradients shared by several parameters are unscaled once. As torch: at most once per step.
   */
  unscale_(optimizer: SGD, alsoCheck: readonly Tensor[] = []): Tensor {
    if (!this.enabled) throw new Error('GradScaler.unscale_: the scaler is disabled');
    if (this.unscaled) throw new Error('GradScaler.unscale_: already called since the last update()');
    const state = this.live;
    const jobs: { t: Tensor; check: boolean }[] = [];
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
        jobs.push({ t: g, check: false });
      }
      const dense = alsoCheck.filter((t) => t.size > 0).map((t) => (t.isContiguous ? t : contiguous(t)));
      for (const t of dense) jobs.push({ t, check: true });
      // Tensors of similar sizes share a dispatch (its grid is sized for the largest); a dispatch
      // never binds one buffer twice (views of one gradient bucket go to different dispatches).
      jobs.sort((a, b) => a.t.size - b.t.size);
      for (const batch of batches(jobs, UNSCALE_PER_DISPATCH, state.storage.buffer)) dispatchUnscale(batch, state);
      for (const t of dense) if (!alsoCheck.includes(t)) t.dispose();
    });
    this.unscaled = true;
    return this.slot(SCALER_FOUND);
  }

  /**
   * The optimizer's step unless this step's gradients held inf/NaN, decided on the device (no
   * wait), or on the host where the device cannot (momentum with dampening, whose buffers start
   * from the first gradient only on a step that runs). Unscales first if not done yet.
   */
  async step(optimizer: SGD): Promise<void> {
    if (!this.enabled) {
      optimizer.step();
      return;
    }
    if (!this.unscaled) this.unscale_(optimizer).dispose();
    this.stepped = true;
    if (optimizer.dampedGroup() < 0) {
      optimizer.step({ skipIf: this.live, skipAt: SCALER_FOUND });
      return;
    }
    const flag = this.slot(SCALER_FOUND);
    const found = (await flag.data())[0]!;
    flag.dispose();
    if (found === 0) optimizer.step();
  }

  /** Adjusts the scale on the device from this step's flag (torch's rules above), or sets it to `newScale`. */
  update(newScale?: number): void {
    if (!this.enabled) return;
    if (newScale !== undefined) {
      if (!(newScale > 0) || !Number.isFinite(newScale)) throw new Error(`GradScaler.update: newScale must be a positive finite number, got ${newScale}`);
    } else if (!this.stepped) {
      throw new Error('GradScaler.update: no step() since the last update() (nothing to update from)');
    }
    updateKernel ??= scalerUpdateKernel();
    getBackend().dispatch({
      kernel: updateKernel,
      buffers: [this.live.storage.buffer],
      uniforms: SCALER_UPDATE_UNIFORMS.pack({ growth: this.growthFactor, backoff: this.backoffFactor, interval: this.growthInterval, setScale: newScale === undefined ? 0 : 1, newScale: newScale ?? 0 }),
      workgroups: [1, 1, 1],
      label: 'grad scaler update',
    });
    this.unscaled = false;
    this.stepped = false;
  }

  /** The state (read back from the device), as torch's state_dict(). */
  async stateDict(): Promise<GradScalerState> {
    const v = this.enabled ? await this.live.data() : null;
    return {
      scale: v ? v[SCALER_SCALE]! : 1, growthFactor: this.growthFactor, backoffFactor: this.backoffFactor,
      growthInterval: this.growthInterval, growthTracker: v ? v[SCALER_TRACKER]! : 0,
    };
  }

  /** Restores a stateDict(): scale and clean-step count (the factors and interval too, as torch). */
  loadStateDict(s: GradScalerState): void {
    check(s, 'GradScaler.loadStateDict');
    this.growthFactor = s.growthFactor;
    this.backoffFactor = s.backoffFactor;
    this.growthInterval = s.growthInterval;
    if (this.enabled) this.setState(s.scale, s.growthTracker);
    this.unscaled = false;
    this.stepped = false;
  }

  /** Frees the device state; the scaler cannot be used afterwards. */
  dispose(): void {
    this.state?.dispose();
    this.state = null;
  }
}

/** Consecutive runs of at most `per` jobs, none binding a buffer twice (nor `reserved`). */
function batches<T extends { t: Tensor }>(jobs: T[], per: number, reserved: GPUBuffer): T[][] {
  const out: T[][] = [];
  let cur: T[] = [];
  let used = new Set<GPUBuffer>([reserved]);
  for (const j of jobs) {
    const b = j.t.storage.buffer;
    if (cur.length === per || used.has(b)) {
      if (cur.length) out.push(cur);
      cur = [];
      used = new Set([reserved]);
      if (used.has(b)) throw new Error('GradScaler: a gradient shares the scaler state\'s buffer');
    }
    cur.push(j);
    used.add(b);
  }
  if (cur.length) out.push(cur);
  return out;
}

function dispatchUnscale(jobs: { t: Tensor; check: boolean }[], state: Tensor): void {
  const k = jobs.length;
  let kernel = unscaleKernels.get(k);
  if (!kernel) unscaleKernels.set(k, (kernel = unscaleKernel(k)));
  const u: Record<string, number> = {};
  jobs.forEach((j, i) => Object.assign(u, { [`n${i}`]: j.t.size, [`o${i}`]: j.t.offset, [`check${i}`]: j.check ? 1 : 0 }));
  const largest = Math.max(...jobs.map((j) => j.t.size));
  getBackend().dispatch({
    kernel,
    buffers: [state.storage.buffer, ...jobs.map((j) => j.t.storage.buffer)],
    uniforms: unscaleUniforms(k).pack(u as never),
    workgroups: [...grid(Math.ceil(largest / (WORKGROUP * SGD_PER_THREAD))), k],
    label: k === 1 ? 'grad scaler unscale' : `grad scaler unscale (${k} tensors)`,
  });
}

function check(s: GradScalerState, where: string): void {
  const bad = (what: string, v: unknown) => new Error(`${where}: ${what} must be ${v}, got ${JSON.stringify(s[what as keyof GradScalerState])}`);
  if (typeof s !== 'object' || s === null) throw new Error(`${where}: expected a state object, got ${JSON.stringify(s)}`);
  if (!(s.scale > 0) || !Number.isFinite(s.scale)) throw bad('scale', 'a positive finite number');
  if (!(s.growthFactor > 1)) throw bad('growthFactor', '> 1');
  if (!(s.backoffFactor > 0 && s.backoffFactor < 1)) throw bad('backoffFactor', 'in (0, 1)');
  // The device counts clean steps in f32: exact up to 2^24.
  if (!Number.isInteger(s.growthInterval) || s.growthInterval < 1 || s.growthInterval > 2 ** 24) throw bad('growthInterval', 'an integer in [1, 2^24]');
  if (!Number.isInteger(s.growthTracker) || s.growthTracker < 0 || s.growthTracker >= s.growthInterval) throw bad('growthTracker', 'an integer in [0, growthInterval)');
}
