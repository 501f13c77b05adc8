// The RoIAlign backward's row form (CPU adapters): one invocation per (box, bin row, channel block)
// instead of per bin, so that the bins of a row share their float atomic adds (see rowLevelBody).
// Bindings, uniforms, geometry and sampling taps are roi_align.ts's; the float64 reference is its
// roiAlignBackwardReference.
import { binLoops, levelPrelude, perLevel, range, roiAlignModule, roiChannels, type RoiAlignParams } from './roi_align.js';

/** Columns a bin row's accumulators hold (a box about ROW_COLS - 4 pixels wide at its level; wider rows go bin by bin). */
export const ROW_COLS = 32;

/** The taps of one axis ('y': rows of the bin row at ylo; 'x': columns of a bin at xlo), `visit` for each tap of nonzero weight w{axis}. */
function axisTaps(axis: 'x' | 'y', lo: string, visit: string): string {
  const [b, gg, n] = axis === 'y' ? ['g.bh', 'g.gh', 'H'] : ['g.bw', 'g.gw', 'W'];
  return `for (var s${axis} = 0; s${axis} < ${gg}; s${axis} += 4) {
          let t${axis} = taps(${lo}, ${b}, ${gg}, s${axis}, ${n});
          let n${axis} = 2 * min(${gg} - s${axis}, 4);
          for (var e${axis} = 0; e${axis} < n${axis}; e${axis}++) {
            let w${axis} = pick_w(t${axis}, e${axis});
            if (w${axis} == 0.0) { continue; }
            ${visit}
          }
        }`;
}

/**
 * The backward's row form (CPU adapters): one invocation per (box, bin row ph, channel block). The
 * weights are separable and every bin of a row has the same row taps, so the row's gradient at pixel
 * (r, q) is wy(r) * sum over the row's bins and column samples of wx(q) * go / count: the column sums
 * go into per-channel accumulators first, then one atomic add per (row tap, column, channel). A bin
 * row of a box n pixels wide touches about n + 1 columns where the bin-by-bin form adds about 3 per
 * bin (PW of them, 14 in the mask head), and on lavapipe the float atomic adds are most of the
 * backward's time (measured: ~75% of it, bench/RESULTS.md). Rows of boxes wider than about
 * ROW_COLS - 4 pixels fall back to bin by bin within the same invocation.
 */
function rowLevelBody(nLevels: number, l: number, cb: number, valid: (j: number) => string): string {
  const js = range(cb);
  const gv = js.map((j) => `let go${j} = select(0.0, gout[((k * C + ch${j}) * PH + ph) * PW + pw], ${valid(j)}) / g.count;`).join(' ');
  const none = js.map((j) => `go${j} == 0.0`).join(' && ');
  return `${levelPrelude(nLevels, l, cb)}
    // The row's columns, between its first sample's and its last's, widened by one pixel each side
    // (taps() computes each sample's position in its own float order)
    let xa = g.sw + 0.5 * g.bw / f32(g.gw);
    let xb = (g.sw + f32(PW - 1u) * g.bw) + (f32(g.gw - 1) + 0.5) * g.bw / f32(g.gw);
    // (aligned boxes may be reversed: x2 < x1 gives a negative bin width and falling samples)
    let qa = u32(clamp(floor(min(xa, xb)) - 1.0, 0.0, f32(W) - 1.0));
    let qb = u32(clamp(floor(max(xa, xb)) + 2.0, 0.0, f32(W) - 1.0));
    let ncol = qb - qa + 1u;
    if (ncol <= ${ROW_COLS}u) {
      // Zeroed explicitly: the quick variant declares it inside its channel loop, and a bare
      // declaration there was zeroed only once per invocation (measured on lavapipe).
      var acc = array<f32, ${cb * ROW_COLS}>();
      for (var pw = 0u; pw < PW; pw++) {
        ${gv}
        if (${none}) { continue; }
        let xlo = g.sw + f32(pw) * g.bw;
        ${axisTaps('x', 'xlo', `let q = min(u32(pick_i(tx, ex)) - qa, ${ROW_COLS - 1}u);
            ${js.map((j) => `acc[${j * ROW_COLS}u + q] += wx * go${j};`).join(' ')}`)}
      }
      let ylo = g.sh + f32(ph) * g.bh;
      ${axisTaps('y', 'ylo', `let row = u32(pick_i(ty, ey)) * W + qa;
          for (var q = 0u; q < ncol; q++) {
            ${js.map((j) => `let v${j} = acc[${j * ROW_COLS}u + q]; if (v${j} != 0.0) { add(b${j} + row + q, wy * v${j}); }`).join('\n            ')}
          }`)}
    } else {
      for (var pw = 0u; pw < PW; pw++) {
        ${gv}
        if (${none}) { continue; }
        ${binLoops(js.map((j) => `add(b${j} + p, w * go${j});`).join('\n            '))}
      }
    }`;
}

/**
 * The backward's row form (rowLevelBody): one invocation per (box, bin row, block of `cb` channels),
 * the channel block fastest; bindings and uniforms as roiAlignKernel's backward, whose n is then
 * roiAlignRowInvocations. quick: the channel block as a loop over a one-channel body (engine/tiering.ts).
 */
export function roiAlignRowsBackwardKernel(nLevels: number, cb = roiChannels(true), quick = false): { wgsl: string; entry: string } {
  const entry = `roi_align_backward_rows_l${nLevels}_c${cb}${quick ? '_quick' : ''}`;
  const body = quick
    ? `for (var jq = 0u; jq < ${cb}u; jq++) {
  if (c0 + jq >= C) { break; }
  let ch0 = c0 + jq;
  ${perLevel(nLevels, (l) => rowLevelBody(nLevels, l, 1, () => 'true'))}
  }`
    : `${range(cb).map((j) => `let ch${j} = min(c0 + ${j}u, C - 1u);`).join(' ')}
  ${perLevel(nLevels, (l) => rowLevelBody(nLevels, l, cb, (j) => `c0 + ${j}u < C`))}`;
  const wgsl = roiAlignModule(nLevels, true, entry, cb, `let ph = t % PH;
  let k = t / PH;
  ${body}`);
  return { wgsl, entry };
}

/** Invocations of roiAlignRowsBackwardKernel for K boxes, C channels, PH bin rows (the uniform n). */
export function roiAlignRowInvocations(K: number, C: number, p: RoiAlignParams, cb: number): number {
  return K * p.pooledH * Math.ceil(C / cb);
}
