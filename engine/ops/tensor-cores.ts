// Autocast's tensor cores: the subgroup-matrix matmul variants (kernels/matmul-subgroup-matrix.ts)
// and the implicit-GEMM conv forward, input gradient and weight gradient
// (kernels/conv-subgroup-matrix.ts), offered where the device has subgroup matrices (engine/device.ts
// asks for them where the adapter offers a usable configuration) and each kernel passed its check at
// init(). The checks matter because these kernels' subgroup-
// matrix builtins have run on no adapter we had (lavapipe lacks the feature; CI runs their emulated
// forms): a driver that rejects them, or computes something else, turns them off with a one-line
// warning instead of letting a run train on wrong numbers. Each check is one small problem with
// tails in every dimension against the float64 reference on f16-rounded operands (autocast's
// numerics: f16 operands, f32 sums).
import { matmulReference, MATMUL_UNIFORMS, type MatmulVariant } from '../../kernels/matmul.js';
import { subgroupMatrixKernel } from '../../kernels/matmul-subgroup-matrix.js';
import { convSubgroupMatrixKernel, convInputGradSubgroupMatrixKernel, convWeightGradSubgroupMatrixKernel, convSgmatGrid, convSgmatUniforms, inputGradPhases } from '../../kernels/conv-subgroup-matrix.js';
import { conv2dEpilogueReference, conv2dInputGradReference, conv2dWeightGradReference, refGeom, type Conv2dRefParams } from '../../kernels/conv.js';
import { SPATIAL_FLAGS } from '../../kernels/conv-gemm.js';
import { tileName, tileShape, tileMemory, type SubgroupMatrixTileSpec } from '../../kernels/subgroup-matrix-tile.js';
import { roundArrayToF16 } from '../../kernels/f16.js';
import { adapterReport } from '../device.js';

/** A tile kernel's shape apart from the device's S and D (kernels/subgroup-matrix-tile.ts). */
type Tile = Required<Pick<SubgroupMatrixTileSpec, 'tilesM' | 'tilesN' | 'sgM' | 'sgN' | 'kSteps'>>;

/**
 * The fallback where a device refuses tiles of several subgroups (they need per-subgroup offsets,
 * which Dawn accepts only with its uniformity diagnostic off): one subgroup per workgroup, 64 x 64.
 */
const SINGLE_TILE: Tile = { tilesM: 4, tilesN: 4, sgM: 1, sgN: 1, kSteps: 1 };

/**
 * The matmul variants offered, the first the fixed table's choice (the autotuner times them all):
 * 2 x 2 subgroups of 2 x 2 result matrices, K staged 2D at a time (64 x 64 at D = 16, 128
 * invocations); the same with 4 x 4 matrices per subgroup (128 x 128: half the staging per product,
 * for large products); one subgroup of 4 x 4 (64 x 64, the first form). Not yet measured on a GPU.
 */
const TILES: readonly Tile[] = [
  { tilesM: 2, tilesN: 2, sgM: 2, sgN: 2, kSteps: 2 },
  { tilesM: 4, tilesN: 4, sgM: 2, sgN: 2, kSteps: 2 },
  SINGLE_TILE,
];
/** The conv kernels' tile: 2 x 2 subgroups of 2 x 4 result matrices (64 channels x 128 pixels at D = 16), K staged 2D at a time. */
const CONV_TILE: Tile = { tilesM: 2, tilesN: 4, sgM: 2, sgN: 2, kSteps: 2 };
/** False once the device's checks failed with several subgroups per workgroup and passed with one. */
let severalSubgroups = true;

/** The tiles offered for the matmul and the conv kernels (the single-subgroup one only, after that fallback). */
function offeredTiles(): { matmul: readonly Tile[]; conv: Tile } {
  return severalSubgroups ? { matmul: TILES, conv: CONV_TILE } : { matmul: [SINGLE_TILE], conv: SINGLE_TILE };
}

/** Per kernel: '' = not checked yet (off), 'ok', or why it is off. */
const checked = { matmul: '', conv: '', convGrad: '', convWeightGrad: '' };
type Checked = keyof typeof checked;

