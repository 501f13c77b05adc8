#!/usr/bin/env node
// Browser bundles, made with esbuild from what tsc compiled (run after tsc; `npm run build` does):
//   <dist>/web/engine.js   the library as one ES module (engine, kernels, data; later the model),
//                          declarations in <dist>/web/engine.d.ts (re-exporting tsc's lib.d.ts)
//   <dist>/web/demo.js     the demo page's code, importing ./engine.js (not a second engine copy)
//   <dist>/web/tests.js    the in-page test harness with the engine's own test files
//   <dist>/web/mozjpeg_dec.wasm  libjpeg-turbo (from @jsquash/jpeg), loaded by data/jpeg.ts on the first JPEG
// Everything is bundled for the browser platform, so an import of a Node built-in anywhere in
// engine/, kernels/, model/, data/ or train/ fails the build here, naming the importer.
// Usage: node web/build.js [--dist DIR]   (default dist)
import { build } from 'esbuild';
import { copyFileSync, existsSync, rmSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const root = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const i = process.argv.indexOf('--dist');
const dist = resolve(root, i >= 0 ? process.argv[i + 1] : 'dist');
const web = join(dist, 'web');

for (const f of ['web/lib.js', 'web/app.js', 'test/browser/suites.js']) {
  if (!existsSync(join(dist, f))) {
    console.error(`web/build.js: ${join(dist, f)} is missing; compile with tsc first (npm run build)`);
    process.exit(1);
  }
}

const common = {
  bundle: true,
  format: 'esm',
  platform: 'browser',
  target: 'es2022',
  sourcemap: 'linked',
  logLevel: 'warning',
  // No shims for Node built-ins: a Node import in browser code is a bug to fix at its source.
  external: [],
};

// The demo's imports of the library entry become imports of the library bundle.
const libraryExternal = {
  name: 'library-external',
  setup(b) {
    const lib = join(web, 'lib.js');
    b.onResolve({ filter: /lib\.js$/ }, (args) =>
      resolve(args.resolveDir, args.path) === lib ? { path: './engine.js', external: true } : undefined,
    );
  },
};

// In the test bundle, `uvu` is the shim that hands cases to the page harness, and the Node GPU
// set-up (test/helpers/gpu.js registers Dawn) is the browser one.
const browserTestAliases = {
  name: 'browser-test-aliases',
  setup(b) {
    const nodeGpu = join(dist, 'test', 'helpers', 'gpu.js');
    b.onResolve({ filter: /^uvu$/ }, () => ({ path: join(dist, 'test', 'browser', 'uvu-shim.js') }));
    b.onResolve({ filter: /helpers\/gpu\.js$/ }, (args) =>
      resolve(args.resolveDir, args.path) === nodeGpu ? { path: join(dist, 'test', 'browser', 'page-gpu.js') } : undefined,
    );
  },
};

const t0 = Date.now();
try {
  await Promise.all([
    build({ ...common, entryPoints: [join(web, 'lib.js')], outfile: join(web, 'engine.js') }),
    build({ ...common, entryPoints: [join(web, 'app.js')], outfile: join(web, 'demo.js'), plugins: [libraryExternal] }),
  ]);
} catch {
  // esbuild has printed the errors (file, line, the unresolvable import).
  console.error('web/build.js: bundling the library or the demo failed (see above)');
  process.exit(1);
}
// The test bundle holds test files that others edit: if it cannot be built, the library build
// still succeeds, and npm run test:browser fails saying so (tests.js is removed, never left stale).
const testsOut = join(web, 'tests.js');
try {
  // One file, no code splitting: splitting does not keep module evaluation order (suites.ts).
  await build({ ...common, entryPoints: [join(dist, 'test', 'browser', 'suites.js')], outfile: testsOut, plugins: [browserTestAliases] });
} catch {
  rmSync(testsOut, { force: true });
  console.error('web/build.js: WARNING: the browser test bundle failed to build (see above); npm run test:browser will fail');
}
// The JPEG decoder's WebAssembly (data/jpeg.ts fetches it next to the bundle that imports it).
copyFileSync(createRequire(import.meta.url).resolve('@jsquash/jpeg/codec/dec/mozjpeg_dec.wasm'), join(web, 'mozjpeg_dec.wasm'));
writeFileSync(join(web, 'engine.d.ts'), "// Types of the browser bundle engine.js (its entry is web/lib.ts).\nexport * from './lib.js';\n");
console.log(`web/build.js: bundles in ${web} (${Date.now() - t0} ms)`);
