// data/draw.ts: pixels are painted exactly where the geometry says (box outlines inside the pixels
// a box covers, masks > 0.5 tinted by alpha blending), and text uses the 5x7 font: known glyph
// shapes (e.g. 'H' is two full-height columns joined by the middle row) checked pixel by pixel.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { RgbImage } from '../data/image.js';
import { blendPixel, drawDetections, drawText, fillMask, instanceColor, strokeRect, textSize } from '../data/draw.js';
import { GLYPH_HEIGHT, GLYPH_WIDTH, glyphPixel } from '../data/font5x7.js';

const blank = (w: number, h: number, v = 0): RgbImage => ({ width: w, height: h, data: new Uint8Array(w * h * 3).fill(v) });
const px = (img: RgbImage, x: number, y: number): number[] => Array.from(img.data.subarray((y * img.width + x) * 3, (y * img.width + x) * 3 + 3));
const isSet = (img: RgbImage, x: number, y: number): boolean => px(img, x, y).some((c) => c !== 0);

/** The set pixels of an image as strings "x,y". */
function setPixels(img: RgbImage): Set<string> {
  const s = new Set<string>();
  for (let y = 0; y < img.height; y++) for (let x = 0; x < img.width; x++) if (isSet(img, x, y)) s.add(`${x},${y}`);
  return s;
}

test('strokeRect: a 1-px outline on the pixels the box covers, nothing inside or outside', () => {
  const img = blank(12, 10);
  // Box [2.5, 1.2] .. [8.7, 6.0] covers columns 2..8 and rows 1..5.
  strokeRect(img, 2.5, 1.2, 8.7, 6.0, [255, 0, 0], 1);
  const expect = new Set<string>();
  for (let x = 2; x <= 8; x++) expect.add(`${x},1`).add(`${x},5`);
  for (let y = 1; y <= 5; y++) expect.add(`2,${y}`).add(`8,${y}`);
  assert.equal([...setPixels(img)].sort(), [...expect].sort());
  assert.equal(px(img, 2, 1), [255, 0, 0]);
});

test('strokeRect: thickness grows inward; edges outside the image are clipped away', () => {
  const img = blank(10, 10);
  strokeRect(img, 0, 0, 10, 10, [0, 255, 0], 2);
  for (let y = 0; y < 10; y++) for (let x = 0; x < 10; x++) {
    assert.is(isSet(img, x, y), Math.min(x, y, 9 - x, 9 - y) < 2, `pixel ${x},${y}`);
  }
  // A box larger than the image on every side: its outline lies entirely outside.
  const img2 = blank(10, 10);
  strokeRect(img2, -5, -5, 20, 20, [0, 255, 0], 2);
  assert.is(setPixels(img2).size, 0);
  // Only the left edge inside: columns 3..4 from the top row to the bottom row.
  const img3 = blank(10, 10);
  strokeRect(img3, 3, -5, 20, 20, [0, 255, 0], 2);
  for (let y = 0; y < 10; y++) for (let x = 0; x < 10; x++) assert.is(isSet(img3, x, y), x === 3 || x === 4, `pixel ${x},${y}`);
});

test('fillMask: alpha blend exactly where mask > 0.5 (0.5 itself excluded, as torchvision)', () => {
  const img = blank(4, 2, 100);
  const mask = [0.9, 0.5, 0.51, 0, 1, 0.2, 0.7, 0.49];
  const n = fillMask(img, mask, [200, 0, 50], 0.25);
  assert.is(n, 4);
  const tinted = [0, 2, 4, 6];
  for (let i = 0; i < 8; i++) {
    const want = tinted.includes(i) ? [Math.round(100 * 0.75 + 200 * 0.25), 75, Math.round(100 * 0.75 + 50 * 0.25)] : [100, 100, 100];
    assert.equal(px(img, i % 4, Math.floor(i / 4)), want, `pixel ${i}`);
  }
  // offset selects a plane of a [D, H, W] stack
  const img2 = blank(2, 1);
  assert.is(fillMask(img2, [0, 0, 1, 0], [9, 9, 9], 1, 0.5, 2), 1);
  assert.equal(px(img2, 0, 0), [9, 9, 9]);
  assert.equal(px(img2, 1, 0), [0, 0, 0]);
  assert.throws(() => fillMask(img2, [1, 1, 1], [1, 1, 1], 1, 0.5, 2), /mask has 1 values/);
});

test("drawText: 'H' is two full-height columns joined by the middle row", () => {
  const img = blank(12, 10);
  drawText(img, 'H', 3, 2, [255, 255, 255]);
  const expect = new Set<string>();
  for (let y = 0; y < 7; y++) expect.add(`${3},${2 + y}`).add(`${7},${2 + y}`);
  for (let x = 0; x < 5; x++) expect.add(`${3 + x},${2 + 3}`);
  assert.equal([...setPixels(img)].sort(), [...expect].sort());
});

