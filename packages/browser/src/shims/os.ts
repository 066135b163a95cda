/** node:os for the browser bundle: what the device profile reads, from what a page may know. */
interface NavigatorWithMemory {
  hardwareConcurrency?: number;
  deviceMemory?: number;
}
const nav = (globalThis as { navigator?: NavigatorWithMemory }).navigator ?? {};
// deviceMemory is rounded and capped at 8 GB by browsers; a page cannot see free memory.
const total = (nav.deviceMemory ?? 4) * 1024 ** 3;

export const totalmem = (): number => total;
export const freemem = (): number => total / 2;
export const availableParallelism = (): number => nav.hardwareConcurrency ?? 1;
export const cpus = (): unknown[] => Array.from({ length: availableParallelism() }, () => ({}));
export const hostname = (): string => 'browser';
export const platform = (): string => 'browser';
export const homedir = (): string => '/';
export const tmpdir = (): string => '/tmp';

export default { totalmem, freemem, availableParallelism, cpus, hostname, platform, homedir, tmpdir };
