/**
 * Works around a bug in `xsalsa20` 1.2.0 (the cipher of @libp2p/pnet, i.e. of every cluster with a key): all ciphers
 * share one WebAssembly memory, but each keeps its own view of it. When one cipher grows the memory (a chunk larger
 * than the memory: a WebSocket message, a big TCP read), the others' views are detached (length 0); each of them
 * then "grows" the memory again by its whole working size on its next update. With two connections taking turns,
 * the memory reaches its maximum after ~60 MB of traffic and the node dies with "WebAssembly.Memory.grow(): Maximum
 * memory size exceeded" thrown from a socket event. Fix: give a cipher with a detached view a fresh one first.
 * Installed once, at import (edge-host.ts imports this module).
 */
import xsalsa20 from 'xsalsa20';

interface WasmCipher {
  _memory: Uint8Array;
  update(input: Uint8Array, output: Uint8Array): void;
}
interface Cipher {
  _xor: WasmCipher | object;
  finalize(): void;
}

const ZERO_NONCE = new Uint8Array(24);
const ZERO_KEY = new Uint8Array(32);

/** A view of the shared memory as it is now: a new cipher takes one at construction. */
function currentView(): Uint8Array {
  const probe = xsalsa20(ZERO_NONCE, ZERO_KEY) as unknown as Cipher;
  const view = (probe._xor as WasmCipher)._memory;
  probe.finalize();
  return view;
}

const sample = xsalsa20(ZERO_NONCE, ZERO_KEY) as unknown as Cipher;
const wasmProto = '_memory' in sample._xor ? (Object.getPrototypeOf(sample._xor) as WasmCipher & { __edgeNodeFixed?: boolean }) : null;
sample.finalize();
// Only the WebAssembly implementation has the bug (the pure-JS fallback keeps no shared memory).
if (wasmProto && !wasmProto.__edgeNodeFixed) {
  const update = wasmProto.update;
  wasmProto.update = function (this: WasmCipher, input: Uint8Array, output: Uint8Array): void {
    if (this._memory.byteLength === 0) this._memory = currentView();
    update.call(this, input, output);
  };
  wasmProto.__edgeNodeFixed = true;
}

export {};
