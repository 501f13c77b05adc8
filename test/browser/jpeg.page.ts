// JPEG decoding in the page: the libjpeg-turbo WebAssembly loads from next to the bundle
// (web/build.js copies it; data/jpeg.ts fetches it), decodes every JPEG flavour of
// test/fixtures/jpeg/ (served under /files/ by test/browser/run.js) to exactly PIL's pixels, and
// its speed against jpeg-js on a COCO photo (coco-000000122745.jpg, 480x640; printed as [measure],
// never asserted).
// Under Node these cases are skipped: test/jpeg.test.ts covers the same with the Node loader.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import jpegJs from 'jpeg-js';
import { decodeImage } from '../../data/image.js';
import { decodeJpeg } from '../../data/jpeg.js';

const inPage = typeof window !== 'undefined' && typeof location !== 'undefined' && location.protocol.startsWith('http');
const fetchBytes = async (url: string): Promise<Uint8Array> => {
  const res = await fetch(url);
  if (!res.ok) throw new Error(`${url}: HTTP ${res.status}`);
  return new Uint8Array(await res.arrayBuffer());
};

test('JPEG flavours decode in the page to exactly PIL\'s pixels', async () => {
  if (!inPage) return;
  const ref = JSON.parse(new TextDecoder().decode(await fetchBytes('/files/jpeg/reference.json'))) as Record<string, { file: string; mode: string; width: number; height: number; rgb: string }>;
  for (const [name, r] of Object.entries(ref)) {
    if (r.mode === 'CMYK') continue; // jpeg-js fallback, within a level of PIL (test/jpeg.test.ts)
    const img = await decodeImage(await fetchBytes('/files/jpeg/' + r.file), r.file);
    const want = Uint8Array.from(atob(r.rgb), (c) => c.charCodeAt(0));
    assert.equal([img.width, img.height], [r.width, r.height], `${name}: size`);
    let differing = 0;
    for (let i = 0; i < want.length; i++) if (img.data[i] !== want[i]) differing++;
    assert.is(differing, 0, `${name}: differing bytes`);
  }
});

test('JPEG decode speed in the page: libjpeg-turbo WASM vs jpeg-js (measured)', async () => {
  if (!inPage) return;
  const bytes = await fetchBytes('/files/jpeg/coco-000000122745.jpg');
  const time = async (f: () => Promise<unknown>): Promise<number> => {
    for (let r = 0; r < 10; r++) await f(); // warm-up: V8 tiers code up only after many calls
    let best = Infinity;
    for (let r = 0; r < 10; r++) {
      const t0 = performance.now();
      await f();
      best = Math.min(best, performance.now() - t0);
    }
    return best;
  };
  const mp = (480 * 640) / 1e6;
  const wasm = await time(() => decodeJpeg(bytes));
  const js = await time(async () => jpegJs.decode(bytes, { useTArray: true, formatAsRGBA: false }));
  console.log(`[measure] JPEG decode in the page (480x640 COCO photo): libjpeg-turbo WASM ${(wasm / mp).toFixed(1)} ms/MP, jpeg-js ${(js / mp).toFixed(1)} ms/MP`);
  assert.ok(wasm > 0 && js > 0);
});

test.run();
