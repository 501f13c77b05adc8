// The comparison peer: TensorFlow.js's WebGPU backend running in this same Node process, on the
// same Dawn instance (one `GPU` object) as our engine, so both ask the same adapter for a device.
// Every benchmark awaits setupPeer() once; it returns the tfjs module with the backend active.
// cli/node-gpu.ts also registers the host pause (engine/device.ts HostPause): without it every wait
// for the GPU spins a core, which on lavapipe halves the shader threads' speed (the FMA peak read
// 38 GFLOP/CPU-s here against 72 with the pause, same machine, same minute).
import '../cli/node-gpu.js';
import { create, globals } from 'webgpu';
import { init, setGPUProvider, setQuiet, adapterReport } from '../engine/index.js';

export type TF = typeof import('@tensorflow/tfjs-core');

export interface Peer {
  tf: TF;
  /** The shared Dawn GPU object. */
  gpu: GPU;
  /** tfjs's device (a second device on the same adapter as ours). */
  tfDevice: GPUDevice;
  /** Our engine's device. */
  ourDevice: GPUDevice;
  /** The adapter's description string (Mesa/lavapipe version on CPU). */
  adapter: string;
}

let peer: Promise<Peer> | undefined;

/** Sets up our engine and tfjs-webgpu on one Dawn GPU object; idempotent. */
export function setupPeer(): Promise<Peer> {
  peer ??= setup();
  return peer;
}

async function setup(): Promise<Peer> {
  Object.assign(globalThis, globals);
  process.env.XDG_RUNTIME_DIR ??= '/tmp';
  const gpu = create([]);
  // tfjs finds WebGPU through navigator.gpu; our engine through the provider. Same object.
  Object.defineProperty(globalThis, 'navigator', { value: { gpu }, configurable: true, writable: true });
  setGPUProvider(() => gpu);
  setQuiet(true);
  const backend = await init();
  // Dynamic imports: tfjs-backend-webgpu checks navigator.gpu when its module is evaluated.
  const tf = (await import('@tensorflow/tfjs-core')) as TF;
  await import('@tensorflow/tfjs-backend-webgpu');
  // (tfjs-core's Node build registers all its gradients itself; these benchmarks time forwards.)
  if (!(await tf.setBackend('webgpu'))) throw new Error('peer: tf.setBackend("webgpu") failed');
  await tf.ready();
  if (tf.getBackend() !== 'webgpu') throw new Error(`peer: tfjs runs on ${tf.getBackend()}, not webgpu`);
  const tfDevice = (tf.backend() as unknown as { device: GPUDevice }).device;
  return { tf, gpu, tfDevice, ourDevice: backend.device, adapter: adapterReport?.description ?? 'unknown' };
}
