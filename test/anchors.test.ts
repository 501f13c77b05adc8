// Anchors: known answers from the definitions of torchvision's and Detectron2's generators.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { cellAnchors, gridAnchors, anchorsPerLocation } from '../model/anchors.js';

test('torchvision cell anchors: sqrt ratios in float32, halved, rounded', () => {
  // ratio 0.5: w = 32/sqrt(0.5) = 45.25 -> 22.63 -> 23, h = 32*sqrt(0.5) = 22.63 -> 11.31 -> 11.
  assert.equal(Array.from(cellAnchors([32], [0.5, 1, 2], 'torchvision')), [-23, -11, 23, 11, -16, -16, 16, 16, -11, -23, 11, 23]);
  // Ratio-major order across two sizes.
  assert.equal(Array.from(cellAnchors([10, 20], [1], 'torchvision')), [-5, -5, 5, 5, -10, -10, 10, 10]);
});

test('torchvision grid: a 3x3 map of a 15x15 image has stride 5 (torchvision test_anchor_generator)', () => {
  const a = gridAnchors({ sizes: [[10]], aspectRatios: [[1]], style: 'torchvision' }, [{ height: 3, width: 3 }], 15, 15);
  const want = [
    [-5, -5, 5, 5], [0, -5, 10, 5], [5, -5, 15, 5],
    [-5, 0, 5, 10], [0, 0, 10, 10], [5, 0, 15, 10],
    [-5, 5, 5, 15], [0, 5, 10, 15], [5, 5, 15, 15],
  ].flat();
  assert.equal(Array.from(a), want);
});

test('detectron2 cell anchors are not rounded; size-major; offset shifts the grid', () => {
  const c = cellAnchors([32], [0.5], 'detectron2');
  const w = Math.sqrt((32 * 32) / 0.5), h = 0.5 * w;
  assert.equal(Array.from(c), [-w / 2, -h / 2, w / 2, h / 2].map(Math.fround));
  const g = gridAnchors({ sizes: [[8]], aspectRatios: [[1]], style: 'detectron2', offset: 0.5 }, [{ height: 1, width: 2 }], 16, 32);
  assert.equal(Array.from(g), [4, 4, 12, 12, 20, 4, 28, 12]);
});

test('levels are concatenated in order; anchor counts per location', () => {
  const cfg = { sizes: [[32], [64]], aspectRatios: [[0.5, 1, 2]], style: 'torchvision' as const };
  const a = gridAnchors(cfg, [{ height: 4, width: 5 }, { height: 2, width: 3 }], 32, 40);
  assert.is(a.length, (4 * 5 * 3 + 2 * 3 * 3) * 4);
  assert.equal(anchorsPerLocation(cfg), [3, 3]);
  assert.throws(() => gridAnchors(cfg, [{ height: 1, width: 1 }], 8, 8), /1 feature levels but 2 anchor size groups/);
});

test.run();
