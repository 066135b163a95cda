/**
 * node:fs/promises for the browser bundle. A page has no file system: a browser node keeps its tensors in IndexedDB
 * (IdbTensorStore), holds its identity in memory and takes GGUF models (tokenizer inside the manifest). Any code path
 * that still reaches for a file fails with this message instead of a missing-module error.
 */
function unavailable(name: string): () => Promise<never> {
  return () => Promise.reject(new Error(`${name}() is not available in a browser node (no file system in a page)`));
}
export const readFile = unavailable('readFile');
export const writeFile = unavailable('writeFile');
export const mkdir = unavailable('mkdir');
export const readdir = unavailable('readdir');
export const stat = unavailable('stat');
export const rename = unavailable('rename');
export const unlink = unavailable('unlink');
export const open = unavailable('open');
export const rm = unavailable('rm');
export default { readFile, writeFile, mkdir, readdir, stat, rename, unlink, open, rm };
