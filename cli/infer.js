#!/usr/bin/env node
// Launcher for the compiled inference CLI (cli/infer.ts -> dist/cli/infer.js).
// Usage: node cli/infer.js --preset NAME --weights W.safetensors IMAGE_OR_DIR... [--out DIR] [--json RESULTS.json] ...
import { existsSync } from 'node:fs';

const target = new URL('../dist/cli/infer.js', import.meta.url);
if (!existsSync(target)) {
  console.error('cli/infer.js: dist/cli/infer.js is missing; run npm run build first');
  process.exit(1);
}
const { main } = await import(target.href);
process.exitCode = await main(process.argv.slice(2));
