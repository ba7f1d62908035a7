// The core as a UI host needs it (the Electron utility process, `hangar serve`): this process
// becomes the core daemon when none runs (so the CLI talks to it too), otherwise it relays every
// channel to the daemon that already runs. Either way VMs outlive this process.
import { HangarError } from '../common/errors.ts';
import { startDaemonCore } from './daemon.ts';
import { daemonEndpoint, localEndpoint } from './rpc/endpoint.ts';
import { connectionEndpoint } from './rpc/connection-endpoint.ts';
import type { ConnectionEndpoint } from './rpc/connection-endpoint.ts';
import { connectCore } from './rpc/client.ts';

export interface CoreHost {
  /** Serves every connection: `local` from this machine's core, the others opened here (ssh, libvirt). */
  endpoint: ConnectionEndpoint;
  mode: 'in-process' | 'relay';
  /** Called when a client asked the core to stop (`hangar daemon stop`), in-process mode only. */
  onStopRequested?: () => void;
  /** The running VMs' statistics in Prometheus' text format (browser mode's /metrics). */
  metrics(): Promise<string>;
  stop(): Promise<void>;
}

export async function startCoreHost(): Promise<CoreHost> {
  try {
    const core = await startDaemonCore();
    const host: CoreHost = {
      endpoint: connectionEndpoint(localEndpoint(core.service)),
      mode: 'in-process',
      metrics: () => core.service.statsMetrics(),
      stop: async () => { core.stop(); },
    };
    core.service.onStopRequested = () => {
      core.stop();
      host.onStopRequested?.();
    };
    return host;
  } catch (e) {
    if (!(e instanceof HangarError && e.code === 'already-exists')) throw e;
  }
  return { endpoint: connectionEndpoint(daemonEndpoint()), mode: 'relay', metrics: relayedMetrics, stop: async () => {} };
}

/** Asks the daemon for its metrics on a short-lived connection (a scrape every 15 s or so). */
async function relayedMetrics(): Promise<string> {
  const c = await connectCore({ autostart: false });
  try {
    return await c.api.statsMetrics();
  } finally {
    c.close();
  }
}