/** Tests: the emulated kernels (plain f32 on the same tiles) stand in for tensor cores on any adapter. */
let emulated: { S: number; D: number } | null = null;

/** Tests: makes autocast's matmul and convs take the emulated tensor-core kernels (null: off). */
export function emulateTensorCores(on: { S: number; D: number } | null): void {
  emulated = on;
}

/** A variant of D x D matrices and S-lane subgroups with a tile's shape (wgM x wgN: its subgroups; tm x tn: each subgroup's part). */
export function subgroupMatrixVariant(D: number, S: number, t: Tile, emulate = false): MatmulVariant {
  return { name: tileName({ S, D, ...t, emulate }), kind: 'subgroupMatrix', subgroup: S, matrix: D, wgM: t.sgM, wgN: t.sgN, tm: t.tilesM * D, tn: t.tilesN * D, kSteps: t.kSteps, ...(emulate ? { emulate } : {}) };
}

/**
 * A tile as the device runs it: the real form as is; the emulated form with the same subgroups and
 * K steps, its result matrices per subgroup halved (columns first) until the workgroup memory, with
 * the emulation's f32 accumulators, fits lavapipe's 32 KiB (the real form needs far less).
 */
function deviceTile(t: Tile, S: number, D: number, emulate: boolean): Tile {
  const fit = { ...t };
  while (emulate && tileMemory({ S, D, ...fit, emulate: true }) > 32768 && fit.tilesM * fit.tilesN > 1) {
    if (fit.tilesN >= fit.tilesM) fit.tilesN = Math.max(1, fit.tilesN >> 1);
    else fit.tilesM = Math.max(1, fit.tilesM >> 1);
  }
  return fit;
}

/** The device's subgroup size and matrix size where its matmul (or conv) check passed, or the emulation's. */
function tensorCores(kernel: Checked): { S: number; D: number; emulate: boolean } | null {
  if (emulated) return { ...emulated, emulate: true };
  const c = adapterReport?.subgroupMatrix;
  return c && checked[kernel] === 'ok' ? { S: c.subgroupSize, D: c.M, emulate: false } : null;
}

/** The tensor-core matmul variants this device runs under autocast (none before a passed check). */
export function subgroupMatrixVariants(): MatmulVariant[] {
  const t = tensorCores('matmul');
  return t ? offeredTiles().matmul.map((tile) => subgroupMatrixVariant(t.D, t.S, deviceTile(tile, t.S, t.D, t.emulate), t.emulate)) : [];
}

/** The tensor-core conv forward's (or input gradient's) tile spec under autocast, or null (no subgroup matrices, or its check failed). */
export function convTensorCoreSpec(mode: 'fwd' | 'bwdInput' | 'bwdWeight' = 'fwd'): SubgroupMatrixTileSpec | null {
  const t = tensorCores(({ fwd: 'conv', bwdInput: 'convGrad', bwdWeight: 'convWeightGrad' } as const)[mode]);
  return t && { S: t.S, D: t.D, ...deviceTile(offeredTiles().conv, t.S, t.D, t.emulate), ...(t.emulate ? { emulate: true } : {}) };
}

/** Why tensor cores are (partly) off ('' when on, or when the device has none to offer). */
export function subgroupMatrixStatus(): string {
  if (!adapterReport?.subgroupMatrix) return '';
  return (['matmul', 'conv', 'convGrad', 'convWeightGrad'] as const).filter((k) => checked[k] !== 'ok').map((k) => checked[k] || `${k} not checked`).join('; ');
}

/** Deterministic operands in [-2, 2) from a fixed LCG. */
function lcg(n: number, seed: number): Float32Array {
  let s = seed;
  return Float32Array.from({ length: n }, () => ((s = (Math.imul(s, 1103515245) + 12345) >>> 0) / 2 ** 32) * 4 - 2);
}

/** The matmul check's problem: tails in every dimension for D = 8 and 16, several workgroups and every subgroup of a 64 x 64 tile busy. */
export const CHECK_SHAPE = { M: 77, K: 50, N: 150 };

export function checkOperands(): { a: Float32Array; b: Float32Array } {
  const { M, K, N } = CHECK_SHAPE;
  return { a: lcg(M * K, 12345), b: lcg(K * N, 777) };
}

