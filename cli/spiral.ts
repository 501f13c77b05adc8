// The end-to-end demo: a 2-layer MLP (2 -> hidden -> 3, ReLU) learns a seeded 3-arm spiral with
// softmax cross-entropy (the engine's fused F.crossEntropy) and full-batch SGD with momentum, exercising tensors, autodiff, nn, optim
// and scope-based memory management together.
//   node cli/spiral.js [--steps N] [--lr X] [--every N] [--log FILE.jsonl] [--seed N]
import './node-gpu.js';
import { appendFileSync, writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import {
  init, shutdown, setQuiet, tidy, noGrad, nn, optim, tensor, memory, Rng, type Tensor,
  argmax, eq, cast, sum, crossEntropy,
} from '../engine/index.js';
import { ArgsError, formatHelp, parseArgs, type OptionSpec } from './args.js';

export interface Spiral {
  /** Points, row-major [n, 2]. */
  x: Float32Array;
  /** Class of each point, 0..classes-1. */
  y: Int32Array;
  n: number;
  classes: number;
}

/** CS231n's spiral: arm k has radius 0..1 and angle 4k..4(k+1) plus Gaussian noise on the angle. */
export function makeSpiral(opts: { pointsPerClass?: number; classes?: number; noise?: number; seed?: number } = {}): Spiral {
  const { pointsPerClass = 100, classes = 3, noise = 0.2, seed = 0 } = opts;
  const rng = new Rng(seed);
  const n = pointsPerClass * classes;
  const x = new Float32Array(n * 2);
  const y = new Int32Array(n);
  for (let k = 0; k < classes; k++) {
    for (let i = 0; i < pointsPerClass; i++) {
      const j = k * pointsPerClass + i;
      const f = pointsPerClass > 1 ? i / (pointsPerClass - 1) : 0;
      const t = 4 * k + 4 * f + noise * rng.normal();
      x[2 * j] = f * Math.sin(t);
      x[2 * j + 1] = f * Math.cos(t);
      y[j] = k;
    }
  }
  return { x, y, n, classes };
}

export function buildMlp(hidden = 64, classes = 3, seed = 0): nn.Sequential {
  const rng = new Rng(seed);
  return new nn.Sequential(new nn.Linear(2, hidden, { rng }), new nn.ReLU(), new nn.Linear(hidden, classes, { rng }));
}

export interface TrainOptions {
  steps?: number;
  lr?: number;
  momentum?: number;
  hidden?: number;
  seed?: number;
  pointsPerClass?: number;
  /** Report every this many steps (and at the last). */
  every?: number;
}

export interface Progress {
  step: number;
  steps: number;
  loss: number;
  accuracy: number;
  stepsPerSec: number;
  etaSec: number;
  liveBytes: number;
}

/** Trains the MLP; calls onProgress every `every` steps; returns the reports and the final accuracy. */
export async function trainSpiral(opts: TrainOptions = {}, onProgress?: (p: Progress) => void): Promise<{ history: Progress[]; accuracy: number }> {
  const { steps = 600, lr = 0.1, momentum = 0.9, hidden = 64, seed = 0, pointsPerClass = 100, every = 100 } = opts;
  const data = makeSpiral({ pointsPerClass, seed });
  const X = tensor(data.x, [data.n, 2]);
  const Y = tensor(data.y, [data.n], 'int32');
  const model = buildMlp(hidden, data.classes, seed);
  const opt = new optim.SGD(model.parameters(), { lr, momentum });
  const history: Progress[] = [];
  let lastStep = 0, lastTime = performance.now();
  const evaluate = async (loss: Tensor, logits: Tensor): Promise<[number, number]> => {
    const correct = noGrad(() => tidy(() => sum(cast(eq(argmax(logits, 1), Y), 'float32'))));
    const [l, c] = [await loss.item(), await correct.item()];
    correct.dispose();
    return [l, c / data.n];
  };
  let accuracy = 0;
  try {
    for (let step = 1; step <= steps; step++) {
      const report = step % every === 0 || step === steps;
      opt.zeroGrad();
      const kept = tidy(() => {
        const logits = model.forward(X);
        const loss = crossEntropy(logits, Y);
        loss.backward();
        opt.step();
        return report ? { loss, logits } : null;
      });
      if (!kept) continue;
      // Loss and accuracy are those of the forward pass of this step (before its update).
      const [loss, acc] = await evaluate(kept.loss, kept.logits);
      kept.loss.dispose();
      kept.logits.dispose();
      // Rate over the last interval: the first one includes compiling every kernel's pipeline.
      const now = performance.now();
      const rate = (step - lastStep) / ((now - lastTime) / 1000);
      [lastStep, lastTime] = [step, now];
      const p: Progress = { step, steps, loss, accuracy: acc, stepsPerSec: rate, etaSec: (steps - step) / rate, liveBytes: memory().liveBytes };
      history.push(p);
      onProgress?.(p);
    }
    // Final accuracy after the last update (tidy: ops may make internal views we never see).
    const final = noGrad(() => tidy(() => {
      const logits = model.forward(X);
      return { logits, loss: crossEntropy(logits, Y) };
    }));
    accuracy = (await evaluate(final.loss, final.logits))[1];
    final.logits.dispose();
    final.loss.dispose();
  } finally {
    opt.dispose();
    model.dispose();
    for (const t of [X, Y]) t.dispose();
  }
  return { history, accuracy };
}

export const SPIRAL_USAGE = 'node cli/spiral.js [--steps N] [--lr X] [--every N] [--log FILE.jsonl]';
export const SPIRAL_OPTIONS: OptionSpec[] = [
  { name: 'steps', type: 'number', default: 600, metavar: 'N', help: 'full-batch SGD steps' },
  { name: 'lr', type: 'number', default: 0.1, metavar: 'X', help: 'learning rate (momentum 0.9)' },
  { name: 'hidden', type: 'number', default: 64, metavar: 'N', help: 'hidden units' },
  { name: 'points', type: 'number', default: 100, metavar: 'N', help: 'points per spiral arm' },
  { name: 'seed', type: 'number', default: 0, metavar: 'N', help: 'seed for the data and the initial weights' },
  { name: 'every', type: 'number', default: 100, metavar: 'N', help: 'print a progress line every N steps' },
  { name: 'log', type: 'string', metavar: 'FILE', help: 'write one JSON line per progress report' },
  { name: 'help', type: 'boolean', short: 'h', help: 'show this help' },
];

const fmtTime = (s: number): string => (s < 60 ? `${s.toFixed(1)}s` : `${Math.floor(s / 60)}m${Math.round(s % 60).toString().padStart(2, '0')}s`);

export async function main(argv: readonly string[] = process.argv.slice(2)): Promise<number> {
  let args;
  try {
    args = parseArgs(argv, SPIRAL_OPTIONS);
    if (args.positionals.length) throw new ArgsError(`unexpected argument '${args.positionals[0]}'`);
    for (const k of ['steps', 'every', 'hidden', 'points']) {
      const v = args.values[k] as number;
      if (!Number.isInteger(v) || v < 1) throw new ArgsError(`--${k} must be a positive integer, got ${v}`);
    }
  } catch (e) {
    if (!(e instanceof ArgsError)) throw e;
    console.error(`error: ${e.message}\n\n${formatHelp(SPIRAL_USAGE, SPIRAL_OPTIONS)}`);
    return 2;
  }
  const v = args.values;
  if (v.help) {
    console.log(formatHelp(SPIRAL_USAGE, SPIRAL_OPTIONS));
    return 0;
  }
  const logFile = v.log as string | undefined;
  try {
    if (logFile) writeFileSync(logFile, '');
    setQuiet(true);
    await init();
    const steps = v.steps as number;
    console.log(`spiral: ${3 * (v.points as number)} points, MLP 2-${v.hidden}-3, SGD lr ${v.lr} momentum 0.9, ${steps} full-batch steps`);
    const width = String(steps).length;
    const { accuracy } = await trainSpiral(
      { steps, lr: v.lr as number, hidden: v.hidden as number, seed: v.seed as number, pointsPerClass: v.points as number, every: v.every as number },
      (p) => {
        console.log(
          `step ${String(p.step).padStart(width)}/${steps}  loss ${p.loss.toFixed(4)}  acc ${(100 * p.accuracy).toFixed(1).padStart(5)}%  ` +
            `${p.stepsPerSec.toFixed(1)} steps/s  ETA ${fmtTime(p.etaSec)}`,
        );
        if (logFile) appendFileSync(logFile, JSON.stringify(p) + '\n');
      },
    );
    console.log(`final accuracy ${(100 * accuracy).toFixed(1)}%`);
    return 0;
  } catch (e) {
    console.error(`error: ${(e as Error).message}`);
    return 1;
  } finally {
    await shutdown();
  }
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().then((code) => { process.exitCode = code; });
}
