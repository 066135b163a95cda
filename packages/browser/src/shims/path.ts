/** node:path for the browser bundle: the joins the runtime does to name things (nothing is a file in a page). */
export const sep = '/';
export function join(...parts: string[]): string {
  return parts.filter((p) => p !== '').join('/').replace(/\/+/g, '/');
}
export const resolve = join;
export function basename(p: string): string {
  return p.slice(p.lastIndexOf('/') + 1);
}
export function dirname(p: string): string {
  const i = p.lastIndexOf('/');
  return i <= 0 ? (i === 0 ? '/' : '.') : p.slice(0, i);
}
export default { sep, join, resolve, basename, dirname };
