// `node cli/infer.js` end to end in a child process: the `tiny` preset with the parity fixture's
// formula weights on two tiny_coco images (at 64 px, to stay fast on lavapipe). The results file
// must be accepted by our COCOeval for bbox and segm, agree with the --dump tensors of the first
// image (bbox = xywh of det.boxes, RLE area = pixels of det.masks > 0.5), the PNGs must decode at
// the images' sizes, the dump must carry every inference name of the torchvision fixture, and
// user errors (missing image, corrupt image, missing file, mismatched weights) must exit non-zero
// with one clear line and no stack trace. Also tools/compare-dump's error measures.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { copyFileSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runScript } from './helpers/run-script.js';
import { ready } from './helpers/gpu.js';
import { encodeSafetensors, loadSafetensors } from '../engine/safetensors.js';
import { MaskRCNN } from '../model/maskrcnn.js';
import { getPreset } from '../model/presets.js';
import { fixtureStateDict } from '../model/fixture-weights.js';
import { decodeImage, encodePng } from '../data/image.js';
import { rleArea, rleFrString } from '../data/rle.js';
import { COCOeval } from '../data/cocoeval/index.js';
import type { CocoResult } from '../data/coco-json.js';
import { compareDumps, matchedBoxes, scaledError } from '../tools/compare-dump.js';
import { COCO_91_NAMES } from '../data/coco-categories.js';
import { cocoImageId, imageIdsFor, resolveLabelTable } from '../cli/infer-inputs.js';
import { nodeIO } from '../cli/node-io.js';

await ready;

const INFER = fileURLToPath(new URL('../cli/infer.js', import.meta.url));
const COMPARE = fileURLToPath(new URL('../tools/compare-dump.js', import.meta.url));
const DATA = '../shared/data/tiny_coco';
const IMAGES = ['000000017627.jpg', '000000025560.jpg'].map((f) => join(DATA, 'val2017', f));
const FIXTURE = '../shared/fixtures/torchvision-maskrcnn/case-000000555705/expected.safetensors';
const dir = mkdtempSync(join(tmpdir(), 'infer-test-'));

const run = runScript;

async function rejects(p: Promise<unknown>, re: RegExp): Promise<void> {
  let error: Error | null = null;
  try {
    await p;
  } catch (e) {
    error = e as Error;
  }
  assert.ok(error, `expected a rejection matching ${re}`);
  assert.match(error!.message, re);
}

const escapeRe = (s: string): string => s.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&');

/** stderr without Dawn's adapter warnings (cli/node-gpu.ts cannot silence them on a socket, as here). */
const errLines = (s: string): string[] => s.split('\n').filter((l) => l.trim() && !l.startsWith('Warning:'));
const hasStack = (s: string): boolean => /^\s+at .+\(.*:\d+:\d+\)$/m.test(s) || /^\s+at file:/m.test(s);

// The tiny preset's state dict filled with the fixture formula (tools/fixture-weights does the same).
const model = new MaskRCNN(getPreset('tiny'));
const weights = fixtureStateDict(Object.entries(model.stateDict()).map(([k, t]) => [k, t.shape] as const));
model.dispose();
const W = join(dir, 'tiny.safetensors');
writeFileSync(W, encodeSafetensors(weights, { preset: 'tiny' }));

