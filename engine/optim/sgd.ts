// torch.optim.SGD: the same update rule, parameter groups and state dict, the updates done by one
// fused kernel (kernels/optim.ts) per several parameters that changes each p and its momentum
// buffer in place.
import { sgdKernel, sgdBuffersPerTensor, sgdUniforms, SGD_PER_THREAD, type SgdVariant } from '../../kernels/optim.js';
import { grid, WORKGROUP } from '../../kernels/common.js';
import { getBackend } from '../backend.js';
import { Tensor, empty, fromData, shapeStr } from '../tensor.js';
import { keep } from '../scope.js';
import { persistent } from '../alloc-hints.js';
import { noGrad } from '../autograd.js';
import { contiguous } from '../ops/elementwise.js';
import { copyInto, zeros } from '../ops/copy.js';
import type { HostTensor } from '../safetensors.js';

export interface SGDOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  weightDecay?: number;
  nesterov?: boolean;
  maximize?: boolean;
}

/** A parameter group as passed in: options left out come from the optimizer's defaults. */
export interface ParamGroupInput extends Partial<SGDOptions> {
  params: Tensor[];
}

/** A parameter group with every option resolved; change lr (or anything else) between steps. */
export interface ParamGroup extends Required<SGDOptions> {
  params: Tensor[];
  /** The lr the group started with; schedules scale it (see scaleLr), as torch's schedulers use initial_lr. */
  initialLr: number;
}

type Hyper = Omit<ParamGroup, 'params'>;

export interface SGDState {
  /** Number of step() calls so far. */
  step: number;
  /** Hyper-parameters of each group and the flat indices of its parameters (torch's state_dict layout). */
  groups: (Hyper & { params: number[] })[];
  /** Momentum buffer of each parameter that has one, by flat parameter index. */
  momentumBuffers: Record<string, Tensor | HostTensor>;
}

const kernels = new Map<string, { wgsl: string; entry: string }>();

/** One parameter's update: its dense gradient and its momentum buffer (null without momentum). */
interface SgdJob {
  p: Tensor;
  g: Tensor;
  buf: Tensor | null;
  first: boolean;
}

/** The device-side skip of a step (SGD.step's skipIf). */
interface Skip {
  flag: Tensor;
  at: number;
}

/** At most this many tensors per dispatch (set by tests to compare groupings; null: the device's binding limit). */
let tensorsCap: number | null = null;
/** Caps the tensors one SGD dispatch updates (tests); null restores the default (8). */
export function setSgdTensorsPerDispatch(k: number | null): void {
  tensorsCap = k;
}

/** Tensors per dispatch: within the device's storage-buffer bindings, and at most 8 (a WGSL switch of 8 cases). */
function sgdTensorsPerDispatch(v: SgdVariant): number {
  const bindings = getBackend().device.limits.maxStorageBuffersPerShaderStage - (v.skip ? 1 : 0);
  return Math.max(1, Math.min(tensorsCap ?? 8, Math.floor(bindings / sgdBuffersPerTensor(v))));
}

function validate(h: Hyper, where: string): void {
  if (!(h.lr >= 0)) throw new Error(`SGD: invalid learning rate ${h.lr} (${where})`);
  if (!(h.momentum >= 0)) throw new Error(`SGD: invalid momentum ${h.momentum} (${where})`);
  if (!(h.weightDecay >= 0)) throw new Error(`SGD: invalid weightDecay ${h.weightDecay} (${where})`);
  if (h.nesterov && (h.momentum <= 0 || h.dampening !== 0)) throw new Error(`SGD: nesterov momentum requires a momentum and zero dampening (${where})`);
}

export class SGD {
  readonly paramGroups: ParamGroup[];
  readonly defaults: Required<SGDOptions>;
  /** Steps taken (saved in the state dict so a resumed run continues its schedule). */
  stepCount = 0;
  private buffers = new Map<Tensor, Tensor>();

  /** params: a list of tensors, or a list of groups {params, lr?, weightDecay?, ...}. */
  constructor(params: readonly Tensor[] | readonly ParamGroupInput[], opts: SGDOptions) {
    this.defaults = { momentum: 0, dampening: 0, weightDecay: 0, nesterov: false, maximize: false, ...opts };
    const inputs: ParamGroupInput[] = params.length && !(params[0] instanceof Tensor) ? [...(params as ParamGroupInput[])] : [{ params: [...(params as Tensor[])] }];
    const seen = new Set<Tensor>();
    this.paramGroups = inputs.map((g, gi) => {
      const group: ParamGroup = { ...this.defaults, ...stripUndefined(g), params: [...g.params], initialLr: g.lr ?? this.defaults.lr };
      validate(group, `group ${gi}`);
      for (const p of group.params) {
        if (!(p instanceof Tensor)) throw new Error(`SGD: group ${gi} holds something that is not a tensor`);
        if (p.dtype !== 'float32') throw new Error(`SGD: can only optimize float32 tensors, got ${p}`);
        if (p.node) throw new Error(`SGD: can't optimize a non-leaf tensor ${p}`);
        if (seen.has(p)) throw new Error(`SGD: ${p} appears in more than one parameter group (or twice)`);
        seen.add(p);
      }
      return group;
    });
    if (seen.size === 0) throw new Error('SGD: got an empty parameter list');
  }

