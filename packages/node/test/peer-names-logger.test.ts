/** Log lines name nodes as `edge-node status` does, whichever part of the runtime wrote the peer id. */
import { describe, expect, it } from 'vitest';
import { peerNamesLogger } from '../src/network/peer-names-logger.js';

describe('peer names in log lines', () => {
  it('replaces the 8-character tails of known peer ids by names; whole ids and unknown ids stay', () => {
    const lines: string[] = [];
    const names = new Map([['12D3KooWAbcdefghijklmnopQRSTUVWX', 'laptop']]);
    const log = peerNamesLogger({ debug: (m) => lines.push(`D ${m}`), info: (m) => lines.push(`I ${m}`), warn: (m) => lines.push(`W ${m}`), error: (m) => lines.push(`E ${m}`) }, () => names);
    log.info('weights: model is on peer QRSTUVWX; this node fetches only its layers');
    log.warn('connected to 12D3KooWAbcdefghijklmnopQRSTUVWX and 12D3KooWZzzzzzzzzzzzzzzz12345678');
    log.debug('freed 2 request(s) of coordinator QRSTUVWX');
    expect(lines).toEqual([
      'I weights: model is on peer laptop; this node fetches only its layers',
      'W connected to 12D3KooWAbcdefghijklmnopQRSTUVWX and 12D3KooWZzzzzzzzzzzzzzzz12345678',
      'D freed 2 request(s) of coordinator laptop',
    ]);
  });
});
