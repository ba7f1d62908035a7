// The core host's side of the channel broker: each message from main (process.parentPort)
// carries one MessagePort; it becomes an RpcLink or ConsoleLink served by the core endpoint.
import type { CoreEndpoint } from '../core/node/rpc/endpoint.ts';
import type { MessagePortLike } from './electron-api.ts';
import type { CoreHostMessage, CoreHostReport } from './core-supervisor.ts';
import { consoleLinkFromPort, rpcLinkFromPort } from './port-link.ts';

export interface ParentPortLike {
  on(event: 'message', listener: (e: { data: unknown; ports: MessagePortLike[] }) => void): unknown;
  postMessage(message: CoreHostReport): void;
}

/** A well-formed message from main, or null. */
export function parseHostMessage(data: unknown): CoreHostMessage | null {
  if (!data || typeof data !== 'object') return null;
  const d = data as Record<string, unknown>;
  switch (d.kind) {
    case 'rpc': return { kind: 'rpc' };
    case 'stop': return { kind: 'stop' };
    case 'console':
      if (typeof d.vm !== 'string' || d.vm.length === 0 || d.vm.length > 200 || typeof d.replay !== 'boolean') return null;
      return { kind: 'console', vm: d.vm, replay: d.replay };
    case 'display':
      if (typeof d.vm !== 'string' || d.vm.length === 0 || d.vm.length > 200) return null;
      return { kind: 'display', vm: d.vm };
    default: return null;
  }
}

export function serveParentPort(parent: ParentPortLike, endpoint: CoreEndpoint, opts: { onStop(): void; log(m: string): void }): void {
  parent.on('message', (e) => {
    const msg = parseHostMessage(e.data);
    const ports = e.ports ?? [];
    if (!msg) {
      for (const p of ports) p.close();
      opts.log('ignored a malformed message from main');
      return;
    }
    if (msg.kind === 'stop') {
      opts.onStop();
      return;
    }
    const port = ports[0];
    if (!port || ports.length !== 1) {
      for (const p of ports) p.close();
      opts.log(`ignored a ${msg.kind} request without exactly one port`);
      return;
    }
    try {
      if (msg.kind === 'rpc') endpoint.serveRpc(rpcLinkFromPort(port));
      else if (msg.kind === 'display') endpoint.serveDisplay(consoleLinkFromPort(port), msg.vm);
      else endpoint.serveConsole(consoleLinkFromPort(port), msg.vm, { replay: msg.replay });
    } catch (err) {
      opts.log(`serving a ${msg.kind} channel failed: ${String(err)}`);
      port.close();
    }
  });
}
