// The browser library: everything a page needs in one ES module. web/build.js bundles this
// (after tsc) into <dist>/web/engine.js, with declarations in <dist>/web/engine.d.ts. The engine
// finds navigator.gpu by itself; images, safetensors and synthetic data work on bytes in memory.
export * from '../engine/index.js';
export * as image from '../data/image.js';
export * as shapes from '../data/synthetic.js';
export * as rle from '../data/rle.js';
