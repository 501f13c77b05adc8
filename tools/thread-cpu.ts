// CPU time per thread group of this process, from /proc/self/task/*/stat (Linux; {} elsewhere):
// where a step's CPU goes between node's main thread (JS, Dawn's encoding) and the driver's worker
// threads (lavapipe's kernels). Threads are grouped by name with trailing digits dropped; the main
// thread is 'main'. Resolution: the kernel's clock tick (10 ms), so measure spans of seconds.
import { readdirSync, readFileSync } from 'node:fs';

/** Milliseconds of user + system CPU time per thread group. */
export type ThreadCpu = Record<string, number>;

const TICK_MS = 10; // USER_HZ is 100 on Linux

export function threadCpu(): ThreadCpu {
  const out: ThreadCpu = {};
  let tids: string[];
  try {
    tids = readdirSync('/proc/self/task');
  } catch {
    return out;
  }
  for (const tid of tids) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/self/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended meanwhile
    }
    const close = stat.lastIndexOf(')');
    const name = Number(tid) === process.pid ? 'main' : stat.slice(stat.indexOf('(') + 1, close).replace(/[\d:]+$/, '') || 'thread';
    // Fields after the name: state is field 3, utime 14 and stime 15 (1-based, the name being 2).
    const f = stat.slice(close + 2).split(' ');
    out[name] = (out[name] ?? 0) + (Number(f[11]) + Number(f[12])) * TICK_MS;
  }
  return out;
}

/** All groups together. */
export function cpuOf(t: ThreadCpu): number {
  return Object.values(t).reduce((a, v) => a + v, 0);
}
