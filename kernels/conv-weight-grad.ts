// The convolution weight gradient as a split-K implicit GEMM (kernels/conv-gemm.ts's header: the
// shared design, the CPU-adapter forms and the autocast form): dw = sum over images and pixels of
// dy x patches; an invocation owns tm output channels x tc input channels x one kernel row, all kw,
// and walks a range of (image, row) pairs R columns at a time. Its quick variant is in
// kernels/conv-gemm-quick.ts; the float64 reference is kernels/conv.ts's conv2dWeightGradReference.
import { uniformBlock } from './uniforms.js';
import { F16_ROUND_WGSL, f16Load } from './f16.js';
import { SPATIAL_WG } from './conv-gemm.js';

/**
 * What a weight-gradient kernel bakes in: the column geometry its sliding window unrolls (KW; the
 * column stride and dilation where KW > 1) and the register block. Rows (stride, padding,
 * dilation along H) and the column padding travel in the uniforms; so does the column stride of a
 * 1x1 kernel (sw 0 here), whose columns share no loads.
 */
export interface WeightGradSpec {
  KW: number;
  sw: number;
  dw: number;
  /** Output channels, input channels per invocation; columns per step. */
  tm: number;
  tc: number;
  R: number;
  /** Autocast: round dy and x values to f16 as they are loaded. */
  roundF16?: boolean;
  /**
   * dy shared across a subgroup of exactly 8 lanes (needs the 'subgroups' feature and tm*R % 8 = 0):
   * the 8 lanes own one output-channel block and 8 (kernel row, input-channel block) pairs, so they
   * need the same dy values; each lane loads tm*R/8 of them and the rest arrive by subgroupBroadcast.
   * On lavapipe every lane-varying load is a per-lane loop, so this halves the loads of a 3x3 layer.
   */
  sgDy?: boolean;
}

/** cinG, coutG: channels per group; perSplit: (image, row) pairs per split. */
export const WEIGHT_GRAD_UNIFORMS = uniformBlock('conv_weight_grad', {
  N: 'u32',
  Cin: 'u32',
  H: 'u32',
  W: 'u32',
  Cout: 'u32',
  OH: 'u32',
  OW: 'u32',
  cinG: 'u32',
  coutG: 'u32',
  KH: 'u32',
  splits: 'u32',
  perSplit: 'u32',
  // Invocations per split (one per (output block, input block, kernel row); with sgDy, whole
  // subgroups of 8 per output block): the splits lie side by side along x, so a layer with few
  // blocks still fills whole workgroups.
  base: 'u32',
  coBlocks: 'u32',
  ciBlocks: 'u32',
  sh: 'u32',
  sw: 'u32',
  ph: 'i32',
  pw: 'i32',
  dh: 'u32',
  // The baked block and column geometry again (WeightGradSpec, the column dilation as dwCol), read
  // only by the quick variant (kernels/conv-gemm-quick.ts).
  tm: 'u32',
  tc: 'u32',
  KW: 'u32',
  dwCol: 'u32',
});

/**
 * Partial output [splits, Cout, Cin_g, KH, KW].
 * Workgroups: (ceil(base * splits / 64), 1, groups), base = coBlocks*ciBlocks*KH, or with sgDy
 * coBlocks * ceil(ciBlocks*KH / 8) * 8 (a multiple of 8, so no subgroup straddles two splits).
 */
