// Node's WebGPU: Dawn through the `webgpu` package. Importing this module registers it with the
// engine, so `await init()` works in Node exactly as in a browser.
import { create, globals } from 'webgpu';
import { setGPUProvider } from '../engine/device.js';

Object.assign(globalThis, globals);
process.env.XDG_RUNTIME_DIR ??= '/tmp';
setGPUProvider(() => create([]));
