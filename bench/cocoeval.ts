// COCO evaluation benchmark on a generated set shaped like COCO val2017: 5,000 images of 640x480,
// ~7 objects each with polygon segmentations (and a few crowd RLEs), 100 detections per image.
// The files are generated once (seeded, deterministic) into a temp folder; each iouType is then
// timed in a fresh child process from reading + JSON.parse to the printed summary, reporting
// seconds and the child's peak RSS.
//   node dist/bench/cocoeval.js [--images N] [--dets N] [--seed S] [--dir DIR] [--only bbox|segm]
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { COCOeval } from '../data/cocoeval/index.js';
import { rleFrPoly } from '../data/polygon.js';
import { rleArea, rleToBbox, rleToString, rleToUncompressed, type RLE } from '../data/rle.js';
import { formatHelp, parseArgs, type OptionSpec } from '../cli/args.js';

const W = 640, H = 480, NCAT = 80;

function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** A star-shaped polygon around (cx, cy) with mean radius r. */
function blob(rnd: () => number, cx: number, cy: number, r: number, aspect: number): number[] {
  const n = 8 + Math.floor(rnd() * 9);
  const pts: number[] = [];
  for (let i = 0; i < n; i++) {
    const a = (2 * Math.PI * (i + 0.3 * rnd())) / n;
    const rr = r * (0.7 + 0.5 * rnd());
    const x = Math.min(W - 0.01, Math.max(0, cx + rr * Math.cos(a) * aspect));
    const y = Math.min(H - 0.01, Math.max(0, cy + rr * Math.sin(a) / aspect));
    pts.push(Math.round(x * 100) / 100, Math.round(y * 100) / 100);
  }
  return pts;
}

function polyBox(p: number[]): [number, number, number, number] {
  let x0 = Infinity, y0 = Infinity, x1 = -Infinity, y1 = -Infinity;
  for (let i = 0; i < p.length; i += 2) {
    x0 = Math.min(x0, p[i]); x1 = Math.max(x1, p[i]); y0 = Math.min(y0, p[i + 1]); y1 = Math.max(y1, p[i + 1]);
  }
  const r = (v: number) => Math.round(v * 100) / 100;
  return [r(x0), r(y0), r(x1 - x0), r(y1 - y0)];
}

interface Files { gt: string; bbox: string; segm: string }

/** Writes gt.json, bbox.json, segm.json into dir unless they are already there. */
export function generate(dir: string, nImages: number, detsPerImage: number, seed: number): Files {
  const files = { gt: join(dir, 'gt.json'), bbox: join(dir, 'bbox.json'), segm: join(dir, 'segm.json') };
  if (existsSync(files.gt) && existsSync(files.bbox) && existsSync(files.segm)) return files;
  mkdirSync(dir, { recursive: true });
  const rnd = mulberry32(seed);
  const images = [], annotations = [], categories = [];
  for (let c = 1; c <= NCAT; c++) categories.push({ id: c + (c > 11 ? 1 : 0), name: `class${c}`, supercategory: 'thing' });
  const bbox: object[] = [], segm: object[] = [];
  let annId = 1;
  for (let i = 0; i < nImages; i++) {
    const imageId = 100000 + i * 7;
    images.push({ id: imageId, width: W, height: H, file_name: `${String(imageId).padStart(12, '0')}.jpg` });
    const nObj = 1 + Math.floor(rnd() * 13); // mean 7
    const objs: { cat: number; cx: number; cy: number; r: number; aspect: number }[] = [];
    for (let o = 0; o < nObj; o++) {
      const cat = categories[Math.floor(rnd() * NCAT)].id;
      const r = 4 * Math.exp(rnd() * Math.log(50)); // 4..200 px, log-uniform
      const cx = r + rnd() * Math.max(1, W - 2 * r), cy = r * 0.7 + rnd() * Math.max(1, H - 1.4 * r);
      const aspect = 0.6 + rnd() * 0.8;
      objs.push({ cat, cx, cy, r, aspect });
      const crowd = rnd() < 0.01;
      const poly = blob(rnd, cx, cy, r, aspect);
      const R = rleFrPoly(poly, H, W);
      annotations.push({
        id: annId++, image_id: imageId, category_id: cat, iscrowd: crowd ? 1 : 0,
        segmentation: crowd ? rleToUncompressed(R) : [poly],
        area: rleArea(R), bbox: crowd ? rleToBbox(R) : polyBox(poly),
      });
    }
    const addDet = (cat: number, poly: number[], score: number) => {
      const R: RLE = rleFrPoly(poly, H, W);
      const s = Math.round(score * 1e4) / 1e4;
      bbox.push({ image_id: imageId, category_id: cat, bbox: polyBox(poly), score: s });
      segm.push({ image_id: imageId, category_id: cat, segmentation: { size: [H, W], counts: rleToString(R) }, score: s });
    };
    let nd = 0;
    for (const o of objs) {
      const k = 2 + Math.floor(rnd() * 5);
      for (let j = 0; j < k && nd < detsPerImage; j++, nd++) {
        const jit = 0.05 + 0.4 * rnd() * rnd();
        const cat = rnd() < 0.9 ? o.cat : categories[Math.floor(rnd() * NCAT)].id;
        addDet(cat, blob(rnd, o.cx + (rnd() - 0.5) * 2 * jit * o.r, o.cy + (rnd() - 0.5) * 2 * jit * o.r,
          o.r * (1 + (rnd() - 0.5) * jit), o.aspect), 0.3 + 0.7 * rnd() * (1 - jit));
      }
    }
    for (; nd < detsPerImage; nd++) {
      const r = 4 * Math.exp(rnd() * Math.log(40));
      addDet(categories[Math.floor(rnd() * NCAT)].id, blob(rnd, r + rnd() * (W - 2 * r), r + rnd() * (H - 2 * r), r, 0.6 + rnd() * 0.8), 0.5 * rnd());
    }
  }
  writeFileSync(files.gt, JSON.stringify({ info: { description: 'synthetic COCO-val2017-shaped benchmark set' }, images, annotations, categories }));
  writeFileSync(files.bbox, JSON.stringify(bbox));
  writeFileSync(files.segm, JSON.stringify(segm));
  return files;
}

