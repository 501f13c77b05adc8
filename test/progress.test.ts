// The progress line's pieces: durations (ETA) read as people write them, with no "6m60s".
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatDuration, startCompileStatus, ProgressReporter, ETA_WINDOW } from '../train/progress.js';
import { LOSS_TERMS } from '../model/maskrcnn.js';

test('formatDuration: seconds, minutes with two-digit seconds, hours; rounding carries', () => {
  assert.is(formatDuration(0), '0s');
  assert.is(formatDuration(59.4), '59s');
  assert.is(formatDuration(59.6), '1m00s');
  assert.is(formatDuration(419.6), '7m00s');
  assert.is(formatDuration(61), '1m01s');
  assert.is(formatDuration(3599.7), '1h00m');
  assert.is(formatDuration(7384), '2h03m');
  assert.is(formatDuration(Infinity), '?');
  assert.is(formatDuration(NaN), '?');
});

test('startCompileStatus: a line while pipelines are being created, none once stopped or when none were', async () => {
  const lines: string[] = [];
  let pipelines = 10;
  const stop = startCompileStatus((l) => lines.push(l), () => pipelines, 5, 5);
  pipelines = 47;
  for (let i = 0; i < 500 && lines.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  stop();
  assert.ok(lines.length >= 1, 'no status line');
  assert.match(lines[0]!, /^first step: compiling kernels \(37 pipelines so far, \d+s\) \.\.\.$/);
  const after = lines.length;
  await new Promise((r) => setTimeout(r, 50));
  assert.is(lines.length, after, 'lines after stop()');
  // No pipeline created: nothing to say.
  const quiet: string[] = [];
  const stop2 = startCompileStatus((l) => quiet.push(l), () => 5, 1, 1);
  await new Promise((r) => setTimeout(r, 50));
  stop2();
  assert.equal(quiet, []);
});

test('startCompileStatus: says how many fast kernel variants still compile in the background', async () => {
  const lines: string[] = [];
  let pending = 12, pipelines = 0;
  const stop = startCompileStatus((l) => lines.push(l), () => pipelines, 1, 1, () => pending);
  pipelines = 3;
  for (let i = 0; i < 500 && lines.length === 0; i++) await new Promise((r) => setTimeout(r, 10));
  pending = 0;
  const n = lines.length;
  for (let i = 0; i < 500 && lines.length === n; i++) await new Promise((r) => setTimeout(r, 10));
  stop();
  assert.match(lines[0]!, /^first step: compiling kernels \(3 pipelines so far, \d+s; 12 fast variants compiling in the background, quick ones running meanwhile\) \.\.\.$/);
  assert.match(lines[lines.length - 1]!, /^first step: compiling kernels \(3 pipelines so far, \d+s\) \.\.\.$/, 'none pending: no background clause');
});

test('ProgressReporter: the ETA follows the recent iterations, the run summary the whole run', async () => {
  const lines: string[] = [];
  const p = new ProgressReporter({ logPath: null, totalIters: 200, every: 20, print: (l) => lines.push(l) });
  await p.start(0);
  const losses = Object.fromEntries(LOSS_TERMS.map((k) => [k, 0.5])) as Record<(typeof LOSS_TERMS)[number], number>;
  // A cold start: 60 slow iterations (kernels compiling), then the steady speed, 4x faster.
  for (let iter = 1; iter <= 120; iter++) {
    await p.iteration({ iter, losses, total: 2.5, lr: 0.02, seconds: iter <= 60 ? 2 : 0.5, images: 4 });
  }
  assert.is(lines.length, 6);
  assert.ok(ETA_WINDOW <= 60, 'the window must fit in the steady stretch for this test');
  // 80 iterations left at the last window's 0.5 s each (the whole-run mean would say 1m40s).
  assert.match(lines[5]!, /^iter 120\/200 .* 8\.00 img\/s .*ETA 40s$/);
  // First line: 19 timed iterations at 2 s (the first one is left out): 180 x 2 s.
  assert.match(lines[0]!, /ETA 6m00s$/);
  // The summary's speed is the whole run's (first iteration left out): (59 x 2 + 60 x 0.5) / 119.
  assert.ok(Math.abs(p.secondsPerIter() - (59 * 2 + 60 * 0.5) / 119) < 1e-12);
  assert.is(p.recentSecondsPerIter(), 0.5);
});

test.run();
