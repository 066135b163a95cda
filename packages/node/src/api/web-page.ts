import { readFile } from 'node:fs/promises';
import type { ApiRouter } from './api-router.js';
import { OpenAIError } from './openai-errors.js';

/**
 * The chat page and cluster view at `/`: plain HTML and JavaScript in packages/node/web/, served as they are (no
 * build step). The folder sits next to src/ and dist/, so the same relative path works from both.
 */
export const WEB_DIR = new URL('../../web/', import.meta.url);

const FILES: Record<string, { file: string; type: string }> = {
  '/': { file: 'index.html', type: 'text/html; charset=utf-8' },
  '/app.js': { file: 'app.js', type: 'text/javascript; charset=utf-8' },
  '/style.css': { file: 'style.css', type: 'text/css; charset=utf-8' },
};

export function addWebPageRoutes(router: ApiRouter): void {
  const cache = new Map<string, Buffer>();
  for (const [path, { file, type }] of Object.entries(FILES)) {
    router.add(
      'GET',
      path,
      async (_req, res) => {
        let body = cache.get(file);
        if (!body) {
          try {
            body = await readFile(new URL(file, WEB_DIR));
          } catch (err) {
            throw new OpenAIError(500, `the web page file ${file} is missing from this installation (${(err as Error).message})`, 'server_error', 'web_page_missing');
          }
          cache.set(file, body);
        }
        res.writeHead(200, { 'content-type': type, 'content-length': body.length, 'cache-control': 'no-cache' });
        res.end(body);
      },
      { public: true },
    );
  }
}
