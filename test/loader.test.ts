// DataLoader: seeded epoch order, resume from {epoch, index} equal to an uninterrupted run,
// bounded prefetch, skipping or raising on failed samples, dropLast, and tiny_coco end to end.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { copyFile, mkdtemp, rm, writeFile, mkdir } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { nodeIO } from '../cli/node-io.js';
import { WorkerPoolSource } from '../cli/worker-loader.js';
import { CocoDataset } from '../data/coco.js';
import { CocoSampleSource } from '../data/coco-source.js';
import { DataLoader, type Batch, type LoaderOptions, type SampleSource } from '../data/loader.js';
import { epochPermutation } from '../data/rng.js';
import { NORMALIZE_TORCHVISION, type Sample, type TransformConfig } from '../data/transforms.js';

/** A fast in-memory source: sample i is a 1x1 image whose label records the seed it was given. */
class FakeSource implements SampleSource {
  inFlight = 0;
  maxInFlight = 0;
  loads = 0;
  constructor(
    readonly size: number,
    private readonly failing = new Set<number>(),
  ) {}
  name(i: number): string {
    return `img${i}.jpg`;
  }
  async load(i: number, seed: number): Promise<Sample> {
    this.loads++;
    this.inFlight++;
    this.maxInFlight = Math.max(this.maxInFlight, this.inFlight);
    await new Promise((r) => setTimeout(r, 0));
    this.inFlight--;
    if (this.failing.has(i)) throw new Error('corrupt JPEG data');
    return {
      imageId: i,
      image: new Float32Array(3),
      height: 1,
      width: 1,
      origHeight: 1,
      origWidth: 1,
      flipped: false,
      boxes: new Float32Array(0),
      labels: Int32Array.from([seed | 0]),
      masks: new Uint8Array(0),
    };
  }
}

const summary = (b: Batch): string => `${b.epoch}:${b.indices.join(',')}:${b.samples.map((s) => s.labels[0]).join(',')}`;

async function take(loader: DataLoader, count: number): Promise<Batch[]> {
  const out: Batch[] = [];
  while (out.length < count) {
    const b = await loader.next();
    if (!b) break;
    out.push(b);
  }
  return out;
}

test('epoch order is a seeded permutation, different per epoch and per seed', async () => {
  const loader = new DataLoader(new FakeSource(10), { batchSize: 4, seed: 5, maxEpochs: 2 });
  const batches = await take(loader, 100);
  assert.equal(batches.map((b) => b.indices.length), [4, 4, 2, 4, 4, 2]);
  const e0 = batches.filter((b) => b.epoch === 0).flatMap((b) => b.indices);
  const e1 = batches.filter((b) => b.epoch === 1).flatMap((b) => b.indices);
  assert.equal([...e0].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.equal([...e1].sort((a, b) => a - b), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9]);
  assert.not.equal(e0, e1);
  assert.equal(e0, Array.from(epochPermutation(10, 5, 0)));
  const again = await take(new DataLoader(new FakeSource(10), { batchSize: 4, seed: 5, maxEpochs: 2 }), 100);
  assert.equal(again.map(summary), batches.map(summary));
  const other = await take(new DataLoader(new FakeSource(10), { batchSize: 4, seed: 6, maxEpochs: 1 }), 100);
  assert.not.equal(other.flatMap((b) => b.indices), e0);
  const ordered = await take(new DataLoader(new FakeSource(5), { batchSize: 2, seed: 5, shuffle: false, maxEpochs: 1 }), 100);
  assert.equal(ordered.map((b) => b.indices), [[0, 1], [2, 3], [4]]);
});