  /** The first group's learning rate. */
  get lr(): number {
    return this.paramGroups[0]!.lr;
  }

  /** Sets every group's learning rate. */
  set lr(v: number) {
    for (const g of this.paramGroups) g.lr = v;
  }

  /** Sets each group's lr to its initial lr times `factor` (what a schedule returns). */
  scaleLr(factor: number): void {
    for (const g of this.paramGroups) g.lr = g.initialLr * factor;
  }

  /** Every parameter, in group order (the flat indexing of the state dict). */
  params(): Tensor[] {
    return this.paramGroups.flatMap((g) => g.params);
  }

  /**
   * The first group with momentum and dampening (-1: none). Such a group's momentum buffer starts
   * from the first gradient of a step that runs, which a step skipped on the device cannot know.
   */
  dampedGroup(): number {
    return this.paramGroups.findIndex((g) => g.momentum !== 0 && g.dampening !== 0);
  }

  /** Frees the gradients of all parameters (torch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.params()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /**
   * One update of every parameter that has a gradient; parameters without one are skipped.
   * `skipIf`: the update is skipped on the device when element `skipAt` of that tensor is nonzero
   * (a GradScaler's found-inf flag: no wait for the host). Momentum buffers then start at zero
   * instead of from the first gradient, which is the same update without dampening (0 * momentum +
   * d = d), so momentum with dampening is refused. stepCount counts such steps whether or not the
   * device skipped them.
   */
  step(opts: { skipIf?: Tensor; skipAt?: number } = {}): void {
    const skip = opts.skipIf ? { flag: opts.skipIf, at: opts.skipAt ?? 0 } : null;
    if (skip) {
      if (skip.flag.dtype !== 'float32' || skip.at < 0 || skip.at >= skip.flag.size || !skip.flag.isContiguous) throw new Error(`SGD.step: skipAt ${skip.at} is outside the flag tensor ${skip.flag}`);
      const damped = this.dampedGroup();
      if (damped >= 0) throw new Error(`SGD.step: skipIf needs dampening 0 where momentum is used (group ${damped} has dampening ${this.paramGroups[damped]!.dampening})`);
    }
    noGrad(() => {
      for (const g of this.paramGroups) {
        validate(g, 'step');
        this.updateGroup(g.params.filter((p) => p.grad), g, skip);
      }
    });
    this.stepCount++;
  }

  /**
   * Updates a group's parameters, several tensors per dispatch (torch's foreach implementation):
   * as many as the device's storage-buffer bindings allow, tensors of similar sizes together so a
   * dispatch's grid (sized for its largest) is mostly busy.
   */
  private updateGroup(params: Tensor[], h: Hyper, skip: Skip | null): void {
    const useMomentum = h.momentum !== 0;
    const v: SgdVariant = { momentum: useMomentum, nesterov: h.nesterov, weightDecay: h.weightDecay !== 0, maximize: h.maximize, ...(skip ? { skip: true } : {}) };
    const jobs = params.map((p) => this.prepare(p, p.grad!, useMomentum, !!skip)).filter((j) => j !== null).sort((a, b) => a.p.size - b.p.size);
    const perDispatch = sgdTensorsPerDispatch(v);
    for (let at = 0; at < jobs.length; at += perDispatch) this.dispatch(jobs.slice(at, at + perDispatch), v, h, skip);
    for (const j of jobs) if (j.g !== j.p.grad) j.g.dispose();
  }

  /** Checks a parameter and its gradient; makes its momentum buffer on the first step. Null: nothing to update. */
  private prepare(p: Tensor, grad: Tensor, useMomentum: boolean, zeroStart: boolean): SgdJob | null {
    if (grad.shape.length !== p.shape.length || grad.shape.some((d, i) => d !== p.shape[i])) {
      throw new Error(`SGD: gradient ${shapeStr(grad.shape)} does not match parameter ${shapeStr(p.shape)}`);
    }
    if (!p.isContiguous) throw new Error(`SGD: parameter ${p} must be dense (not a strided view)`);
    if (p.size === 0) return null;
    let buf = this.buffers.get(p) ?? null;
    const first = useMomentum && !buf;
    if (first) {
      buf = keep(persistent(() => (zeroStart ? zeros(p.shape) : empty(p.shape))));
      this.buffers.set(p, buf);
    }
    return { p, g: grad.isContiguous ? grad : contiguous(grad), buf: useMomentum ? buf : null, first: first && !zeroStart };
  }

