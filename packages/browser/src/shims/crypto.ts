/**
 * node:crypto for the browser bundle: SHA-256 (synchronous, as the weights client verifies each tensor inline) and
 * randomUUID. crypto.randomUUID exists only in secure contexts; getRandomValues exists everywhere.
 */
import { sha256 } from '@noble/hashes/sha2.js';
import { bytesToHex } from '@noble/hashes/utils.js';

class Sha256 {
  private readonly h = sha256.create();

  update(data: Uint8Array | string): this {
    this.h.update(typeof data === 'string' ? new TextEncoder().encode(data) : data);
    return this;
  }

  digest(encoding?: 'hex'): string | Uint8Array {
    const out = this.h.digest();
    return encoding === 'hex' ? bytesToHex(out) : out;
  }
}

export function createHash(algorithm: string): Sha256 {
  if (algorithm !== 'sha256') throw new Error(`a browser node has only sha256, not ${algorithm}`);
  return new Sha256();
}

export function randomUUID(): string {
  const b = globalThis.crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const h = bytesToHex(b);
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-${h.slice(12, 16)}-${h.slice(16, 20)}-${h.slice(20)}`;
}

export function timingSafeEqual(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  let d = 0;
  for (let i = 0; i < a.length; i++) d |= a[i] ^ b[i];
  return d === 0;
}

export default { createHash, randomUUID, timingSafeEqual };
