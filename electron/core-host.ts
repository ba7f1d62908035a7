// The core host: runs in the Electron utility process that main forks (bundled to
// dist/electron/core-host.mjs). It becomes the core daemon (or relays to the one already
// running) and serves the channels main hands it. VMs outlive this process.
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { startCoreHost } from '../core/node/core-host.ts';
import type { CoreHost } from '../core/node/core-host.ts';
import { serveParentPort } from './core-host-serve.ts';
import type { ParentPortLike } from './core-host-serve.ts';

const log = (m: string): void => console.error(`hangar core host: ${m}`);

// When the core has to start a separate daemon (relay mode, daemon gone), it runs
// `process.execPath HANGAR_ENTRY daemon run`. Here execPath is the Electron binary: make it
// behave as Node and point it at the CLI bundle next to this file (dist/hangar.mjs).
const here = dirname(fileURLToPath(import.meta.url));
process.env.HANGAR_ENTRY ||= join(here, '..', 'hangar.mjs');
process.env.ELECTRON_RUN_AS_NODE = '1';

const parent = (process as unknown as { parentPort?: ParentPortLike }).parentPort;
if (!parent) {
  log('must run as an Electron utility process');
  process.exit(2);
}

let host: CoreHost;
try {
  host = await startCoreHost();
} catch (e) {
  const message = e instanceof Error ? e.message : String(e);
  log(`could not start: ${message}`);
  parent.postMessage({ kind: 'fatal', message });
  process.exit(1);
}

let stopping = false;
const stop = (): void => {
  if (stopping) return;
  stopping = true;
  const timer = setTimeout(() => process.exit(0), 2000);
  void host.stop().catch(() => {}).finally(() => {
    clearTimeout(timer);
    process.exit(0);
  });
};
// `hangar daemon stop` stopped the in-process core: exit, and main starts a fresh core host.
host.onStopRequested = () => process.exit(0);

// Messages main sent while the core was starting were queued by Electron until now.
serveParentPort(parent, host.endpoint, { onStop: stop, log });
parent.postMessage({ kind: 'ready', mode: host.mode });
