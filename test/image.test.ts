// Image decoding: real COCO JPEGs (colour and greyscale), every PNG colour model made with
// fast-png's encoder, format detection by magic bytes, and errors that name the file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { encode as pngEncode } from 'fast-png';
import jpeg from 'jpeg-js';
import { nodeIO } from '../cli/node-io.js';
import { decodeImage, detectImageFormat, encodePng, ImageDecodeError } from '../data/image.js';

const JPG = '../shared/data/tiny_coco/train2017/000000391895.jpg'; // 640x360 in the JSON
const GREY_JPG = '../shared/data/coco128/val2017/000000000086.jpg'; // one-component JPEG, 512x640

async function errorOf(fn: () => unknown): Promise<Error> {
  try {
    await fn();
  } catch (e) {
    return e as Error;
  }
  throw new Error('expected an error');
}

test('decodes a COCO JPEG to RGB HWC at the annotated size', async () => {
  const img = await decodeImage(await nodeIO.readBytes(JPG), JPG);
  assert.is(img.width, 640);
  assert.is(img.height, 360);
  assert.is(img.data.length, 640 * 360 * 3);
  // Not a degenerate decode: the channels differ somewhere and values span a range.
  let diff = 0;
  let min = 255;
  let max = 0;
  for (let i = 0; i < img.data.length; i += 3) {
    if (img.data[i] !== img.data[i + 2]) diff++;
    min = Math.min(min, img.data[i]!);
    max = Math.max(max, img.data[i]!);
  }
  assert.ok(diff > 1000 && max - min > 100);
});

test('greyscale JPEG becomes RGB with equal channels', async () => {
  const img = await decodeImage(await nodeIO.readBytes(GREY_JPG), GREY_JPG);
  assert.is(img.width, 512);
  assert.is(img.height, 640);
  for (let i = 0; i < img.data.length; i += 3) {
    if (img.data[i] !== img.data[i + 1] || img.data[i] !== img.data[i + 2]) assert.unreachable('channels differ');
  }
});

test('JPEG made by jpeg-js round-trips approximately', async () => {
  const w = 16;
  const h = 8;
  const rgba = new Uint8Array(w * h * 4);
  for (let i = 0; i < w * h; i++) rgba.set([200, 40, 90, 255], i * 4);
  const bytes = new Uint8Array(jpeg.encode({ width: w, height: h, data: rgba }, 95).data);
  assert.is(detectImageFormat(bytes), 'jpeg');
  const img = await decodeImage(bytes);
  assert.is(img.width, w);
  assert.is(img.height, h);
  assert.ok(Math.abs(img.data[0]! - 200) < 6 && Math.abs(img.data[1]! - 40) < 6 && Math.abs(img.data[2]! - 90) < 6);
});

test('RGB PNG round-trips exactly through encodePng', async () => {
  const w = 7;
  const h = 5;
  const rgb = Uint8Array.from({ length: w * h * 3 }, (_, i) => (i * 37) % 256);
  const png = encodePng(rgb, w, h);
  assert.is(detectImageFormat(png), 'png');
  const img = await decodeImage(png);
  assert.equal([img.width, img.height], [w, h]);
  assert.equal(Array.from(img.data), Array.from(rgb));
});

test('grey, grey+alpha and RGBA PNGs become RGB (alpha dropped like PIL convert("RGB"))', async () => {
  const grey = await decodeImage(pngEncode({ width: 2, height: 1, data: new Uint8Array([10, 250]), channels: 1, depth: 8 }));
  assert.equal(Array.from(grey.data), [10, 10, 10, 250, 250, 250]);
  const ga = await decodeImage(pngEncode({ width: 2, height: 1, data: new Uint8Array([10, 0, 250, 128]), channels: 2, depth: 8 }));
  assert.equal(Array.from(ga.data), [10, 10, 10, 250, 250, 250]);
  const rgba = await decodeImage(pngEncode({ width: 1, height: 2, data: new Uint8Array([1, 2, 3, 0, 4, 5, 6, 255]), channels: 4, depth: 8 }));
  assert.equal(Array.from(rgba.data), [1, 2, 3, 4, 5, 6]);
});

