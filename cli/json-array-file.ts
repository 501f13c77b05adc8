// A JSON array file written as its items come: after every append the file on disk is a complete,
// valid JSON array of everything appended so far (the closing bracket is rewritten in place after
// each append), so a long `infer` run that is interrupted, killed or crashes keeps the results of
// the images it finished, and a reader may load the file at any time. Each append is one positioned
// write; the file is synced on close. Why not temp + rename per image: rewriting the whole file
// after every image is quadratic in the results' size (RLE masks for thousands of images).
import { promises as fs } from 'node:fs';
import path from 'node:path';

const CLOSE = '\n]\n';

/** A write to the file failed (disk full, file removed): the run cannot keep its results. */
export class JsonWriteError extends Error {}

export class JsonArrayFile {
  private constructor(
    readonly path: string,
    private handle: fs.FileHandle | null,
    /** Bytes before the closing bracket. */
    private end: number,
    private count: number,
  ) {}

  /** Creates (or truncates) the file as an empty array, making its folder; errors name the file. */
  static async create(file: string): Promise<JsonArrayFile> {
    try {
      await fs.mkdir(path.dirname(file), { recursive: true });
      const handle = await fs.open(file, 'w');
      const head = Buffer.from('[');
      await handle.write(Buffer.concat([head, Buffer.from(CLOSE)]), 0, undefined, 0);
      return new JsonArrayFile(file, handle, head.length, 0);
    } catch (e) {
      throw new JsonWriteError(`cannot write ${file}: ${(e as Error).message}`);
    }
  }

  /** How many items the file holds. */
  get length(): number {
    return this.count;
  }

  /** Appends items (one JSON value per line); the file is a valid array again when this resolves. */
  async append(items: readonly unknown[]): Promise<void> {
    if (!this.handle) throw new Error(`${this.path}: appended to after close`);
    if (items.length === 0) return;
    const body = items.map((it, i) => `${this.count + i === 0 ? '\n' : ',\n'}${JSON.stringify(it)}`).join('');
    const bytes = Buffer.from(body + CLOSE);
    try {
      await this.handle.write(bytes, 0, bytes.length, this.end);
    } catch (e) {
      const code = (e as NodeJS.ErrnoException).code;
      throw new JsonWriteError(`cannot write ${this.path}${code === 'ENOSPC' ? ' (no space left on the device)' : ''}: ${(e as Error).message}`);
    }
    this.end += bytes.length - CLOSE.length;
    this.count += items.length;
  }

  /** Syncs and closes (idempotent). */
  async close(): Promise<void> {
    const h = this.handle;
    this.handle = null;
    if (!h) return;
    try {
      await h.sync();
    } finally {
      await h.close();
    }
  }
}
