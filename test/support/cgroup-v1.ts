/**
 * A cgroup v1 child group for a test's own node processes: cpu quota (throttle) or memory limit. Only processes
 * the test started go in; cleanup() moves them back to the parent group and removes the group.
 */
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

export class CgroupV1 {
  readonly dir: string;
  private readonly pids = new Set<number>();

  constructor(
    readonly controller: 'cpu' | 'memory',
    name: string,
  ) {
    const root = `/sys/fs/cgroup/${controller}`;
    // The group is made under the one this test process is in, so the test's own limits still apply to it.
    const own = readFileSync('/proc/self/cgroup', 'utf8')
      .split('\n')
      .find((l) => l.split(':')[1]?.split(',').includes(controller));
    this.parent = join(root, own ? own.slice(own.lastIndexOf(':') + 1) : '/');
    this.dir = join(this.parent, `${name}-${process.pid}`);
    mkdirOnce(this.dir);
  }

  private readonly parent: string;

  static available(controller: 'cpu' | 'memory'): boolean {
    return process.getuid?.() === 0 && existsSync(`/sys/fs/cgroup/${controller}/cgroup.procs`);
  }

  add(pid: number): void {
    writeFileSync(join(this.dir, 'cgroup.procs'), String(pid));
    this.pids.add(pid);
  }

  /** CPU share of one core (0.1 = 10 %), or null for no limit. */
  setCpuQuota(fraction: number | null): void {
    const period = Number(readFileSync(join(this.dir, 'cpu.cfs_period_us'), 'utf8'));
    writeFileSync(join(this.dir, 'cpu.cfs_quota_us'), fraction === null ? '-1' : String(Math.round(period * fraction)));
  }

  cleanup(): void {
    for (const pid of this.pids) {
      try {
        writeFileSync(join(this.parent, 'cgroup.procs'), String(pid));
      } catch {
        // the process has exited
      }
    }
    this.pids.clear();
    try {
      rmdirSync(this.dir);
    } catch {
      // already gone
    }
  }
}

function mkdirOnce(dir: string): void {
  // On cgroupfs, mkdir creates the group with its control files.
  if (!existsSync(dir)) mkdirSync(dir);
}
