// The progress line's pieces: durations (ETA) read as people write them, with no "6m60s".
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { formatDuration } from '../train/progress.js';

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

test.run();
