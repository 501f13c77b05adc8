#!/usr/bin/env node
// Launcher for the compiled spiral MLP demo (cli/spiral.ts -> dist/cli/spiral.js).
// Usage: node cli/spiral.js [--steps N] [--lr X] [--every N] [--log FILE.jsonl]
import { existsSync } from 'node:fs';

const target = new URL('../dist/cli/spiral.js', import.meta.url);
if (!existsSync(target)) {
  console.error('cli/spiral.js: dist/cli/spiral.js is missing; run npm run build first');
  process.exit(1);
}
const { main } = await import(target.href);
process.exitCode = await main(process.argv.slice(2));
