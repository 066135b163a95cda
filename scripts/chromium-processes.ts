/**
 * The Chromium processes this Node process started (found through /proc, Linux only), with their peak RSS and CPU
 * time: a page's memory and work live in its renderer process — wllama's worker and its threads included — which
 * playwright does not expose.
 */
import { readFile, readdir } from 'node:fs/promises';

export interface ChromiumProcess {
  pid: number;
  /** `renderer`, `gpu-process`, `utility`, `zygote`…, or `browser` for the main process (no --type). */
  type: string;
}

/** Chromium processes below this process; empty where /proc cannot be read. */
export async function chromiumProcesses(): Promise<ChromiumProcess[]> {
  const parent = new Map<number, number>();
  const cmd = new Map<number, string>();
  let names: string[];
  try {
    names = await readdir('/proc');
  } catch {
    return [];
  }
  for (const name of names) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const st = await readFile(`/proc/${name}/stat`, 'utf8');
      // Fields after the parenthesised command name: state, ppid, …
      parent.set(Number(name), Number(st.slice(st.lastIndexOf(')') + 2).split(' ')[1]));
      cmd.set(Number(name), (await readFile(`/proc/${name}/cmdline`, 'utf8')).replaceAll('\0', ' '));
    } catch {
      // The process ended while we looked.
    }
  }
  const mine = (pid: number): boolean => {
    for (let p = parent.get(pid); p !== undefined && p > 1; p = parent.get(p)) if (p === process.pid) return true;
    return false;
  };
  const out: ChromiumProcess[] = [];
  for (const [pid, c] of cmd) {
    if (!mine(pid) || !c.includes('chrom')) continue;
    out.push({ pid, type: /--type=(\S+)/.exec(c)?.[1] ?? 'browser' });
  }
  return out;
}

/** VmHWM: the process's peak resident set. */
export async function peakRssBytes(pid: number): Promise<number | undefined> {
  try {
    const m = /VmHWM:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'));
    return m ? Number(m[1]) * 1024 : undefined;
  } catch {
    return undefined;
  }
}

/** User + system CPU time of the process, all its threads, in ms (clock ticks of 10 ms on Linux). */
export async function cpuTimeMs(pid: number): Promise<number> {
  try {
    const st = await readFile(`/proc/${pid}/stat`, 'utf8');
    const f = st.slice(st.lastIndexOf(')') + 2).split(' ');
    // utime and stime are fields 14 and 15 of stat, 12 and 13 after the command name.
    return (Number(f[11]) + Number(f[12])) * 10;
  } catch {
    return 0;
  }
}
