// Autocast's tensor-core matmul variants (kernels/matmul-subgroup-matrix.ts): offered where the
// device has subgroup matrices (engine/device.ts asks for them where the adapter offers a usable
// configuration) and the kernel passed its check at init(). The check matters because this kernel
// had been compiled on no adapter we had (lavapipe lacks the feature): a driver that rejects it, or
// computes something else, turns the variants off with a one-line warning instead of letting a run
// train on wrong numbers. The check is a small matmul with tails in M, N and K against the float64
// reference on f16-rounded operands (autocast's numerics: f16 operands, f32 accumulation).
import { matmulKernel, matmulReference, MATMUL_UNIFORMS, type MatmulVariant } from '../../kernels/matmul.js';
import { roundArrayToF16 } from '../../kernels/f16.js';
import { adapterReport } from '../device.js';

/** Result matrices per workgroup (along M, N) of the variants offered; the first is the fixed table's choice. */
const TILES: readonly [number, number][] = [
  [4, 4],
  [2, 2],
  [4, 2],
];

/** '' = not checked yet (no variants), 'ok', or why the variants are off. */
let checked = '';

/** A variant of D x D matrices, S-lane subgroups and tilesM x tilesN result matrices per workgroup. */
export function subgroupMatrixVariant(D: number, S: number, tilesM: number, tilesN: number): MatmulVariant {
  return { name: `sgmat${D}_${tilesM}x${tilesN}`, kind: 'subgroupMatrix', subgroup: S, matrix: D, wgN: 1, wgM: 1, tm: tilesM * D, tn: tilesN * D };
}

/** The tensor-core variants this device runs under autocast (none before a passed check). */
export function subgroupMatrixVariants(): MatmulVariant[] {
  const c = adapterReport?.subgroupMatrix;
  if (!c || checked !== 'ok') return [];
  return TILES.map(([m, n]) => subgroupMatrixVariant(c.M, c.subgroupSize, m, n));
}

/** Why the tensor-core variants are off ('' when on, or when the device has none to offer). */
export function subgroupMatrixStatus(): string {
  return adapterReport?.subgroupMatrix && checked !== 'ok' ? checked || 'not checked' : '';
}

/** The check's problem: tails in every dimension for D = 8 and 16, values in [-2, 2) from a fixed LCG. */
export const CHECK_SHAPE = { M: 37, K: 50, N: 45 };

export function checkOperands(): { a: Float32Array; b: Float32Array } {
  let s = 12345;
  const next = () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 4 - 2;
  const { M, K, N } = CHECK_SHAPE;
  return { a: Float32Array.from({ length: M * K }, next), b: Float32Array.from({ length: K * N }, next) };
}

/**
 * Why `c` is not autocast's product of the check operands (null when it is): each element within
 * 1e-4 of the sum of |a||b| over its row and column (f16 products are exact in f32; tensor cores may
 * round the f32 sums differently; a wrong layout or a skipped tail is off by O(1)).
 */
export function checkResult(c: ArrayLike<number>): string | null {
  const { M, K, N } = CHECK_SHAPE;
  const { a, b } = checkOperands();
  const ra = roundArrayToF16(a), rb = roundArrayToF16(b);
  const ref = matmulReference({ shape: [M, K], data: ra }, { shape: [K, N], data: rb }).data;
  if (c.length !== M * N) return `${c.length} results for a ${M}x${N} product`;
  for (let i = 0; i < M; i++) {
    for (let j = 0; j < N; j++) {
      let scale = 0;
      for (let k = 0; k < K; k++) scale += Math.abs(ra[i * K + k]! * rb[k * N + j]!);
      const got = c[i * N + j]!, want = ref[i * N + j]!;
      if (!(Math.abs(got - want) <= 1e-4 * scale)) return `C[${i}, ${j}] = ${got}, expected ${want} (f16 operands, ${M}x${K} @ ${K}x${N})`;
    }
  }
  return null;
}

/**
 * Runs the first variant once on the check operands with plain WebGPU calls (its own buffers and
 * error scope, nothing of the engine's), and records the verdict. Returns why it failed, or null.
 */
export async function checkSubgroupMatrix(device: GPUDevice, wait: <T>(p: Promise<T>) => Promise<T>): Promise<string | null> {
  const c = adapterReport?.subgroupMatrix;
  if (!c) return null;
  const v = subgroupMatrixVariant(c.M, c.subgroupSize, ...TILES[0]!);
  const why = await runCheck(device, v, wait).catch((e: unknown) => (e instanceof Error ? e.message : String(e)));
  checked = why === null ? 'ok' : `${v.name} failed its check: ${why}`;
  return why;
}

async function runCheck(device: GPUDevice, v: MatmulVariant, wait: <T>(p: Promise<T>) => Promise<T>): Promise<string | null> {
  const { M, K, N } = CHECK_SHAPE;
  const { a, b } = checkOperands();
  const kernel = matmulKernel(v, true);
  device.pushErrorScope('validation');
  const module = device.createShaderModule({ code: kernel.wgsl, label: kernel.entry });
  const errors = (await wait(module.getCompilationInfo())).messages.filter((m) => m.type === 'error');
  if (errors.length > 0) {
    await device.popErrorScope();
    return `WGSL: ${errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ')}`;
  }
  const made: GPUBuffer[] = [];
  const buffer = (size: number, usage: number, data?: ArrayBufferView): GPUBuffer => {
    const buf = device.createBuffer({ size: Math.ceil(size / 16) * 16, usage });
    made.push(buf);
    if (data) device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
    return buf;
  };
  try {
    const pipeline = await wait(device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: kernel.entry }, label: kernel.entry }));
    const STORAGE = 0x80, COPY_SRC = 0x4, COPY_DST = 0x8, UNIFORM = 0x40, MAP_READ = 0x1;
    const uniforms = MATMUL_UNIFORMS.pack({ M, N, K, batch: 1, aOff: 0, aBatch: 0, aM: K, aK: 1, bOff: 0, bBatch: 0, bK: N, bN: 1, cBatch: M * N });
    const ub = buffer(uniforms.byteLength, UNIFORM | COPY_DST, uniforms);
    const ab = buffer(a.byteLength, STORAGE | COPY_DST, a), bb = buffer(b.byteLength, STORAGE | COPY_DST, b);
    const cb = buffer(M * N * 4, STORAGE | COPY_SRC), staging = buffer(M * N * 4, MAP_READ | COPY_DST);
    const group = device.createBindGroup({
      layout: pipeline.getBindGroupLayout(0),
      entries: [ub, ab, bb, cb].map((buf, i) => ({ binding: i, resource: { buffer: buf } })),
    });
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(Math.ceil(N / v.tn), Math.ceil(M / v.tm), 1);
    pass.end();
    enc.copyBufferToBuffer(cb, 0, staging, 0, M * N * 4);
    device.queue.submit([enc.finish()]);
    await wait(staging.mapAsync(0x1));
    const out = new Float32Array(staging.getMappedRange().slice(0, M * N * 4));
    staging.unmap();
    const err = await device.popErrorScope();
    if (err) return `WebGPU: ${err.message}`;
    return checkResult(out);
  } catch (e) {
    await device.popErrorScope().catch(() => null);
    throw e;
  } finally {
    for (const buf of made) buf.destroy();
  }
}

/** Tests: the verdict as if a check had passed (ok) or failed (a reason), or unchecked (''). */
export function setSubgroupMatrixChecked(state: string): void {
  checked = state;
}
