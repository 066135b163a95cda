const HEADER = '/key/swarm/psk/1.0.0/\n/base16/\n';

/**
 * The cluster key as the user gives it to the page: the key file's text, or just its 64 hex digits (what the URL
 * fragment `#key=` carries: a fragment is never sent to a server). Returns pnet's key bytes, or throws a message
 * the page shows.
 */
export function clusterKeyFromText(text: string): Uint8Array {
  const t = text.trim();
  const hex = /^[0-9a-fA-F]{64}$/.test(t) ? t : t.split(/\r?\n/).length === 3 && t.startsWith('/key/swarm/psk/1.0.0/') ? t.split(/\r?\n/)[2].trim() : null;
  if (hex === null || !/^[0-9a-fA-F]{64}$/.test(hex)) {
    throw new Error('that is not a cluster key: paste the key file (three lines, the last one 64 hex digits) or just the 64 hex digits');
  }
  return new TextEncoder().encode(`${HEADER}${hex.toLowerCase()}`);
}

/** The key in a URL fragment (`#key=<64 hex>`), if there is one. */
export function clusterKeyFromFragment(hash: string): string | null {
  const params = new URLSearchParams(hash.replace(/^#/, ''));
  return params.get('key');
}
