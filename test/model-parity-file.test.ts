// End-to-end parity with torchvision 0.14 from image FILES (no --dump-input): our JPEG decoding
// (libjpeg-turbo, as PIL), resize sizes, normalisation, bilinear resize and padding give the very
// input tensor torchvision's GeneralizedRCNNTransform makes (bit for bit: SHA-256 of the float32
// bytes, tools/transform-reference.py, over 5 COCO photos x 4 size settings), and the parity
// fixture's case run from its JPEG file gives torchvision's detections at the fixture's tolerances.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { ready } from './helpers/gpu.js';
import { nodeIO } from '../cli/node-io.js';
import { decodeImage } from '../data/image.js';
import { Rng } from '../engine/random.js';
import { MaskRCNN } from '../model/maskrcnn.js';
import { getPreset } from '../model/presets.js';
import { fixtureStateDict } from '../model/fixture-weights.js';
import { CASE_DIR, expectDetectionsMatch, loadFixture } from './helpers/parity.js';

await ready;

interface InputCase { file: string; min_size: number; max_size: number; original: number[]; image_size: number[]; shape: number[]; sha256: string }
const inputs = JSON.parse(readFileSync('test/fixtures/transform/torchvision-inputs.json', 'utf8')) as InputCase[];
const preset = (minSize: number, maxSize: number, scoreThresh = 0.05): MaskRCNN =>
  new MaskRCNN(getPreset('torchvision-r50-fpn', { numClasses: 91, input: { minSizeTest: minSize, maxSize }, roiHeads: { scoreThresh } }));

test('input tensors from JPEG files are bit-identical to torchvision\'s (5 photos x 4 size settings)', async () => {
  const wrong: string[] = [];
  for (const c of inputs) {
    const image = await decodeImage(await nodeIO.readBytes(c.file), c.file);
    const model = preset(c.min_size, c.max_size);
    const b = model.prepare([image], new Rng(0));
    const data = await b.images.floatData();
    b.images.dispose();
    const sha = createHash('sha256').update(new Uint8Array(data.buffer, data.byteOffset, data.byteLength)).digest('hex');
    const what = `${c.file} at (${c.min_size}, ${c.max_size}): ours ${b.info.imageSizes[0]!.join('x')} in ${b.images.shape.join('x')}, torchvision ${c.image_size.join('x')} in ${c.shape.join('x')}`;
    assert.equal([image.height, image.width], c.original, `${c.file}: decoded size`);
    if (sha !== c.sha256 || b.info.imageSizes[0]!.join() !== c.image_size.join() || b.images.shape.join() !== c.shape.join()) wrong.push(what);
  }
  console.log(`    ${inputs.length - wrong.length} of ${inputs.length} input tensors bit-identical`);
  assert.equal(wrong, [], 'inputs that differ from torchvision');
});

test('the parity case from its JPEG file: input, detections and pasted masks match torchvision', async () => {
  const { metadata, get, f32 } = loadFixture();
  const file = '../shared/data/tiny_coco/val2017/' + (JSON.parse(readFileSync(CASE_DIR + 'targets.json', 'utf8')) as { file_name: string }).file_name;
  const model = preset(Number(metadata.min_size), Number(metadata.max_size), 0);
  model.loadStateDict(fixtureStateDict(Object.entries(model.stateDict()).map(([k, t]) => [k, t.shape] as const)));
  model.eval();
  const image = await decodeImage(await nodeIO.readBytes(file), file);
  const batch = model.prepare([image], new Rng(0));
  const ref = get('input.tensor');
  assert.equal(batch.images.shape, ref.shape, 'input shape');
  assert.equal(batch.info.imageSizes[0], Array.from(get('input.image_size').data), 'resized size');
  const ours = await batch.images.floatData();
  let differing = 0;
  for (let i = 0; i < ours.length; i++) if (ours[i] !== ref.data[i]) differing++;
  console.log(`    input.tensor: ${differing} of ${ours.length} values differ from torchvision's`);
  assert.is(differing, 0, 'input tensor bit-identical');

  const [det] = await model.detect(batch);
  batch.images.dispose();
  const [origH, origW] = [get('det.masks[0:5]').shape[1]!, get('det.masks[0:5]').shape[2]!];
  assert.equal([image.height, image.width], [origH, origW]);
  // The same check and tolerances as test/model-parity.test.ts (the model fed torchvision's input).
  expectDetectionsMatch(det!, { get, f32 }, [origH, origW]);
});

test.run();
