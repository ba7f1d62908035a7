// `hangar serve`: browser mode. Hosts the core (or relays to the daemon that already runs) and
// serves the UI + WebSocket API on loopback, printing the URL with its token.
import { existsSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { HangarError } from '../../common/errors.ts';
import { startCoreHost } from '../core-host.ts';
import { isLoopbackAddress, startWebServer } from '../web/web-server.ts';
import { installLastResortHandler } from '../rpc/wire-guard.ts';

export const DEFAULT_SERVE_PORT = 7480;

/** dist/renderer, found from this module (source tree or bundle) or HANGAR_RENDERER_DIR. */
export function findRendererDir(): string {
  if (process.env.HANGAR_RENDERER_DIR) return resolve(process.env.HANGAR_RENDERER_DIR);
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 5; i++) {
    const candidate = join(dir, 'dist', 'renderer');
    if (existsSync(join(candidate, 'index.html'))) return candidate;
    if (existsSync(join(dir, 'renderer', 'index.html')) && dir.endsWith('dist')) return join(dir, 'renderer');
    dir = dirname(dir);
  }
  throw new HangarError('host-missing', 'the Hangar UI is not built (no dist/renderer/index.html)',
    'run `node scripts/build.mjs` (npm start and npm test do it for you)');
}

export async function serveCommand(values: Record<string, unknown>, log: (line: string) => void): Promise<number> {
  const port = values.port === undefined ? DEFAULT_SERVE_PORT : Number(values.port);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    throw new HangarError('invalid-input', `--port ${String(values.port)} is not a port number`, 'use 1-65535, or 0 for any free port');
  }
  const host = (values.host as string | undefined) ?? '127.0.0.1';
  const allowRemote = Boolean(values['allow-remote']);
  const staticDir = findRendererDir();
  installLastResortHandler('hangar serve');
  const core = await startCoreHost();
  let web;
  try {
    web = await startWebServer({ endpoint: core.endpoint, staticDir, port, host, allowRemote, metrics: () => core.metrics() });
  } catch (e) {
    await core.stop();
    throw e;
  }
  if (!isLoopbackAddress(host)) {
    log(`WARNING: serving on ${host}, not only this machine: anyone who can reach port ${web.port} and has the token controls your VMs.`);
  }
  log(`Hangar (browser mode, core ${core.mode === 'in-process' ? 'in this process' : 'relayed to the running daemon'})`);
  log(`Open: ${web.url}`);
  let stopping = false;
  const stop = (): void => {
    if (stopping) return;
    stopping = true;
    void web.close().finally(() => core.stop()).finally(() => process.exit(0));
    setTimeout(() => process.exit(0), 2000).unref();
  };
  core.onStopRequested = stop;
  process.on('SIGINT', stop);
  process.on('SIGTERM', stop);
  process.on('SIGHUP', () => {});
  return -1; // keep running
}
