// cli/node-io.ts's atomic writes on a full disk: the error names the file and says the disk is
// full, no temp file is left behind (a 64 KiB tmpfs; skipped, saying so, where mount is not
// permitted), and temp files of dead processes are removed by the next write of the same file.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeIO } from '../cli/node-io.js';

function tryMountTmpfs(dir: string, size: string): boolean {
  try {
    execFileSync('mount', ['-t', 'tmpfs', '-o', `size=${size}`, 'tmpfs', dir], { stdio: 'pipe' });
    return true;
  } catch {
    return false;
  }
}

test('a full disk: the error names the file, no temp file is left, the old file stays', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'disk-full-'));
  if (!tryMountTmpfs(dir, '64k')) {
    console.log('    SKIPPED: cannot mount a tmpfs here (needs root); the disk-full case is untested');
    rmSync(dir, { recursive: true, force: true });
    return;
  }
  try {
    const file = join(dir, 'checkpoint.safetensors');
    await nodeIO.writeBytes(file, new Uint8Array(1000).fill(7));
    let error: Error | undefined;
    try {
      await nodeIO.writeBytes(file, new Uint8Array(200_000));
    } catch (e) {
      error = e as Error;
    }
    assert.ok(error, 'writing 200 kB to a 64 KiB disk fails');
    assert.match(error!.message, new RegExp(`^cannot write ${file.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} \\(no space left on the device\\)`));
    assert.equal(readdirSync(dir), ['checkpoint.safetensors'], 'no temp file left');
    assert.equal([...readFileSync(file)], Array(1000).fill(7), 'the previous version is intact');
  } finally {
    execFileSync('umount', [dir]);
    rmSync(dir, { recursive: true, force: true });
  }
});

test('temp files of dead processes are removed by the next write; a live process\'s are kept', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'stale-tmp-'));
  try {
    const file = join(dir, 'sub', 'model.safetensors');
    mkdirSync(join(dir, 'sub'));
    // pid 2^22 + 1 is above Linux's largest pid_max, so it names no process.
    const dead = `${file}.tmp-${2 ** 22 + 1}-0`, live = `${file}.tmp-${process.ppid}-3`, other = join(dir, 'sub', 'other.safetensors.tmp-4194305-0');
    for (const f of [dead, live, other]) writeFileSync(f, 'x');
    await nodeIO.writeBytes(file, new Uint8Array([1, 2, 3]));
    assert.not.ok(existsSync(dead), 'a dead process\'s temp file is removed');
    assert.ok(existsSync(live), 'a running process\'s temp file is kept (it may still be writing)');
    assert.ok(existsSync(other), 'another file\'s temp files are not touched');
    assert.equal([...readFileSync(file)], [1, 2, 3]);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test.run();
