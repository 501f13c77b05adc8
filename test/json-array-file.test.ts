// cli/json-array-file.ts: the file is a valid JSON array of everything appended after every append
// (what `infer` relies on to keep results when it is stopped), appends after close are refused, and
// a file that cannot be written is named in the error.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { JsonArrayFile, JsonWriteError } from '../cli/json-array-file.js';

const dir = mkdtempSync(join(tmpdir(), 'json-array-'));
const read = (p: string): unknown => JSON.parse(readFileSync(p, 'utf8'));

test('a valid array after create, after each append (one item, several, none) and after close', async () => {
  const p = join(dir, 'sub', 'results.json');
  const f = await JsonArrayFile.create(p);
  assert.equal(read(p), []);
  const items: unknown[] = [];
  const batches: unknown[][] = [[{ a: 1, s: 'x]\n,' }], [], [[1, 2], null, 'three', { nested: { deep: [true] } }], [{ unicode: 'é→' }]];
  for (const b of batches) {
    await f.append(b);
    items.push(...b);
    assert.equal(read(p), items);
    assert.is(f.length, items.length);
  }
  await f.close();
  await f.close(); // idempotent
  assert.equal(read(p), items);
  try {
    await f.append([1]);
    assert.unreachable('append after close');
  } catch (e) {
    assert.match((e as Error).message, /appended to after close/);
  }
});

test('create truncates an existing longer file', async () => {
  const p = join(dir, 'old.json');
  writeFileSync(p, JSON.stringify(Array.from({ length: 1000 }, (_, i) => i)));
  const f = await JsonArrayFile.create(p);
  await f.append([7]);
  await f.close();
  assert.equal(read(p), [7]);
});

test('a path under a regular file is refused with the file named', async () => {
  const blocker = join(dir, 'blocker');
  writeFileSync(blocker, 'x');
  const p = join(blocker, 'results.json');
  try {
    await JsonArrayFile.create(p);
    assert.unreachable('created under a file');
  } catch (e) {
    assert.instance(e, JsonWriteError);
    assert.ok((e as Error).message.startsWith(`cannot write ${p}: `), (e as Error).message);
  }
});

// The temp folder goes with the suite (it held up to ~50 MB per run when left behind).
test.after(() => rmSync(dir, { recursive: true, force: true }));

test.run();
