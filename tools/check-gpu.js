#!/usr/bin/env node
// Exit 0 when Dawn finds a WebGPU adapter that can make a core device; prints what it found.
// Used by tools/setup.sh to decide whether the lavapipe driver must be installed.
import { create } from 'webgpu';

const gpu = create([]);
const adapter = await gpu.requestAdapter();
if (!adapter) {
  console.log('no WebGPU adapter found');
  process.exit(1);
}
try {
  const device = await adapter.requestDevice();
  const info = adapter.info;
  console.log(`WebGPU adapter: ${info.description || info.device || info.vendor || 'unknown'} (${info.architecture || 'n/a'})`);
  device.destroy();
  process.exit(0);
} catch (e) {
  console.log(`WebGPU adapter found but device creation failed: ${e.message}`);
  process.exit(1);
}
