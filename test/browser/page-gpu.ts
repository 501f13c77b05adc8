// Replaces test/helpers/gpu.ts in the browser test bundle (web/build.js aliases it): the engine
// finds navigator.gpu by itself, so this only initialises it once, quietly (the adapter line would
// otherwise be a console error).
import { init, setQuiet } from '../../engine/index.js';

setQuiet(true);
export const ready = init();