test('16-bit PNGs keep the high byte', async () => {
  const rgb16 = await decodeImage(
    pngEncode({ width: 1, height: 1, data: new Uint16Array([0xffff, 0x8000, 0x01ff]), channels: 3, depth: 16 }),
  );
  assert.equal(Array.from(rgb16.data), [255, 128, 1]);
  const grey16 = await decodeImage(pngEncode({ width: 2, height: 1, data: new Uint16Array([0x1234, 0xfedc]), channels: 1, depth: 16 }));
  assert.equal(Array.from(grey16.data), [0x12, 0x12, 0x12, 0xfe, 0xfe, 0xfe]);
});

test('palette PNGs are expanded, including packed 2-bit indices', async () => {
  const palette = [
    [255, 0, 0],
    [0, 255, 0],
    [0, 0, 255],
    [9, 9, 9],
  ];
  const p8 = await decodeImage(pngEncode({ width: 3, height: 1, data: new Uint8Array([2, 0, 3]), channels: 1, depth: 8, palette }));
  assert.equal(Array.from(p8.data), [0, 0, 255, 255, 0, 0, 9, 9, 9]);
  // 5 pixels of 2 bits: indices 1,2,3,0,1 packed into 2 bytes per row.
  const packed = new Uint8Array([0b01101100, 0b01000000, 0b11000000, 0b00000000]);
  const p2 = await decodeImage(pngEncode({ width: 5, height: 2, data: packed, channels: 1, depth: 2, palette }));
  assert.equal(Array.from(p2.data.subarray(0, 15)), [0, 255, 0, 0, 0, 255, 9, 9, 9, 255, 0, 0, 0, 255, 0]);
  assert.equal(Array.from(p2.data.subarray(15, 21)), [9, 9, 9, 255, 0, 0]);
});

test('1-bit greyscale PNG scales to 0/255', async () => {
  const img = await decodeImage(pngEncode({ width: 3, height: 1, data: new Uint8Array([0b10100000]), channels: 1, depth: 1 }));
  assert.equal(Array.from(img.data), [255, 255, 255, 0, 0, 0, 255, 255, 255]);
});

test('format detection by magic bytes', async () => {
  assert.is(detectImageFormat(new Uint8Array([0xff, 0xd8, 0xff, 0xe0])), 'jpeg');
  assert.is(detectImageFormat(new Uint8Array([0x47, 0x49, 0x46, 0x38, 0x39, 0x61])), 'gif');
  assert.is(detectImageFormat(new Uint8Array([0x42, 0x4d, 0, 0])), 'bmp');
  assert.is(detectImageFormat(new TextEncoder().encode('RIFF\0\0\0\0WEBPVP8 ')), 'webp');
  assert.is(detectImageFormat(new Uint8Array([1, 2, 3])), 'unknown');
  assert.is(detectImageFormat(new Uint8Array(0)), 'unknown');
});

test('corrupt or unsupported images raise an error naming the file', async () => {
  const jpg = await nodeIO.readBytes(JPG);
  const truncated = await errorOf(() => decodeImage(jpg.subarray(0, 4000), 'images/cut.jpg'));
  assert.instance(truncated, ImageDecodeError);
  assert.ok(truncated.message.startsWith('images/cut.jpg: cannot decode image'), truncated.message);
  assert.is((truncated as ImageDecodeError).file, 'images/cut.jpg');

  const junk = await errorOf(() => decodeImage(new Uint8Array([1, 2, 3, 4, 5]), 'junk.bin'));
  assert.ok(junk.message.includes('junk.bin') && junk.message.includes('unrecognised format'), junk.message);

  const gif = await errorOf(() => decodeImage(new Uint8Array([0x47, 0x49, 0x46, 0x38, 0x39, 0x61, 0, 0]), 'a.gif'));
  assert.ok(gif.message.includes('a.gif') && gif.message.includes('unsupported format gif'), gif.message);

  const png = encodePng(new Uint8Array(4 * 4 * 3).fill(7), 4, 4);
  const broken = png.slice(0, png.length - 20);
  const pngErr = await errorOf(() => decodeImage(broken, 'broken.png'));
  assert.instance(pngErr, ImageDecodeError);
  assert.ok(pngErr.message.startsWith('broken.png: cannot decode image'), pngErr.message);
});

test('encodePng checks its input size and supports grey', async () => {
  assert.throws(() => encodePng(new Uint8Array(5), 2, 2), /2x2x3/);
  const g = await decodeImage(encodePng(new Uint8Array([0, 128, 255, 64]), 2, 2, 1));
  assert.equal(Array.from(g.data.subarray(0, 6)), [0, 0, 0, 128, 128, 128]);
});

test.run();
