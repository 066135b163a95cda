import { mkdir, readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { generateKeyPair, privateKeyFromProtobuf, privateKeyToProtobuf } from '@libp2p/crypto/keys';
import type { PrivateKey } from '@libp2p/interface';
import { IdentityFileError } from './network-errors.js';

/** File in the data dir holding the node's libp2p private key (protobuf encoded, like other libp2p tools). */
export const IDENTITY_FILE = 'peer-key';

/** Loads the node's private key from `dataDir`, creating the dir and a new Ed25519 key (mode 0600) on first start. */
export async function loadOrCreateIdentity(dataDir: string): Promise<{ privateKey: PrivateKey; created: boolean; file: string }> {
  const file = join(dataDir, IDENTITY_FILE);
  let bytes: Buffer | null = null;
  try {
    bytes = await readFile(file);
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
      throw new IdentityFileError(`cannot read the node identity ${file}: ${(err as Error).message}`);
    }
  }
  if (bytes) {
    try {
      return { privateKey: privateKeyFromProtobuf(bytes), created: false, file };
    } catch (err) {
      throw new IdentityFileError(
        `the node identity ${file} is corrupt (${(err as Error).message}); delete it to create a new identity`,
      );
    }
  }
  try {
    await mkdir(dataDir, { recursive: true, mode: 0o700 });
    const privateKey = await generateKeyPair('Ed25519');
    // 'wx': never overwrite an identity another process created a moment ago.
    await writeFile(file, privateKeyToProtobuf(privateKey), { mode: 0o600, flag: 'wx' });
    return { privateKey, created: true, file };
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'EEXIST') return loadOrCreateIdentity(dataDir);
    throw new IdentityFileError(`cannot create the node identity ${file}: ${(err as Error).message}`);
  }
}
