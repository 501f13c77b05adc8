// The import graph of the source tree, for the architecture test: every .ts/.js source outside
// node_modules, dist and generated folders, with the module specifiers it imports or re-exports
// (static, side-effect and dynamic imports), read by TypeScript's own pre-processor so comments
// and strings never count.
import { readdirSync, readFileSync } from 'node:fs';
import { join, relative, dirname, posix } from 'node:path';
import ts from 'typescript';

const SKIP = new Set(['node_modules', 'dist', '.cache', 'runs', 'test-output', '.git']);

export interface ImportEdge {
  /** Importing file, relative to the repository root, with '/' separators. */
  file: string;
  /** The specifier as written. */
  spec: string;
  /** For a relative specifier, the imported file relative to the root ('.js' as written); else null. */
  target: string | null;
}

/** Source files (.ts, .js, .mjs; not .d.ts) under root, relative paths with '/' separators. */
export function sourceFiles(root: string, dir = root): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.') && e.name !== '.ci') continue;
    if (SKIP.has(e.name)) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) out.push(...sourceFiles(root, p));
    else if (/\.(ts|js|mjs)$/.test(e.name) && !e.name.endsWith('.d.ts')) out.push(relative(root, p).split('\\').join('/'));
  }
  return out.sort();
}

/** Every import/export-from/dynamic-import specifier of every source file under root. */
export function importEdges(root: string): ImportEdge[] {
  const edges: ImportEdge[] = [];
  for (const file of sourceFiles(root)) {
    const info = ts.preProcessFile(readFileSync(join(root, file), 'utf8'), true, true);
    for (const { fileName: spec } of info.importedFiles) {
      const target = spec.startsWith('.') ? posix.normalize(posix.join(dirname(file), spec)) : null;
      edges.push({ file, spec, target });
    }
  }
  return edges;
}
