// Test set-up: registers Dawn, initialises the engine once per process, quietly.
import '../../cli/node-gpu.js';
import { init, setQuiet } from '../../engine/index.js';
import { setKernelTiering } from '../../engine/tiering.js';

setQuiet(!process.env.VERBOSE);
// Tests check the kernels that training runs: the fast variants, compiled at first use. With
// background tiering (lavapipe's default) a dispatch runs the quick variant until the fast one has
// compiled on the side, so a fast variant's bug could pass unseen. test/kernel-tiers.test.ts checks
// the quick variants and the tiering itself; KERNEL_TIERS still chooses (cli/node-gpu.ts).
if (!process.env.KERNEL_TIERS) setKernelTiering('off');
export const ready = init();
