// The demo page (web/index.html): images in, detections drawn over them; training the tiny preset
// on synthetic shapes with a live loss plot; and an engine panel (self-test, op-mix timing).
// Bundled by web/build.js into <dist>/web/demo.js, importing the library bundle ./engine.js.
// Model-dependent controls stay disabled with a visible note until model-adapter.ts has a model.
import * as L from './lib.js';
import { drawImage, drawOverlay, drawLossPlot, shapesOverlay, rgbFromBitmap, type Overlay } from './draw.js';
import { checkpointFromFile, checkpointFromUrl, describeCheckpoint, downloadBytes, type LoadedCheckpoint } from './checkpoint.js';
import { demoModel, MODEL_MISSING, TRAIN_PRESET, type DemoDetector, type DemoTrainer } from './model-adapter.js';
import { runSelfTest, type CheckResult } from './selftest.js';
import { runOpMix, type OpMixResult } from './opmix.js';

/** What the browser tests read back (test/browser/run.js). */
interface DemoState {
  ready: boolean;
  modelAvailable: boolean;
  adapter?: typeof L.adapterReport;
  selfTest?: CheckResult[];
  opMix?: OpMixResult;
  images: number;
  lastDetection?: { ms: number; count: number };
  /** The last detection itself, for the page-equals-Node test. */
  lastOverlay?: Overlay;
  /** The source of the loaded checkpoint, once loaded. */
  checkpoint?: string;
  /** Total loss of each training step taken in the Train tab. */
  trainLosses: number[];
  /** Each step's loss terms and learning rate (the page-equals-Node training test reads them). */
  trainSteps: { losses: Record<string, number>; total: number; lr: number }[];
  /** The Detect tab's preset selector's value (follows a loaded checkpoint's preset). */
  preset?: string;
}
const state: DemoState = { ready: false, modelAvailable: demoModel !== null, images: 0, trainLosses: [], trainSteps: [] };
(globalThis as { __demo?: DemoState }).__demo = state;

const $ = <T extends HTMLElement = HTMLElement>(id: string): T => {
  const el = document.getElementById(id);
  if (!el) throw new Error(`demo: element #${id} is missing from index.html`);
  return el as T;
};

function showError(e: unknown): void {
  const box = $('error');
  box.hidden = false;
  box.textContent = e instanceof Error ? `${e.message}` : String(e);
}

/** Runs an async UI action, reporting failures on the page instead of as unhandled rejections. */
function action(fn: () => Promise<void>): () => void {
  return () => {
    fn().catch(showError);
  };
}

function markUnavailable(ids: string[], noteAfter: string): void {
  for (const id of ids) {
    const el = $<HTMLButtonElement>(id);
    el.disabled = true;
    el.title = MODEL_MISSING;
  }
  const note = document.createElement('p');
  note.className = 'unavailable';
  note.textContent = MODEL_MISSING;
  $(noteAfter).after(note);
}

// ---------------------------------------------------------------------------------------------
// Tabs

// (tsconfig's lib has DOM without DOM.Iterable: NodeLists and FileLists go through Array.from.)
const tabs = Array.from(document.querySelectorAll<HTMLButtonElement>('nav [role=tab]'));
for (const tab of tabs) {
  tab.addEventListener('click', () => {
    for (const t of tabs) {
      const on = t === tab;
      t.setAttribute('aria-selected', String(on));
      $(`tab-${t.dataset.tab}`).hidden = !on;
    }
  });
}

// ---------------------------------------------------------------------------------------------
// Detect tab: images, checkpoint, detection

interface Picture {
  name: string;
  image: L.image.RgbImage;
  /** Ground truth for synthetic images, detections once run. */
  overlay?: { o: Overlay; names: string[]; kind: 'ground truth' | 'detections' };
}
const pictures: Picture[] = [];
let current = -1;
let checkpoint: LoadedCheckpoint | null = null;
/** The shapes model `node cli/train.js` trained by default, shipped with the page (web/models/). */
const SHAPES_MODEL_URL = '/web/models/shapes-tiny-cpu.safetensors';
let detector: DemoDetector | null = null;
const shapeNames = L.shapes.SHAPES_CLASS_NAMES;