test('infer: results accepted by COCOeval, consistent with the dump; PNGs at the image sizes', async () => {
  const out = join(dir, 'out'), json = join(dir, 'results.json'), dump = join(dir, 'dump.safetensors');
  const r = await run(INFER, ['--preset', 'tiny', '--weights', W, ...IMAGES, '--out', out, '--json', json,
    '--score-thresh', '0', '--min-size', '64', '--max-size', '96', '--dump', dump]);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /\[1\/2\] .*000000017627\.jpg 640x480 \(image_id 17627\): \d+ detections, \d+ ms/);
  assert.match(r.stderr, /\[2\/2\] .*000000025560\.jpg/);

  const results = JSON.parse(readFileSync(json, 'utf8')) as CocoResult[];
  assert.ok(results.length > 0, 'score-thresh 0 gives detections');
  assert.ok(results.every((d) => d.image_id === 17627 || d.image_id === 25560), 'image ids from the COCO file names');
  // label = COCO category id (91-index table): integers 1..90
  assert.ok(results.every((d) => Number.isInteger(d.category_id) && d.category_id >= 1 && d.category_id <= 90));
  const gt = JSON.parse(readFileSync(join(DATA, 'annotations/instances_val2017.json'), 'utf8'));
  for (const iouType of ['bbox', 'segm'] as const) {
    const E = new COCOeval(gt, results, iouType);
    E.params.imgIds = [17627, 25560];
    E.evaluate();
    E.accumulate();
    E.summarize();
    assert.is(E.stats.length, 12);
    assert.ok(E.stats.every((s) => Number.isFinite(s)), `${iouType} stats are numbers`);
  }

  // The dump: every inference tensor name of the torchvision fixture, with the fixture's layouts.
  const D = loadSafetensors(new Uint8Array(readFileSync(dump))).tensors;
  const fixtureNames = Object.keys(loadSafetensors(new Uint8Array(readFileSync(FIXTURE))).tensors)
    .filter((k) => !/^(loss|grad|target)\./.test(k));
  assert.equal(fixtureNames.filter((k) => !(k in D)), [], 'names missing from the dump');
  const first = results.filter((d) => d.image_id === 17627);
  const boxes = D['det.boxes']!;
  assert.equal(boxes.shape, [first.length, 4]);
  assert.equal(D['input.tensor']!.shape.slice(0, 2), [1, 3]);
  assert.equal(Array.from(D['input.image_size']!.data), [64, 85]);
  assert.equal(D['fpn.0']!.shape, [1, 64, 16, 24]); // padded 64x96 input, stride 4, 64 FPN channels
  assert.equal(D['rpn.objectness.0']!.shape, [1, 3, 16, 24]);
  assert.equal(D['mask.logits[0:5]']!.shape, [5, 91, 28, 28]);
  assert.equal(D['det.masks[0:5]']!.shape, [5, 480, 640]);
  const masks = D['det.masks[0:5]']!.data;
  for (let i = 0; i < first.length; i++) {
    const [x, y, w, h] = first[i]!.bbox!;
    const b = boxes.data.subarray(4 * i, 4 * i + 4);
    assert.ok(Math.abs(x - b[0]!) < 1e-4 && Math.abs(y - b[1]!) < 1e-4 && Math.abs(x + w - b[2]!) < 1e-3 && Math.abs(y + h - b[3]!) < 1e-3, `bbox ${i} is xywh of det.boxes`);
    assert.ok(Math.abs(first[i]!.score - D['det.scores']!.data[i]!) < 1e-7);
    if (i < 5) {
      const seg = first[i]!.segmentation as { size: [number, number]; counts: string };
      assert.equal(seg.size, [480, 640]);
      let above = 0;
      for (let p = i * 480 * 640; p < (i + 1) * 480 * 640; p++) if (masks[p]! > 0.5) above++;
      assert.is(rleArea(rleFrString(seg.counts, 480, 640)), above, `RLE area of mask ${i}`);
    }
  }

  for (const [k, f] of IMAGES.entries()) {
    const png = await decodeImage(new Uint8Array(readFileSync(join(out, `${k === 0 ? '000000017627' : '000000025560'}.png`))));
    const src = await decodeImage(new Uint8Array(readFileSync(f)));
    assert.equal([png.width, png.height], [src.width, src.height]);
    let changed = 0;
    for (let p = 0; p < png.data.length; p++) if (png.data[p] !== src.data[p]) changed++;
    assert.ok(changed > 0, 'something was drawn');
  }

  // compare-dump on the dump itself: every common tensor has scaled error 0 and the exit code is 0.
  const c = await run(COMPARE, [dump, dump, '--tol', '0']);
  assert.is(c.code, 0, c.stderr);
  assert.match(c.stdout, /worst scaled error 0\.00e\+0/);
});

