// Scopes: tidy(fn) frees every tensor made inside fn except what fn returns (found anywhere in
// the returned value: arrays, objects, maps) and what was keep()-ed. Graph nodes recorded inside
// are freed too, unless a returned tensor still needs them for backward().
import type { Tensor } from './tensor.js';
import type { GradNode } from './autograd.js';

interface Scope {
  tensors: Set<Tensor>;
  nodes: Set<GradNode>;
}

const stack: Scope[] = [];

export function trackTensor(t: Tensor): void {
  stack[stack.length - 1]?.tensors.add(t);
}

export function untrackTensor(t: Tensor): void {
  for (let i = stack.length - 1; i >= 0; i--) if (stack[i]!.tensors.delete(t)) return;
}

export function trackNode(n: GradNode): void {
  stack[stack.length - 1]?.nodes.add(n);
}

export function untrackNode(n: GradNode): void {
  for (let i = stack.length - 1; i >= 0; i--) if (stack[i]!.nodes.delete(n)) return;
}

/** Takes a tensor out of every scope: it lives until disposed. Returns it. */
export function keep<T extends Tensor>(t: T): T {
  untrackTensor(t);
  return t;
}

function collectTensors(value: unknown, out: Set<Tensor>, seen = new Set<unknown>()): void {
  if (value === null || typeof value !== 'object' || seen.has(value)) return;
  seen.add(value);
  if (isTensor(value)) {
    out.add(value);
    return;
  }
  if (value instanceof Map) {
    for (const v of value.values()) collectTensors(v, out, seen);
  } else if (Array.isArray(value)) {
    for (const v of value) collectTensors(v, out, seen);
  } else if (Object.getPrototypeOf(value) === Object.prototype) {
    for (const v of Object.values(value)) collectTensors(v, out, seen);
  }
}

function isTensor(v: object): v is Tensor {
  return 'shape' in v && 'strides' in v && 'dispose' in v && 'node' in v;
}

function endScope(scope: Scope, result: unknown): void {
  const returned = new Set<Tensor>();
  collectTensors(result, returned);
  const parent = stack[stack.length - 1];
  // Graph nodes still reachable from returned tensors survive into the parent scope.
  const live = new Set<GradNode>();
  const visit = (n: GradNode | null): void => {
    if (!n || live.has(n) || n.released) return;
    live.add(n);
    for (const input of n.inputs) visit(input.node);
  };
  for (const t of returned) visit(t.node);
  for (const n of scope.nodes) {
    if (live.has(n)) parent?.nodes.add(n);
    else n.release();
  }
  for (const t of scope.tensors) {
    if (returned.has(t)) parent?.tensors.add(t);
    else t.dispose();
  }
}

/** Runs fn and frees every tensor it made, except those in its result. Async functions are awaited. */
export function tidy<T>(fn: () => T): T {
  const scope: Scope = { tensors: new Set(), nodes: new Set() };
  stack.push(scope);
  let result: T;
  try {
    result = fn();
  } catch (e) {
    stack.pop();
    endScope(scope, undefined);
    throw e;
  }
  if (result instanceof Promise) {
    throw new Error('tidy() got an async function; use tidyAsync() so the scope ends after the await');
  }
  stack.pop();
  endScope(scope, result);
  return result;
}

/** tidy() for async functions. Scopes nest by call order, so do not interleave two tidyAsync calls. */
export async function tidyAsync<T>(fn: () => Promise<T>): Promise<T> {
  const scope: Scope = { tensors: new Set(), nodes: new Set() };
  stack.push(scope);
  let result: T;
  try {
    result = await fn();
  } catch (e) {
    stack.splice(stack.indexOf(scope), 1);
    endScope(scope, undefined);
    throw e;
  }
  stack.splice(stack.indexOf(scope), 1);
  endScope(scope, result);
  return result;
}
