import { HubRefError } from './hub-errors.js';

/** A model on the Hugging Face Hub: `owner/name[@revision][/file/in/repo]`. */
export interface HubModelRef {
  repo: string;
  revision: string;
  /** One file to fetch (a GGUF repo usually holds several quantisations); null fetches a safetensors model. */
  file: string | null;
}

const NAME = /^[A-Za-z0-9](?:[A-Za-z0-9._-]{0,94}[A-Za-z0-9])?$/;

/**
 * Parses `owner/name`, `owner/name@rev`, `owner/name/file.gguf`, `owner/name@rev/file.gguf`. Repo ids have exactly
 * one slash, so anything after the second one is a path in the repo. Returns null for text that cannot be a repo id
 * (absolute or relative paths), so callers can tell a mistyped path from a repo id.
 */
export function parseHubModelRef(text: string): HubModelRef | null {
  if (text.startsWith('/') || text.startsWith('.') || text.startsWith('~') || text.includes('\\') || text.includes('://')) return null;
  const parts = text.split('/');
  if (parts.length < 2) return null;
  const owner = parts[0];
  let name = parts[1];
  let revision = 'main';
  const at = name.indexOf('@');
  if (at >= 0) {
    revision = name.slice(at + 1);
    name = name.slice(0, at);
    if (revision === '') throw new HubRefError(`"${text}": nothing after @ (write owner/name@revision, e.g. @main or a commit hash)`);
  }
  if (!NAME.test(owner) || !NAME.test(name)) return null;
  const rest = parts.slice(2);
  if (rest.some((p) => p === '' || p === '.' || p === '..')) throw new HubRefError(`"${text}": the file path after the repo id is not a plain relative path`);
  return { repo: `${owner}/${name}`, revision, file: rest.length ? rest.join('/') : null };
}

export function formatHubModelRef(ref: HubModelRef): string {
  return `${ref.repo}${ref.revision === 'main' ? '' : `@${ref.revision}`}${ref.file ? `/${ref.file}` : ''}`;
}
