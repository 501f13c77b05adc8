// The one test every kernel's array<vec4> form needs before it is chosen (copy's fill, norm's
// elementwise passes, reduce's columns, conv's vec4 source): the tensor's elements lie within the
// whole vec4s of its buffer's binding (engine/backend.ts vec4Words), so no vec4 load or store
// reaches past what is bound.
import { getBackend } from '../backend.js';
import type { Tensor } from '../tensor.js';

/** Whether t's elements from its offset up to `end` (exclusive; default: its last element) lie within its binding's whole vec4s. */
export function inVec4Binding(t: Tensor, end = t.offset + t.size): boolean {
  return end <= getBackend().vec4Words(t.storage.buffer);
}
