// Test set-up: registers Dawn, initialises the engine once per process, quietly.
import '../../cli/node-gpu.js';
import { init, setQuiet } from '../../engine/index.js';

setQuiet(!process.env.VERBOSE);
export const ready = init();
