// Quick-to-compile variants of the convolution kernels of kernels/conv-gemm.ts, for the first steps
// of a process on a CPU adapter (engine/tiering.ts). llvmpipe turns a kernel into machine code at
// its first dispatch, and the fast kernels unroll a register block of up to 16 x 8 accumulators
// and a sliding window of up to 7 taps onto named registers: 2-5 CPU seconds of LLVM each. These
// variants run the same grid with the same uniforms and bindings (switching from one to the other is
// free), but loop over the block, the taps and the columns with trip counts read from the uniforms
// (the shape fields of SPATIAL_UNIFORMS and WEIGHT_GRAD_UNIFORMS), so little unrolls and one
// pipeline serves every shape of a channel block: a fraction of a second of compile, a few times
// slower to run.
//
// Bit for bit the same results as the fast kernels: each output is accumulated by the same
// operations in the same order (spatial: fma over (channel, kernel row, column tap), out-of-range
// taps included as fma(0, w, acc); weight gradient: the same R-column chunk sums added in the same
// order), so which tier ran a step never changes the numbers (test/conv-tier.test.ts checks it).
import { SPATIAL_UNIFORMS, SPATIAL_SLOT_WGSL, SPATIAL_WG, spatialBindings, spatialEpilogue, spatialTouch } from './conv-gemm.js';
import { WEIGHT_GRAD_UNIFORMS } from './conv-weight-grad.js';
import { F16_ROUND_WGSL, f16Load } from './f16.js';

/** Output columns of a quick spatial kernel's register block (the fast block's tm must be a multiple). */
export const QUICK_COLS = 4;

/**
 * The quick variant of spatialKernel for `tn` output channels per invocation (every other part of
 * the SpatialShape is read from the uniforms; `roundF16` as there). Same grid and bindings. It walks
 * the fast block's tm columns QUICK_COLS at a time with QUICK_COLS x tn accumulators, so a loaded
 * weight serves 4 columns and a loaded input value tn channels (~0.4 loads per FMA, against 2 for
 * one output at a time), in a loop body of 4 x tn FMAs. `epi`: the scale-and-residual epilogue
 * (SpatialShape.epi), with its bindings.
 */
export function spatialQuickKernel(tn: number, roundF16 = false, epi = false): { wgsl: string; entry: string } {
  const ld = (x: string): string => f16Load(x, roundF16);
  const ep = spatialEpilogue(epi);
  const js = Array.from({ length: tn }, (_, j) => j), is = Array.from({ length: QUICK_COLS }, (_, i) => i);
  const wgsl = `${SPATIAL_UNIFORMS.wgsl}
${roundF16 ? F16_ROUND_WGSL : ''}
${spatialBindings(epi)}
@compute @workgroup_size(${SPATIAL_WG})
fn conv_spatial_quick(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let srcH = u.srcH; let srcW = u.srcW; let kc = u.kc; let nc = u.nc; let flags = u.flags;
  ${SPATIAL_SLOT_WGSL}
  if (id >= u.N * u.rows * u.blocks || cb >= u.chBlocks) { ${spatialTouch(epi)} return; }
  let g = wid.z; let j0 = cb * ${tn}u;
  let blk = id % u.blocks; let rest = id / u.blocks; let a = rest % u.rows; let nb = rest / u.rows;
  let b0 = blk * u.tm;
  let seg0 = i32(b0 * u.srcMulW) + u.colSrc0;
  let srcBase = (nb * u.srcC + g * kc) * srcH * srcW;
  let wg = g * nc * kc * u.KHW;
${js.map((j) => `  let wb${j} = wg + min(j0 + ${j}u, nc - 1u) * u.wJ;`).join('\n')}
  let drow = u.drowOff + u.drowMul * a;
  for (var i0 = 0u; i0 < u.tm; i0 += ${QUICK_COLS}u) {
    if (b0 + i0 >= u.cols) { break; }
${is.map((i) => `    ${js.map((j) => `var c${i}_${j} = 0.0;`).join(' ')}`).join('\n')}
    for (var c = 0u; c < kc; c++) {
      let plane = srcBase + c * srcH * srcW; let wc = c * u.wC;
      for (var m = 0u; m < u.khN; m++) {
        let kh = u.kh0 + m * u.khStep;
        let r = i32(a * u.srcMulH) + u.rowSrc0 + i32(m) * u.rowSrcStep;
        let rok = u32(r) < srcH;
        let rowBase = plane + select(0u, u32(r), rok) * srcW;
        let wr = wc + kh * u.KW;
        for (var n = 0u; n < u.taps; n++) {
          let wo = wr + u32(u.kw0 + i32(n) * u.kwStep);
          ${js.map((j) => `let w${j} = ${ld(`wt[wb${j} + wo]`)};`).join(' ')}
${is.map((i) => `          let col${i} = seg0 + i32((i0 + ${i}u) * u.srcMulW + n * u.tapStep); let ok${i} = rok && u32(col${i}) < srcW;
          let x${i} = select(0.0, ${ld(`src[select(0u, rowBase + u32(col${i}), ok${i})]`)}, ok${i});
          ${js.map((j) => `c${i}_${j} = fma(x${i}, w${j}, c${i}_${j});`).join(' ')}`).join('\n')}
        }
      }
    }
${js.map((j) => `    if (j0 + ${j}u < nc) {
      ${ep.channel(`g * nc + j0 + ${j}u`)}
      let ob = ((nb * u.dstC + ch) * u.dstH + drow) * u.dstW + u.dcolOff;
${is.map((i) => `      if (b0 + i0 + ${i}u < u.cols) { ${ep.store(`c${i}_${j}`, `ob + (b0 + i0 + ${i}u) * u.dcolMul`)} }`).join('\n')}
    }`).join('\n')}
  }
}`;
  return { wgsl, entry: 'conv_spatial_quick' };
}

