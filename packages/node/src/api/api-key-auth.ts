import { createHash, timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { OpenAIError } from './openai-errors.js';

/**
 * Checks `Authorization: Bearer KEY` (also `x-api-key`, which some tools send). The comparison runs over SHA-256
 * digests with timingSafeEqual, so its time says nothing about the key's content or length.
 */
export function createApiKeyCheck(apiKey: string): (req: IncomingMessage) => void {
  if (apiKey.length === 0) throw new RangeError('the API key must not be empty');
  const expected = createHash('sha256').update(apiKey).digest();
  return (req) => {
    const header = req.headers.authorization;
    const given = header?.match(/^Bearer\s+(.+)$/i)?.[1]?.trim() ?? (typeof req.headers['x-api-key'] === 'string' ? req.headers['x-api-key'] : undefined);
    if (given === undefined) {
      throw new OpenAIError(401, 'this node requires an API key: send "Authorization: Bearer <key>"', 'authentication_error', 'missing_api_key');
    }
    const digest = createHash('sha256').update(given).digest();
    if (!timingSafeEqual(digest, expected)) {
      throw new OpenAIError(401, 'the API key is not valid for this node', 'authentication_error', 'invalid_api_key');
    }
  };
}
