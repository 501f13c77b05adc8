// `node cli/eval.js` modes keep to their own options: model mode (--weights) writes its detections
// only to --results-out, never to --dt (an input of file mode, which it used to overwrite), and
// refuses --gt, --iou-type, --per-class instead of ignoring them; file mode refuses model options;
// --max-images must be positive; a checkpoint whose class names differ from the annotation file's
// categories (the shapes model on COCO) is evaluated with a warning naming them. File mode names
// the file and record at fault, and warns of RLE counts that do not add up to the mask's size.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

const EVAL = fileURLToPath(new URL('../cli/eval.js', import.meta.url));
const ANN = '../shared/data/tiny_coco/annotations/instances_val2017.json';
const IMAGES = '../shared/data/tiny_coco/val2017';
const SHAPES = 'web/models/shapes-tiny-cpu.safetensors';
const dir = mkdtempSync(join(tmpdir(), 'eval-cli-'));

const run = (args: string[]) => spawnSync(process.execPath, [EVAL, ...args], { encoding: 'utf8' });

test('model mode: --dt is refused and the file left as it was', () => {
  const mine = join(dir, 'mine.json');
  writeFileSync(mine, '[{"image_id": 1}]');
  const r = run(['--weights', SHAPES, '--images', IMAGES, '--ann', ANN, '--dt', mine]);
  assert.is(r.status, 2, r.stderr);
  assert.match(r.stderr, /error: --dt does not apply in model mode .*--results-out/);
  assert.is(readFileSync(mine, 'utf8'), '[{"image_id": 1}]');
});

test('model mode refuses file-mode options; file mode refuses model options', () => {
  const m = run(['--weights', SHAPES, '--images', IMAGES, '--ann', ANN, '--gt', ANN, '--iou-type', 'segm', '--per-class']);
  assert.is(m.status, 2);
  assert.match(m.stderr, /error: --gt, --iou-type, --per-class do not apply in model mode/);
  const f = run(['--gt', ANN, '--dt', join(dir, 'x.json'), '--images', IMAGES, '--max-images', '3']);
  assert.is(f.status, 2);
  assert.match(f.stderr, /error: --images, --max-images do not apply in file mode/);
  const out = run(['--weights', SHAPES, '--images', IMAGES, '--ann', ANN, '--results-out', ANN]);
  assert.is(out.status, 2);
  assert.match(out.stderr, /--results-out .* is an input of this run/);
});

test('model mode: --max-images and --batch must be positive integers', () => {
  for (const [flag, value] of [['--max-images', '-1'], ['--max-images', '0'], ['--batch', '1.5']] as const) {
    const r = run(['--weights', SHAPES, '--images', IMAGES, '--ann', ANN, flag, value]);
    assert.is(r.status, 2, `${flag} ${value}`);
    assert.match(r.stderr, new RegExp(`${flag} must be a positive integer \\(got ${value}\\)`));
  }
});

test('model mode: the shapes model on COCO warns that its classes are not the file\'s; results go to --results-out', () => {
  const out = join(dir, 'shapes-on-coco.json');
  const r = run(['--weights', SHAPES, '--images', IMAGES, '--ann', ANN, '--max-images', '1', '--results-out', out, '--quiet']);
  assert.is(r.status, 0, r.stderr);
  assert.match(r.stderr, /warning: the checkpoint's classes differ from .*instances_val2017\.json's categories: id 1 is '\w+' in the checkpoint, 'person' in the file/);
  assert.ok(Array.isArray(JSON.parse(readFileSync(out, 'utf8'))));
});

const GT = { images: [{ id: 1, width: 4, height: 3, file_name: 'a.jpg' }], categories: [{ id: 1, name: 'thing' }],
  annotations: [{ id: 1, image_id: 1, category_id: 1, area: 4, bbox: [0, 0, 2, 2], iscrowd: 0, segmentation: [[0, 0, 2, 0, 2, 2, 0, 2]] }] };
const seg = (counts: unknown) => ({ image_id: 1, category_id: 1, score: 0.9, segmentation: { size: [3, 4], counts } });

test('file mode: errors name the file and the record; RLE counts not adding up to h*w are evaluated with a warning', () => {
  const gt = join(dir, 'gt.json'), noAnn = join(dir, 'no-ann.json'), dt = join(dir, 'dt.json');
  writeFileSync(gt, JSON.stringify(GT));
  writeFileSync(noAnn, JSON.stringify({ ...GT, annotations: undefined }));
  writeFileSync(dt, '[]');
  const m = run(['--gt', noAnn, '--dt', dt, '--iou-type', 'segm', '--quiet']);
  assert.is(m.status, 1, m.stderr);
  assert.equal(m.stderr.trim(), `error: ground truth ${noAnn}: annotations is missing`);

  writeFileSync(dt, JSON.stringify([seg([0, 12]), seg('0!')]));
  const bad = run(['--gt', gt, '--dt', dt, '--iou-type', 'segm', '--quiet']);
  assert.is(bad.status, 1);
  assert.match(bad.stderr.trim(), new RegExp(`^error: results ${dt.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')}: results\\[1\\]\\.segmentation\\.counts: RLE string`));

  writeFileSync(dt, JSON.stringify([seg([0, 12]), seg([2, 3, 1]), seg([0, 20])]));
  const sum = run(['--gt', gt, '--dt', dt, '--iou-type', 'segm', '--quiet']);
  assert.is(sum.status, 0, sum.stderr);
  assert.equal(sum.stderr.trim().split('\n'), [
    'warning: results[1].segmentation: RLE counts add up to 6 pixels, but its size 3x4 has 12',
    'warning: results[2].segmentation: RLE counts add up to 20 pixels, but its size 3x4 has 12',
  ]);
});

// The temp folder goes with the suite (it held up to ~50 MB per run when left behind).
test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
