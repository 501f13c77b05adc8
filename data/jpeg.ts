// JPEG -> RGB bit-exact to libjpeg-turbo's defaults (ISLOW IDCT, fancy upsampling, its YCbCr->RGB
// tables), i.e. to what PIL and torchvision.io decode: libjpeg-turbo compiled to WebAssembly (MozJPEG's
// decoder from @jsquash/jpeg, a libjpeg-turbo fork with an unchanged decoder). bench/DECODE.md has the
// measurement that chose it (0 differing pixels over 228 COCO photos against PIL; jpeg-js differs by
// up to 4/255 on 81% of pixels, and is 5x slower).
//
// The .wasm file is loaded once, from where setJpegWasmSource() says: Node's file adapter
// (cli/node-io.ts) points it at the package's file; in a browser the default fetches
// `mozjpeg_dec.wasm` next to the bundle (web/build.js copies it there).
//
// Deliberate differences from PIL's `convert('RGB')`:
// - CMYK / Adobe JPEGs: libjpeg-turbo cannot convert CMYK to RGB, so these go through jpeg-js and
//   its CMYK->RGB (inverted Adobe CMYK, rgb = (255-k) - (255-k)*c/255, which PIL rounds with
//   MULDIV255); pixels may differ from PIL by a level or two (jpeg-js's IDCT and its truncation;
//   test/jpeg.test.ts bounds it). Rare in photo sets (none in coco128 or tiny_coco).
// - EXIF orientation is ignored, as PIL's loading (and COCO's annotations) do.
import jpegJs from 'jpeg-js';
import mozjpegFactory from '@jsquash/jpeg/codec/dec/mozjpeg_dec.js';
import type { RgbImage } from './image.js';

/** Where the decoder's WebAssembly comes from: compiled module, raw bytes, or a URL to fetch. */
export type JpegWasmSource = WebAssembly.Module | Uint8Array | ArrayBuffer | URL | string;

interface MozJpegModule {
  decode(data: BufferSource, preserveOrientation: boolean): { width: number; height: number; data: Uint8ClampedArray } | null;
}

let source: () => Promise<JpegWasmSource> = async () => new URL('./mozjpeg_dec.wasm', import.meta.url);
let compiled: Promise<WebAssembly.Module> | null = null;
let instance: Promise<MozJpegModule> | null = null;
/** libjpeg's messages of the call in progress (printed through Emscripten's printErr). */
let messages: string[] = [];

/** Sets where the decoder's .wasm is loaded from (before the first JPEG is decoded). */
export function setJpegWasmSource(src: () => Promise<JpegWasmSource>): void {
  source = src;
  compiled = null;
  instance = null;
}

async function compile(): Promise<WebAssembly.Module> {
  const src = await source();
  if (src instanceof WebAssembly.Module) return src;
  if (src instanceof Uint8Array || src instanceof ArrayBuffer) return WebAssembly.compile(src as BufferSource);
  const res = await fetch(src);
  if (!res.ok) throw new Error(`cannot load the JPEG decoder ${String(src)}: HTTP ${res.status}`);
  return WebAssembly.compile(await res.arrayBuffer());
}

function module(): Promise<MozJpegModule> {
  compiled ??= compile().catch((e: unknown) => {
    compiled = null;
    throw new Error(`JPEG decoder (libjpeg-turbo WebAssembly) failed to load: ${(e as Error).message} (in Node, import cli/node-io.js, which points it at @jsquash/jpeg's file)`);
  });
  instance ??= compiled.then((wasm) =>
    (mozjpegFactory as unknown as (o: object) => Promise<MozJpegModule>)({
      noInitialRun: true,
      instantiateWasm: (imports: WebAssembly.Imports, done: (i: WebAssembly.Instance) => void) => {
        const inst = new WebAssembly.Instance(wasm, imports);
        done(inst);
        return inst.exports;
      },
      print: (s: string) => messages.push(s),
      printErr: (s: string) => messages.push(s),
    }),
  );
  return instance;
}

/** Loads the decoder now (otherwise the first decode does). */
export async function initJpegDecoder(): Promise<void> {
  await module();
}

/** Component count of the first SOF segment (1 grey, 3 YCbCr/RGB, 4 CMYK/YCCK), or 0 if none. */
export function jpegComponents(b: Uint8Array): number {
  let i = 2;
  while (i + 4 <= b.length) {
    if (b[i] !== 0xff) return 0;
    const marker = b[i + 1]!;
    if (marker === 0xff) {
      i++;
      continue;
    }
    const len = (b[i + 2]! << 8) | b[i + 3]!;
    // SOF0..SOF15 except DHT (C4), JPG (C8), DAC (CC).
    if (marker >= 0xc0 && marker <= 0xcf && marker !== 0xc4 && marker !== 0xc8 && marker !== 0xcc) return b[i + 9] ?? 0;
    if (marker === 0xda) return 0;
    i += 2 + len;
  }
  return 0;
}

/** Decodes JPEG bytes as PIL's `Image.open(f).convert('RGB')` does. Throws on corrupt or truncated data. */
export async function decodeJpeg(bytes: Uint8Array): Promise<RgbImage> {
  if (jpegComponents(bytes) === 4) return decodeCmyk(bytes);
  const m = await module();
  messages = [];
  let out;
  try {
    out = m.decode(bytes as Uint8Array<ArrayBuffer>, false);
  } catch (e) {
    instance = null; // libjpeg exit()ed mid-decode: start the next file on a fresh instance
    throw new Error(messages.join('; ') || (e as Error).message);
  }
  // libjpeg only warns on a truncated file (and pads it grey); PIL refuses it: so do we.
  const truncated = messages.find((s) => /premature end/i.test(s));
  if (truncated || !out) throw new Error(truncated ? `truncated JPEG data (${truncated})` : messages.join('; ') || 'decoding failed');
  const { width, height, data } = out;
  const rgb = new Uint8Array(width * height * 3);
  for (let p = 0, q = 0; q < rgb.length; p += 4, q += 3) {
    rgb[q] = data[p]!;
    rgb[q + 1] = data[p + 1]!;
    rgb[q + 2] = data[p + 2]!;
  }
  return { width, height, data: rgb };
}

/** CMYK through jpeg-js, whose CMYK->RGB is PIL's formula with truncation instead of rounding. */
function decodeCmyk(bytes: Uint8Array): RgbImage {
  const { width, height, data } = jpegJs.decode(bytes, { useTArray: true, formatAsRGBA: false, tolerantDecoding: false });
  return { width, height, data };
}