interface ChildResult {
  iouType: string; seconds: number; loadSeconds: number; evalSeconds: number; cpuSeconds: number; maxRssMB: number; stats: number[];
}

/** Child mode: load + evaluate one iouType and print a JSON line. */
function child(iouType: 'bbox' | 'segm', gtPath: string, dtPath: string): void {
  const t0 = performance.now(), c0 = process.cpuUsage();
  const gt = JSON.parse(readFileSync(gtPath, 'utf8'));
  const dt = JSON.parse(readFileSync(dtPath, 'utf8'));
  const t1 = performance.now();
  const E = new COCOeval(gt, dt, iouType);
  E.evaluate(); E.accumulate(); E.summarize();
  const t2 = performance.now(), c2 = process.cpuUsage(c0);
  const r: ChildResult = {
    iouType, seconds: (t2 - t0) / 1000, loadSeconds: (t1 - t0) / 1000, evalSeconds: (t2 - t1) / 1000,
    cpuSeconds: (c2.user + c2.system) / 1e6,
    maxRssMB: process.resourceUsage().maxRSS / 1024, stats: E.stats,
  };
  console.log(JSON.stringify(r));
}

const OPTIONS: OptionSpec[] = [
  { name: 'images', type: 'number', default: 5000, help: 'number of images' },
  { name: 'dets', type: 'number', default: 100, help: 'detections per image' },
  { name: 'seed', type: 'number', default: 2017, help: 'generator seed' },
  { name: 'dir', type: 'string', help: 'folder for the generated files (default: a temp folder per settings)' },
  { name: 'only', type: 'string', choices: ['bbox', 'segm'], help: 'run one iouType' },
  { name: 'child', type: 'string', choices: ['bbox', 'segm'], help: '(internal) evaluate in this process' },
  { name: 'help', type: 'boolean', short: 'h', help: 'show this help' },
];

function main(): void {
  const args = parseArgs(process.argv.slice(2), OPTIONS);
  const v = args.values;
  if (v.help) { console.log(formatHelp('node dist/bench/cocoeval.js [options]', OPTIONS)); return; }
  if (v.child) { child(v.child as 'bbox' | 'segm', args.positionals[0], args.positionals[1]); return; }
  const nImages = v.images as number, dets = v.dets as number, seed = v.seed as number;
  const dir = (v.dir as string | undefined) ?? join(tmpdir(), `cocoeval-bench-v1-${nImages}-${dets}-${seed}`);
  let t = performance.now();
  const files = generate(dir, nImages, dets, seed);
  console.log(`data: ${dir} (${nImages} images ${W}x${H}, ${dets} detections/image; ready in ${((performance.now() - t) / 1000).toFixed(1)} s); load average ${loadavg()[0].toFixed(1)} on ${cpus().length} CPUs`);
  const script = fileURLToPath(import.meta.url);
  const types = v.only ? [v.only as 'bbox' | 'segm'] : (['bbox', 'segm'] as const);
  const rows: ChildResult[] = [];
  for (const iouType of types) {
    t = performance.now();
    const out = execFileSync(process.execPath, [script, '--child', iouType, files.gt, iouType === 'bbox' ? files.bbox : files.segm],
      { encoding: 'utf8', maxBuffer: 1 << 24 });
    const r = JSON.parse(out.trim().split('\n').pop()!) as ChildResult;
    rows.push(r);
    console.log(`${iouType}: ${r.seconds.toFixed(2)} s (load ${r.loadSeconds.toFixed(2)} s + evaluate ${r.evalSeconds.toFixed(2)} s; CPU ${r.cpuSeconds.toFixed(2)} s), peak RSS ${r.maxRssMB.toFixed(0)} MB, AP ${r.stats[0].toFixed(4)}`);
  }
  console.log(JSON.stringify({ benchmark: 'cocoeval', images: nImages, detsPerImage: dets, results: rows.map(({ stats, ...r }) => ({ ...r, AP: stats[0] })) }));
}

main();
