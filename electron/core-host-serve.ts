// The core host's side of the channel broker: each message from main (process.parentPort)
// carries one MessagePort; it becomes an RpcLink or ConsoleLink served by the core endpoint, for
// the connection the request names (absent = this machine's core).
import type { ConnectionEndpoint } from '../core/node/rpc/connection-endpoint.ts';
import { serveTerminalOrRefuse } from '../core/node/rpc/connection-endpoint.ts';
import { isTerminalSize, MAX_CONNECTION_REF } from '../core/common/transport.ts';
import type { MessagePortLike } from './electron-api.ts';
import type { CoreHostMessage, CoreHostReport } from './core-supervisor.ts';
import { consoleLinkFromPort, rpcLinkFromPort } from './port-link.ts';

export interface ParentPortLike {
  on(event: 'message', listener: (e: { data: unknown; ports: MessagePortLike[] }) => void): unknown;
  postMessage(message: CoreHostReport): void;
}

/** A message's connection: absent, or a non-empty string of at most MAX_CONNECTION_REF characters; false when malformed. */
function connectionOf(d: Record<string, unknown>): { connection?: string } | false {
  if (d.connection === undefined) return {};
  if (typeof d.connection !== 'string' || d.connection.length === 0 || d.connection.length > MAX_CONNECTION_REF) return false;
  return { connection: d.connection };
}

/** A well-formed message from main, or null. */
export function parseHostMessage(data: unknown): CoreHostMessage | null {
  if (!data || typeof data !== 'object') return null;
  const d = data as Record<string, unknown>;
  if (d.kind === 'stop') return { kind: 'stop' };
  const conn = connectionOf(d);
  if (!conn) return null;
  switch (d.kind) {
    case 'rpc': return { kind: 'rpc', ...conn };
    case 'console':
      if (typeof d.vm !== 'string' || d.vm.length === 0 || d.vm.length > 200 || typeof d.replay !== 'boolean') return null;
      return { kind: 'console', vm: d.vm, replay: d.replay, ...conn };
    case 'display':
      if (typeof d.vm !== 'string' || d.vm.length === 0 || d.vm.length > 200) return null;
      return { kind: 'display', vm: d.vm, ...conn };
    case 'terminal': {
      const login = d.login === true;
      if (typeof d.vm !== 'string' || d.vm.length > 200 || (!login && d.vm.length === 0)) return null;
      if (d.user !== undefined && (typeof d.user !== 'string' || d.user.length === 0 || d.user.length > 64)) return null;
      const sized = d.cols !== undefined || d.rows !== undefined;
      if (sized && !(isTerminalSize(d.cols) && isTerminalSize(d.rows))) return null;
      return {
        kind: 'terminal', vm: d.vm, ...conn,
        ...(typeof d.user === 'string' ? { user: d.user } : {}),
        ...(sized ? { cols: d.cols as number, rows: d.rows as number } : {}),
        ...(login ? { login: true } : {}),
      };
    }
    default: return null;
  }
}

export function serveParentPort(parent: ParentPortLike, endpoint: ConnectionEndpoint, opts: { onStop(): void; log(m: string): void }): void {
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
      if (msg.kind === 'rpc') endpoint.serveRpc(rpcLinkFromPort(port), msg.connection);
      else if (msg.kind === 'display') endpoint.serveDisplay(consoleLinkFromPort(port), msg.vm, msg.connection);
      else if (msg.kind === 'terminal') {
        const { kind: _k, vm, ...req } = msg;
        serveTerminalOrRefuse(endpoint, consoleLinkFromPort(port), vm, req);
      }
      else endpoint.serveConsole(consoleLinkFromPort(port), msg.vm, { replay: msg.replay, ...(msg.connection !== undefined ? { connection: msg.connection } : {}) });
    } catch (err) {
      opts.log(`serving a ${msg.kind} channel failed: ${String(err)}`);
      port.close();
    }
  });
}
