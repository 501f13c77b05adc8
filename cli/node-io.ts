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
    await fs.mkdir(path.dirname(p), { recursive: true });
    const tmp = `${p}.tmp-${process.pid}-${tempCounter++}`;
    const handle = await fs.open(tmp, 'w');
    try {
      await handle.writeFile(data);
      await handle.sync();
    } finally {
      await handle.close();
    }
    await fs.rename(tmp, p);
  },
  async writeText(p, text) {
    await nodeIO.writeBytes(p, new TextEncoder().encode(text));
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
