// JPEG decoders compared on real COCO photos (tiny_coco + coco128): jpeg-js (pure JS, what
// data/image.ts used before) against libjpeg-turbo compiled to WebAssembly (@jsquash/jpeg's MozJPEG
// decoder, what data/jpeg.ts uses), for exactness against PIL (libjpeg-turbo; the decode
// torchvision's datasets see) and decode speed in ms per megapixel.
// Exactness needs PIL's pixels: `python3 tools/jpeg-reference.py REF_DIR <image dirs>` (dev time);
// without --ref only whole-image equality is reported, from test/fixtures/jpeg/coco-pil-sha256.json.
// Usage: node dist/bench/decode.js [--ref REF_DIR] [--repeat N] [--json]   (see bench/DECODE.md)
import { createHash } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import jpegJs from 'jpeg-js';
import { nodeIO } from '../cli/node-io.js';
import { decodeJpeg, initJpegDecoder } from '../data/jpeg.js';

const argv = process.argv.slice(2);
const opt = (k: string): string | undefined => (argv.includes(k) ? argv[argv.indexOf(k) + 1] : undefined);
const refDir = opt('--ref');
const repeat = Number(opt('--repeat') ?? 3);
const json = argv.includes('--json');
const hashes = JSON.parse(readFileSync('test/fixtures/jpeg/coco-pil-sha256.json', 'utf8')) as Record<string, [number, number, string]>;
const files = Object.keys(hashes).filter((f) => existsSync(f));

interface Row { decoder: string; images: number; megapixels: number; exactImages: number; differingPixels: number | null; totalPixels: number; maxDiff: number | null; msPerMegapixel: number }

const decoders: Record<string, (b: Uint8Array) => Promise<Uint8Array>> = {
  'jpeg-js 0.4': async (b) => jpegJs.decode(b, { useTArray: true, formatAsRGBA: false, tolerantDecoding: false }).data,
  'libjpeg-turbo WASM (@jsquash/jpeg 1.6)': async (b) => (await decodeJpeg(b)).data,
};

await initJpegDecoder();
const rows: Row[] = [];
for (const [name, decode] of Object.entries(decoders)) {
  const row: Row = { decoder: name, images: files.length, megapixels: 0, exactImages: 0, differingPixels: refDir ? 0 : null, totalPixels: 0, maxDiff: refDir ? 0 : null, msPerMegapixel: 0 };
  let ms = 0;
  // One untimed pass first: V8 tiers WebAssembly and hot JS up only after many calls (the first
  // decodes run several times slower).
  for (const f of files) await decode(await nodeIO.readBytes(f));
  for (const f of files) {
    const bytes = await nodeIO.readBytes(f);
    const [w, h, sha] = hashes[f]!;
    let rgb!: Uint8Array;
    // Best of `repeat` runs (the machine is shared).
    let best = Infinity;
    for (let r = 0; r < repeat; r++) {
      const t0 = performance.now();
      rgb = await decode(bytes);
      best = Math.min(best, performance.now() - t0);
    }
    ms += best;
    row.megapixels += (w * h) / 1e6;
    row.totalPixels += w * h;
    if (createHash('sha256').update(rgb).digest('hex') === sha) row.exactImages++;
    if (refDir) {
      const ref = readFileSync(`${refDir}/${f.split('/').pop()}.rgb`);
      for (let p = 0; p < w * h * 3; p += 3) {
        const d = Math.max(Math.abs(rgb[p]! - ref[p]!), Math.abs(rgb[p + 1]! - ref[p + 1]!), Math.abs(rgb[p + 2]! - ref[p + 2]!));
        if (d) row.differingPixels!++;
        row.maxDiff = Math.max(row.maxDiff!, d);
      }
    }
  }
  row.msPerMegapixel = ms / row.megapixels;
  rows.push(row);
}

if (json) console.log(JSON.stringify({ node: process.version, rows }, null, 1));
else {
  console.log(`${files.length} photos, ${rows[0]!.megapixels.toFixed(1)} MP (Node ${process.version}; best of ${repeat})`);
  console.log('| decoder | images bit-exact to PIL | pixels differing from PIL | max diff | ms / MP |');
  console.log('|---|---|---|---|---|');
  for (const r of rows) {
    const px = r.differingPixels === null ? 'n/a (no --ref)' : `${r.differingPixels} of ${r.totalPixels} (${((100 * r.differingPixels) / r.totalPixels).toFixed(1)}%)`;
    console.log(`| ${r.decoder} | ${r.exactImages} / ${r.images} | ${px} | ${r.maxDiff ?? 'n/a'} | ${r.msPerMegapixel.toFixed(1)} |`);
  }
}
