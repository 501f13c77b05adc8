// COCOeval against pycocotools' numbers on the shared fixtures (bbox and segm), plus the CLI.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { cocoEvaluate, defaultParams, pairwiseSum, pyFixed } from '../data/cocoeval/index.js';

const FIX = '../shared/fixtures/cocoeval';
const CASES: { name: string; gt: string }[] = [
  { name: 'val2014_100', gt: `${FIX}/val2014_100/instances_val2014_100.json` },
  { name: 'tiny_val2017_synth', gt: '../shared/data/tiny_coco/annotations/instances_val2017.json' },
];
const readJson = (p: string) => JSON.parse(readFileSync(p, 'utf8'));
const gtCache = new Map<string, string>();
const gtText = (p: string) => { if (!gtCache.has(p)) gtCache.set(p, readFileSync(p, 'utf8')); return JSON.parse(gtCache.get(p)!); };

test('thresholds are numpy linspace values', () => {
  const p = defaultParams('bbox');
  assert.equal(p.iouThrs, [0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.8999999999999999, 0.95]);
  assert.is(p.recThrs.length, 101);
  assert.is(p.recThrs[0], 0); assert.is(p.recThrs[100], 1);
  for (let r = 0; r < 100; r++) assert.is(p.recThrs[r], r * 0.01);
  assert.equal(p.areaRng, [[0, 1e10], [0, 1024], [1024, 9216], [9216, 1e10]]);
});

test("numpy's pairwise sum and Python's {:0.3f}", () => {
  // reference values printed by numpy 2.4 / Python 3 for the same inputs
  const a = Array.from({ length: 1013 }, (_, i) => (i * 0.37) % 1.1);
  assert.is(pairwiseSum(a), 558.3599999999822); // a plain left-to-right sum gives 558.3599999999825
  assert.is(pyFixed(0.0625, 3), '0.062'); // exact ties round half to even
  assert.is(pyFixed(0.1875, 3), '0.188');
  assert.is(pyFixed(0.125, 2), '0.12');
  assert.is(pyFixed(0.0005, 3), '0.001'); // not a tie in binary
  assert.is(pyFixed(-1, 3), '-1.000');
});

for (const c of CASES) {
  for (const iouType of ['bbox', 'segm'] as const) {
    test(`${c.name} ${iouType} matches pycocotools to 1e-12`, () => {
      const expected = readJson(`${FIX}/${c.name}/expected_${iouType}.json`);
      assert.is(expected.iouType, iouType);
      const E = cocoEvaluate(gtText(c.gt), readJson(`${FIX}/${c.name}/results_${iouType}.json`), iouType);
      assert.is(E.stats.length, 12);
      for (let i = 0; i < 12; i++) {
        const d = Math.abs(E.stats[i] - expected.stats[i]);
        assert.ok(d <= 1e-12, `${expected.names[i]}: got ${E.stats[i]}, pycocotools ${expected.stats[i]} (diff ${d})`);
      }
      // precision layout [T, R, K, A, M]
      const [T, R, K, A, M] = E.eval!.counts;
      assert.equal([T, R, A, M], [10, 101, 4, 3]);
      assert.is(K, 80);
      assert.is(E.eval!.precision.length, T * R * K * A * M);
      assert.is(E.eval!.recall.length, T * K * A * M);
    });
  }
}

test('summary lines are formatted as pycocotools prints them', () => {
  const c = CASES[0];
  const E = cocoEvaluate(gtText(c.gt), readJson(`${FIX}/${c.name}/results_bbox.json`), 'bbox');
  const lines = E.entries.map((e) => e.line);
  assert.is(lines[0], ' Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.505');
  assert.is(lines[1], ' Average Precision  (AP) @[ IoU=0.50      | area=   all | maxDets=100 ] = 0.697');
  assert.is(lines[4], ' Average Precision  (AP) @[ IoU=0.50:0.95 | area=medium | maxDets=100 ] = 0.519');
  assert.is(lines[6], ' Average Recall     (AR) @[ IoU=0.50:0.95 | area=   all | maxDets=  1 ] = 0.387');
  assert.is(lines[11], ' Average Recall     (AR) @[ IoU=0.50:0.95 | area= large | maxDets=100 ] = 0.564');
  const rows = E.perCategory();
  assert.is(rows.length, 80);
  assert.is(rows[0].name, 'person');
});

test('CLI: --json ends with the full-precision stats', () => {
  const cli = fileURLToPath(new URL('../cli/eval.js', import.meta.url));
  const c = CASES[1];
  const out = execFileSync(process.execPath, [cli, '--gt', c.gt, '--dt', `${FIX}/${c.name}/results_segm.json`,
    '--iou-type', 'segm', '--json', '--per-class', '--quiet'], { encoding: 'utf8' });
  const lines = out.trimEnd().split('\n');
  const last = JSON.parse(lines[lines.length - 1]);
  const expected = readJson(`${FIX}/${c.name}/expected_segm.json`).stats as number[];
  assert.is(last.stats.length, 12);
  for (let i = 0; i < 12; i++) assert.ok(Math.abs(last.stats[i] - expected[i]) <= 1e-12);
  assert.ok(lines[0].startsWith(' Average Precision  (AP) @[ IoU=0.50:0.95 | area=   all | maxDets=100 ] = 0.340'));
  assert.ok(out.includes('category'), 'per-class table printed');
});

test('CLI: bad arguments exit with a message', () => {
  const cli = fileURLToPath(new URL('../cli/eval.js', import.meta.url));
  try {
    execFileSync(process.execPath, [cli, '--gt', 'x.json', '--iou-type', 'keypoints'], { encoding: 'utf8', stdio: 'pipe' });
    assert.unreachable('should fail');
  } catch (e) {
    const err = e as { status: number; stderr: string };
    assert.is(err.status, 2);
    assert.match(err.stderr, /--iou-type/);
  }
});

test.run();
