// Browser mode: serves the built renderer and the core's channels over WebSocket, on loopback by
// default. Every request must carry the random token (URL query, or the cookie the first page
// load sets), a Host header naming this server (no DNS rebinding), and, where a browser sends
// one, an Origin of this server (no cross-site WebSocket hijacking).
import { randomBytes, timingSafeEqual } from 'node:crypto';
import { createReadStream } from 'node:fs';
import { stat } from 'node:fs/promises';
import { createServer } from 'node:http';
import type { IncomingMessage, Server, ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import type { Duplex } from 'node:stream';
import { extname, join, normalize, sep } from 'node:path';
import { WebSocketServer } from 'ws';
import type { WebSocket } from 'ws';
import { HangarError } from '../../common/errors.ts';
import { WS_CONSOLE_PATH, WS_DISPLAY_PATH, WS_RPC_PATH, WS_TERMINAL_PATH } from '../../common/transport.ts';
import type { ConsoleLink, RpcLink, TerminalRequest } from '../../common/transport.ts';
import type { ConnectionEndpoint } from '../rpc/connection-endpoint.ts';
import { serveTerminalOrRefuse } from '../rpc/connection-endpoint.ts';

export const CONTENT_SECURITY_POLICY = [
  "default-src 'self'", "script-src 'self'", "style-src 'self' 'unsafe-inline'", "img-src 'self' data:",
  "connect-src 'self'", "object-src 'none'", "base-uri 'none'", "form-action 'none'", "frame-ancestors 'none'",
].join('; ');

const MIME: Record<string, string> = {
  '.html': 'text/html; charset=utf-8', '.js': 'text/javascript; charset=utf-8', '.mjs': 'text/javascript; charset=utf-8',
  '.css': 'text/css; charset=utf-8', '.json': 'application/json', '.svg': 'image/svg+xml', '.png': 'image/png',
  '.ico': 'image/x-icon', '.woff2': 'font/woff2', '.map': 'application/json', '.txt': 'text/plain; charset=utf-8',
};

const LOOPBACK_NAMES = ['127.0.0.1', 'localhost', '[::1]'];

export interface WebServerOptions {
  endpoint: ConnectionEndpoint;
  /** The built renderer (dist/renderer). */
  staticDir: string;
  port?: number;
  /** Default 127.0.0.1. Anything else needs allowRemote. */
  host?: string;
  allowRemote?: boolean;
  /** Fixed token (tests); random by default. */
  token?: string;
  /** Where refusals are logged, one line each (default: stderr). */
  log?: (line: string) => void;
  /** The Prometheus text served at /metrics (behind the same token; Prometheus can send it as a bearer token). */
  metrics?: () => Promise<string>;
}

export interface WebServer {
  url: string;
  port: number;
  token: string;
  server: Server;
  close(): Promise<void>;
}

export function isLoopbackAddress(host: string): boolean {
  return host === '127.0.0.1' || host === '::1' || host === 'localhost' || /^127\.\d+\.\d+\.\d+$/.test(host);
}

function tokenMatches(given: string | null | undefined, token: string): boolean {
  if (!given) return false;
  const a = Buffer.from(given), b = Buffer.from(token);
  return a.length === b.length && timingSafeEqual(a, b);
}

function cookieToken(req: IncomingMessage, name: string): string | null {
  for (const part of (req.headers.cookie ?? '').split(';')) {
    const [k, ...v] = part.trim().split('=');
    if (k === name) return v.join('=');
  }
  return null;
}

interface Refusal { status: number; message: string }

export async function startWebServer(opts: WebServerOptions): Promise<WebServer> {
  const host = opts.host ?? '127.0.0.1';
  if (!isLoopbackAddress(host) && !opts.allowRemote) {
    throw new HangarError('invalid-input', `refusing to serve on ${host}: browser mode listens on loopback only`,
      'add --allow-remote to bind elsewhere (anyone who can reach the port and has the token controls your VMs)');
  }
  const token = opts.token ?? randomBytes(24).toString('base64url');
  const log = opts.log ?? ((line: string): void => console.error(line));
  /** One line per refusal: what, from where, why (never the token). */
  const logRefused = (req: IncomingMessage, what: string, why: string): void => {
    log(`hangar serve: refused ${what} ${(req.url ?? '/').split('?')[0]} from ${req.socket.remoteAddress ?? '?'}: ${why}`);
  };
  const server = createServer();
  const wss = new WebSocketServer({ noServer: true, maxPayload: 16 * 1024 * 1024, perMessageDeflate: false });
  let port = 0;
  const cookieName = (): string => `hangar_token_${port}`;
  const allowedHosts = (): Set<string> => {
    const names = new Set(LOOPBACK_NAMES);
    if (!isLoopbackAddress(host)) names.add(host.includes(':') ? `[${host}]` : host);
    return new Set([...names].map((n) => `${n}:${port}`));
  };

  /** The checks every request passes; null when it may go on. */
  const refuse = (req: IncomingMessage, url: URL, needOrigin: boolean): Refusal | null => {
    const hosts = allowedHosts();
    if (!req.headers.host || !hosts.has(req.headers.host.toLowerCase())) {
      return { status: 421, message: `refused: Host header "${req.headers.host ?? ''}" is not this Hangar server (open the URL that \`hangar serve\` printed)` };
    }
    const origin = req.headers.origin;
    if (origin !== undefined || needOrigin) {
      let ok = false;
      try {
        const o = new URL(origin ?? '');
        ok = o.protocol === 'http:' && hosts.has(o.host);
      } catch { /* not a URL */ }
      if (!ok) return { status: 403, message: `refused: Origin "${origin ?? ''}" is not this Hangar server` };
    }
    const bearer = /^Bearer (\S+)$/.exec(req.headers.authorization ?? '')?.[1];
    if (!tokenMatches(url.searchParams.get('token'), token) && !tokenMatches(cookieToken(req, cookieName()), token) && !tokenMatches(bearer, token)) {
      return { status: 401, message: 'refused: missing or wrong token: open the full URL (with ?token=) that `hangar serve` printed' };
    }
    return null;
  };

  const securityHeaders = (res: ServerResponse): void => {
    res.setHeader('Content-Security-Policy', CONTENT_SECURITY_POLICY);
    res.setHeader('X-Content-Type-Options', 'nosniff');
    res.setHeader('X-Frame-Options', 'DENY');
    res.setHeader('Referrer-Policy', 'no-referrer');
    res.setHeader('Cross-Origin-Opener-Policy', 'same-origin');
  };

  server.on('request', (req, res) => {
    void (async () => {
      securityHeaders(res);
      const url = new URL(req.url ?? '/', 'http://x');
      const refusal = refuse(req, url, false);
      if (refusal) {
        logRefused(req, `HTTP ${req.method ?? '?'}`, `${refusal.status} ${refusal.message}`);
        res.writeHead(refusal.status, { 'Content-Type': 'text/plain; charset=utf-8' }).end(refusal.message + '\n');
        return;
      }
      if (req.method !== 'GET' && req.method !== 'HEAD') {
        res.writeHead(405, { Allow: 'GET, HEAD' }).end();
        return;
      }
      if (url.pathname === '/metrics' && opts.metrics) {
        const text = await opts.metrics();
        res.writeHead(200, { 'Content-Type': 'text/plain; version=0.0.4; charset=utf-8', 'Cache-Control': 'no-store' }).end(req.method === 'HEAD' ? undefined : text);
        return;
      }
      // The page loaded with ?token= sets a cookie so its scripts and styles load without it.
      if (url.searchParams.has('token')) {
        res.setHeader('Set-Cookie', `${cookieName()}=${token}; HttpOnly; SameSite=Strict; Path=/`);
      }
      await serveStatic(opts.staticDir, url.pathname, req, res);
    })().catch(() => { if (!res.headersSent) res.writeHead(500).end(); else res.destroy(); });
  });

  server.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    socket.on('error', () => {});
    const url = new URL(req.url ?? '/', 'http://x');
    const refusal = refuse(req, url, true);
    const path = url.pathname;
    if (refusal || (path !== WS_RPC_PATH && path !== WS_CONSOLE_PATH && path !== WS_DISPLAY_PATH && path !== WS_TERMINAL_PATH)) {
      const r = refusal ?? { status: 404, message: `no WebSocket at ${path}` };
      logRefused(req, 'WebSocket upgrade', `${r.status} ${r.message}`);
      socket.end(`HTTP/1.1 ${r.status} Refused\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n${r.message}\n`);
      return;
    }
    wss.handleUpgrade(req, socket, head, (ws) => {
      // ws reports protocol faults (oversized or invalid frames) as 'error' events, then closes
      // the connection with a close code (1009, 1002, ...): without a listener the event would
      // end the process.
      ws.on('error', (e: Error & { code?: string }) => logRefused(req, 'a WebSocket message on', `${e.code ?? 'error'}: ${e.message}`));
      // ?connection=NAME: a saved connection (or URI) instead of this machine's core.
      const connection = url.searchParams.get('connection') ?? undefined;
      if (path === WS_RPC_PATH) {
        opts.endpoint.serveRpc(wsRpcLink(ws), connection);
      } else if (path === WS_DISPLAY_PATH) {
        opts.endpoint.serveDisplay(wsConsoleLink(ws), url.searchParams.get('vm') ?? '', connection);
      } else if (path === WS_TERMINAL_PATH) {
        serveTerminal(opts.endpoint, wsConsoleLink(ws), url, connection);
      } else {
        const vm = url.searchParams.get('vm') ?? '';
        opts.endpoint.serveConsole(wsConsoleLink(ws), vm, { replay: url.searchParams.get('replay') !== '0', ...(connection !== undefined ? { connection } : {}) });
      }
    });
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', (e: NodeJS.ErrnoException) => {
      reject(e.code === 'EADDRINUSE'
        ? new HangarError('busy', `port ${opts.port} on ${host} is already in use`, 'pick another with --port N (or --port 0 for any free port)')
        : e);
    });
    server.listen(opts.port ?? 0, host, () => resolve());
  });
  port = (server.address() as AddressInfo).port;
  const shownHost = host.includes(':') ? `[${host}]` : host;
  return {
    url: `http://${shownHost}:${port}/?token=${token}`,
    port,
    token,
    server,
    close: async () => {
      for (const c of wss.clients) c.terminate();
      wss.close();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

async function serveStatic(root: string, pathname: string, req: IncomingMessage, res: ServerResponse): Promise<void> {
  let rel: string;
  try {
    rel = decodeURIComponent(pathname);
  } catch {
    res.writeHead(400).end();
    return;
  }
  if (rel.endsWith('/')) rel += 'index.html';
  const file = normalize(join(root, rel));
  if (file !== root && !file.startsWith(root.endsWith(sep) ? root : root + sep)) {
    res.writeHead(404).end();
    return;
  }
  const st = await stat(file).catch(() => null);
  if (!st?.isFile()) {
    const missingUi = rel === '/index.html';
    res.writeHead(404, { 'Content-Type': 'text/plain; charset=utf-8' })
      .end(missingUi ? `the UI is not built (${file} missing): run \`node scripts/build.mjs\`\n` : 'not found\n');
    return;
  }
  res.writeHead(200, {
    'Content-Type': MIME[extname(file)] ?? 'application/octet-stream',
    'Content-Length': st.size,
    // Built assets carry content hashes; the page itself must always be fresh.
    'Cache-Control': rel.startsWith('/assets/') ? 'public, max-age=31536000, immutable' : 'no-store',
  });
  if (req.method === 'HEAD') { res.end(); return; }
  createReadStream(file).pipe(res);
}

/** ?vm=NAME[&user=U][&cols=N&rows=N]: a shell in the guest (the endpoint checks the values). */
function serveTerminal(endpoint: ConnectionEndpoint, link: ConsoleLink, url: URL, connection: string | undefined): void {
  const q = url.searchParams;
  const num = (k: string): number | undefined => (q.has(k) ? (/^\d{1,6}$/.test(q.get(k)!) ? Number(q.get(k)) : NaN) : undefined);
  const req: TerminalRequest = {};
  const user = q.get('user');
  if (user) req.user = user;
  const cols = num('cols'), rows = num('rows');
  if (cols !== undefined) req.cols = cols;
  if (rows !== undefined) req.rows = rows;
  if (connection !== undefined) req.connection = connection;
  if (q.get('login') === '1') req.login = true;
  serveTerminalOrRefuse(endpoint, link, q.get('vm') ?? '', req);
}

function wsRpcLink(ws: WebSocket): RpcLink {
  return {
    send: (m) => { if (ws.readyState === ws.OPEN) ws.send(m); },
    // A binary frame is not an RPC message: it reaches the checks as text, which refuse it with a reply.
    onMessage: (cb) => { ws.on('message', (data) => { cb(Buffer.isBuffer(data) ? data.toString('utf8') : Buffer.concat(data as Buffer[]).toString('utf8')); }); },
    onClose: (cb) => { ws.on('close', (code) => cb(`websocket closed (${code})`)); },
    close: () => ws.close(1000),
  };
}

function wsConsoleLink(ws: WebSocket): ConsoleLink {
  return {
    send: (m) => { if (ws.readyState === ws.OPEN) ws.send(m, { binary: typeof m !== 'string' }); },
    onMessage: (cb) => {
      ws.on('message', (data, isBinary) => {
        const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
        cb(isBinary ? new Uint8Array(buf.buffer, buf.byteOffset, buf.byteLength) : buf.toString('utf8'));
      });
    },
    onClose: (cb) => { ws.on('close', (code) => cb(`websocket closed (${code})`)); },
    close: () => ws.close(1000),
  };
}
