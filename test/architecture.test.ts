// The architecture's rules over the import graph of every source file (test/helpers/imports.ts).
// Layers only look down:
//   kernels/  WGSL generators and their references: imports only kernels/
//   engine/   tensors, autodiff, ops, nn, optim: imports only engine/ and kernels/
//   model/    Mask R-CNN: the engine through its public entry engine/index.js only, plus model/,
//             data/ and the host box math kernels/box-math.js (its float32 instance is the
//             detector's host path)
//   data/     COCO, images, transforms, COCOeval: the engine through engine/index.js only, data/
//   train/    browser-safe training: anything below, never cli/ or web/
//   web/      the demo page: never cli/
//   native/   native addons' own TypeScript faces (native/mpi: the Open MPI Collective): never cli/ or web/
//   bench/, tools/: of cli/ only its Node adapters (Dawn registration, file I/O, argv parsing)
// and engine/, kernels/, model/, data/, train/ import no Node built-ins (they run in browsers).
// Every failure names the file, the import and the rule.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { builtinModules } from 'node:module';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { importEdges, type ImportEdge } from './helpers/imports.js';

// test/run.js runs from the repository root.
const ROOT = process.cwd();
assert.ok(existsSync(join(ROOT, 'engine', 'index.ts')), `architecture test: run from the repository root (no engine/index.ts in ${ROOT})`);
const edges = importEdges(ROOT);

const under = (dir: string) => (path: string | null): boolean => path !== null && path.startsWith(`${dir}/`);
const isBuiltin = (spec: string): boolean => spec.startsWith('node:') || builtinModules.includes(spec) || builtinModules.includes(spec.split('/')[0]!);
const NODE_ADAPTERS = new Set(['cli/node-io.js', 'cli/node-gpu.js', 'cli/args.js']);
const BROWSER_SAFE = ['engine', 'kernels', 'model', 'data', 'train'];

interface Rule {
  name: string;
  /** Files the rule governs. */
  applies: (file: string) => boolean;
  /** True when the import breaks the rule. */
  breaks: (e: ImportEdge) => boolean;
}

const onlyRelativeInto = (allowed: ((p: string | null) => boolean)[]) => (e: ImportEdge): boolean => e.target !== null && !allowed.some((ok) => ok(e.target));

const RULES: Rule[] = [
  {
    name: 'kernels/ imports only kernels/',
    applies: under('kernels'),
    breaks: (e) => (e.target === null ? !isBuiltin(e.spec) : !under('kernels')(e.target)),
  },
  {
    name: 'engine/ imports only engine/ and kernels/',
    applies: under('engine'),
    breaks: (e) => (e.target === null ? !isBuiltin(e.spec) : !under('engine')(e.target) && !under('kernels')(e.target)),
  },
  {
    name: 'model/ imports the engine only through engine/index.js, and otherwise only model/, data/ and kernels/box-math.js',
    applies: under('model'),
    breaks: onlyRelativeInto([under('model'), under('data'), (p) => p === 'engine/index.js', (p) => p === 'kernels/box-math.js']),
  },
  {
    name: 'data/ imports the engine only through engine/index.js, and otherwise only data/',
    applies: under('data'),
    breaks: onlyRelativeInto([under('data'), (p) => p === 'engine/index.js']),
  },
  {
    name: 'train/ imports nothing from cli/ or web/',
    applies: under('train'),
    breaks: (e) => under('cli')(e.target) || under('web')(e.target),
  },
  {
    name: 'web/ imports nothing from cli/',
    applies: under('web'),
    breaks: (e) => under('cli')(e.target),
  },
  {
    name: 'native/ imports nothing from cli/ or web/',
    applies: under('native'),
    breaks: (e) => under('cli')(e.target) || under('web')(e.target),
  },
  {
    name: "bench/ and tools/ import from cli/ only its Node adapters (cli/node-io, cli/node-gpu, cli/args)",
    applies: (f) => under('bench')(f) || under('tools')(f),
    breaks: (e) => under('cli')(e.target) && !NODE_ADAPTERS.has(e.target!),
  },
  {
    name: `${BROWSER_SAFE.map((d) => `${d}/`).join(', ')} import no Node built-ins`,
    applies: (f) => BROWSER_SAFE.some((d) => under(d)(f)),
    breaks: (e) => e.target === null && isBuiltin(e.spec),
  },
];

/** The rule's violations, one line each: file, import, rule. */
function violations(rule: Rule, all: readonly ImportEdge[]): string[] {
  return all.filter((e) => rule.applies(e.file) && rule.breaks(e)).map((e) => `${e.file} imports '${e.spec}'${e.target ? ` (${e.target})` : ''}: breaks "${rule.name}"`);
}

test('the import graph is read (sanity: known edges are found)', () => {
  assert.ok(edges.some((e) => e.file === 'engine/index.ts' && e.spec === './install.js'), 'engine/index.ts imports ./install.js');
  assert.ok(edges.some((e) => e.file === 'model/maskrcnn.ts' && e.target === 'engine/index.js'), 'model/maskrcnn.ts imports engine/index.js');
  assert.ok(edges.some((e) => e.file === 'data/jpeg.ts' && e.spec === 'jpeg-js'), "data/jpeg.ts imports 'jpeg-js'");
});

test('the rules catch what they forbid (each rule fails on a made-up import)', () => {
  const fake: ImportEdge[] = [
    { file: 'kernels/x.ts', spec: '../engine/tensor.js', target: 'engine/tensor.js' },
    { file: 'engine/x.ts', spec: '../model/rpn.js', target: 'model/rpn.js' },
    { file: 'model/x.ts', spec: '../engine/tensor.js', target: 'engine/tensor.js' },
    { file: 'data/x.ts', spec: '../engine/ops/view.js', target: 'engine/ops/view.js' },
    { file: 'train/x.ts', spec: '../cli/progress.js', target: 'cli/progress.js' },
    { file: 'web/x.ts', spec: '../cli/node-io.js', target: 'cli/node-io.js' },
    { file: 'native/mpi/x.ts', spec: '../../cli/args.js', target: 'cli/args.js' },
    { file: 'tools/x.ts', spec: '../cli/train.js', target: 'cli/train.js' },
    { file: 'data/y.ts', spec: 'fs', target: null },
  ];
  RULES.forEach((rule, i) => assert.equal(violations(rule, [fake[i]!]).length, 1, `rule "${rule.name}" misses ${fake[i]!.file} -> ${fake[i]!.spec}`));
  const allowed: ImportEdge[] = [
    { file: 'tools/x.ts', spec: '../cli/node-gpu.js', target: 'cli/node-gpu.js' },
    { file: 'model/x.ts', spec: '../engine/index.js', target: 'engine/index.js' },
    { file: 'engine/x.ts', spec: '../kernels/common.js', target: 'kernels/common.js' },
  ];
  for (const rule of RULES) assert.equal(violations(rule, allowed), [], `rule "${rule.name}" forbids an allowed import`);
});

for (const rule of RULES) {
  test(`rule: ${rule.name}`, () => {
    const bad = violations(rule, edges);
    assert.ok(bad.length === 0, `${bad.length} import(s) break the architecture:\n  ${bad.join('\n  ')}`);
  });
}

test.run();
