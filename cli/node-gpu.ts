// Node's WebGPU: Dawn through the `webgpu` package. Importing this module registers it with the
// engine, so `await init()` works in Node exactly as in a browser.
import { create, globals } from 'webgpu';
import { setGPUProvider, setHostPause } from '../engine/device.js';

Object.assign(globalThis, globals);
process.env.XDG_RUNTIME_DIR ??= '/tmp';
setGPUProvider(() => create([]));

// While waiting for the GPU, sleep 0.5 ms between Dawn's polls rather than spinning (see HostPause):
// on lavapipe this leaves both cores to the shader threads.
const sleeper = new Int32Array(new SharedArrayBuffer(4));
setHostPause(
  () =>
    new Promise<void>((resolve) => {
      Atomics.wait(sleeper, 0, 0, 0.5);
      setImmediate(resolve);
    }),
);