  private dispatch(jobs: SgdJob[], v: SgdVariant, h: Hyper, skip: Skip | null): void {
    const k = jobs.length;
    const key = `${JSON.stringify(v)}|${k}`;
    let kernel = kernels.get(key);
    if (!kernel) kernels.set(key, (kernel = sgdKernel(v, k)));
    const u: Record<string, number> = { lr: h.lr, momentum: h.momentum, keep: 1 - h.dampening, weightDecay: h.weightDecay, skipAt: skip ? skip.flag.offset + skip.at : 0 };
    jobs.forEach((j, i) => Object.assign(u, { [`n${i}`]: j.p.size, [`p${i}`]: j.p.offset, [`g${i}`]: j.g.offset, [`b${i}`]: j.buf?.offset ?? 0, [`first${i}`]: j.first ? 1 : 0 }));
    const largest = Math.max(...jobs.map((j) => j.p.size));
    getBackend().dispatch({
      kernel,
      buffers: [...jobs.flatMap((j) => [j.p.storage.buffer, j.g.storage.buffer, ...(j.buf ? [j.buf.storage.buffer] : [])]), ...(skip ? [skip.flag.storage.buffer] : [])],
      uniforms: sgdUniforms(k).pack(u as never),
      workgroups: [...grid(Math.ceil(largest / (WORKGROUP * SGD_PER_THREAD))), k],
      label: k === 1 ? `sgd(${shapeStr(jobs[0]!.p.shape)})` : `sgd(${k} tensors, largest ${largest})`,
    });
  }

  /**
   * Step count, group hyper-parameters and momentum buffers (live tensors, as torch returns them:
   * serialise before stepping again if a snapshot is needed; do not dispose them).
   */
  stateDict(): SGDState {
    let index = 0;
    const momentumBuffers: Record<string, Tensor> = {};
    const groups = this.paramGroups.map(({ params, ...h }) => ({
      ...h,
      params: params.map((p) => {
        const buf = this.buffers.get(p);
        if (buf) momentumBuffers[String(index)] = buf;
        return index++;
      }),
    }));
    return { step: this.stepCount, groups, momentumBuffers };
  }

  /**
   * Restores a stateDict() (possibly read back from a file) into an optimizer over the same
   * parameters. As torch, the groups' hyper-parameters (lr, momentum, weightDecay, ...) come from the
   * state too, unless `keepHyperParameters`: then only the step count and momentum buffers are
   * restored, and the hyper-parameters the optimizer was built with stay (a resumed training run
   * whose configuration decides them).
   */
  loadStateDict(s: SGDState, opts: { keepHyperParameters?: boolean } = {}): void {
    if (s.groups.length !== this.paramGroups.length) {
      throw new Error(`SGD.loadStateDict: state has ${s.groups.length} parameter groups, optimizer has ${this.paramGroups.length}`);
    }
    s.groups.forEach((sg, i) => {
      if (sg.params.length !== this.paramGroups[i]!.params.length) {
        throw new Error(`SGD.loadStateDict: group ${i} has ${sg.params.length} parameters in the state, ${this.paramGroups[i]!.params.length} in the optimizer`);
      }
    });
    const params = this.params();
    for (const [k, b] of Object.entries(s.momentumBuffers)) {
      const p = params[Number(k)];
      if (!p) throw new Error(`SGD.loadStateDict: momentum buffer for parameter ${k}, but there are ${params.length} parameters`);
      if (b.shape.length !== p.shape.length || b.shape.some((d, i) => d !== p.shape[i])) {
        throw new Error(`SGD.loadStateDict: momentum buffer ${k} has shape ${shapeStr(b.shape)}, parameter is ${shapeStr(p.shape)}`);
      }
    }
    // Validated: now replace the state.
    if (!opts.keepHyperParameters) {
      s.groups.forEach((sg, i) => {
        const { params: _ignored, ...h } = sg;
        Object.assign(this.paramGroups[i]!, h);
      });
    }
    // Copy into fresh buffers before freeing the old ones: s may hold this optimizer's own buffers.
    const fresh = new Map<Tensor, Tensor>();
    noGrad(() => {
      for (const [k, b] of Object.entries(s.momentumBuffers)) {
        const p = params[Number(k)]!;
        const buf = keep(persistent(() => empty(p.shape)));
        if (b instanceof Tensor) copyInto(buf, b); // reads any strided view
        else {
          const src = fromData(b.data, b.shape, 'float32');
          copyInto(buf, src);
          src.dispose();
        }
        fresh.set(p, buf);
      }
    });
    for (const buf of this.buffers.values()) buf.dispose();
    this.buffers = fresh;
    this.stepCount = s.step;
  }

  /** Frees the momentum buffers (the parameters belong to the model). */
  dispose(): void {
    for (const buf of this.buffers.values()) buf.dispose();
    this.buffers.clear();
  }
}

function stripUndefined<T extends object>(o: T): Partial<T> {
  return Object.fromEntries(Object.entries(o).filter(([k, v]) => v !== undefined && k !== 'params')) as Partial<T>;
}
