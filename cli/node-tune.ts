// Node's side of the kernel autotuner (engine/autotune.ts): its choices persist in a JSON file under
// the user's cache folder ($XDG_CACHE_HOME/maskrcnn-webgpu/tune.json, else ~/.cache/...), shared by
// every run and CLI on this machine. Keys carry the tuner's version and the adapter, so one file
// serves several GPUs and a new tuner version ignores older choices.
import { mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import path from 'node:path';
import { setAutotune, type TuneStore } from '../engine/index.js';
import { adapterIsCpu } from '../engine/device.js';

/** The cache file: $XDG_CACHE_HOME (or ~/.cache)/maskrcnn-webgpu/tune.json. */
export function tuneCachePath(env: NodeJS.ProcessEnv = process.env): string {
  return path.join(env.XDG_CACHE_HOME || path.join(homedir(), '.cache'), 'maskrcnn-webgpu', 'tune.json');
}

function readEntries(file: string): Record<string, string> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    return {};
  }
  try {
    const raw = JSON.parse(text) as unknown;
    if (raw !== null && typeof raw === 'object' && !Array.isArray(raw)) return raw as Record<string, string>;
  } catch {
    // fall through: a damaged cache is only a lost speed-up; it is rewritten at the next save
  }
  console.error(`[autotune] ignoring ${file}: not a JSON object (it will be rewritten)`);
  return {};
}

/** A TuneStore in one JSON file; saves merge with what other processes wrote and replace atomically. */
export function fileTuneStore(file: string): TuneStore {
  return {
    load: () => readEntries(file),
    save: (entries) => {
      try {
        mkdirSync(path.dirname(file), { recursive: true });
        const tmp = `${file}.${process.pid}.tmp`;
        writeFileSync(tmp, JSON.stringify({ ...readEntries(file), ...entries }, null, 1));
        renameSync(tmp, file);
      } catch (e) {
        console.error(`[autotune] could not save ${file}: ${(e as Error).message}`);
      }
    },
  };
}

/** Why tuning is off in this environment, or null: MASKRCNN_NO_TUNE=1 or CI set. */
export function tuneDisabledByEnv(env: NodeJS.ProcessEnv = process.env): string | null {
  const set = (v: string | undefined) => v !== undefined && v !== '' && v !== '0' && v.toLowerCase() !== 'false';
  if (set(env.MASKRCNN_NO_TUNE)) return 'MASKRCNN_NO_TUNE is set';
  if (set(env.CI)) return 'CI is set';
  return null;
}

/**
 * Switches the autotuner on with the file store, or off. `wanted` is the --tune / --no-tune flag;
 * not given, tuning is on for GPUs and off for CPU adapters (lavapipe, SwiftShader): there the
 * fixed table holds the measured winners, and timing every class's candidates costs minutes of
 * shader compilation on the first run (a tiny-cpu inference: 57 classes, 850 s once, then 14 s).
 * MASKRCNN_NO_TUNE / CI switch it off whatever the flag. Call after init(); returns whether it is on.
 */
export async function configureAutotune(wanted: boolean | undefined, env: NodeJS.ProcessEnv = process.env): Promise<boolean> {
  const on = (wanted ?? !adapterIsCpu()) && tuneDisabledByEnv(env) === null;
  await setAutotune(on ? { enabled: true, store: fileTuneStore(tuneCachePath(env)) } : { enabled: false });
  return on;
}
