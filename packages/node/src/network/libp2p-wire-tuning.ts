import type { Transport, Upgrader } from '@libp2p/interface';
import { tcp, type TCPComponents, type TCPOptions } from '@libp2p/tcp';
import { YamuxStream } from '@libp2p/yamux/stream';
import type { Socket } from 'node:net';

/**
 * Two fixes for how the libp2p stack writes small messages (a decode step's activation frame is ~2.4 KB), measured
 * on loopback (scripts/bench-pipeline.ts). Both reach into package internals, so each checks that what it relies
 * on is there and otherwise leaves the stack as it is.
 *
 * 1. One socket write per message. Yamux hands Noise a [header, payload] list, Noise returns [length, header
 *    ciphertext, payload ciphertext, tag], and @libp2p/tcp calls `socket.write` once per piece: 4 syscalls and,
 *    with TCP_NODELAY, 4 segments, so the receiver wakes up to 4 times per message. Corking the socket around each
 *    `sendData` makes Node send the pieces with one writev.
 *
 * 2. Window updates only when half the window is used. @libp2p/yamux 8 answers every data frame with a window
 *    update frame, so each activation frame makes the receiver encrypt and write a second message and the sender
 *    wake up to read it. go-yamux (and the yamux spec's intent) send one once at least half the receive window has
 *    been consumed; with a 256 KiB window that is one update per ~50 decode frames.
 */

interface CorkableConnection {
  socket?: Socket;
  sendData?: (data: unknown) => unknown;
}

const corked = new WeakSet<object>();

/** Makes one `sendData` call one socket write (see above). Returns false when the connection is not the expected kind. */
export function corkSendData(maConn: object): boolean {
  const conn = maConn as CorkableConnection;
  const socket = conn.socket;
  const send = conn.sendData;
  if (corked.has(conn)) return true;
  if (typeof send !== 'function' || !socket || typeof socket.cork !== 'function' || typeof socket.uncork !== 'function') return false;
  conn.sendData = function corkedSendData(this: unknown, data: unknown) {
    socket.cork();
    try {
      return send.call(this, data);
    } finally {
      socket.uncork();
    }
  };
  corked.add(conn);
  return true;
}

function corkingUpgrader(upgrader: Upgrader): Upgrader {
  return new Proxy(upgrader, {
    get(target, prop, receiver) {
      if (prop === 'upgradeInbound' || prop === 'upgradeOutbound') {
        const upgrade = target[prop] as (maConn: object, opts: unknown) => Promise<unknown>;
        return (maConn: object, opts: unknown) => {
          corkSendData(maConn);
          return upgrade.call(target, maConn, opts);
        };
      }
      const value: unknown = Reflect.get(target, prop, receiver);
      return typeof value === 'function' ? (value as (...a: unknown[]) => unknown).bind(target) : value;
    },
  });
}

/** `tcp()` whose connections write each outgoing message with one syscall. */
export function coalescingTcp(init?: TCPOptions): (components: TCPComponents) => Transport {
  const factory = tcp(init);
  return (components) => {
    const transport = factory(components);
    const dial = transport.dial.bind(transport);
    const createListener = transport.createListener.bind(transport);
    transport.dial = (ma, options) => dial(ma, { ...options, upgrader: corkingUpgrader(options.upgrader) });
    transport.createListener = (options) => createListener({ ...options, upgrader: corkingUpgrader(options.upgrader) });
    return transport;
  };
}

/** StreamState.Established in @libp2p/yamux 8 (the only state in which a window update carries no flags). */
const ESTABLISHED = 3;

interface YamuxStreamInternals {
  state: number;
  recvWindow: number;
  recvWindowCapacity: number;
  sendWindowUpdate(): void;
}

let yamuxPatched: boolean | null = null;

/** Sends yamux window updates only once half the receive window is consumed (see above). Idempotent. */
export function installYamuxWindowUpdateThreshold(): boolean {
  if (yamuxPatched !== null) return yamuxPatched;
  const proto = (YamuxStream as unknown as { prototype: YamuxStreamInternals }).prototype;
  const original = proto.sendWindowUpdate;
  // The patch depends on these names; a yamux release that renamed them keeps its own behaviour.
  const source = typeof original === 'function' ? Function.prototype.toString.call(original) : '';
  if (!/recvWindowCapacity/.test(source) || !/recvWindow\b/.test(source) || !/state/.test(source)) {
    yamuxPatched = false;
    return false;
  }
  proto.sendWindowUpdate = function thresholdWindowUpdate(this: YamuxStreamInternals) {
    if (this.state === ESTABLISHED && this.recvWindowCapacity >= this.recvWindow / 2) return;
    original.call(this);
  };
  yamuxPatched = true;
  return true;
}