test("drawText: '-', 'I', 'L', '0'-shaped glyphs and the 6-px advance, at scale 1 and 2", () => {
  // '-': only the middle row (row 3) of columns 0..4.
  for (let x = 0; x < GLYPH_WIDTH; x++) for (let y = 0; y < GLYPH_HEIGHT; y++) assert.is(glyphPixel('-', x, y), y === 3, `- ${x},${y}`);
  // 'L': the left column and the bottom row.
  for (let x = 0; x < GLYPH_WIDTH; x++) for (let y = 0; y < GLYPH_HEIGHT; y++) assert.is(glyphPixel('L', x, y), x === 0 || y === 6, `L ${x},${y}`);
  // 'T': the top row and the middle column.
  for (let x = 0; x < GLYPH_WIDTH; x++) for (let y = 0; y < GLYPH_HEIGHT; y++) assert.is(glyphPixel('T', x, y), y === 0 || x === 2, `T ${x},${y}`);
  // ' ' is empty; unknown characters draw as '?'.
  for (let x = 0; x < GLYPH_WIDTH; x++) for (let y = 0; y < GLYPH_HEIGHT; y++) {
    assert.is(glyphPixel(' ', x, y), false);
    assert.is(glyphPixel('\u00e9', x, y), glyphPixel('?', x, y));
  }
  // "LT" at scale 2: each font pixel is a 2x2 square, the second glyph starts 12 px to the right.
  const img = blank(30, 16);
  drawText(img, 'LT', 1, 1, [0, 0, 255], 2);
  for (let y = 0; y < 16; y++) for (let x = 0; x < 30; x++) {
    const gx = Math.floor((x - 1) / 2), gy = Math.floor((y - 1) / 2);
    let want = false;
    if (x >= 1 && y >= 1 && gy < 7) {
      if (gx >= 0 && gx < 5) want = glyphPixel('L', gx, gy);
      else if (gx >= 6 && gx < 11) want = glyphPixel('T', gx - 6, gy);
    }
    assert.is(isSet(img, x, y), want, `pixel ${x},${y}`);
  }
  assert.equal(textSize('LT', 2), { width: 22, height: 14 });
  assert.equal(textSize('', 1), { width: 0, height: 0 * 7 + 7 });
});

test('blendPixel ignores pixels outside the image', () => {
  const img = blank(2, 2);
  blendPixel(img, -1, 0, [1, 2, 3]);
  blendPixel(img, 2, 1, [1, 2, 3]);
  assert.is(setPixels(img).size, 0);
});

test('drawDetections: mask tint, outline and label in the instance colour; the input is not modified', () => {
  const W = 40, H = 30;
  const img = blank(W, H, 50);
  const mask = new Float32Array(W * H);
  for (let y = 12; y < 20; y++) for (let x = 12; x < 20; x++) mask[y * W + x] = 0.9;
  const det = { boxes: [10, 10, 22, 22], labels: [3], scores: [0.875], masks: mask };
  const out = drawDetections(img, det, { className: (l) => (l === 3 ? 'car' : '?'), maskAlpha: 0.5 });
  assert.ok(img.data.every((v) => v === 50), 'input untouched');
  const c = instanceColor(0);
  // inside the mask, away from the box edge: blended
  assert.equal(px(out, 15, 15), c.map((v) => Math.round(50 * 0.5 + v * 0.5)));
  // on the outline (1 px for a 30 px image): the colour itself
  assert.equal(px(out, 21, 15), [...c]);
  // inside the box but outside the mask: untouched
  assert.equal(px(out, 11, 15 + 5), [50, 50, 50]);
  // label "car 0.88" above the box: 8 glyphs -> 47 px + 2 px padding, shifted left to fit in 40 px
  const label = textSize('car 0.88', 1);
  assert.is(label.width, 47);
  // the label row above the box (y = 10 - 9 .. 9) has background-coloured pixels from x = 0
  assert.equal(px(out, 0, 1), [...c]);
  // 'c' (first glyph, text at x = 1, y = 2) has its left column on rows 3..5, in white on this dark red
  assert.equal(px(out, 1, 2 + 3), [255, 255, 255]);
  assert.equal(px(out, 1, 2 + 2), [...c]);
  // far corner: untouched
  assert.equal(px(out, W - 1, H - 1), [50, 50, 50]);
  assert.throws(() => drawDetections(img, { boxes: [0, 0, 1], labels: [1] }), /boxes/);
  assert.throws(() => drawDetections(img, { boxes: [0, 0, 1, 1], labels: [1], masks: new Float32Array(5) }), /masks have 5 values/);
});

test.run();
