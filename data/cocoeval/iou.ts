// IoUs between the detections and the ground truth of one (image, category) group, as
// pycocotools' computeIoU: maskUtils.iou on boxes, or on masks (maskApi rleIou: box IoU with the
// crowd rule on the masks' boxes first, the exact mask IoU only where that is > 0, -1 for masks of
// different sizes). Scratch buffers are reused across groups.
import { annToRLE } from '../polygon.js';
import { bboxIouFlat, rleArea, rleIouPair, rleStringToCountsInto, rleToBboxInto, type RLE } from '../rle.js';
import type { IouType } from '../coco-json.js';
import type { DtTable, GtTable } from './prepare.js';

export class GroupIou {
  private dtBox = new Float64Array(4 * 128);
  private gtBox = new Float64Array(4 * 128);
  private out = new Float64Array(128 * 128);
  private dA = new Float64Array(128);
  private gA = new Float64Array(128);
  private dR: RLE[] = [];
  private gR: RLE[] = [];
  /** Decoded detection counts live here as views (no backing store per mask). */
  private arena = new Uint32Array(1 << 20);
  private arenaUsed = 0;

  constructor(private readonly gt: GtTable, private readonly dt: DtTable, private readonly iouType: IouType) {}

  /**
   * IoU matrix, row-major [d * G + q], of detections dtSel[ds .. ds+D) and gts gtSel[gs .. gs+G)
   * (crowd[q] = int(iscrowd) of gt q). The returned array is reused by the next call.
   */
  compute(imgId: number, gtSel: Int32Array, gs: number, G: number, dtSel: Int32Array, ds: number, D: number,
    crowd: Uint8Array): Float64Array {
    if (this.dtBox.length < 4 * D) { this.dtBox = new Float64Array(8 * D); this.dA = new Float64Array(2 * D); }
    if (this.gtBox.length < 4 * G) { this.gtBox = new Float64Array(8 * G); this.gA = new Float64Array(2 * G); }
    if (this.out.length < D * G) this.out = new Float64Array(2 * D * G);
    const { gt, dt, dtBox, gtBox } = this;
    if (this.iouType === 'bbox') {
      for (let q = 0; q < G; q++) for (let c = 0; c < 4; c++) gtBox[4 * q + c] = gt.bbox[4 * gtSel[gs + q] + c];
      for (let q = 0; q < D; q++) for (let c = 0; c < 4; c++) dtBox[4 * q + c] = dt.bbox[4 * dtSel[ds + q] + c];
      return bboxIouFlat(dtBox, gtBox, D, G, crowd, this.out);
    }
    const size = gt.imgSize.get(imgId);
    const h = size ? size.h : 0, w = size ? size.w : 0;
    const { gR, dR, dA, gA } = this;
    gR.length = G; dR.length = D;
    for (let q = 0; q < G; q++) {
      const j = gtSel[gs + q], s = gt.segm[j];
      if (s === undefined) throw new Error(`ground-truth annotation id ${gt.id[j]} has no segmentation`);
      if (!size && Array.isArray(s)) throw new Error(`image ${imgId} of annotation id ${gt.id[j]} is not in images`);
      gR[q] = annToRLE(s, h, w);
      rleToBboxInto(gR[q], gtBox, 4 * q);
      gA[q] = -1;
    }
    this.arenaUsed = 0;
    for (let q = 0; q < D; q++) {
      const j = dtSel[ds + q];
      // decoded once here: most detections of a group with gt overlap one and need it anyway
      dR[q] = this.decode(dt.segm[j]!, h, w);
      if (Number.isNaN(dt.maskBox[4 * j])) rleToBboxInto(dR[q], dt.maskBox, 4 * j);
      for (let c = 0; c < 4; c++) dtBox[4 * q + c] = dt.maskBox[4 * j + c];
      dA[q] = -1;
    }
    const ious = bboxIouFlat(dtBox, gtBox, D, G, crowd, this.out);
    for (let d = 0; d < D; d++) {
      for (let q = 0; q < G; q++) {
        const o = d * G + q;
        if (!(ious[o] > 0)) continue;
        const Rd = dR[d], Rg = gR[q];
        if (Rd.h !== Rg.h || Rd.w !== Rg.w) { ious[o] = -1; continue; }
        if (dA[d] < 0) dA[d] = rleArea(Rd);
        if (gA[q] < 0) gA[q] = rleArea(Rg);
        ious[o] = rleIouPair(Rd, Rg, crowd[q] !== 0, dA[d], gA[q]);
      }
    }
    return ious;
  }

  private decode(s: NonNullable<DtTable['segm'][number]>, h: number, w: number): RLE {
    if (Array.isArray(s) || typeof s.counts !== 'string') return annToRLE(s, h, w);
    const n = s.counts.length;
    if (this.arenaUsed + n > this.arena.length) { this.arena = new Uint32Array(Math.max(1 << 20, 2 * n)); this.arenaUsed = 0; }
    const m = rleStringToCountsInto(s.counts, this.arena, this.arenaUsed);
    const R = { h: s.size[0], w: s.size[1], counts: this.arena.subarray(this.arenaUsed, this.arenaUsed + m) };
    this.arenaUsed += m;
    return R;
  }
}
