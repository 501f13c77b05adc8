// Exact GPU-memory assertions (liveBytes before == after) need other suites' garbage gone first:
// tensors they leaked are released by a FinalizationRegistry whenever JS happens to collect them,
// which would move liveBytes in the middle of a measurement. settleGarbage() runs a full collection
// and gives the finalizers a few turns, so what follows measures the test's own tensors alone.
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;

export async function settleGarbage(): Promise<void> {
  for (let i = 0; i < 3; i++) {
    gc();
    await new Promise((r) => setTimeout(r, 0));
  }
}