async function decodeFile(f: File): Promise<L.image.RgbImage> {
  const bytes = new Uint8Array(await f.arrayBuffer());
  // JPEG and PNG go through the library's decoders (libjpeg-turbo WASM, fast-png) so the pixels, and hence
  // the detections, are the ones Node computes; other formats use the browser's decoder.
  const fmt = L.image.detectImageFormat(bytes);
  if (fmt === 'jpeg' || fmt === 'png') return await L.image.decodeImage(bytes, f.name);
  return rgbFromBitmap(await createImageBitmap(f));
}

function addPicture(p: Picture): void {
  pictures.push(p);
  state.images = pictures.length;
  const thumb = document.createElement('canvas');
  drawImage(thumb, p.image);
  thumb.title = p.name;
  const index = pictures.length - 1;
  thumb.addEventListener('click', () => select(index));
  $('thumbs').append(thumb);
  select(index);
}

function select(i: number): void {
  current = i;
  document.querySelectorAll('#thumbs canvas').forEach((c, k) => c.classList.toggle('selected', k === i));
  redraw();
}

function redraw(): void {
  const p = pictures[current];
  if (!p) return;
  const view = $<HTMLCanvasElement>('view');
  drawImage(view, p.image);
  let caption = `${p.name}: ${p.image.width}x${p.image.height}`;
  if (p.overlay) {
    const minScore = Number($<HTMLInputElement>('min-score').value);
    const names = p.overlay.names;
    const n = drawOverlay(view, p.overlay.o, (l) => names[l] ?? `class ${l}`, minScore);
    const total = p.overlay.o.labels.length;
    caption += p.overlay.o.scores ? `, ${n} of ${total} ${p.overlay.kind} with score >= ${minScore.toFixed(2)}` : `, ${n} ${p.overlay.kind}`;
  }
  $('view-caption').textContent = caption;
}

async function addFiles(files: FileList | null): Promise<void> {
  for (const f of Array.from(files ?? [])) {
    if (f.name.endsWith('.safetensors')) await setCheckpoint(checkpointFromFile(f));
    else addPicture({ name: f.name, image: await decodeFile(f) });
  }
}

let syntheticIndex = 0;
function addSynthetic(): void {
  // The dataset's own size (128 px, what the tiny preset trains on); the canvas is scaled up by CSS.
  const s = L.shapes.renderShapesImage(L.shapes.DEFAULT_SHAPES_OPTIONS, 1, syntheticIndex);
  addPicture({
    name: `shapes val #${syntheticIndex++}`,
    image: { width: s.width, height: s.height, data: s.rgb },
    overlay: { o: shapesOverlay(s), names: shapeNames, kind: 'ground truth' },
  });
}

async function setCheckpoint(p: Promise<LoadedCheckpoint>): Promise<void> {
  const info = $('ckpt-info');
  info.textContent = 'loading...';
  try {
    checkpoint = await p;
    info.textContent = describeCheckpoint(checkpoint);
    // The selector shows the preset the checkpoint was trained with (its stored config names it).
    const preset = demoModel?.checkpointPreset(checkpoint);
    if (preset) {
      $<HTMLSelectElement>('preset').value = preset;
      state.preset = preset;
    }
    state.checkpoint = checkpoint.source;
    detector?.dispose();
    detector = null;
  } catch (e) {
    info.textContent = `could not load: ${e instanceof Error ? e.message : String(e)}`;
  }
}

