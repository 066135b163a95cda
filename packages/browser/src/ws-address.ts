/**
 * Chooses the serving node's WebSocket multiaddr a page can reach: the one on the host the page was loaded from, or,
 * when the node listens on every interface and announces other addresses, the first one with its host replaced by
 * the page's (the page reached the node there, so its WebSocket port answers there too).
 */
export function pickWebSocketAddress(addresses: string[], pageHost: string): string | null {
  const ws = addresses.filter((a) => /\/tcp\/\d+\/wss?(\/|$)/.test(a));
  if (ws.length === 0) return null;
  const host = pageHost.replace(/^\[|\]$/g, '');
  const exact = ws.find((a) => a.split('/')[2] === host);
  if (exact) return exact;
  const proto = /^\d+\.\d+\.\d+\.\d+$/.test(host) ? 'ip4' : host.includes(':') ? 'ip6' : 'dns4';
  const target = host === 'localhost' ? { proto: 'ip4', host: '127.0.0.1' } : { proto, host };
  const exactLocal = ws.find((a) => a.split('/')[2] === target.host);
  if (exactLocal) return exactLocal;
  return ws[0].replace(/^\/(ip4|ip6|dns4|dns6|dns)\/[^/]+/, `/${target.proto}/${target.host}`);
}
