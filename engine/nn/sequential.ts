// Containers and parameter-free layers: Sequential (children named '0', '1', ... as in torch, so
// 'layer1.0.conv1.weight' style keys come out right) and ReLU.
import type { Tensor } from '../tensor.js';
import { relu } from '../ops/elementwise.js';
import { Module } from './module.js';

/** A module with a single-tensor forward, the kind Sequential chains. */
export type Layer = Module & { forward(x: Tensor): Tensor };

export class Sequential extends Module {
  readonly layers: Layer[];

  constructor(...layers: Layer[]) {
    super();
    this.layers = layers;
    layers.forEach((m, i) => this.registerModule(String(i), m));
  }

  get length(): number {
    return this.layers.length;
  }

  at(i: number): Layer {
    const m = this.layers[i < 0 ? this.layers.length + i : i];
    if (!m) throw new Error(`Sequential: index ${i} out of range for ${this.layers.length} layers`);
    return m;
  }

  /** Runs the layers in order; intermediate results are freed as soon as the next layer has used them. */
  forward(x: Tensor): Tensor {
    let y = x;
    for (const m of this.layers) {
      const next = m.forward(y);
      // The graph keeps its own references, so freeing intermediates here is safe for backward.
      if (y !== x && next !== y) y.dispose();
      y = next;
    }
    return y;
  }
}

export class ReLU extends Module {
  forward(x: Tensor): Tensor {
    return relu(x);
  }
}