test('infer --amp: the first image\'s dump agrees with fp32 within f16 tolerance (FPN, RPN, box head)', async () => {
  // Runs after the test above, whose fp32 dump of the same image is the reference.
  const fp32 = join(dir, 'dump.safetensors'), ampDump = join(dir, 'dump-amp.safetensors');
  const r = await run(INFER, ['--preset', 'tiny', '--weights', W, IMAGES[0]!, '--out', join(dir, 'out-amp'), '--no-draw',
    '--score-thresh', '0', '--min-size', '64', '--max-size', '96', '--dump', ampDump, '--amp']);
  assert.is(r.code, 0, r.stderr);
  assert.match(r.stderr, /--amp\)/);
  const c = await run(COMPARE, [ampDump, fp32, '--only', '^(fpn|rpn\\.objectness|rpn\\.deltas)', '--tol', '1e-2']);
  console.log(c.stdout.split('\n').filter((l) => /worst/.test(l)).join('\n'));
  assert.is(c.code, 0, c.stdout + c.stderr);
  // ...and the rounding ran: the FPN outputs are not bit-identical to fp32.
  const A = loadSafetensors(new Uint8Array(readFileSync(ampDump))).tensors, B = loadSafetensors(new Uint8Array(readFileSync(fp32))).tensors;
  assert.ok(A['fpn.0']!.data.some((v, i) => v !== B['fpn.0']!.data[i]), 'amp FPN output equals fp32 bit for bit');
});

test('infer: a missing image, a missing weights file and a corrupt image give one-line errors', async () => {
  const missing = await run(INFER, ['--preset', 'tiny', '--weights', W, join(dir, 'nope.jpg'), '--out', join(dir, 'o1')]);
  assert.is(missing.code, 1);
  assert.equal(errLines(missing.stderr), [`error: ${join(dir, 'nope.jpg')}: no such file or folder`]);

  const noWeights = await run(INFER, ['--preset', 'tiny', '--weights', join(dir, 'none.safetensors'), IMAGES[0]!, '--out', join(dir, 'o2')]);
  assert.is(noWeights.code, 1);
  assert.equal(errLines(noWeights.stderr), [`error: --weights ${join(dir, 'none.safetensors')}: no such file`]);

  const bad = join(dir, 'corrupt.jpg');
  writeFileSync(bad, Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3, 4, 5]));
  const corrupt = await run(INFER, ['--preset', 'tiny', '--weights', W, bad, '--out', join(dir, 'o3')]);
  assert.is(corrupt.code, 1);
  assert.match(corrupt.stderr, new RegExp(`\\[1/1\\] skipped: ${escapeRe(bad)}: cannot decode image`));
  assert.match(corrupt.stderr, /1 of 1 image\(s\) skipped/);
  assert.not.ok(hasStack(corrupt.stderr), corrupt.stderr);

  const usage = await run(INFER, ['--weights', W, IMAGES[0]!]);
  assert.is(usage.code, 2);
  assert.match(usage.stderr, /--preset is needed/);
});

test('infer: a corrupt file and a 3x1000 image are reported and skipped; the good image\'s results are written; exit 1', async () => {
  const folder = join(dir, 'mixed');
  mkdirSync(folder);
  copyFileSync(IMAGES[0]!, join(folder, 'a-good.jpg'));
  writeFileSync(join(folder, 'b-corrupt.jpg'), Uint8Array.from([0xff, 0xd8, 0xff, 0xe0, 9, 9, 9]));
  writeFileSync(join(folder, 'c-thin.png'), encodePng(new Uint8Array(3 * 1000 * 3).fill(128), 3, 1000));
  const json = join(dir, 'mixed.json');
  const r = await run(INFER, ['--preset', 'tiny', '--weights', W, folder, '--json', json, '--no-draw', '--score-thresh', '0', '--min-size', '64', '--max-size', '96']);
  assert.is(r.code, 1, r.stderr);
  assert.not.ok(hasStack(r.stderr), r.stderr);
  assert.match(r.stderr, /\[1\/3\] .*a-good\.jpg 640x480 \(image_id 1\): \d+ detections/);
  assert.match(r.stderr, new RegExp(`\\[2/3\\] skipped: ${escapeRe(join(folder, 'b-corrupt.jpg'))}: cannot decode image`));
  // torchvision fails on this image too (an empty interpolation); we say why.
  assert.match(r.stderr, new RegExp(`\\[3/3\\] skipped: ${escapeRe(join(folder, 'c-thin.png'))}: a 3x1000 image resizes to 0x96 px .*aspect ratio is too extreme`));
  assert.match(r.stderr, /2 of 3 image\(s\) skipped/);
  const results = JSON.parse(readFileSync(json, 'utf8')) as CocoResult[];
  assert.ok(results.length > 0, 'the good image has detections at score-thresh 0');
  assert.ok(results.every((d) => d.image_id === 1), 'only the good image has results');
});