/**
 * Why `got` is not the reference (null when it is): each element within 1e-4 of its scale (the sum
 * of |terms|: f16 products are exact in f32; tensor cores may round the f32 sums differently; a
 * wrong layout or a skipped tail is off by O(1)).
 */
function compare(got: ArrayLike<number>, want: ArrayLike<number>, scale: ArrayLike<number>, what: string): string | null {
  if (got.length !== want.length) return `${got.length} results for ${want.length} (${what})`;
  for (let i = 0; i < want.length; i++) {
    if (!(Math.abs(got[i]! - want[i]!) <= 1e-4 * scale[i]! + 1e-6)) return `element ${i} = ${got[i]}, expected ${want[i]} (${what})`;
  }
  return null;
}

/** Why `c` is not autocast's product of the matmul check operands (null when it is). */
export function checkResult(c: ArrayLike<number>): string | null {
  const { M, K, N } = CHECK_SHAPE;
  const { a, b } = checkOperands();
  const ra = roundArrayToF16(a), rb = roundArrayToF16(b);
  const ref = matmulReference({ shape: [M, K], data: ra }, { shape: [K, N], data: rb }).data;
  const abs = matmulReference({ shape: [M, K], data: ra.map(Math.abs) }, { shape: [K, N], data: rb.map(Math.abs) }).data;
  return compare(c, ref, abs, `f16 operands, ${M}x${K} @ ${K}x${N}`);
}

/**
 * The conv check's problem: odd sizes, stride 2, padding, every epilogue term; more than 32
 * channels each way and 64 pixels per phase, so every subgroup of CONV_TILE has work.
 */
export const CONV_CHECK = {
  x: [2, 37, 13, 15] as const,
  w: [41, 37, 3, 3] as const,
  p: { stride: [2, 2], padding: [1, 1], dilation: [1, 1], groups: 1 } as Conv2dRefParams,
};
/** CONV_CHECK's geometry. */
const CHECK_GEOM = refGeom(CONV_CHECK.x, CONV_CHECK.w, CONV_CHECK.p);

export function convCheckOperands(): { x: Float32Array; w: Float32Array; bias: Float32Array; scale: Float32Array; residual: Float32Array } {
  const g = CHECK_GEOM;
  const count = (s: readonly number[]) => s.reduce((p, q) => p * q, 1);
  return { x: lcg(count(CONV_CHECK.x), 3), w: lcg(count(CONV_CHECK.w), 4), bias: lcg(g.Cout, 5), scale: lcg(g.Cout, 6), residual: lcg(g.N * g.Cout * g.OH * g.OW, 7) };
}

/** Why `y` is not autocast's conv (with scale, bias, residual and relu) of the check operands. */
export function convCheckResult(y: ArrayLike<number>): string | null {
  const o = convCheckOperands();
  const x = { shape: [...CONV_CHECK.x], data: roundArrayToF16(o.x) }, w = { shape: [...CONV_CHECK.w], data: roundArrayToF16(o.w) };
  const t = (d: Float32Array, shape: number[]) => ({ shape, data: Float64Array.from(d) });
  const g = CHECK_GEOM;
  const ref = conv2dEpilogueReference(x, w, t(o.scale, [g.Cout]), t(o.bias, [g.Cout]), t(o.residual, [g.N, g.Cout, g.OH, g.OW]), true, CONV_CHECK.p).data;
  // The scale of each output: its terms' magnitudes times |scale|, plus the bias and residual's.
  const absConv = conv2dEpilogueReference({ ...x, data: x.data.map(Math.abs) }, { ...w, data: w.data.map(Math.abs) }, null, null, null, false, CONV_CHECK.p).data;
  const OHW = g.OH * g.OW;
  const scale = absConv.map((v, i) => v * Math.abs(o.scale[Math.floor(i / OHW) % g.Cout]!) + 1);
  return compare(y, ref, scale, `f16 operands, conv x[${CONV_CHECK.x}] w[${CONV_CHECK.w}] stride 2 pad 1, scale, bias, residual, relu`);
}

