// What one dispatch costs beyond its kernel, on this adapter: N one-workgroup dispatches of a tiny
// kernel in one pass, its uniforms bound three ways, and the cost of a bind group's creation.
//   dynamic   one bind group, the uniform slot chosen by a dynamic offset per dispatch (what the
//             engine does on GPUs)
//   fixed     one bind group per slot, the offset baked in (what it does on CPU adapters: lavapipe
//             copies the whole descriptor set into a new allocation at every dynamic-offset bind)
//   none      one bind group, the same slot every time (the floor: no per-dispatch uniform choice)
// Reports microseconds of wall and process CPU time per dispatch (lavapipe's threads included), best
// of a few batches. No peer: this is a property of the driver, measured to choose the binding.
// Usage: node dist/bench/dispatch-overhead.js [--json] [--dispatches N]
import '../cli/node-gpu.js';
import { init, getBackend, setQuiet, adapterReport } from '../engine/index.js';
import { waitForGPU } from '../engine/backend.js';
import { printTable } from './harness.js';

setQuiet(true);
await init();
const json = process.argv.includes('--json');
const at = process.argv.indexOf('--dispatches');
const N = at >= 0 ? Number(process.argv[at + 1]) : 4096;
const device = getBackend().device;
const SLOT = 256, SLOTS = 256;
const USAGE_UNIFORM = 0x40, USAGE_STORAGE = 0x80, USAGE_COPY_DST = 0x8;

const code = `struct U { n: u32, a: f32, pad0: u32, pad1: u32 }
@group(0) @binding(0) var<uniform> u: U;
@group(0) @binding(1) var<storage, read_write> d: array<f32>;
@compute @workgroup_size(64) fn main(@builtin(global_invocation_id) g: vec3<u32>) { if (g.x < u.n) { d[g.x] = d[g.x] * u.a + 1.0; } }`;
const module = device.createShaderModule({ code });
function pipelineFor(dynamic: boolean): { layout: GPUBindGroupLayout; pipeline: GPUComputePipeline } {
  const layout = device.createBindGroupLayout({
    entries: [
      { binding: 0, visibility: 4, buffer: { type: 'uniform', hasDynamicOffset: dynamic } },
      { binding: 1, visibility: 4, buffer: { type: 'storage' } },
    ],
  });
  const pipeline = device.createComputePipeline({ layout: device.createPipelineLayout({ bindGroupLayouts: [layout] }), compute: { module, entryPoint: 'main' } });
  return { layout, pipeline };
}
const arena = device.createBuffer({ size: SLOT * SLOTS, usage: USAGE_UNIFORM | USAGE_COPY_DST });
const words = new Uint32Array((SLOT * SLOTS) / 4);
const floats = new Float32Array(words.buffer);
for (let s = 0; s < SLOTS; s++) {
  words[(s * SLOT) / 4] = 64;
  floats[(s * SLOT) / 4 + 1] = 1.0001;
}
device.queue.writeBuffer(arena, 0, words);
const data = device.createBuffer({ size: 64 * 4, usage: USAGE_STORAGE });
const dyn = pipelineFor(true), fixed = pipelineFor(false);
const entries = (offset: number): GPUBindGroupEntry[] => [
  { binding: 0, resource: { buffer: arena, offset, size: 16 } },
  { binding: 1, resource: { buffer: data } },
];
const dynGroup = device.createBindGroup({ layout: dyn.layout, entries: entries(0) });
const fixedGroups = Array.from({ length: SLOTS }, (_, s) => device.createBindGroup({ layout: fixed.layout, entries: entries(s * SLOT) }));

type Mode = 'dynamic' | 'fixed' | 'none';
type PerItem = { wallUs: number; cpuUs: number };

/** Wall and process CPU microseconds per item of `body`, which does n items and resolves when done. */
async function perItem(n: number, body: () => void | Promise<void>): Promise<PerItem> {
  const c = process.cpuUsage();
  const t = performance.now();
  await body();
  const used = process.cpuUsage(c);
  return { wallUs: ((performance.now() - t) * 1000) / n, cpuUs: (used.user + used.system) / n };
}

/** n dispatches, submitted per SLOTS (as the engine batches), until the GPU has run them. */
function run(mode: Mode, n: number): Promise<PerItem> {
  return perItem(n, async () => {
    for (let left = n; left > 0; left -= SLOTS) {
      const encoder = device.createCommandEncoder();
      const pass = encoder.beginComputePass();
      pass.setPipeline(mode === 'dynamic' ? dyn.pipeline : fixed.pipeline);
      for (let i = 0; i < Math.min(left, SLOTS); i++) {
        if (mode === 'dynamic') pass.setBindGroup(0, dynGroup, [i * SLOT]);
        else pass.setBindGroup(0, fixedGroups[mode === 'fixed' ? i : 0]!);
        pass.dispatchWorkgroups(1);
      }
      pass.end();
      device.queue.submit([encoder.finish()]);
    }
    await waitForGPU(device.queue.onSubmittedWorkDone());
  });
}

/** n createBindGroup calls, the groups kept alive until the end. */
function bindGroupCost(n: number): Promise<PerItem> {
  const keep: GPUBindGroup[] = [];
  return perItem(n, () => {
    for (let i = 0; i < n; i++) keep.push(device.createBindGroup({ layout: fixed.layout, entries: entries((i % SLOTS) * SLOT) }));
  });
}

const best = (a: PerItem, b: PerItem): PerItem => ({ wallUs: Math.min(a.wallUs, b.wallUs), cpuUs: Math.min(a.cpuUs, b.cpuUs) });
const results: Record<string, PerItem> = {};
// The modes alternate within each repeat: this machine's speed drifts within seconds.
for (const mode of ['dynamic', 'fixed', 'none'] as Mode[]) await run(mode, SLOTS); // warm-up
for (let r = 0; r < 3; r++) {
  for (const mode of ['dynamic', 'fixed', 'none'] as Mode[]) {
    const m = await run(mode, N);
    results[mode] = results[mode] ? best(results[mode]!, m) : m;
  }
}
results['createBindGroup'] = [await bindGroupCost(1000), await bindGroupCost(1000), await bindGroupCost(1000)].reduce(best);

const adapter = adapterReport?.description ?? 'unknown';
const rows = Object.entries(results).map(([c, m]) => ({ case: c, wallUs: m.wallUs, cpuUs: m.cpuUs }));
if (json) {
  for (const r of rows) console.log(JSON.stringify({ bench: 'dispatch-overhead', adapter, case: r.case, dispatches: r.case === 'createBindGroup' ? 0 : N, wallUsEach: +r.wallUs.toFixed(2), cpuUsEach: +r.cpuUs.toFixed(2) }));
} else {
  printTable(
    `adapter: ${adapter}; ${N} one-workgroup dispatches per case, best of 3`,
    ['case', 'wall us each', 'CPU us each'],
    rows.map((r) => [r.case === 'createBindGroup' ? 'createBindGroup (one)' : `uniform slot: ${r.case}`, r.wallUs, r.cpuUs]),
    1,
  );
}
process.exit(0);
