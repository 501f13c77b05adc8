// torch.optim.SGD: the same update rule, parameter groups and state dict, with each parameter's
// update done by one fused kernel (kernels/optim.ts) that changes p and its momentum buffer in place.
import { sgdKernel, SGD_PER_THREAD, SGD_UNIFORMS, type SgdVariant } from '../../kernels/optim.js';
import { grid, WORKGROUP } from '../../kernels/common.js';
import { getBackend } from '../backend.js';
import { Tensor, empty, fromData, shapeStr } from '../tensor.js';
import { keep } from '../scope.js';
import { noGrad } from '../autograd.js';
import { contiguous } from '../ops/elementwise.js';
import { copyInto } from '../ops/copy.js';
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

  /** Frees the gradients of all parameters (torch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.params()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** One update of every parameter that has a gradient; parameters without one are skipped. */
  step(): void {
    noGrad(() => {
      for (const g of this.paramGroups) {
        validate(g, 'step');
        for (const p of g.params) if (p.grad) this.update(p, p.grad, g);
      }
    });
    this.stepCount++;
  }

  private update(p: Tensor, grad: Tensor, h: Hyper): void {
    if (grad.shape.length !== p.shape.length || grad.shape.some((d, i) => d !== p.shape[i])) {
      throw new Error(`SGD: gradient ${shapeStr(grad.shape)} does not match parameter ${shapeStr(p.shape)}`);
    }
    if (!p.isContiguous) throw new Error(`SGD: parameter ${p} must be dense (not a strided view)`);
    if (p.size === 0) return;
    const useMomentum = h.momentum !== 0;
    let buf = this.buffers.get(p);
    const first = useMomentum && !buf;
    if (first) {
      buf = keep(empty(p.shape));
      this.buffers.set(p, buf);
    }
    const g = grad.isContiguous ? grad : contiguous(grad);
    const v: SgdVariant = { momentum: useMomentum, nesterov: h.nesterov, weightDecay: h.weightDecay !== 0, maximize: h.maximize };
    const key = JSON.stringify(v);
    let kernel = kernels.get(key);
    if (!kernel) kernels.set(key, (kernel = sgdKernel(v)));
    const u = SGD_UNIFORMS.pack({
      n: p.size,
      pOffset: p.offset,
      gOffset: g.offset,
      bufOffset: buf?.offset ?? 0,
      lr: h.lr,
      momentum: h.momentum,
      keep: 1 - h.dampening,
      weightDecay: h.weightDecay,
      first: first ? 1 : 0,
    });
    getBackend().dispatch({
      kernel,
      buffers: [p.storage.buffer, g.storage.buffer, ...(useMomentum ? [buf!.storage.buffer] : [])],
      uniforms: u,
      workgroups: grid(Math.ceil(p.size / (WORKGROUP * SGD_PER_THREAD))),
      label: `sgd(${shapeStr(p.shape)})`,
    });
    if (g !== grad) g.dispose();
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
        const buf = keep(empty(p.shape));
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
