// `node cli/eval.js` modes keep to their own options: model mode (--weights) writes its detections
// only to --results-out, never to --dt (an input of file mode, which it used to overwrite), and
// refuses --gt, --iou-type, --per-class instead of ignoring them; file mode refuses model options;
// --max-images must be positive; a checkpoint whose class names differ from the annotation file's
// categories (the shapes model on COCO) is evaluated with a warning naming them.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
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

test.run();
