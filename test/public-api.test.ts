// The engine's public entries (engine/index.js, and its namespaces engine/nn/index.js and
// engine/optim/index.js, which also work imported alone) leave a working Tensor however they are
// loaded: each is imported alone in a fresh Node process (no other module of ours loaded first)
// and the Tensor methods must be there; one fresh process trains through nn alone on the GPU (the
// autograd wiring must be in place too); and an esbuild code-split bundle of three entries, one per
// public module, does the same from its shared chunks (a code-split browser bundle once lost the
// methods). Also: README's "Public API" lists exactly what engine/index.ts exports.
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { build } from 'esbuild';
import ts from 'typescript';

const DIST = fileURLToPath(new URL('..', import.meta.url)); // dist/ (or $TEST_DIST)
const PUBLIC = ['engine/index.js', 'engine/nn/index.js', 'engine/optim/index.js'];
const METHODS = ['add', 'sub', 'mul', 'div', 'relu', 'sum', 'mean', 'matmul', 'reshape', 'permute', 'transpose', 'softmax', 'gather', 'backward', 'requiresGrad_', 'detach'];
const url = (p: string): string => pathToFileURL(join(DIST, p)).href;

/** A script that imports `entry` alone, then reads the Tensor prototype, printing the missing methods as JSON. */
const checkScript = (entry: string, tensorModule: string): string => `
await import(${JSON.stringify(entry)});
const { Tensor } = await import(${JSON.stringify(tensorModule)});
const P = Tensor.prototype;
const missing = ${JSON.stringify(METHODS)}.filter((m) => typeof P[m] !== 'function');
if (!Object.getOwnPropertyDescriptor(P, 'T')?.get) missing.push('T');
console.log(JSON.stringify(missing));`;

function runNode(label: string, args: string[]): string {
  const r = spawnSync(process.execPath, args, { encoding: 'utf8', timeout: 120_000 });
  assert.equal(r.status, 0, `${label}: node exited ${r.status}:\n${r.stderr}`);
  return r.stdout.trim().split('\n').pop()!;
}

for (const entry of PUBLIC) {
  test(`importing ${entry} alone, in a fresh process, installs the Tensor methods`, () => {
    const missing = JSON.parse(runNode(`import ${entry} alone`, ['--input-type=module', '-e', checkScript(url(entry), url('engine/tensor.js'))]));
    assert.equal(missing, [], `after importing only ${entry}, Tensor lacks ${missing.join(', ')}`);
  });
}

test('nn imported alone (fresh process): a Linear layer trains a step (methods and autograd wiring in place)', () => {
  const script = `
await import(${JSON.stringify(url('cli/node-gpu.js'))}); // Dawn: the Node adapter, no engine wiring
const nn = await import(${JSON.stringify(url('engine/nn/index.js'))});
const { init, shutdown } = await import(${JSON.stringify(url('engine/backend.js'))});
const { fromData } = await import(${JSON.stringify(url('engine/tensor.js'))});
await init();
const layer = new nn.Linear(3, 2);
const x = fromData([1, 2, 3, 4, 5, 6], [2, 3], 'float32');
layer.forward(x).square().mean().backward();
const g = await layer.weight.grad.data();
console.log(JSON.stringify({ n: g.length, finite: Array.from(g).every(Number.isFinite) }));
await shutdown();`;
  assert.equal(JSON.parse(runNode('train through nn alone', ['--input-type=module', '-e', script])), { n: 6, finite: true });
});

test('an esbuild code-split bundle of the three public entries keeps the Tensor methods in each', async () => {
  const dir = mkdtempSync(join(tmpdir(), 'public-api-'));
  try {
    const entries = PUBLIC.map((entry, i) => {
      const file = join(dir, `entry${i}.js`);
      writeFileSync(file, `import * as m from ${JSON.stringify(join(DIST, entry))};\nimport { Tensor } from ${JSON.stringify(join(DIST, 'engine/tensor.js'))};\n` +
        `const missing = ${JSON.stringify(METHODS)}.filter((k) => typeof Tensor.prototype[k] !== 'function');\nconsole.log(JSON.stringify({ exports: Object.keys(m).length, missing }));\n`);
      return file;
    });
    const out = join(dir, 'out');
    await build({ entryPoints: entries, bundle: true, splitting: true, format: 'esm', platform: 'neutral', outdir: out, outExtension: { '.js': '.mjs' }, logLevel: 'error' });
    for (let i = 0; i < PUBLIC.length; i++) {
      const r = JSON.parse(runNode(`bundle entry ${PUBLIC[i]}`, [join(out, `entry${i}.mjs`)]));
      assert.ok(r.exports > 0, `${PUBLIC[i]}: the bundle exports nothing`);
      assert.equal(r.missing, [], `code-split bundle, entry ${PUBLIC[i]}: Tensor lacks ${r.missing.join(', ')}`);
    }
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

/** Names exported by a TypeScript source (export { a, type B } from / export * as ns / export function). */
function exportedNames(file: string): string[] {
  const sf = ts.createSourceFile(file, readFileSync(file, 'utf8'), ts.ScriptTarget.Latest);
  const names: string[] = [];
  for (const st of sf.statements) {
    if (ts.isExportDeclaration(st) && st.exportClause) {
      if (ts.isNamedExports(st.exportClause)) names.push(...st.exportClause.elements.map((e) => e.name.text));
      else names.push(st.exportClause.name.text);
    } else if (ts.canHaveModifiers(st) && ts.getModifiers(st)?.some((m) => m.kind === ts.SyntaxKind.ExportKeyword)) {
      const n = (st as ts.DeclarationStatement).name;
      if (n && ts.isIdentifier(n)) names.push(n.text);
    }
  }
  return names.sort();
}

test("README's Public API section lists exactly engine/index.ts's exports", () => {
  const root = process.cwd(); // test/run.js runs from the repository root
  const readme = readFileSync(join(root, 'README.md'), 'utf8');
  const start = readme.indexOf('## Public API');
  assert.ok(start >= 0, 'README.md has no "## Public API" section');
  const section = readme.slice(start, readme.indexOf('\n## ', start + 1) >>> 0 || undefined);
  // The listed names are the backticked identifiers of the section's list items, outside
  // parentheses (which say what a namespace or object holds).
  const listed = new Set<string>();
  for (const line of section.split('\n').filter((l) => l.startsWith('- **'))) {
    for (const m of line.replace(/\([^)]*\)/g, '').matchAll(/`([A-Za-z_][A-Za-z0-9_]*)`/g)) listed.add(m[1]!);
  }
  const exported = exportedNames(join(root, 'engine', 'index.ts'));
  const missing = exported.filter((n) => !listed.has(n));
  const extra = [...listed].filter((n) => !exported.includes(n));
  assert.equal(missing, [], `README's Public API section does not list: ${missing.join(', ')}`);
  assert.equal(extra, [], `README's Public API section lists names engine/index.ts does not export: ${extra.join(', ')}`);
});

test.run();
