// Checkpoints: a round trip through the file format (model tensors, momentum buffers, state), and
// atomicity: a child process rewrites a large checkpoint in a loop and is SIGKILLed at random
// moments; every time, the file on disk must load and be one complete version (all its values
// equal the iteration its metadata names), never a torn mix. Most kills are fired the moment a
// temp file appears (so they land mid-write); leftover temp files prove they did.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { mkdtempSync, readdirSync, rmSync, watch } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ready } from './helpers/gpu.js';
import { tensor } from '../engine/ops/create.js';
import { SGD } from '../engine/optim/sgd.js';
import { Linear } from '../engine/nn/linear.js';
import { Rng } from '../engine/random.js';
import { nodeIO } from '../cli/node-io.js';
import { decodeCheckpoint, encodeCheckpoint, loadCheckpoint } from '../model/checkpoint.js';
import { restoreCheckpoint } from '../train/checkpoint.js';
import { getPreset } from '../model/presets.js';

await ready;

const CKPT_MODULE = fileURLToPath(new URL('../train/checkpoint.js', import.meta.url));
const IO_MODULE = fileURLToPath(new URL('../cli/node-io.js', import.meta.url));

test('checkpoint round trip: model, momentum buffers, state', async () => {
  const rng = new Rng(3);
  const a = new Linear(5, 3, { rng });
  const opt = new SGD(a.parameters(), { lr: 0.1, momentum: 0.9 });
  for (let s = 0; s < 2; s++) {
    const y = a.forward(tensor(Float32Array.from({ length: 10 }, (_, i) => i / 7 - 0.5), [2, 5]));
    const l = y.square().sum();
    l.backward();
    opt.step();
    opt.zeroGrad();
    y.dispose();
    l.dispose();
  }
  const state = { iter: 2, loader: { epoch: 1, index: 3 }, rngState: rng.getState(), model: getPreset('tiny'), categories: [{ id: 7, name: 'x' }] };
  const bytes = await encodeCheckpoint(a, opt, state);
  const c = decodeCheckpoint(bytes);
  assert.ok(c.state);
  assert.is(c.state!.iter, 2);
  assert.equal(c.state!.loader, { epoch: 1, index: 3 });
  assert.is(c.state!.rngState, rng.getState());
  assert.is(c.state!.optimizer.step, 2);
  assert.equal(Object.keys(c.momentum).sort(), ['0', '1']);
  const b = new Linear(5, 3, { rng: new Rng(99) });
  const opt2 = new SGD(b.parameters(), { lr: 0.5, momentum: 0.9 });
  restoreCheckpoint(c, b, opt2);
  assert.equal(await b.getParameter('weight')!.floatData(), await a.getParameter('weight')!.floatData());
  assert.is(opt2.stepCount, 2);
  // The optimizer keeps its own hyper-parameters (a resumed run's config decides them), not the saved lr 0.1.
  assert.is(opt2.lr, 0.5);
  assert.is(opt2.paramGroups[0]!.initialLr, 0.5);
  const m1 = opt.stateDict().momentumBuffers['0']!;
  const m2 = opt2.stateDict().momentumBuffers['0']!;
  assert.equal(await (m2 as import('../engine/tensor.js').Tensor).floatData(), await (m1 as import('../engine/tensor.js').Tensor).floatData());
  for (const m of [a, b]) m.dispose();
  for (const o of [opt, opt2]) o.dispose();
});

// The child: rewrites `path` forever with 4M-float tensors whose every value is the version number,
// printing "saved k" after each completed write. The model is a stand-in with host-resident data,
// so the child needs no GPU; the bytes go through the real encodeCheckpoint / saveCheckpoint path.
const CHILD = `
const { saveCheckpoint } = await import(${JSON.stringify(CKPT_MODULE)});
const { nodeIO } = await import(${JSON.stringify(IO_MODULE)});
const path = process.argv[1];
const n = 1 << 22;
for (let k = 1; ; k++) {
  const data = new Float32Array(n).fill(k);
  const t = { dtype: 'float32', shape: [n], isDisposed: false, data: async () => data };
  const model = { stateDict: () => ({ 'w': t, 'v': t }) };
  await saveCheckpoint(nodeIO, path, model, null, { iter: k, loader: { epoch: 0, index: k }, rngState: k, model: {}, categories: [], optimizer: { step: k, groups: [] } });
  process.stdout.write('saved ' + k + '\\n');
}
`;

/** Runs the child until it has saved `afterSaved` versions, then SIGKILLs it: as soon as its next
 *  temp file appears (mid-write) when `midWrite`, else after `delayMs`. Resolves with the last
 *  version the child reported. */
function runChildAndKill(path: string, afterSaved: number, midWrite: boolean, delayMs: number): Promise<number> {
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, ['--input-type=module', '-e', CHILD, path], { stdio: ['ignore', 'pipe', 'inherit'] });
    let lastSaved = 0;
    let killed = false;
    const kill = (): void => {
      if (killed) return;
      killed = true;
      child.kill('SIGKILL');
    };
    const watcher = watch(dirname(path), (_event, name) => {
      if (midWrite && lastSaved >= afterSaved && name && String(name).includes('.tmp-')) kill();
    });
    child.stdout.on('data', (d: Buffer) => {
      for (const m of d.toString().matchAll(/saved (\d+)/g)) lastSaved = Number(m[1]);
      if (!midWrite && lastSaved >= afterSaved) setTimeout(kill, delayMs);
    });
    child.on('error', reject);
    child.on('exit', () => {
      watcher.close();
      resolve(lastSaved);
    });
  });
}

test('a SIGKILL while a checkpoint is being written leaves a complete, readable checkpoint', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'ckpt-kill-'));
  const path = join(dir, 'checkpoint.safetensors');
  try {
    let interruptedWrites = 0;
    let previous = 0;
    for (let round = 0; round < 6; round++) {
      const lastReported = await runChildAndKill(path, 1 + (round % 2), round < 4, (round * 37) % 120);
      const c = await loadCheckpoint(nodeIO, path);
      const iter = c.state!.iter;
      // The file is the last reported version or the one after it (finished but not yet reported).
      assert.ok(iter >= lastReported && iter <= lastReported + 1, `round ${round}: file has version ${iter}, child reported ${lastReported}`);
      assert.ok(iter >= 1, 'a complete version exists');
      for (const name of ['w', 'v']) {
        const d = c.model[name]!.data;
        assert.is(d.length, 1 << 22);
        let bad = 0;
        for (let i = 0; i < d.length; i += 997) if (d[i] !== iter) bad++;
        assert.is(bad, 0, `round ${round}: tensor ${name} mixes versions (metadata says ${iter})`);
      }
      const temps = readdirSync(dir).filter((f) => f.includes('.tmp-'));
      if (temps.length) interruptedWrites++;
      for (const t of temps) rmSync(join(dir, t));
      previous = iter;
    }
    console.log(`    ${interruptedWrites} of 6 kills landed during a write (left a temp file); last version ${previous}`);
    assert.ok(interruptedWrites >= 1, 'no kill hit a write in progress, so atomicity was not exercised');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