/** The input-gradient check: dy of CONV_CHECK's output shape, the same w, bias and relu over dx's channels. */
export function convGradCheckOperands(): { dy: Float32Array; bias: Float32Array } {
  const g = CHECK_GEOM;
  return { dy: lcg(g.N * g.Cout * g.OH * g.OW, 8), bias: lcg(g.Cin, 9) };
}

/** Why `dx` is not autocast's input gradient (plus bias, then relu) of the check operands. */
export function convGradCheckResult(dx: ArrayLike<number>): string | null {
  const g = CHECK_GEOM;
  const { dy, bias } = convGradCheckOperands();
  const w = convCheckOperands().w;
  const dyShape = [g.N, g.Cout, g.OH, g.OW];
  const grad = (d: Float64Array, ww: Float64Array) => conv2dInputGradReference({ shape: dyShape, data: d }, { shape: [...CONV_CHECK.w], data: ww }, CONV_CHECK.x, CONV_CHECK.p).data;
  const HW = g.H * g.W;
  const ref = grad(roundArrayToF16(dy), roundArrayToF16(w)).map((v, i) => Math.max(v + bias[Math.floor(i / HW) % g.Cin]!, 0));
  const scale = grad(roundArrayToF16(dy).map(Math.abs), roundArrayToF16(w).map(Math.abs)).map((v) => v + 1);
  return compare(dx, ref, scale, `f16 operands, conv input gradient dy[${dyShape}] w[${CONV_CHECK.w}] stride 2 pad 1, bias, relu`);
}

/** Why `partial` (split-K partial sums, [splits, Cout, Cin*KH*KW]) does not sum to autocast's weight gradient of the check operands. */
export function convWeightGradCheckResult(partial: ArrayLike<number>): string | null {
  const g = CHECK_GEOM;
  const { dy } = convGradCheckOperands();
  const x = convCheckOperands().x;
  const size = g.Cout * g.Cin * g.KH * g.KW;
  if (partial.length % size !== 0) return `${partial.length} partial sums, not a multiple of ${size}`;
  const dw = new Float64Array(size);
  for (let i = 0; i < partial.length; i++) dw[i % size]! += partial[i]!;
  const dyShape = [g.N, g.Cout, g.OH, g.OW];
  const grad = (d: Float64Array, xx: Float64Array) => conv2dWeightGradReference({ shape: dyShape, data: d }, { shape: [...CONV_CHECK.x], data: xx }, CONV_CHECK.w, CONV_CHECK.p).data;
  const ref = grad(roundArrayToF16(dy), roundArrayToF16(x));
  const scale = grad(roundArrayToF16(dy).map(Math.abs), roundArrayToF16(x).map(Math.abs));
  return compare(dw, ref, scale, `f16 operands, conv weight gradient dy[${dyShape}] x[${CONV_CHECK.x}] stride 2 pad 1, split K`);
}

/** Flags of the conv check: every epilogue term. */
export const CONV_CHECK_FLAGS = SPATIAL_FLAGS.bias | SPATIAL_FLAGS.relu | SPATIAL_FLAGS.scale | SPATIAL_FLAGS.residual;

/** A kernel run the checks make: its WGSL, uniforms, storage inputs (bindings 1..), output binding and size, grid. */
export interface CheckRun {
  kernel: { wgsl: string; entry: string };
  /** Storage bindings 1.. in order: input data, or the output's element count. */
  bindings: (Float32Array | number)[];
  /** The dispatches, in order, each with its uniforms (the input gradient: one per stride phase). */
  dispatches: { uniforms: Uint32Array; grid: [number, number, number] }[];
}

/**
 * Runs the device's matmul and conv kernels once each on their check problems with plain WebGPU
 * calls (their own buffers and error scopes, nothing of the engine's) and records the verdicts:
 * first the tiles of several subgroups; where any fails, the single-subgroup tiles, which then run
 * if they fail less. Returns what failed ('' when nothing did). `runner`: tests substitute their own.
 */