test('resuming from any saved position equals the uninterrupted run', async () => {
  const opts: LoaderOptions = { batchSize: 3, seed: 42, maxEpochs: 4, prefetch: 3 };
  const full = await take(new DataLoader(new FakeSource(11), opts), 1000);
  assert.is(full.length, 16); // 4 batches per epoch (3+3+3+2)
  for (let cut = 0; cut < full.length; cut++) {
    const saved = JSON.parse(JSON.stringify(full[cut]!.next));
    const resumed = await take(new DataLoader(new FakeSource(11), { ...opts, start: saved }), 1000);
    assert.equal(resumed.map(summary), full.slice(cut + 1).map(summary), `resume after batch ${cut}`);
  }
  // The loader's own position agrees with the batch's `next`.
  const l = new DataLoader(new FakeSource(11), opts);
  const b = await l.next();
  assert.equal(l.position, b!.next);
  assert.equal(full[3]!.next, { epoch: 1, index: 0 });
});

test('prefetch keeps K batches ahead and no more', async () => {
  const src = new FakeSource(50);
  const loader = new DataLoader(src, { batchSize: 4, seed: 1, prefetch: 2, maxEpochs: 1 });
  await loader.next();
  await new Promise((r) => setTimeout(r, 5));
  // The consumed batch plus two prefetched ones have been requested, nothing beyond.
  assert.is(src.loads, 4 * 3 + 4);
  assert.ok(src.maxInFlight <= 4 * 3 + 4);
  assert.ok(src.maxInFlight >= 8, `only ${src.maxInFlight} loads overlapped`);
});

test('a failing sample is skipped with a warning naming it; the batch fills from the next ones', async () => {
  const warnings: string[] = [];
  const order = Array.from(epochPermutation(8, 3, 0));
  const bad = order[1]!;
  const loader = new DataLoader(new FakeSource(8, new Set([bad])), {
    batchSize: 3,
    seed: 3,
    maxEpochs: 1,
    warn: (m) => warnings.push(m),
  });
  const batches = await take(loader, 10);
  assert.equal(batches.map((b) => b.indices), [[order[0], order[2], order[3]], [order[4], order[5], order[6]], [order[7]]]);
  assert.is(warnings.length, 1);
  assert.ok(warnings[0]!.includes(`img${bad}.jpg`) && warnings[0]!.includes('corrupt JPEG data'), warnings[0]);

  const raising = new DataLoader(new FakeSource(8, new Set([bad])), { batchSize: 3, seed: 3, onError: 'raise' });
  try {
    await take(raising, 10);
    assert.unreachable('should raise');
  } catch (e) {
    assert.match((e as Error).message, 'corrupt JPEG data');
  }
});

test('dropLast yields whole batches only; bad positions are rejected', async () => {
  const loader = new DataLoader(new FakeSource(10), { batchSize: 4, seed: 9, dropLast: true, maxEpochs: 2 });
  assert.is(loader.batchesPerEpoch, 2);
  const batches = await take(loader, 100);
  assert.equal(batches.map((b) => [b.epoch, b.indices.length]), [[0, 4], [0, 4], [1, 4], [1, 4]]);
  assert.equal(batches[1]!.next, { epoch: 1, index: 0 });
  assert.throws(() => new DataLoader(new FakeSource(3), { batchSize: 4, seed: 1, dropLast: true }), /fewer samples/);
  assert.throws(() => new DataLoader(new FakeSource(3), { batchSize: 1, seed: 1, start: { epoch: -1, index: 0 } }), /bad position/);
  assert.throws(() => new DataLoader(new FakeSource(0), { batchSize: 1, seed: 1 }), /empty/);
});

const SMALL: TransformConfig = {
  minSizes: [64, 80],
  maxSize: 128,
  rounding: 'torchvision',
  normalization: NORMALIZE_TORCHVISION,
  flipProb: 0.5,
  train: true,
};

