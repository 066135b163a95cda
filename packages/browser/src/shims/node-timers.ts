/**
 * Shared code calls `timer.unref()` (Node's timers are objects; a page's are numbers). Unref means "do not keep the
 * process alive", which has no meaning in a page: make it a no-op on numbers. Imported first by the bundle entry.
 */
const proto = Number.prototype as unknown as { unref?: () => unknown; ref?: () => unknown; hasRef?: () => boolean };
if (!proto.unref) {
  Object.defineProperty(proto, 'unref', { value: function (this: number) { return this; }, configurable: true });
  Object.defineProperty(proto, 'ref', { value: function (this: number) { return this; }, configurable: true });
  Object.defineProperty(proto, 'hasRef', { value: () => false, configurable: true });
}


/**
 * setImmediate (used by shared code to yield to I/O): a MessageChannel task, which runs after pending I/O events
 * like Node's and is not clamped to 4 ms as nested setTimeout(0) is.
 */
interface ImmediateGlobal {
  setImmediate?: (fn: (...args: unknown[]) => void, ...args: unknown[]) => number;
  clearImmediate?: (id: number) => void;
}
const g = globalThis as unknown as ImmediateGlobal;
if (typeof g.setImmediate !== 'function') {
  const queue = new Map<number, () => void>();
  let nextId = 1;
  const channel = new MessageChannel();
  channel.port1.onmessage = (e: MessageEvent<number>) => {
    const fn = queue.get(e.data);
    queue.delete(e.data);
    fn?.();
  };
  g.setImmediate = (fn, ...args) => {
    const id = nextId++;
    queue.set(id, () => fn(...args));
    channel.port2.postMessage(id);
    return id;
  };
  g.clearImmediate = (id) => void queue.delete(id);
}
export {};