export async function checkSubgroupMatrix(device: GPUDevice, wait: <T>(p: Promise<T>) => Promise<T>, runner: typeof runCheck = runCheck): Promise<string> {
  const c = adapterReport?.subgroupMatrix;
  if (!c) return '';
  const verdicts = async (tiles: { matmul: Tile; conv: Tile }): Promise<Record<Checked, string>> => {
    const runs = checkRuns(c.subgroupSize, c.M, false, tiles);
    const verdict = async (r: CheckRun, judge: (out: Float32Array) => string | null): Promise<string> => {
      const why = await runner(device, r, wait).then(judge, (e: unknown) => (e instanceof Error ? e.message : String(e)));
      return why === null ? 'ok' : `${r.kernel.entry} failed its check: ${why}`;
    };
    return {
      matmul: await verdict(runs.matmul, checkResult),
      conv: await verdict(runs.conv, convCheckResult),
      convGrad: await verdict(runs.convGrad, convGradCheckResult),
      convWeightGrad: await verdict(runs.convWeightGrad, convWeightGradCheckResult),
    };
  };
  severalSubgroups = true;
  const several = await verdicts({ matmul: TILES[0]!, conv: CONV_TILE });
  Object.assign(checked, several);
  const failed = Object.values(several).filter((v) => v !== 'ok');
  if (failed.length === 0) return '';
  // Tiles of one subgroup need no per-subgroup offsets: where they pass, they are what runs.
  const single = await verdicts({ matmul: SINGLE_TILE, conv: SINGLE_TILE });
  if (Object.values(single).filter((v) => v !== 'ok').length < failed.length) {
    severalSubgroups = false;
    Object.assign(checked, single);
    const off = subgroupMatrixStatus();
    return `tiles of several subgroups failed (${failed.join('; ')}); one subgroup per workgroup instead${off ? `; ${off}` : ''}`;
  }
  return subgroupMatrixStatus();
}

/** The checks' kernel runs for S-lane subgroups and D x D matrices (emulate: the forms any adapter runs; tests). */
export function checkRuns(S: number, D: number, emulate: boolean, tiles: { matmul: Tile; conv: Tile } = { matmul: TILES[0]!, conv: CONV_TILE }): { matmul: CheckRun; conv: CheckRun; convGrad: CheckRun; convWeightGrad: CheckRun } {
  const { M, K, N } = CHECK_SHAPE;
  const { a, b } = checkOperands();
  const mspec: SubgroupMatrixTileSpec = { S, D, ...deviceTile(tiles.matmul, S, D, emulate), emulate };
  const mt = tileShape(mspec);
  const matmul: CheckRun = {
    kernel: subgroupMatrixKernel(mspec),
    bindings: [a, b, M * N],
    dispatches: [{ uniforms: MATMUL_UNIFORMS.pack({ M, N, K, batch: 1, aOff: 0, aBatch: 0, aM: K, aK: 1, bOff: 0, bBatch: 0, bK: N, bN: 1, cBatch: M * N }), grid: [Math.ceil(N / mt.TN), Math.ceil(M / mt.TM), 1] }],
  };
  const spec: SubgroupMatrixTileSpec = { S, D, ...deviceTile(tiles.conv, S, D, emulate), emulate };
  const g = CHECK_GEOM;
  const o = convCheckOperands();
  const conv: CheckRun = {
    kernel: convSubgroupMatrixKernel(spec),
    bindings: [o.x, o.w, o.bias, g.N * g.Cout * g.OH * g.OW, o.scale, o.residual],
    dispatches: [{ uniforms: convSgmatUniforms(g, CONV_CHECK_FLAGS), grid: convSgmatGrid(g, spec) }],
  };
  const d = convGradCheckOperands();
  const convGrad: CheckRun = {
    kernel: convInputGradSubgroupMatrixKernel(spec),
    bindings: [d.dy, o.w, d.bias, g.N * g.Cin * g.H * g.W],
    // Stride 2: four phases, each with its own taps.
    dispatches: inputGradPhases(g).map((ph) => ({ uniforms: convSgmatUniforms(g, SPATIAL_FLAGS.bias | SPATIAL_FLAGS.relu, 0, ph), grid: convSgmatGrid(g, spec, ph) })),
  };
  // The weight gradient in splits of 3D output pixels (the check has 2 x 7 x 8 = 112: the last split
  // short; a split is two K slices at kSteps 2, the second short).
  const perSplit = 3 * D, splits = Math.ceil((g.N * g.OH * g.OW) / perSplit);
  const ct = tileShape(spec);
  const convWeightGrad: CheckRun = {
    kernel: convWeightGradSubgroupMatrixKernel(spec),
    bindings: [d.dy, o.x, splits * g.Cout * g.Cin * g.KH * g.KW],
    dispatches: [{ uniforms: convSgmatUniforms(g, 0, perSplit), grid: [Math.ceil((g.Cin * g.KH * g.KW) / ct.TN), Math.ceil(g.Cout / ct.TM), splits] }],
  };
  return { matmul, conv, convGrad, convWeightGrad };
}