/**
 * The quick variant of weightGradKernel for R columns per step (the chunk whose sum is added at
 * once: it fixes the order of additions, so it is baked like the fast kernel's), every block and KW.
 */
export function weightGradQuickKernel(R: number, roundF16 = false): { wgsl: string; entry: string } {
  const ld = (x: string): string => f16Load(x, roundF16);
  const ts = Array.from({ length: R }, (_, t) => t);
  const wgsl = `${WEIGHT_GRAD_UNIFORMS.wgsl}
${roundF16 ? F16_ROUND_WGSL : ''}
@group(0) @binding(1) var<storage, read> dy: array<f32>;
@group(0) @binding(2) var<storage, read> x: array<f32>;
@group(0) @binding(3) var<storage, read_write> dw: array<f32>;
@compute @workgroup_size(${SPATIAL_WG})
fn conv_bwdWeight_quick(@builtin(workgroup_id) wid: vec3<u32>, @builtin(local_invocation_id) lid: vec3<u32>) {
  let H = u.H; let W = u.W; let OH = u.OH; let OW = u.OW; let KH = u.KH; let KW = u.KW;
  let cinG = u.cinG; let coutG = u.coutG; let splits = u.splits;
  let gid = wid.x * ${SPATIAL_WG}u + lid.x; let g = wid.z;
  let split = gid / u.base; let id = gid - split * u.base;
  if (split >= splits || id >= u.coBlocks * u.ciBlocks * KH) { return; }
  let kh = id % KH; let rest = id / KH; let cib = rest % u.ciBlocks; let cob = rest / u.ciBlocks;
  let co0 = cob * u.tm; let ci0 = cib * u.tc;
  let HW = H * W; let OHW = OH * OW;
  let r0 = split * u.perSplit; let r1 = min(r0 + u.perSplit, u.N * OH);
  for (var i = 0u; i < u.tm; i++) {
    if (co0 + i >= coutG) { break; }
    let dyc = (g * coutG + co0 + i) * OHW;
    for (var c = 0u; c < u.tc; c++) {
      if (ci0 + c >= cinG) { break; }
      let xc = (g * cinG + ci0 + c) * HW;
      let o = ((split * u.Cout + g * coutG + co0 + i) * cinG + ci0 + c) * KH * KW + kh * KW;
      for (var k = 0u; k < KW; k++) {
        var acc = 0.0;
        for (var row = r0; row < r1; row++) {
          let nb = row / OH; let oh = row - nb * OH;
          let ih = i32(oh * u.sh) - u.ph + i32(kh * u.dh);
          if (u32(ih) >= H) { continue; }
          let dyRow = nb * u.Cout * OHW + oh * OW; let xRow = nb * u.Cin * HW + u32(ih) * W;
          for (var ow0 = 0u; ow0 < OW; ow0 += ${R}u) {
            let seg0 = i32(ow0 * u.sw) - u.pw + i32(k * u.dwCol);
${ts.map((t) => `            let d${t} = select(0.0, ${ld(`dy[dyRow + dyc + min(ow0 + ${t}u, OW - 1u)]`)}, ow0 + ${t}u < OW);
            let col${t} = seg0 + ${t} * i32(u.sw); let sok${t} = u32(col${t}) < W;
            let v${t} = select(0.0, ${ld(`x[xRow + xc + select(0u, u32(col${t}), sok${t})]`)}, sok${t});`).join('\n')}
            acc += ${ts.map((t) => `d${t} * v${t}`).join(' + ')};
          }
        }
        dw[o + k] = acc;
      }
    }
  }
}`;
  return { wgsl, entry: 'conv_bwdWeight_quick' };
}