test('shards: 2 ranks x batch 2 take the 1-rank batch-2 batches in turn, disjoint, equal counts, padded epochs, global positions', async () => {
  const n = 7;
  const one = new DataLoader(new FakeSource(n), { batchSize: 2, seed: 5, maxEpochs: 2 });
  const ranks = [0, 1].map((rank) => new DataLoader(new FakeSource(n), { batchSize: 2, seed: 5, maxEpochs: 2, shard: { rank, size: 2 } }));
  const seedOf = (b: Batch): number[] => b.samples.map((s) => s.labels[0]!);
  for (let epoch = 0; epoch < 2; epoch++) {
    const order = epochPermutation(n, 5, epoch);
    // Global batches of 4: [0,4) and the tail [4,8) (position 7 wraps to the epoch's first sample).
    const got: number[][] = [];
    for (let step = 0; step < 2; step++) {
      for (const l of ranks) {
        const b = (await l.next())!;
        assert.is(b.epoch, epoch);
        got.push(b.indices);
        assert.equal(l.position, step === 1 ? { epoch: epoch + 1, index: 0 } : { epoch, index: 4 }, 'positions count global samples');
      }
    }
    assert.equal(got, [[order[0], order[1]], [order[2], order[3]], [order[4], order[5]], [order[6], order[0]]]);
    // The first step is exactly the 1-rank loader's first two batches, augmentation seeds included.
    const a = (await one.next())!, b = (await one.next())!;
    if (epoch === 0) {
      assert.equal([a.indices, b.indices], got.slice(0, 2));
      const again = [0, 1].map((rank) => new DataLoader(new FakeSource(n), { batchSize: 2, seed: 5, shard: { rank, size: 2 } }));
      assert.equal([seedOf((await again[0]!.next())!), seedOf((await again[1]!.next())!)], [seedOf(a), seedOf(b)]);
    }
    await one.next();
    await one.next();
  }
  // Resuming a 2-rank position on 1 rank (and a 1-rank position on 2 ranks) continues from the same global sample.
  const resumed = new DataLoader(new FakeSource(n), { batchSize: 2, seed: 5, start: { epoch: 0, index: 4 } });
  assert.equal((await resumed.next())!.indices, Array.from(epochPermutation(n, 5, 0).slice(4, 6)));
  const split = [0, 1].map((rank) => new DataLoader(new FakeSource(n), { batchSize: 2, seed: 5, start: { epoch: 0, index: 2 }, shard: { rank, size: 2 } }));
  const order = epochPermutation(n, 5, 0);
  assert.equal([(await split[0]!.next())!.indices, (await split[1]!.next())!.indices], [[order[2], order[3]], [order[4], order[5]]]);
  assert.throws(() => new DataLoader(new FakeSource(n), { batchSize: 2, seed: 5, shard: { rank: 2, size: 2 } }), /bad shard/);
});

test('tiny_coco end to end: batches of padded images with targets, reproducible', async () => {
  const ds = await CocoDataset.load(nodeIO, '../shared/data/tiny_coco/annotations/instances_val2017.json');
  const make = (): DataLoader =>
    new DataLoader(
      new CocoSampleSource(ds, nodeIO, { imageDir: '../shared/data/tiny_coco/val2017', transform: SMALL, filterEmpty: true }),
      { batchSize: 4, seed: 7, maxEpochs: 1, prefetch: 0 },
    );
  const loader = make();
  assert.is(loader.source.size, 48);
  const first = await take(loader, 3);
  for (const b of first) {
    const [n, c, H, W] = b.shape;
    assert.is(n, 4);
    assert.is(c, 3);
    assert.ok(H % 32 === 0 && W % 32 === 0 && H <= 128 && W <= 128);
    assert.is(b.images.length, n * c * H * W);
    b.samples.forEach((s, k) => {
      assert.equal(b.imageSizes[k], [s.height, s.width]);
      assert.ok(Math.min(s.height, s.width) <= 80 && Math.max(s.height, s.width) <= 128);
      assert.is(s.masks.length, s.labels.length * s.height * s.width);
      assert.ok(s.labels.length > 0);
      assert.ok(s.labels.every((l) => l >= 1 && l <= 80));
    });
  }
  const again = await take(make(), 3);
  for (let k = 0; k < 3; k++) {
    assert.equal(again[k]!.indices, first[k]!.indices);
    assert.equal(Array.from(again[k]!.images.subarray(0, 2000)), Array.from(first[k]!.images.subarray(0, 2000)));
  }
  const resumed = await take(
    new DataLoader(
      new CocoSampleSource(ds, nodeIO, { imageDir: '../shared/data/tiny_coco/val2017', transform: SMALL, filterEmpty: true }),
      { batchSize: 4, seed: 7, maxEpochs: 1, prefetch: 0, start: first[1]!.next },
    ),
    1,
  );
  assert.equal(resumed[0]!.indices, first[2]!.indices);
  assert.equal(Array.from(resumed[0]!.images), Array.from(first[2]!.images));
});