/** One dispatch of a check's kernel on its own buffers; its output. Throws what WGSL or WebGPU reported. */
export async function runCheck(device: GPUDevice, run: CheckRun, wait: <T>(p: Promise<T>) => Promise<T>): Promise<Float32Array> {
  const { kernel } = run;
  device.pushErrorScope('validation');
  const made: GPUBuffer[] = [];
  const STORAGE = 0x80, COPY_SRC = 0x4, COPY_DST = 0x8, UNIFORM = 0x40, MAP_READ = 0x1;
  const buffer = (bytes: number, usage: number, data?: ArrayBufferView): GPUBuffer => {
    const buf = device.createBuffer({ size: Math.max(16, Math.ceil(bytes / 16) * 16), usage });
    made.push(buf);
    if (data) device.queue.writeBuffer(buf, 0, data.buffer, data.byteOffset, data.byteLength);
    return buf;
  };
  let popped = false;
  try {
    const module = device.createShaderModule({ code: kernel.wgsl, label: kernel.entry });
    const errors = (await wait(module.getCompilationInfo())).messages.filter((m) => m.type === 'error');
    if (errors.length > 0) throw new Error(`WGSL: ${errors.map((m) => `${m.lineNum}:${m.linePos} ${m.message}`).join('; ')}`);
    const pipeline = await wait(device.createComputePipelineAsync({ layout: 'auto', compute: { module, entryPoint: kernel.entry }, label: kernel.entry }));
    const outIndex = run.bindings.findIndex((x) => typeof x === 'number');
    const outBytes = (run.bindings[outIndex] as number) * 4;
    const storage = run.bindings.map((x) => (typeof x === 'number' ? buffer(x * 4, STORAGE | COPY_SRC) : buffer(x.byteLength, STORAGE | COPY_DST, x)));
    const staging = buffer(outBytes, MAP_READ | COPY_DST);
    const enc = device.createCommandEncoder();
    const pass = enc.beginComputePass();
    pass.setPipeline(pipeline);
    for (const d of run.dispatches) {
      const buffers = [buffer(d.uniforms.byteLength, UNIFORM | COPY_DST, d.uniforms), ...storage];
      pass.setBindGroup(0, device.createBindGroup({ layout: pipeline.getBindGroupLayout(0), entries: buffers.map((buf, i) => ({ binding: i, resource: { buffer: buf } })) }));
      pass.dispatchWorkgroups(...d.grid);
    }
    pass.end();
    enc.copyBufferToBuffer(storage[outIndex]!, 0, staging, 0, outBytes);
    device.queue.submit([enc.finish()]);
    await wait(staging.mapAsync(MAP_READ));
    const out = new Float32Array(staging.getMappedRange().slice(0, outBytes));
    staging.unmap();
    popped = true;
    const err = await device.popErrorScope();
    if (err) throw new Error(`WebGPU: ${err.message}`);
    return out;
  } finally {
    if (!popped) await device.popErrorScope().catch(() => null);
    for (const buf of made) buf.destroy();
  }
}

/** Tests: the verdicts as if the checks had passed ('ok') or failed (a reason), or unchecked (''). */
export function setSubgroupMatrixChecked(state: string, conv = state): void {
  severalSubgroups = true;
  checked.matmul = state;
  checked.conv = conv;
  checked.convGrad = conv;
  checked.convWeightGrad = conv;
}
