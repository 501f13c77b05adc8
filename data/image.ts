// Image bytes -> RGB uint8 HWC, for JPEG (libjpeg-turbo in WebAssembly, data/jpeg.ts: the pixels
// PIL and torchvision.io decode) and PNG (fast-png), so this runs in a browser too. Every colour
// model ends as 3-channel RGB the way PIL's `.convert('RGB')` does it (what torchvision's COCO
// datasets call): grey is replicated, alpha is dropped (not composited), palettes are expanded.
// EXIF orientation is NOT applied, like torchvision's PIL loading, because COCO annotations refer
// to the stored pixel grid.
import { decodeJpeg } from './jpeg.js';
import { decode as decodePngRaw, encode as encodePngRaw, convertIndexedToRgb } from 'fast-png';

/** An 8-bit RGB image, row-major, channels interleaved (HWC). */
export interface RgbImage {
  width: number;
  height: number;
  /** width * height * 3 bytes. */
  data: Uint8Array;
}

export type ImageFormat = 'jpeg' | 'png' | 'gif' | 'bmp' | 'webp' | 'unknown';

/** Raised for corrupt or unsupported images; `file` names the offending file. */
export class ImageDecodeError extends Error {
  constructor(
    readonly file: string,
    reason: string,
  ) {
    super(`${file}: cannot decode image: ${reason}`);
    this.name = 'ImageDecodeError';
  }
}

/** Identifies the format from the first bytes rather than the file name (COCO mirrors contain
 *  PNGs named .jpg). */
export function detectImageFormat(b: Uint8Array): ImageFormat {
  if (b.length >= 3 && b[0] === 0xff && b[1] === 0xd8 && b[2] === 0xff) return 'jpeg';
  const png = [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a];
  if (b.length >= 8 && png.every((v, i) => b[i] === v)) return 'png';
  if (b.length >= 4 && b[0] === 0x47 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x38) return 'gif';
  if (b.length >= 2 && b[0] === 0x42 && b[1] === 0x4d) return 'bmp';
  if (b.length >= 12 && b[0] === 0x52 && b[1] === 0x49 && b[2] === 0x46 && b[3] === 0x46 && b[8] === 0x57 && b[9] === 0x45) {
    return 'webp';
  }
  return 'unknown';
}

/** Decodes JPEG or PNG bytes to RGB. `name` (usually the path) appears in any error. Async because
 *  the JPEG decoder's WebAssembly loads on first use. */
export async function decodeImage(bytes: Uint8Array, name = '<image>'): Promise<RgbImage> {
  const format = detectImageFormat(bytes);
  let img: RgbImage;
  try {
    if (format === 'jpeg') img = await decodeJpeg(bytes);
    else if (format === 'png') img = decodePng(bytes);
    else if (format === 'unknown') throw new Error('unrecognised format (neither JPEG nor PNG signature)');
    else throw new Error(`unsupported format ${format} (only JPEG and PNG are supported)`);
  } catch (e) {
    if (e instanceof ImageDecodeError) throw e;
    throw new ImageDecodeError(name, (e as Error)?.message ?? String(e));
  }
  if (!(img.width > 0 && img.height > 0) || img.data.length !== img.width * img.height * 3) {
    throw new ImageDecodeError(name, `decoder returned an empty or inconsistent ${img.width}x${img.height} image`);
  }
  return img;
}

function decodePng(bytes: Uint8Array): RgbImage {
  const png = decodePngRaw(bytes);
  const { width, height, depth, channels } = png;
  const n = width * height;
  const rgb = new Uint8Array(n * 3);
  if (png.palette) {
    // Indexed colour: expand through the palette (entries are RGB or RGBA when tRNS is present).
    const expanded = convertIndexedToRgb(png);
    const pc = png.palette[0]?.length ?? 3;
    for (let i = 0; i < n; i++) {
      rgb[i * 3] = expanded[i * pc]!;
      rgb[i * 3 + 1] = expanded[i * pc + 1]!;
      rgb[i * 3 + 2] = expanded[i * pc + 2]!;
    }
    return { width, height, data: rgb };
  }
  const samples = unpackSamples(png.data, width, height, channels, depth);
  // Colour channels are the first 1 (grey) or 3 (RGB) of each pixel; a trailing alpha is dropped.
  const colour = channels >= 3 ? 3 : 1;
  for (let i = 0; i < n; i++) {
    const base = i * channels;
    if (colour === 3) {
      rgb[i * 3] = samples[base]!;
      rgb[i * 3 + 1] = samples[base + 1]!;
      rgb[i * 3 + 2] = samples[base + 2]!;
    } else {
      const v = samples[base]!;
      rgb[i * 3] = v;
      rgb[i * 3 + 1] = v;
      rgb[i * 3 + 2] = v;
    }
  }
  return { width, height, data: rgb };
}

/** Returns one 8-bit sample per channel per pixel. 16-bit samples keep their high byte (what PIL
 *  and libpng's strip_16 do); 1/2/4-bit grey is packed per byte-aligned row and scaled to 0..255. */
function unpackSamples(
  data: ArrayLike<number>,
  width: number,
  height: number,
  channels: number,
  depth: number,
): Uint8Array {
  const count = width * height * channels;
  const out = new Uint8Array(count);
  if (depth === 8) {
    if (data.length < count) throw new Error(`PNG data too short (${data.length} < ${count})`);
    for (let i = 0; i < count; i++) out[i] = data[i]!;
  } else if (depth === 16) {
    if (data.length < count) throw new Error(`PNG data too short (${data.length} < ${count})`);
    for (let i = 0; i < count; i++) out[i] = data[i]! >>> 8;
  } else if (depth === 1 || depth === 2 || depth === 4) {
    if (channels !== 1) throw new Error(`unsupported PNG: ${depth}-bit with ${channels} channels`);
    const rowBytes = Math.ceil((width * depth) / 8);
    if (data.length < rowBytes * height) throw new Error('PNG data too short');
    const maxv = (1 << depth) - 1;
    const mask = maxv;
    for (let y = 0; y < height; y++) {
      for (let x = 0; x < width; x++) {
        const bit = x * depth;
        const byte = data[y * rowBytes + (bit >> 3)]!;
        const v = (byte >> (8 - depth - (bit & 7))) & mask;
        out[y * width + x] = Math.round((v * 255) / maxv);
      }
    }
  } else {
    throw new Error(`unsupported PNG bit depth ${depth}`);
  }
  return out;
}

/** Encodes RGB (channels = 3), grey (1) or RGBA (4) uint8 HWC pixels as a PNG file. */
export function encodePng(pixels: Uint8Array, width: number, height: number, channels: 1 | 3 | 4 = 3): Uint8Array {
  if (pixels.length !== width * height * channels) {
    throw new Error(`encodePng: ${pixels.length} bytes for a ${width}x${height}x${channels} image`);
  }
  return encodePngRaw({ width, height, data: pixels, depth: 8, channels });
}