export function weightGradKernel(s: WeightGradSpec): { wgsl: string; entry: string } {
  const { tm, tc, R, KW } = s;
  // Source columns read per step, relative to seg0: t*sw + k*dw (a 1x1 kernel's stride is a uniform).
  const pos = (t: number, k: number): number => (KW === 1 ? t : t * s.sw + k * s.dw);
  const segLen = KW === 1 ? R : (R - 1) * s.sw + (KW - 1) * s.dw + 1;
  const L: string[] = [];
  const e = (x: string): void => void L.push(x);
  const r16 = !!s.roundF16;
  const sg = !!s.sgDy;
  if (sg && (tm * R) % 8 !== 0) throw new Error(`weightGradKernel: a shared dy needs tm*R % 8 = 0 (tm ${tm}, R ${R})`);
  if (sg) e('enable subgroups;');
  e(WEIGHT_GRAD_UNIFORMS.wgsl);
  if (r16) e(F16_ROUND_WGSL);
  e('@group(0) @binding(1) var<storage, read> dy: array<f32>;');
  e('@group(0) @binding(2) var<storage, read> x: array<f32>;');
  e('@group(0) @binding(3) var<storage, read_write> dw: array<f32>;');
  e(`@compute @workgroup_size(${SPATIAL_WG})`);
  e(`fn conv_bwdWeight(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>${sg ? ', @builtin(subgroup_invocation_id) sl: u32' : ''}) {`);
  e(`  let Nb = u.N; let Cin = u.Cin; let H = u.H; let W = u.W; let Cout = u.Cout;`);
  e(`  let OH = u.OH; let OW = u.OW; let cinG = u.cinG; let coutG = u.coutG; let KH = u.KH;`);
  e(`  let splits = u.splits; let perSplit = u.perSplit; let coBlocks = u.coBlocks; let ciBlocks = u.ciBlocks;`);
  e(`  let gid = wid.x * ${SPATIAL_WG}u + lid.x; let g = wid.z;`);
  if (sg) {
    // Subgroup q: output-channel block q % coBlocks; its lanes take 8 consecutive (kh, ci block)
    // pairs. No lane returns early (subgroupBroadcast needs uniform control flow, and the compiler
    // cannot prove that whole subgroups would leave together): a lane past the last pair, or of a
    // subgroup past the last one, computes a clamped one and stores nothing.
    // A lane past the last split computes the last split's block again and stores nothing.
    e(`  let sq = gid / u.base; let split = min(sq, splits - 1u); let id = gid - split * u.base;`);
    e(`  let pairs = KH * ciBlocks; let q = id / 8u;`);
    e(`  let pair = (q / coBlocks) * 8u + sl; let live = sq < splits && pair < pairs; let pc = min(pair, pairs - 1u);`);
    e(`  let kh = pc % KH; let cib = pc / KH; let cob = q % coBlocks;`);
  } else {
    e(`  let split = gid / u.base; let id = gid - split * u.base;`);
    e(`  if (split >= splits || id >= coBlocks * ciBlocks * KH) { return; }`);
    e(`  let live = true;`);
    e(`  let kh = id % KH; let rest = id / KH; let cib = rest % ciBlocks; let cob = rest / ciBlocks;`);
  }
  e(`  let co0 = cob * ${tm}u; let ci0 = cib * ${tc}u;`);
  e(`  let HW = H * W; let OHW = OH * OW;`);
  for (let i = 0; i < tm; i++) e(`  let dyc${i} = (g * coutG + min(co0 + ${i}u, coutG - 1u)) * OHW;`);
  for (let c = 0; c < tc; c++) e(`  let xc${c} = (g * cinG + min(ci0 + ${c}u, cinG - 1u)) * HW;`);
  for (let i = 0; i < tm; i++) for (let c = 0; c < tc; c++) e(`  ${Array.from({ length: KW }, (_, k) => `var a${i}_${c}_${k} = 0.0;`).join(' ')}`);
  e(`  let r0 = split * perSplit; let r1 = min(r0 + perSplit, Nb * OH);`);
  if (sg) {
    // Shared dy: the loop's trip count is the same for every lane (the split varies within a
    // workgroup), and a row past the split's end or outside the input (kh varies across the
    // subgroup) reads zeros instead of skipping.
    e(`  for (var j = 0u; j < perSplit; j++) {`);
    e(`    let row = min(r0 + j, Nb * OH - 1u);`);
    e(`    let nb = row / OH; let oh = row - nb * OH;`);
    e(`    let ih = i32(oh * u.sh) - u.ph + i32(kh * u.dh);`);
    e(`    let rin = r0 + j < r1; let rok = rin && u32(ih) < H;`);
  } else {
    e(`  for (var row = r0; row < r1; row++) {`);
    e(`    let nb = row / OH; let oh = row - nb * OH;`);
    e(`    let ih = i32(oh * u.sh) - u.ph + i32(kh * u.dh);`);
    e(`    if (u32(ih) >= H) { continue; }`);
  }
  e(`    let dyRow = nb * Cout * OHW + oh * OW; let xRow = nb * Cin * HW + ${sg ? 'select(0u, u32(ih), rok)' : 'u32(ih)'} * W;`);
  e(`    for (var ow0 = 0u; ow0 < OW; ow0 += ${R}u) {`);
  for (let t = 0; t < R; t++) e(`      let tok${t} = ow0 + ${t}u < OW; let tcol${t} = min(ow0 + ${t}u, OW - 1u);`);
  if (sg) {
    // dy value v = i*R + t (channel co0 + i, column ow0 + t) is loaded by lane v % 8 as its share v / 8.
    for (let m = 0; m < (tm * R) / 8; m++) {
      e(`      let dvi${m} = sl + ${m * 8}u; let vc${m} = ow0 + dvi${m} % ${R}u;`);
      e(`      let dv${m} = select(0.0, ${f16Load(`dy[dyRow + (g * coutG + min(co0 + dvi${m} / ${R}u, coutG - 1u)) * OHW + min(vc${m}, OW - 1u)]`, r16)}, rin && vc${m} < OW);`);
    }
  } else {
    for (let i = 0; i < tm; i++) {
      e(`      ${Array.from({ length: R }, (_, t) => `let d${i}_${t} = select(0.0, ${f16Load(`dy[dyRow + dyc${i} + tcol${t}]`, r16)}, tok${t});`).join(' ')}`);
    }
  }
  e(`      let seg0 = i32(ow0 * u.sw) - u.pw;`);
  for (let q = 0; q < segLen; q++) {
    const col = KW === 1 ? `seg0 + ${q} * i32(u.sw)` : `seg0 + ${q}`;
    e(`      let sok${q} = ${sg ? 'rok && ' : ''}u32(${col}) < W; let scol${q} = select(0u, u32(${col}), sok${q});`);
  }
  if (sg) {
    // Accumulator-major (output channel outer): a channel's R dy values arrive by broadcast just
    // before its tc*KW accumulators take all their terms, so LLVM keeps ~16 values live instead of
    // all tm*R dy values, and loads and stores each accumulator once per step (x86 spill loads per
    // step 206 -> 101; 5-15% less time per layer on lavapipe).
    for (let c = 0; c < tc; c++) for (let q = 0; q < segLen; q++) e(`      let v${c}_${q} = select(0.0, ${f16Load(`x[xRow + xc${c} + scol${q}]`, r16)}, sok${q});`);
    for (let i = 0; i < tm; i++) {
      e(`      {`);
      e(`        ${Array.from({ length: R }, (_, t) => `let d${t} = subgroupBroadcast(dv${Math.floor((i * R + t) / 8)}, ${(i * R + t) % 8}u);`).join(' ')}`);
      for (let c = 0; c < tc; c++) for (let k = 0; k < KW; k++) {
        e(`        a${i}_${c}_${k} += ${Array.from({ length: R }, (_, t) => `d${t} * v${c}_${pos(t, k)}`).join(' + ')};`);
      }
      e(`      }`);
    }
  } else {
    for (let c = 0; c < tc; c++) {
      e(`      {`);
      for (let q = 0; q < segLen; q++) e(`        let v${q} = select(0.0, ${f16Load(`x[xRow + xc${c} + scol${q}]`, r16)}, sok${q});`);
      for (let i = 0; i < tm; i++) {
        for (let k = 0; k < KW; k++) {
          const terms = Array.from({ length: R }, (_, t) => `d${i}_${t} * v${pos(t, k)}`);
          e(`        a${i}_${c}_${k} += ${terms.join(' + ')};`);
        }
      }
      e(`      }`);
    }
  }
  e(`    }`);
  e(`  }`);
  e(`  let KHW = KH * ${KW}u;`);
  for (let i = 0; i < tm; i++) {
    for (let c = 0; c < tc; c++) {
      e(`  if (live && co0 + ${i}u < coutG && ci0 + ${c}u < cinG) {`);
      e(`    let o = ((split * Cout + g * coutG + co0 + ${i}u) * cinG + ci0 + ${c}u) * KHW + kh * ${KW}u;`);
      e(`    ${Array.from({ length: KW }, (_, k) => `dw[o + ${k}u] = a${i}_${c}_${k};`).join(' ')}`);
      e(`  }`);
    }
  }
  e(`}`);
  return { wgsl: L.join('\n'), entry: 'conv_bwdWeight' };
}