async function detect(): Promise<void> {
  const p = pictures[current];
  if (!demoModel || !p) return;
  const status = $('detect-status');
  status.textContent = 'building the model...';
  detector ??= await demoModel.createDetector($<HTMLSelectElement>('preset').value, checkpoint);
  status.textContent = 'detecting...';
  const t0 = performance.now();
  const [o] = await detector.detect([p.image], { amp: $<HTMLInputElement>('detect-amp').checked });
  const ms = performance.now() - t0;
  p.overlay = { o: o!, names: detector.classNames, kind: 'detections' };
  state.lastOverlay = o!;
  state.lastDetection = { ms, count: o!.labels.length };
  status.textContent = `${o!.labels.length} detections in ${ms.toFixed(0)} ms (${detector.weights})`;
  redraw();
}

function wireDetect(): void {
  $<HTMLInputElement>('image-input').addEventListener('change', action(async () => addFiles($<HTMLInputElement>('image-input').files)));
  $('add-synthetic').addEventListener('click', addSynthetic);
  $<HTMLInputElement>('ckpt-file').addEventListener('change', action(async () => {
    const f = $<HTMLInputElement>('ckpt-file').files?.[0];
    if (f) await setCheckpoint(checkpointFromFile(f));
  }));
  $('ckpt-url-form').addEventListener('submit', (ev) => {
    ev.preventDefault();
    const url = $<HTMLInputElement>('ckpt-url').value.trim();
    if (url) action(() => setCheckpoint(checkpointFromUrl(url)))();
  });
  $('ckpt-shapes').addEventListener('click', action(() => setCheckpoint(checkpointFromUrl(SHAPES_MODEL_URL))));
  const slider = $<HTMLInputElement>('min-score');
  slider.addEventListener('input', () => {
    $('min-score-out').textContent = Number(slider.value).toFixed(2);
    redraw();
  });
  const panel = $('tab-detect');
  panel.addEventListener('dragover', (ev) => {
    ev.preventDefault();
    panel.classList.add('drop');
  });
  panel.addEventListener('dragleave', () => panel.classList.remove('drop'));
  panel.addEventListener('drop', (ev) => {
    ev.preventDefault();
    panel.classList.remove('drop');
    if (ev.dataTransfer?.files.length) action(() => addFiles(ev.dataTransfer!.files))();
  });
  if (demoModel) {
    const sel = $<HTMLSelectElement>('preset');
    for (const name of demoModel.presets) sel.add(new Option(name, name, name === 'tiny', name === 'tiny'));
    sel.disabled = false;
    state.preset = sel.value;
    sel.addEventListener('change', () => {
      state.preset = sel.value;
      detector?.dispose();
      detector = null;
    });
    $<HTMLButtonElement>('detect').disabled = false;
    $('detect').addEventListener('click', action(detect));
  } else {
    markUnavailable(['detect'], 'detect');
  }
}

// ---------------------------------------------------------------------------------------------
// Train tab

let trainer: DemoTrainer | null = null;
let training = false;
const losses: { step: number; loss: number }[] = [];
let sampleIndex = 0;

function showSample(): void {
  const s = L.shapes.renderShapesImage(L.shapes.DEFAULT_SHAPES_OPTIONS, 0, sampleIndex);
  const canvas = $<HTMLCanvasElement>('train-view');
  drawImage(canvas, { width: s.width, height: s.height, data: s.rgb });
  drawOverlay(canvas, shapesOverlay(s), (l) => shapeNames[l] ?? String(l));
  $('train-caption').textContent = `training sample #${sampleIndex} (ground truth, ${s.objects.length} shapes)`;
  sampleIndex++;
}