test('infer: SIGINT after the first image stops the run with exit 130; the results file is a valid array of the finished images', async () => {
  const folder = join(dir, 'many');
  mkdirSync(folder);
  for (let i = 1; i <= 6; i++) copyFileSync(IMAGES[i % 2]!, join(folder, `img-${i}.jpg`));
  const json = join(dir, 'many.json');
  const child = spawn(process.execPath, [INFER, '--preset', 'tiny', '--weights', W, folder, '--json', json, '--no-draw', '--score-thresh', '0', '--min-size', '64', '--max-size', '96'], { stdio: ['ignore', 'pipe', 'pipe'] });
  let stderr = '', signalled = false;
  let fileAfterFirst: CocoResult[] | null = null;
  child.stderr.on('data', (d: Buffer) => {
    stderr += d.toString();
    if (!signalled && /\[1\/6\] /.test(stderr)) {
      signalled = true;
      // Written as it comes: the first image's results are in the file, as a whole array, now.
      fileAfterFirst = JSON.parse(readFileSync(json, 'utf8')) as CocoResult[];
      child.kill('SIGINT');
    }
  });
  const code = await new Promise<number | null>((resolve) => child.on('exit', (c) => resolve(c)));
  assert.ok(signalled, stderr);
  assert.is(code, 130, stderr);
  assert.not.ok(hasStack(stderr), stderr);
  assert.match(stderr, /SIGINT: stopping after this image/);
  assert.match(stderr, /SIGINT: stopped after [1-5] of 6 image\(s\)/);
  const done = Number(/stopped after (\d) of 6/.exec(stderr)![1]);
  const results = JSON.parse(readFileSync(json, 'utf8')) as CocoResult[];
  const ids = [...new Set(results.map((d) => d.image_id))].sort();
  assert.equal(ids, Array.from({ length: done }, (_, i) => i + 1), 'the finished images\' results, no others');
  assert.ok(fileAfterFirst!.length > 0 && fileAfterFirst!.every((d) => d.image_id === 1), 'after the first image the file held its results');
  assert.equal(results.slice(0, fileAfterFirst!.length), fileAfterFirst, 'later appends keep the earlier results');
});

test('infer: --min-size 0 and unreadable metadata are one-line errors; --score-thresh 2 and NaN weights warn', async () => {
  const common = ['--preset', 'tiny', IMAGES[0]!, '--no-draw', '--out', join(dir, 'o-warn')];
  const zero = await run(INFER, ['--weights', W, ...common, '--min-size', '0']);
  assert.is(zero.code, 2);
  assert.is(errLines(zero.stderr)[0], 'error: --min-size must be a positive integer (got 0)');
  assert.not.ok(hasStack(zero.stderr), zero.stderr);

  const badInfo = join(dir, 'bad-info.safetensors');
  writeFileSync(badInfo, encodeSafetensors(weights, { preset: 'tiny', info: '{not json' }));
  const info = await run(INFER, ['--weights', badInfo, ...common]);
  assert.is(info.code, 1);
  assert.match(errLines(info.stderr).join('\n'), new RegExp(`^error: --weights ${escapeRe(badInfo)}: __metadata__ "info" is not valid JSON: `));
  assert.not.ok(hasStack(info.stderr), info.stderr);

  const thresh = await run(INFER, ['--weights', W, ...common, '--score-thresh', '2', '--min-size', '64', '--max-size', '96']);
  assert.is(thresh.code, 0, thresh.stderr);
  assert.match(thresh.stderr, /warning: --score-thresh 2: scores lie in \[0, 1\], so no detection can pass it/);

  const nanFile = join(dir, 'nan.safetensors');
  writeFileSync(nanFile, encodeSafetensors(Object.fromEntries(Object.entries(weights).map(([k, t]) => [k, { ...t, data: new Float32Array(t.data.length).fill(NaN) }])), { preset: 'tiny' }));
  const nan = await run(INFER, ['--weights', nanFile, ...common, '--min-size', '64', '--max-size', '96']);
  assert.match(nan.stderr, new RegExp(`warning: --weights ${escapeRe(nanFile)}: (\\d+) of \\1 values are NaN or infinite \\(in .* and \\d+ more tensors\\); the detections will mean nothing`));
});

