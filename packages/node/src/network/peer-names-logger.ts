import type { NodeLogger } from './node-logger.js';

/**
 * A logger that writes nodes by the names `edge-node status` and the page use: every peer id it knows a name for
 * (whole, or the 8-character tail the code writes for brevity) is replaced by that name. One place for it, so that a
 * line about a peer reads the same whichever part of the runtime wrote it.
 */
export function peerNamesLogger(log: NodeLogger, names: () => ReadonlyMap<string, string>): NodeLogger {
  const named = (message: string): string => {
    let out = message;
    for (const [peerId, name] of names()) {
      if (!out.includes(peerId.slice(-8))) continue;
      out = out.split(peerId).join(name).split(peerId.slice(-8)).join(name);
    }
    return out;
  };
  return {
    debug: (m) => log.debug(named(m)),
    info: (m) => log.info(named(m)),
    warn: (m) => log.warn(named(m)),
    error: (m) => log.error(named(m)),
  };
}
