// Module: PyTorch's nn.Module without the attribute magic. A module registers its parameters,
// buffers and submodules under attribute names (registerParameter('weight', ...)), and every
// traversal builds PyTorch's dotted names from them ('layer1.0.conv1.weight'), so torchvision
// state dicts map onto our models key for key.
import { Tensor, shapeStr } from '../tensor.js';
import { keep, tidy } from '../scope.js';
import { noGrad } from '../autograd.js';
import { getBackend } from '../backend.js';
import { cast, contiguous } from '../ops/elementwise.js';
import { copyInto } from '../ops/copy.js';
import { fromData } from '../tensor.js';
import type { HostTensor } from '../safetensors.js';

/** A state-dict value: a GPU tensor, or a CPU tensor as loadSafetensors() returns it. */
export type StateValue = Tensor | HostTensor;

export interface LoadReport {
  /** Keys the model has and the dict lacks (left untouched). */
  missingKeys: string[];
  /** Keys in the dict the model does not have (ignored). */
  unexpectedKeys: string[];
  /** Keys in both whose shapes differ (not loaded). */
  shapeMismatches: { key: string; expected: number[]; got: number[] }[];
  /** Keys that were copied into the model. */
  loaded: string[];
}

export interface LoadOptions {
  /**
   * true (default, as torch): any missing/unexpected key or shape mismatch throws before anything is
   * copied. false: loads what matches and reports the rest (torch raises for shape mismatches even
   * then; skipping them lets e.g. a COCO checkpoint seed a model with another number of classes).
   */
  strict?: boolean;
}

const NAME_RE = /^[^.]+$/;

function listNames(names: string[], max = 10): string {
  return names.length <= max ? names.join(', ') : `${names.slice(0, max).join(', ')}, ... ${names.length - max} more`;
}

/** Human-readable summary of a load report (empty when everything matched). */
export function describeLoadReport(r: LoadReport): string {
  const parts: string[] = [];
  if (r.missingKeys.length) parts.push(`${r.missingKeys.length} missing key(s): ${listNames(r.missingKeys)}`);
  if (r.unexpectedKeys.length) parts.push(`${r.unexpectedKeys.length} unexpected key(s): ${listNames(r.unexpectedKeys)}`);
  if (r.shapeMismatches.length) {
    const m = r.shapeMismatches.map((s) => `${s.key} (checkpoint ${shapeStr(s.got)}, model ${shapeStr(s.expected)})`);
    parts.push(`${m.length} shape mismatch(es): ${listNames(m)}`);
  }
  return parts.join('; ');
}

export abstract class Module {
  /** Training mode flag (train()/eval()); layers such as dropout or batch norm read it. */
  training = true;
  private readonly _params = new Map<string, Tensor>();
  private readonly _buffers = new Map<string, { t: Tensor; persistent: boolean }>();
  private readonly _modules = new Map<string, Module>();

  private checkName(name: string, kind: string): void {
    if (!NAME_RE.test(name)) throw new Error(`${this.constructor.name}: ${kind} name '${name}' must be non-empty and contain no '.'`);
    const taken = this._params.has(name) ? 'parameter' : this._buffers.has(name) ? 'buffer' : this._modules.has(name) ? 'module' : null;
    if (taken && taken !== kind) throw new Error(`${this.constructor.name}: '${name}' is already registered as a ${taken}`);
  }

  /**
   * Makes `t` a parameter of this module called `name`: a persistent (keep()-ed) float32 leaf that
   * requires grad. Returns t, to assign to a field: `this.weight = this.registerParameter('weight', w)`.
   * Re-registering a name disposes the tensor it held.
   */
  registerParameter(name: string, t: Tensor): Tensor {
    this.checkName(name, 'parameter');
    if (t.dtype !== 'float32') throw new Error(`${this.constructor.name}: parameter '${name}' must be float32, got ${t.dtype}`);
    if (t.node) throw new Error(`${this.constructor.name}: parameter '${name}' must be a leaf tensor (detach() it first)`);
    const old = this._params.get(name);
    if (old && old !== t) old.dispose();
    keep(t);
    t.requiresGrad = true;
    this._params.set(name, t);
    return t;
  }

  /** Registers non-trainable state (e.g. batch norm running stats); `persistent: false` leaves it out of stateDict(). */
  registerBuffer(name: string, t: Tensor, opts: { persistent?: boolean } = {}): Tensor {
    this.checkName(name, 'buffer');
    const old = this._buffers.get(name);
    if (old && old.t !== t) old.t.dispose();
    keep(t);
    this._buffers.set(name, { t, persistent: opts.persistent ?? true });
    return t;
  }

  registerModule<M extends Module>(name: string, m: M): M {
    this.checkName(name, 'module');
    this._modules.set(name, m);
    return m;
  }

  /** This module's own parameter called `name` (no dotted paths), if registered. */
  getParameter(name: string): Tensor | undefined {
    return this._params.get(name);
  }

  getBuffer(name: string): Tensor | undefined {
    return this._buffers.get(name)?.t;
  }

  getModule(name: string): Module | undefined {
    return this._modules.get(name);
  }

  /** Direct submodules with their attribute names. */
  namedChildren(): [string, Module][] {
    return [...this._modules];
  }

  children(): Module[] {
    return [...this._modules.values()];
  }

  /** This module and every submodule (depth first, each once), with dotted names ('' for this one). */
  namedModules(prefix = '', seen = new Set<Module>()): [string, Module][] {
    if (seen.has(this)) return [];
    seen.add(this);
    const out: [string, Module][] = [[prefix, this]];
    for (const [name, m] of this._modules) out.push(...m.namedModules(prefix ? `${prefix}.${name}` : name, seen));
    return out;
  }

