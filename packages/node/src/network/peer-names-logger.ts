import type { NodeLogger } from './node-logger.js';

/**
 * A logger that writes nodes by the names `edge-node status` and the page use: the 8-character tail of a peer id that
 * the code writes for brevity is replaced by the node's name when it is known. A whole peer id stays (join and leave
 * lines give it once, beside the name, to tell which is which). One place for it, so that a line about a peer reads
 * the same whichever part of the runtime wrote it.
 */
export function peerNamesLogger(log: NodeLogger, names: () => ReadonlyMap<string, string>): NodeLogger {
  const named = (message: string): string => {
    let out = message;
    for (const [peerId, name] of names()) {
      const tail = peerId.slice(-8);
      if (!out.includes(tail)) continue;
      // Base58 has no regex metacharacters; the lookarounds keep whole ids (and longer words) intact.
      out = out.replace(new RegExp(`(?<![A-Za-z0-9])${tail}(?![A-Za-z0-9])`, 'g'), name);
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
