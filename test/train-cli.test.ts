// `node cli/train.js` checks before it writes: a folder that already holds a run is refused (the
// message says how to continue it or replace it, and nothing in it changes) unless --overwrite; an
// unknown preset or a missing file is reported before the dataset is generated or a folder made; a
// corrupt train-config.json on --resume is named in the error.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { runScript, type ScriptResult } from './helpers/run-script.js';
import { microDataset, writeMicroConfig } from './train-fixture.js';

const TRAIN = fileURLToPath(new URL('../cli/train.js', import.meta.url));

const train = (args: string[]): Promise<ScriptResult> => runScript(TRAIN, args);

test('an unknown preset is refused before the dataset is generated or the run folder made', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'train-cli-'));
  try {
    const [out, cache] = [join(dir, 'run'), join(dir, 'cache')];
    const r = await train(['--preset', 'nope', '--out', out, '--cache-dir', cache]);
    assert.is(r.code, 2, r.stderr);
    assert.match(r.stderr, /unknown preset 'nope'; available: .*tiny-cpu/);
    assert.not.ok(existsSync(cache), 'no dataset generated');
    assert.not.ok(existsSync(out), 'no run folder made');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a folder holding a run is refused (suggesting --resume and --overwrite) and left as it was; --overwrite replaces it', async () => {
  const d = await microDataset(2);
  try {
    const out = join(d.dir, 'run');
    const cache = join(d.dir, 'cache');
    mkdirSync(out);
    const before = '{"marker": "an earlier run"}\n';
    writeFileSync(join(out, 'train-config.json'), before);
    writeFileSync(join(out, 'metrics.jsonl'), '');
    const config = writeMicroConfig(d, { iters: 1, batch: 2 });
    const r = await train(['--config', config, '--out', out, '--cache-dir', cache]);
    assert.is(r.code, 2, r.stderr);
    assert.match(r.stderr, `${out} already holds a run (train-config.json, metrics.jsonl)`);
    assert.match(r.stderr, `--resume ${out}`);
    assert.match(r.stderr, '--overwrite');
    assert.is(readFileSync(join(out, 'train-config.json'), 'utf8'), before, 'the earlier run is untouched');
    // A missing initial-weights file: reported before anything is written, also with --overwrite.
    const w = await train(['--config', config, '--out', out, '--overwrite', '--weights', join(d.dir, 'missing.safetensors')]);
    assert.is(w.code, 2, w.stderr);
    assert.match(w.stderr, /--weights .*missing\.safetensors: no such file/);
    assert.is(readFileSync(join(out, 'train-config.json'), 'utf8'), before);
    const o = await train(['--config', config, '--out', out, '--overwrite']);
    assert.is(o.code, 0, o.stderr);
    assert.is((JSON.parse(readFileSync(join(out, 'train-config.json'), 'utf8')) as { iters: number }).iters, 1, 'replaced by the new run');
    assert.ok(existsSync(join(out, 'checkpoint.safetensors')));
  } finally {
    rmSync(d.dir, { recursive: true, force: true });
  }
});

test('--resume with a corrupt train-config.json names the file', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'train-cli-'));
  try {
    writeFileSync(join(dir, 'train-config.json'), '{"iters": 10,');
    const r = await train(['--resume', dir]);
    assert.is(r.code, 2, r.stderr);
    assert.match(r.stderr, `${join(dir, 'train-config.json')} is not valid JSON`);
    assert.not.match(r.stderr, /\n\s+at /, 'no stack trace');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
