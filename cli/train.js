#!/usr/bin/env node
// Launcher for the compiled training CLI (cli/train.ts -> dist/cli/train.js).
// Usage: node cli/train.js [--preset NAME --train-images DIR --train-ann ANN.json ...] (--help for all)
import { existsSync } from 'node:fs';

const target = new URL('../dist/cli/train.js', import.meta.url);
if (!existsSync(target)) {
  console.error('cli/train.js: dist/cli/train.js is missing; run npm run build first');
  process.exit(1);
}
const { main } = await import(target.href);
process.exitCode = await main(process.argv.slice(2));
