#!/usr/bin/env node
// Launcher for the demo server (cli/demo-server.ts -> dist/cli/demo-server.js).
// Usage: node cli/demo.js [--port 8080] [--dist dist] [--files DIR]
import { existsSync } from 'node:fs';

const target = new URL('../dist/cli/demo-server.js', import.meta.url);
if (!existsSync(target)) {
  console.error('cli/demo.js: dist/cli/demo-server.js is missing; run npm run build first');
  process.exit(1);
}
const { main } = await import(target.href);
process.exitCode = await main(process.argv.slice(2));