  /** Parameters with dotted names, in registration order, own before submodules'; shared ones once. */
  namedParameters(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    const seen = new Set<Tensor>();
    for (const [prefix, m] of this.namedModules()) {
      for (const [name, t] of m._params) {
        if (seen.has(t)) continue;
        seen.add(t);
        out.push([prefix ? `${prefix}.${name}` : name, t]);
      }
    }
    return out;
  }

  parameters(): Tensor[] {
    return this.namedParameters().map(([, t]) => t);
  }

  /** Buffers (persistent or not) with dotted names. */
  namedBuffers(): [string, Tensor][] {
    const out: [string, Tensor][] = [];
    for (const [prefix, m] of this.namedModules()) {
      for (const [name, b] of m._buffers) out.push([prefix ? `${prefix}.${name}` : name, b.t]);
    }
    return out;
  }

  buffers(): Tensor[] {
    return this.namedBuffers().map(([, t]) => t);
  }

  /** Number of trainable scalars. */
  numParameters(): number {
    return this.parameters().reduce((n, t) => n + t.size, 0);
  }

  /**
   * Parameters and persistent buffers by dotted name (torch order: each module's parameters, then its
   * buffers, then its children). The values are the live tensors, as in torch: do not dispose them,
   * and snapshot (serialise or clone) before further training if an unchanging copy is needed.
   */
  stateDict(): Record<string, Tensor> {
    const out: Record<string, Tensor> = {};
    for (const [prefix, m] of this.namedModules()) {
      const key = (name: string): string => (prefix ? `${prefix}.${name}` : name);
      for (const [name, t] of m._params) out[key(name)] = t;
      for (const [name, b] of m._buffers) if (b.persistent) out[key(name)] = b.t;
    }
    return out;
  }

  /** Copies values into the parameters and buffers in place (optimizers keep their references). */
  loadStateDict(dict: Record<string, StateValue>, opts: LoadOptions = {}): LoadReport {
    const strict = opts.strict ?? true;
    const own = this.stateDict();
    const report: LoadReport = { missingKeys: [], unexpectedKeys: [], shapeMismatches: [], loaded: [] };
    for (const key of Object.keys(dict)) if (!(key in own)) report.unexpectedKeys.push(key);
    const toLoad: [Tensor, StateValue, string][] = [];
    for (const [key, t] of Object.entries(own)) {
      const v = dict[key];
      if (v === undefined) {
        report.missingKeys.push(key);
      } else if (v.shape.length !== t.shape.length || v.shape.some((d, i) => d !== t.shape[i])) {
        report.shapeMismatches.push({ key, expected: [...t.shape], got: [...v.shape] });
      } else {
        toLoad.push([t, v, key]);
      }
    }
    if (strict && (report.missingKeys.length || report.unexpectedKeys.length || report.shapeMismatches.length)) {
      throw new Error(`loadStateDict(${this.constructor.name}): ${describeLoadReport(report)}`);
    }
    for (const [t, v, key] of toLoad) {
      assignInto(t, v, key);
      report.loaded.push(key);
    }
    if (toLoad.length) for (const [, m] of this.namedModules()) m.stateChanged();
    return report;
  }

  /**
   * Called after this module's parameters or buffers were written in place (loadStateDict calls it
   * on every submodule): a module that derives and keeps values from its state (FrozenBatchNorm2d's
   * scale and shift) drops them here. Code that writes state by other means calls it too.
   */
  stateChanged(): void {}

  /** Sets training mode here and in every submodule. */
  train(mode = true): this {
    for (const [, m] of this.namedModules()) m.training = mode;
    return this;
  }

  eval(): this {
    return this.train(false);
  }

  /** Frees every parameter's gradient (torch's zero_grad(set_to_none=True)). */
  zeroGrad(): void {
    for (const p of this.parameters()) {
      p.grad?.dispose();
      p.grad = null;
    }
  }

  /** Frees all parameters (and their gradients) and buffers of this module and its submodules. */
  dispose(): void {
    for (const [, m] of this.namedModules()) {
      m.stateChanged(); // drops values derived from the state (FrozenBatchNorm2d's scale and shift)
      for (const t of m._params.values()) t.dispose();
      for (const b of m._buffers.values()) b.t.dispose();
    }
  }
}

/** Copies a state value into a model tensor of the same shape, converting the dtype if needed. */
function assignInto(dst: Tensor, v: StateValue, key: string): void {
  if (v instanceof Tensor) {
    if (v.isDisposed) throw new Error(`loadStateDict: value for '${key}' was disposed`);
    if (v === dst) return;
    const sameView = v.storage === dst.storage && v.offset === dst.offset && v.strides.every((s, i) => s === dst.strides[i]);
    if (sameView && v.dtype === dst.dtype) return; // load_state_dict(state_dict()): nothing to do
    noGrad(() => tidy(() => {
      let src = v.dtype === dst.dtype ? v : cast(v, dst.dtype);
      // A pass may not read and write one buffer: copy from an aliasing view through a temporary.
      if (src.storage.buffer === dst.storage.buffer) src = contiguous(src);
      copyInto(dst, src);
    }));
    return;
  }
  const data = dst.dtype === 'float32' ? Float32Array.from(v.data) : dst.dtype === 'int32' ? Int32Array.from(v.data) : Uint32Array.from(v.data, (x) => (x ? 1 : 0));
  if (dst.isContiguous && dst.size > 0) {
    getBackend().write(dst.storage.buffer, data, dst.offset * 4);
  } else if (dst.size > 0) {
    noGrad(() => tidy(() => copyInto(dst, contiguous(fromData(data, dst.shape, dst.dtype)))));
  }
}
