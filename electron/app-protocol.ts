// Serves the renderer (dist/renderer) on app://hangar/. Why a custom scheme rather than
// loadFile(): the app gets a real origin of its own, so IPC sender checks, navigation checks and
// the permission handler can test "is this our page" by origin (every file:// URL would share
// one), the CSP travels as a response header on every file, and nothing outside dist/renderer
// is reachable (file:// pages can read any file the user can).
import { extname, resolve, sep } from 'node:path';
import { APP_HOST, APP_SCHEME, CSP } from './security.ts';

export const APP_SCHEME_PRIVILEGES = {
  scheme: APP_SCHEME,
  privileges: { standard: true, secure: true, supportFetchAPI: true, codeCache: true },
};

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8',
  '.json': 'application/json',
  '.map': 'application/json',
  '.svg': 'image/svg+xml',
  '.png': 'image/png',
  '.jpg': 'image/jpeg',
  '.jpeg': 'image/jpeg',
  '.gif': 'image/gif',
  '.webp': 'image/webp',
  '.ico': 'image/x-icon',
  '.woff': 'font/woff',
  '.woff2': 'font/woff2',
  '.ttf': 'font/ttf',
  '.wasm': 'application/wasm',
  '.txt': 'text/plain; charset=utf-8',
};

export function mimeType(path: string): string {
  return MIME[extname(path).toLowerCase()] ?? 'application/octet-stream';
}

function securityHeaders(contentType: string): Record<string, string> {
  return {
    'Content-Type': contentType,
    'Content-Security-Policy': CSP,
    'X-Content-Type-Options': 'nosniff',
    'Cache-Control': 'no-cache',
  };
}

function textResponse(status: number, text: string): Response {
  return new Response(text, { status, headers: securityHeaders('text/plain; charset=utf-8') });
}

/**
 * Maps an app:// URL to a file under root, or null when it is not ours or tries to leave root
 * (`..`, encoded separators, NUL bytes).
 */
export function resolveAppPath(root: string, url: string): string | null {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return null;
  }
  if (u.protocol !== `${APP_SCHEME}:` || u.host !== APP_HOST) return null;
  let pathname: string;
  try {
    pathname = decodeURIComponent(u.pathname);
  } catch {
    return null;
  }
  if (pathname.includes('\0') || pathname.includes('\\')) return null;
  if (pathname === '' || pathname.endsWith('/')) pathname += 'index.html';
  const base = resolve(root);
  const full = resolve(base, '.' + (pathname.startsWith('/') ? pathname : '/' + pathname));
  if (full !== base && !full.startsWith(base + sep)) return null;
  return full;
}

export interface AppProtocolOptions {
  /** dist/renderer */
  root: string;
  readFile(path: string): Promise<Uint8Array>;
}

/** The protocol.handle() handler for the app scheme. */
export function createAppProtocolHandler(opts: AppProtocolOptions): (request: { url: string; method: string }) => Promise<Response> {
  return async (request) => {
    if (request.method !== 'GET' && request.method !== 'HEAD') return textResponse(405, 'method not allowed');
    const path = resolveAppPath(opts.root, request.url);
    if (!path) return textResponse(404, 'not found');
    let body: Uint8Array;
    try {
      body = await opts.readFile(path);
    } catch {
      if (path === resolve(opts.root, 'index.html')) {
        return textResponse(503, 'The Hangar UI is not built (no dist/renderer/index.html): run `node scripts/build.mjs`.');
      }
      return textResponse(404, 'not found');
    }
    return new Response(request.method === 'HEAD' ? null : (body as Uint8Array<ArrayBuffer>), {
      status: 200,
      headers: securityHeaders(mimeType(path)),
    });
  };
}
