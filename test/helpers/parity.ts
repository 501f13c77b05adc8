// The torchvision parity fixture (../shared/fixtures/torchvision-maskrcnn) and its comparisons,
// shared by test/model-parity.test.ts (the model fed torchvision's input tensor) and
// test/model-parity-file.test.ts (the whole pipeline from the JPEG file).
import * as assert from 'uvu/assert';
import { readFileSync } from 'node:fs';
import { loadSafetensors, type HostTensor } from '../../engine/safetensors.js';

export const CASE_DIR = '../shared/fixtures/torchvision-maskrcnn/case-000000555705/';
export const CASE = CASE_DIR + 'expected.safetensors';

/** The case's tensors, with accessors that name a missing tensor. */
export function loadFixture(file = CASE): { fx: Record<string, HostTensor>; metadata: Record<string, string>; get: (k: string) => HostTensor; f32: (k: string) => Float32Array } {
  const { tensors: fx, metadata } = loadSafetensors(new Uint8Array(readFileSync(file)));
  const get = (k: string): HostTensor => {
    const t = fx[k];
    if (!t) throw new Error(`fixture has no tensor '${k}'`);
    return t;
  };
  return { fx, metadata, get, f32: (k) => Float32Array.from(get(k).data) };
}

/** max |a - b| / max |b|: error relative to the reference's scale. */
export function scaledError(a: ArrayLike<number>, b: ArrayLike<number>): number {
  assert.is(a.length, b.length, 'length');
  let d = 0, m = 0;
  for (let i = 0; i < b.length; i++) {
    d = Math.max(d, Math.abs(a[i]! - b[i]!));
    m = Math.max(m, Math.abs(b[i]!));
  }
  return d / (m || 1);
}

export function expectScaled(what: string, a: ArrayLike<number>, b: ArrayLike<number>, tol: number): void {
  const e = scaledError(a, b);
  console.log(`    ${what}: scaled error ${e.toExponential(2)} (tolerance ${tol})`);
  assert.ok(e <= tol, `${what}: scaled error ${e} > ${tol}`);
}

/** Fraction of reference boxes that have a box of ours with every coordinate within `tol`. */
export function matchedFraction(ours: Float32Array, ref: Float32Array, tol: number): { fraction: number; pairs: [number, number][] } {
  const pairs: [number, number][] = [];
  const used = new Uint8Array(ours.length / 4);
  for (let i = 0; i < ref.length / 4; i++) {
    for (let j = 0; j < ours.length / 4; j++) {
      if (used[j]) continue;
      let ok = true;
      for (let k = 0; k < 4 && ok; k++) ok = Math.abs(ours[4 * j + k]! - ref[4 * i + k]!) <= tol;
      if (ok) {
        used[j] = 1;
        pairs.push([i, j]);
        break;
      }
    }
  }
  return { fraction: pairs.length / (ref.length / 4), pairs };
}
