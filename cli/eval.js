#!/usr/bin/env node
// Launcher for the compiled COCO evaluation CLI (cli/eval.ts -> dist/cli/eval.js).
// Usage: node cli/eval.js --gt ANN.json --dt RESULTS.json --iou-type bbox|segm [--json] [--per-class]
import { existsSync } from 'node:fs';

const target = new URL('../dist/cli/eval.js', import.meta.url);
if (!existsSync(target)) {
  console.error('cli/eval.js: dist/cli/eval.js is missing; run npm run build first');
  process.exit(1);
}
const { main } = await import(target.href);
process.exitCode = await main(process.argv.slice(2));
