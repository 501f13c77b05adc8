// Node's implementation of data/io.ts's FileIO, and the file the JPEG decoder's WebAssembly is
// read from in Node (the package's own copy; browsers fetch the one web/build.js places).
import { promises as fs } from 'node:fs';
import { createRequire } from 'node:module';
import * as path from 'node:path';
import type { FileIO } from '../data/io.js';
import { setJpegWasmSource } from '../data/jpeg.js';

export const JPEG_WASM_PATH = createRequire(import.meta.url).resolve('@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm');
setJpegWasmSource(async () => new Uint8Array(await fs.readFile(JPEG_WASM_PATH)));

let tempCounter = 0;
/** Temp files are named FILE.tmp-PID-N next to FILE. */
const TEMP_MARK = '.tmp-';

function processAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch (e) {
    return (e as NodeJS.ErrnoException).code === 'EPERM';
  }
}

/** Removes temp files of `p` left by processes that no longer run (a crash, a kill -9). */
async function removeStaleTemps(p: string): Promise<void> {
  const prefix = path.basename(p) + TEMP_MARK;
  let names: string[];
  try {
    names = await fs.readdir(path.dirname(p));
  } catch {
    return;
  }
  for (const name of names) {
    if (!name.startsWith(prefix)) continue;
    const pid = Number(/^(\d+)-\d+$/.exec(name.slice(prefix.length))?.[1]);
    if (pid && pid !== process.pid && !processAlive(pid)) await fs.rm(path.join(path.dirname(p), name), { force: true }).catch(() => {});
  }
}

export const nodeIO: FileIO = {
  async readBytes(p) {
    try {
      const buf = await fs.readFile(p);
      return new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength);
    } catch (e) {
      throw new Error(`cannot read ${p}: ${(e as Error).message}`);
    }
  },
  async readText(p) {
    try {
      return await fs.readFile(p, 'utf8');
    } catch (e) {
      throw new Error(`cannot read ${p}: ${(e as Error).message}`);
    }
  },
  async writeBytes(p, data) {
    try {
      await fs.mkdir(path.dirname(p), { recursive: true });
    } catch (e) {
      throw new Error(`cannot write ${p}: ${(e as Error).message}`);
    }
    await removeStaleTemps(p);
    const tmp = `${p}${TEMP_MARK}${process.pid}-${tempCounter++}`;
    try {
      const handle = await fs.open(tmp, 'w');
      try {
        await handle.writeFile(data);
        await handle.sync();
      } finally {
        await handle.close();
      }
      await fs.rename(tmp, p);
    } catch (e) {
      // A full disk must not leave a half-written temp file behind (the next try would fail too).
      await fs.rm(tmp, { force: true }).catch(() => {});
      const code = (e as NodeJS.ErrnoException).code;
      throw new Error(`cannot write ${p}${code === 'ENOSPC' ? ' (no space left on the device)' : ''}: ${(e as Error).message}`);
    }
  },
  async writeText(p, text) {
    await nodeIO.writeBytes(p, new TextEncoder().encode(text));
  },
  async appendText(p, text) {
    await fs.mkdir(path.dirname(p), { recursive: true });
    await fs.appendFile(p, text);
  },
  async exists(p) {
    try {
      await fs.access(p);
      return true;
    } catch {
      return false;
    }
  },
  async list(dir) {
    return (await fs.readdir(dir)).sort();
  },
  join: (...parts) => path.join(...parts),
};
