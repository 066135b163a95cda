import { readFile, writeFile } from 'node:fs/promises';
import { generateKey } from '@libp2p/pnet';
import { ClusterKeyError } from './network-errors.js';

/** Size of a key in the libp2p pnet v1 text format (`/key/swarm/psk/1.0.0/\n/base16/\n` + 64 hex digits). */
export const CLUSTER_KEY_BYTES = 95;
const HEADER = '/key/swarm/psk/1.0.0/\n/base16/\n';

/** A new random cluster key in pnet's format. */
export function generateClusterKey(): Uint8Array {
  const key = new Uint8Array(CLUSTER_KEY_BYTES);
  generateKey(key);
  return key;
}

/** Checks a key's format so a bad file fails at start with a clear message instead of in every handshake. */
export function parseClusterKey(bytes: Uint8Array, source: string): Uint8Array {
  const text = Buffer.from(bytes).toString('utf8').trim();
  const lines = text.split(/\r?\n/);
  if (lines.length !== 3 || `${lines[0]}\n${lines[1]}\n` !== HEADER || !/^[0-9a-fA-F]{64}$/.test(lines[2])) {
    throw new ClusterKeyError(
      `${source} is not a cluster key (expected the libp2p pnet format: "/key/swarm/psk/1.0.0/", "/base16/", 64 hex digits); ` +
        'create one with `edge-node keygen FILE` and copy the same file to every node',
    );
  }
  return new TextEncoder().encode(`${HEADER}${lines[2].toLowerCase()}`);
}

export async function readClusterKeyFile(file: string): Promise<Uint8Array> {
  let bytes: Buffer;
  try {
    bytes = await readFile(file);
  } catch (err) {
    throw new ClusterKeyError(`cannot read the cluster key ${file}: ${(err as Error).message}`);
  }
  return parseClusterKey(bytes, file);
}

/** Writes a new key file (mode 0600). Refuses to overwrite an existing file unless `overwrite`. */
export async function writeClusterKeyFile(file: string, options: { overwrite?: boolean } = {}): Promise<void> {
  try {
    await writeFile(file, generateClusterKey(), { mode: 0o600, flag: options.overwrite ? 'w' : 'wx' });
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') {
      throw new ClusterKeyError(`${file} already exists; refusing to replace a cluster key (pass --force to overwrite)`);
    }
    throw new ClusterKeyError(`cannot write the cluster key ${file}: ${(err as Error).message}`);
  }
}