test('a corrupt image file in a COCO folder is skipped with a warning naming the file', async () => {
  const dir = await mkdtemp(join(tmpdir(), 'coco-bad-'));
  try {
    await mkdir(join(dir, 'img'));
    await copyFile('../shared/data/tiny_coco/val2017/000000397133.jpg', join(dir, 'img', 'good.jpg'));
    await writeFile(join(dir, 'img', 'bad.jpg'), new Uint8Array([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]));
    const ds = CocoDataset.fromObject(
      {
        images: [
          { id: 1, width: 640, height: 427, file_name: 'bad.jpg' },
          { id: 2, width: 640, height: 427, file_name: 'good.jpg' },
          { id: 3, width: 640, height: 427, file_name: 'missing.jpg' },
        ],
        categories: [{ id: 1, name: 'thing' }],
        annotations: [],
      },
      'inline',
    );
    const warnings: string[] = [];
    const loader = new DataLoader(
      new CocoSampleSource(ds, nodeIO, { imageDir: join(dir, 'img'), transform: { ...SMALL, train: false } }),
      { batchSize: 3, seed: 0, shuffle: false, maxEpochs: 1, warn: (m) => warnings.push(m) },
    );
    const batches = await take(loader, 5);
    assert.is(batches.length, 1);
    assert.equal(batches[0]!.indices, [1]);
    assert.is(warnings.length, 2);
    assert.ok(warnings[0]!.includes(join(dir, 'img', 'bad.jpg')), warnings[0]);
    assert.ok(warnings[1]!.includes('missing.jpg'), warnings[1]);
  } finally {
    await rm(dir, { recursive: true, force: true });
  }
});

test('worker-thread pool gives the same batches as the in-thread source', async () => {
  const annotationFile = '../shared/data/tiny_coco/annotations/instances_val2017.json';
  const spec = { annotationFile, imageDir: '../shared/data/tiny_coco/val2017', transform: SMALL, filterEmpty: true };
  const ds = await CocoDataset.load(nodeIO, annotationFile);
  const opts: LoaderOptions = { batchSize: 3, seed: 11, maxEpochs: 1, prefetch: 1, start: { epoch: 0, index: 6 } };
  const local = await take(new DataLoader(new CocoSampleSource(ds, nodeIO, spec), opts), 2);
  const pool = await WorkerPoolSource.create(spec, 3);
  const loader = new DataLoader(pool, opts);
  try {
    assert.is(pool.size, 48);
    assert.ok(pool.name(0).endsWith('.jpg'));
    const remote = await take(loader, 2);
    for (let k = 0; k < 2; k++) {
      assert.equal(remote[k]!.indices, local[k]!.indices);
      assert.equal(remote[k]!.shape, local[k]!.shape);
      assert.ok(Buffer.from(remote[k]!.images.buffer).equals(Buffer.from(local[k]!.images.buffer)));
      remote[k]!.samples.forEach((s, j) => {
        const l = local[k]!.samples[j]!;
        assert.equal(Array.from(s.boxes), Array.from(l.boxes));
        assert.equal(Array.from(s.labels), Array.from(l.labels));
        assert.ok(Buffer.from(s.masks).equals(Buffer.from(l.masks)));
        assert.is(s.flipped, l.flipped);
      });
    }
  } finally {
    await loader.close();
  }
  const bad = await WorkerPoolSource.create({ ...spec, annotationFile: 'nope.json' }, 1).catch((e: Error) => e);
  assert.instance(bad, Error);
  assert.ok((bad as Error).message.includes('nope.json'), (bad as Error).message);
});

test.run();
