// The parity fixture's weight formula (shared/fixtures/torchvision-maskrcnn/README.md): every
// state-dict tensor is a pure function of its name, so torchvision's reference outputs can be
// reproduced without shipping a weight file. Element i of tensor `name` gets u_i in [-1, 1) from a
// 32-bit hash mix of (i, FNV-1a(name), seed); the kind of tensor (frozen BN statistic, bias,
// weight) decides how u is scaled. All integer arithmetic is mod 2^32 (Math.imul + >>> 0), and u is
// scaled in float64 then rounded once to float32, as numpy would.
import type { HostTensor } from '../engine/index.js';

const numel = (shape: readonly number[]): number => shape.reduce((a, b) => a * b, 1);

const FNV_OFFSET = 0x811c9dc5;
const FNV_PRIME = 0x01000193;

/** FNV-1a 32-bit hash of the UTF-8 bytes of s (unsigned). */
export function fnv1a32(s: string): number {
  let h = FNV_OFFSET;
  for (const b of new TextEncoder().encode(s)) h = Math.imul(h ^ b, FNV_PRIME) >>> 0;
  return h >>> 0;
}

/** u_i in [-1, 1) for i < n, as the README defines it (float64). */
export function formulaUniform(name: string, n: number, seed = 0): Float64Array {
  const h = fnv1a32(name);
  const base = (h + (seed >>> 0)) >>> 0;
  const u = new Float64Array(n);
  for (let i = 0; i < n; i++) {
    let x = (Math.imul(i, 0x9e3779b1) + base) >>> 0;
    x ^= x >>> 16;
    x = Math.imul(x, 0x85ebca6b) >>> 0;
    x ^= x >>> 13;
    x = Math.imul(x, 0xc2b2ae35) >>> 0;
    x = (x ^ (x >>> 16)) >>> 0;
    u[i] = (x / 4294967296) * 2 - 1;
  }
  return u;
}

// Frozen batch-norm tensors of a torchvision ResNet: bn1..bn3 and the downsample's norm.
const FROZEN_BN_RE = /(^|\.)(bn\d|downsample\.1)\.(weight|bias|running_mean|running_var)$/;

export type FixtureTensorKind = 'bn_weight_bn3' | 'bn_weight' | 'bn_bias' | 'bn_running_mean' | 'bn_running_var' | 'bias' | 'weight' | 'counter';

/**
 * Which rule of the formula a tensor name falls under. `batchNorm` says the tensor belongs to a
 * batch-norm module outside the ResNet trunk's naming (the FPN and head norms of torchvision's v2
 * models, `...inner_blocks.0.1.weight`): such modules are recognised by their running_mean (see
 * fixtureStateDict) and take the same rules as the trunk's bn1/bn2.
 */
export function fixtureTensorKind(name: string, batchNorm = false): FixtureTensorKind {
  const m = FROZEN_BN_RE.exec(name) ?? (batchNorm ? /()()(weight|bias|running_mean|running_var)$/.exec(name) : null);
  if (m) {
    switch (m[3]) {
      case 'weight': return name.includes('.bn3.') ? 'bn_weight_bn3' : 'bn_weight';
      case 'bias': return 'bn_bias';
      case 'running_mean': return 'bn_running_mean';
      default: return 'bn_running_var';
    }
  }
  // BatchNorm's step counter (present only with trainable BN, never in the fixture model): not a
  // weight, so it starts at 0 as in a fresh torch model.
  if (name.endsWith('.num_batches_tracked')) return 'counter';
  if (name.endsWith('.bias')) return 'bias';
  if (name.endsWith('.weight')) return 'weight';
  throw new Error(`fixture weights: '${name}' is neither a weight, a bias nor a frozen batch-norm tensor; the formula does not define it`);
}

/** The formula's values for one tensor (row-major, float32). */
export function fixtureValues(name: string, shape: readonly number[], seed = 0, batchNorm = false): Float32Array {
  const n = numel(shape);
  const kind = fixtureTensorKind(name, batchNorm);
  if (kind === 'counter') return new Float32Array(n);
  const u = formulaUniform(name, n, seed);
  const out = new Float32Array(n);
  let f: (v: number) => number;
  switch (kind) {
    case 'bn_weight_bn3': f = (v) => 0.2 + 0.05 * v; break;
    case 'bn_weight': f = (v) => 1 + 0.1 * v; break;
    case 'bn_bias': f = (v) => 0.1 * v; break;
    case 'bn_running_mean': f = (v) => 0.1 * v; break;
    case 'bn_running_var': f = (v) => 1 + 0.25 * (v + 1); break;
    case 'bias': f = (v) => 0.01 * v; break;
    case 'weight': {
      if (shape.length === 0) throw new Error(`fixture weights: weight '${name}' is a scalar; the formula needs a shape [out, ...]`);
      const fanIn = numel(shape.slice(1));
      const scale = Math.sqrt(3 / fanIn);
      f = (v) => v * scale;
      break;
    }
  }
  for (let i = 0; i < n; i++) out[i] = f(u[i]!);
  return out;
}

/**
 * A state dict (CPU tensors) filled by the formula for the given (name, shape) pairs, e.g. those of
 * `Object.entries(model.stateDict()).map(([k, t]) => [k, t.shape])`. Integer tensors named
 * `*.num_batches_tracked` come out as int32 zeros; everything else is float32.
 */
export function fixtureStateDict(entries: Iterable<readonly [string, readonly number[]]>, seed = 0): Record<string, HostTensor> {
  const list = [...entries];
  // Batch-norm modules: those with running statistics.
  const bnModules = new Set(list.flatMap(([name]) => (name.endsWith('.running_mean') ? [name.slice(0, -'.running_mean'.length)] : [])));
  const out: Record<string, HostTensor> = {};
  for (const [name, shape] of list) {
    const batchNorm = bnModules.has(name.slice(0, name.lastIndexOf('.')));
    const values = fixtureValues(name, shape, seed, batchNorm);
    out[name] = fixtureTensorKind(name, batchNorm) === 'counter'
      ? { dtype: 'int32', shape: [...shape], data: new Int32Array(values.length) }
      : { dtype: 'float32', shape: [...shape], data: values };
  }
  return out;
}