test('infer: a weights file that does not fit names the missing, unexpected and mis-shaped keys', async () => {
  const broken = { ...weights };
  delete broken['roi_heads.mask_predictor.mask_fcn_logits.bias'];
  broken['roi_heads.extra.weight'] = { dtype: 'float32', shape: [2], data: new Float32Array(2) };
  broken['rpn.head.cls_logits.bias'] = { dtype: 'float32', shape: [4], data: new Float32Array(4) };
  const file = join(dir, 'broken.safetensors');
  writeFileSync(file, encodeSafetensors(broken, { preset: 'tiny' }));
  const r = await run(INFER, ['--preset', 'tiny', '--weights', file, IMAGES[0]!, '--out', join(dir, 'o4')]);
  assert.is(r.code, 1);
  const lines = errLines(r.stderr).filter((l) => l.startsWith('error:'));
  assert.is(lines.length, 1, r.stderr);
  assert.match(lines[0]!, /does not fit model tiny/);
  assert.match(lines[0]!, /1 missing key\(s\): roi_heads\.mask_predictor\.mask_fcn_logits\.bias/);
  assert.match(lines[0]!, /1 unexpected key\(s\): roi_heads\.extra\.weight/);
  assert.match(lines[0]!, /rpn\.head\.cls_logits\.bias \(checkpoint \[4\], model \[3\]\)/);
  assert.not.ok(hasStack(r.stderr), r.stderr);

  const garbage = join(dir, 'garbage.safetensors');
  writeFileSync(garbage, 'not a safetensors file at all');
  const g = await run(INFER, ['--preset', 'tiny', '--weights', garbage, IMAGES[0]!, '--out', join(dir, 'o5')]);
  assert.is(g.code, 1);
  assert.match(errLines(g.stderr).join('\n'), /^error: --weights .*garbage\.safetensors: not a safetensors, PyTorch \.pth or Detectron2 \.pkl file \(first bytes 6e 6f 74/);
  assert.not.ok(hasStack(g.stderr), g.stderr);
});

test('compare-dump: scaled error max|a-b|/max|b|, boxes matched as sets, shape differences reported', () => {
  assert.equal(scaledError([1, 2, 3], [1, 4, 2]), { scaled: 2 / 4, maxAbs: 2 });
  assert.ok(Number.isNaN(scaledError([NaN], [1]).scaled));
  // the same two boxes in the other order, one off by 0.1 px
  assert.is(matchedBoxes([5, 5, 9, 9, 0, 0, 1, 1], [0, 0, 1, 1, 5, 5, 9, 9.1], 0.05), 0.5);
  assert.is(matchedBoxes([5, 5, 9, 9, 0, 0, 1, 1], [0, 0, 1, 1, 5, 5, 9, 9.1], 0.2), 1);
  const t = (data: number[], shape: number[]) => ({ dtype: 'float32' as const, shape, data: Float32Array.from(data) });
  const { rows, onlyA, onlyB } = compareDumps(
    { x: t([1, 2], [2]), y: t([1], [1]), a: t([0], [1]), 'det.boxes': t([0, 0, 2, 2], [1, 4]) },
    { x: t([1, 3], [2]), y: t([1, 2], [2]), b: t([0], [1]), 'det.boxes': t([0, 0, 2, 2, 1, 1, 3, 3], [2, 4]) },
  );
  const byName = Object.fromEntries(rows.map((r) => [r.name, r]));
  assert.is(byName.x!.scaled, 1 / 3);
  assert.is(byName.y!.scaled, null);
  assert.is(byName['det.boxes']!.matched, 0.5);
  assert.equal(onlyA, ['a']);
  assert.equal(onlyB, ['b']);
  // Rows that follow the proposals are compared through the proposal matching: the same rows in
  // the other order give 0 error there, while the plain row-by-row error is large.
  const paired = compareDumps(
    { 'rpn.proposals': t([5, 5, 9, 9, 0, 0, 1, 1], [2, 4]), 'box.class_logits': t([7, 8, 1, 2], [2, 2]) },
    { 'rpn.proposals': t([0, 0, 1, 1, 5, 5, 9, 9], [2, 4]), 'box.class_logits': t([1, 2, 7, 8], [2, 2]) },
  ).rows.find((r) => r.name === 'box.class_logits')!;
  assert.is(paired.scaled, 6 / 8);
  assert.equal(paired.paired, { scaled: 0, maxAbs: 0, rows: 2, of: 2, via: 'rpn.proposals' });
});

test('label tables: COCO 91-index names agree with the annotation file; --classes files; checkpoint categories', async () => {
  const gt = JSON.parse(readFileSync(join(DATA, 'annotations/instances_val2017.json'), 'utf8')) as { categories: { id: number; name: string }[] };
  assert.is(COCO_91_NAMES.length, 91);
  for (const c of gt.categories) assert.is(COCO_91_NAMES[c.id], c.name, `category ${c.id}`);
  assert.is(COCO_91_NAMES.filter((n) => n === 'N/A').length, 91 - 1 - 80);

  const coco = await resolveLabelTable(undefined, undefined, 91, nodeIO);
  assert.is(coco.catIds[18], 18);
  assert.is(coco.names[18], 'dog');
  await rejects(resolveLabelTable('coco', undefined, 5, nodeIO), /90 classes \(\+ background\), but the model has 4/);
  // a training checkpoint's categories: categories[label - 1]
  const stored = await resolveLabelTable(undefined, [{ id: 3, name: 'car' }, { id: 18, name: 'dog' }], 3, nodeIO);
  assert.equal([stored.names[2], stored.catIds[2]], ['dog', 18]);
  // an annotation file's categories are numbered in id order, whatever order the file lists them
  const ann = join(dir, 'cats.json');
  writeFileSync(ann, JSON.stringify({ categories: [{ id: 7, name: 'b' }, { id: 2, name: 'a' }] }));
  const fromAnn = await resolveLabelTable(ann, undefined, 3, nodeIO);
  assert.equal([...fromAnn.catIds], [0, 2, 7]);
  assert.equal(fromAnn.names, ['__background__', 'a', 'b']);
  const list = join(dir, 'names.json');
  writeFileSync(list, JSON.stringify(['x', 'y']));
  assert.equal((await resolveLabelTable(list, undefined, 3, nodeIO)).names, ['__background__', 'x', 'y']);
  await rejects(resolveLabelTable(list, undefined, 5, nodeIO), /2 classes/);
  assert.equal((await resolveLabelTable(undefined, undefined, 3, nodeIO)).names, ['__background__', 'class 1', 'class 2']);
});

test('image ids: COCO file names give their number, anything else the position', () => {
  assert.is(cocoImageId('a/b/000000555705.jpg'), 555705);
  assert.is(cocoImageId('COCO_val2014_000000000042.jpg'), 42);
  assert.is(cocoImageId('photo.jpg'), null);
  assert.equal(imageIdsFor(['x/000000000007.jpg', 'y/000000000003.png']), { ids: [7, 3], fromNames: true });
  assert.equal(imageIdsFor(['000000000007.jpg', 'cat.png']), { ids: [1, 2], fromNames: false });
  assert.equal(imageIdsFor(['a/000000000007.jpg', 'b/000000000007.jpg']), { ids: [1, 2], fromNames: false });
});

// The temp folder goes with the suite (it held up to ~50 MB per run when left behind).
test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