async function trainLoop(): Promise<void> {
  if (!demoModel) return;
  const status = $('train-status');
  if (!trainer) {
    status.textContent = `building the ${TRAIN_PRESET} model...`;
    const amp = $<HTMLInputElement>('train-amp');
    amp.disabled = true; // the trainer's scaler and config are built with it
    trainer = await demoModel.createTrainer(TRAIN_PRESET, { amp: amp.checked });
  }
  while (training) {
    const t0 = performance.now();
    const n = losses.length + 1;
    // The first step compiles every forward and backward pipeline (a minute or more on a CPU adapter).
    status.textContent = n === 1 ? 'step 1: compiling kernels (the first step builds every GPU pipeline)...' : `step ${n}...`;
    const r = await trainer.step();
    const loss = r.total;
    losses.push({ step: n, loss });
    state.trainLosses.push(loss);
    state.trainSteps.push({ losses: r.losses, total: r.total, lr: r.lr });
    drawLossPlot($<HTMLCanvasElement>('loss-plot'), losses);
    status.textContent = `step ${n}: loss ${loss.toFixed(4)}, lr ${r.lr.toPrecision(3)} (${(performance.now() - t0).toFixed(0)} ms/step)`;
    if (losses.length % 10 === 0) {
      const p = await trainer.preview();
      const canvas = $<HTMLCanvasElement>('train-view');
      drawImage(canvas, p.image);
      drawOverlay(canvas, p.overlay, (l) => p.classNames[l] ?? String(l), 0.5);
      $('train-caption').textContent = `predictions after ${losses.length} steps`;
    }
  }
}

function wireTrain(): void {
  drawLossPlot($<HTMLCanvasElement>('loss-plot'), losses);
  $('next-sample').addEventListener('click', showSample);
  showSample();
  if (!demoModel) {
    markUnavailable(['train-start', 'train-pause', 'train-download'], 'train-status');
    return;
  }
  const [start, pause, download] = ['train-start', 'train-pause', 'train-download'].map((id) => $<HTMLButtonElement>(id));
  start!.disabled = false;
  start!.addEventListener('click', () => {
    if (training) return;
    training = true;
    start!.disabled = true;
    pause!.disabled = false;
    download!.disabled = false;
    trainLoop().catch(showError).finally(() => {
      training = false;
      start!.disabled = false;
      pause!.disabled = true;
    });
  });
  pause!.addEventListener('click', () => {
    training = false;
  });
  download!.addEventListener('click', action(async () => {
    if (trainer) downloadBytes(await trainer.checkpoint(), `${TRAIN_PRESET}-step${losses.length}.safetensors`);
  }));
}

// ---------------------------------------------------------------------------------------------
// Engine tab

function wireEngine(): void {
  const button = $<HTMLButtonElement>('self-test');
  button.addEventListener('click', action(async () => {
    button.disabled = true;
    const list = $('self-test-results');
    list.textContent = '';
    state.selfTest = await runSelfTest((r) => {
      const li = document.createElement('li');
      li.className = r.ok ? 'ok' : 'fail';
      li.textContent = `${r.name} (${r.ms.toFixed(0)} ms)${r.ok ? '' : ': ' + r.detail}`;
      list.append(li);
    });
    button.disabled = false;
  }));
  const mix = $<HTMLButtonElement>('op-mix');
  mix.addEventListener('click', action(async () => {
    mix.disabled = true;
    $('op-mix-out').textContent = 'running (the first steps compile the pipelines)...';
    const r = await runOpMix();
    state.opMix = r;
    $('op-mix-out').textContent =
      `median ${r.medianMs.toFixed(1)} ms/step, best ${r.minMs.toFixed(1)} ms over ${r.steps} steps\n` +
      `warm-up (pipeline compilation) ${r.warmupMs.toFixed(0)} ms; loss ${r.firstLoss.toFixed(4)} -> ${r.lastLoss.toFixed(4)}`;
    mix.disabled = false;
  }));
}

// ---------------------------------------------------------------------------------------------

async function start(): Promise<void> {
  wireDetect();
  wireTrain();
  wireEngine();
  // The adapter line goes on the page, not to the console (a console error is a test failure).
  L.setQuiet(true);
  try {
    await L.init();
    state.adapter = L.adapterReport;
    $('device').textContent = `WebGPU: ${L.adapterReport?.description ?? 'unknown adapter'}`;
  } catch (e) {
    $('device').textContent = 'no WebGPU';
    showError(e);
  }
  state.ready = true;
}

start().catch(showError);
