// The UI host's endpoint for every connection: a window's RPC, console and display channels name
// the connection they are for (WebSocket `?connection=`, the Electron port request). `local`
// goes to this machine's core as before; any other connection (a Hangar core over ssh, a
// libvirtd) is opened here, in the UI host, and served on the same link with the same API.
import { createBirpc } from 'birpc';
import type { CoreApi, CoreEvents } from '../../common/api.ts';
import { coreApiMethods } from '../../common/api.ts';
import { checkApiArgs } from '../../common/api-schema.ts';
import { LOCAL_CONNECTION } from '../../common/connections.ts';
import { encodeConsoleControl } from '../../common/transport.ts';
import type { ConsoleLink, RpcLink, TerminalRequest } from '../../common/transport.ts';
import { connectionStreams, openConnection } from '../connections/open-connection.ts';
import { addConnection, connectionInfos, removeConnection } from '../connections/connection-store.ts';
import { sshControlPath } from '../connections/ssh-stream.ts';
import type { ConnectionStreams, HangarConnection, StreamChannel } from '../connections/open-connection.ts';
import { onCheckedRpcMessages, serveStreamOn, toPayload } from './endpoint.ts';
import { serveLoginTerminal } from '../terminal/login-terminal.ts';
import { serveGuestTerminal } from '../terminal/terminal-channel.ts';
import type { CoreEndpoint } from './endpoint.ts';
import { logRefusal } from './wire-guard.ts';

/** A CoreEndpoint whose channels may name a connection (absent = local). */
export interface ConnectionEndpoint {
  serveRpc(link: RpcLink, connection?: string): void;
  serveConsole(link: ConsoleLink, vm: string, opts: { replay: boolean; connection?: string }): void;
  serveDisplay(link: ConsoleLink, vm: string, connection?: string): void;
  /**
   * A shell in a running guest of any connection (local included): ssh in a pty in this process,
   * resized by the viewer's resize controls (terminal/terminal-channel.ts). connectionEndpoint()
   * always has it; optional so endpoints made for tests (and CoreEndpoints) still fit.
   */
  serveTerminal?(link: ConsoleLink, vm: string, opts: TerminalRequest): void;
}

/** Serves a terminal channel, or refuses it in words on an endpoint without terminals (test fakes). */
export function serveTerminalOrRefuse(endpoint: ConnectionEndpoint, link: ConsoleLink, vm: string, req: TerminalRequest): void {
  if (!endpoint.serveTerminal) {
    link.send(encodeConsoleControl({ type: 'error', error: { code: 'unsupported', message: 'this Hangar host serves no terminals' } }));
    link.close();
    return;
  }
  endpoint.serveTerminal(link, vm, req);
}

export interface ConnectionOpeners {
  open: typeof openConnection;
  streams: typeof connectionStreams;
}

const isLocal = (c: string | undefined): boolean => c === undefined || c === '' || c === LOCAL_CONNECTION;

const eventNames: Array<keyof CoreEvents> = ['vmChanged', 'vmListChanged', 'createProgress', 'snapshotProgress', 'statsSample', 'hostStats', 'migrationProgress'];

/** Serves one RPC link from a connection opened for it (closed with the link). */
function serveConnectionRpc(link: RpcLink, ref: string, openers: ConnectionOpeners): void {
  let closed = false;
  let handler: ((data: unknown) => void) | null = null;
  const forward = {} as CoreEvents;
  const events = Object.fromEntries(eventNames.map((n) => [n, (...a: unknown[]) => (forward[n] as (...x: unknown[]) => void)(...a)])) as Partial<CoreEvents>;
  // A core without a terminal: ssh must fail with its reason rather than wait for a password.
  const opened: Promise<HangarConnection> = openers.open(ref, { autostart: true, events, ssh: { batch: true, controlPath: sshControlPath() } });
  opened.catch(() => {});
  void opened.then((c) => { if (closed) c.close(); }, () => {});
  const fns = Object.create(null) as Record<string, (...args: unknown[]) => Promise<unknown>>;
  // The connection list is this computer's, whichever connection the window looks at.
  const here: Partial<Record<keyof CoreApi, (...a: unknown[]) => Promise<unknown>>> = {
    connections: async () => connectionInfos(),
    addConnection: async (name, uri) => { await addConnection(name as string, uri as string); return connectionInfos(); },
    removeConnection: async (name) => { await removeConnection(name as string); return connectionInfos(); },
  };
  for (const m of coreApiMethods) {
    fns[m] = async (...args: unknown[]) => {
      try {
        const checked = checkApiArgs(m, args);
        const local = here[m];
        if (local) return await local(...checked);
        const conn = await opened;
        return await (conn.api[m] as (...a: unknown[]) => Promise<unknown>)(...checked);
      } catch (e) {
        throw toPayload(e);
      }
    };
  }
  const rpc = createBirpc<CoreEvents, CoreApi>(fns as unknown as CoreApi, {
    post: (data: string) => { try { link.send(data); } catch { /* closed */ } },
    on: (fn) => { handler = fn; },
    serialize: (v) => JSON.stringify(v),
    deserialize: (v: unknown) => v,
    eventNames,
    timeout: -1,
    onGeneralError: (e) => { logRefusal('an RPC message', e instanceof Error ? e.message : String(e)); return true; },
  });
  for (const n of eventNames) {
    (forward as unknown as Record<string, (...a: unknown[]) => void>)[n] = (...a: unknown[]) => {
      if (!closed) void (rpc[n] as unknown as { asEvent: (...x: unknown[]) => Promise<void> }).asEvent(...a).catch(() => {});
    };
  }
  onCheckedRpcMessages(link, (msg) => handler?.(msg));
  link.onClose(() => {
    closed = true;
    rpc.$close();
    void opened.then((c) => c.close(), () => {});
  });
}

/** Serves a console or display stream of a non-local connection. */
function serveConnectionStream(link: ConsoleLink, ref: string, openers: ConnectionOpeners, open: (s: ConnectionStreams) => Promise<StreamChannel>, display: boolean): void {
  let closed = false;
  link.onClose(() => { closed = true; });
  openers.streams(ref, { autostart: true, ssh: { batch: true, controlPath: sshControlPath() } }).then(open).then((ch) => {
    if (closed) { ch.socket.destroy(); return; }
    // Another driver's stream carries no end reason; the UI re-checks the VM's state itself.
    serveStreamOn(link, ch.socket, { name: ch.vmName, rest: ch.rest, replayBytes: ch.replayBytes, display, endReason: () => Promise.resolve('vm-stopped') });
  }, (e: unknown) => {
    try { link.send(encodeConsoleControl({ type: 'error', error: toPayload(e) })); } catch { /* gone */ }
    link.close();
  });
}

export function connectionEndpoint(local: CoreEndpoint, openers: ConnectionOpeners = { open: openConnection, streams: connectionStreams }): ConnectionEndpoint {
  return {
    serveRpc(link, connection) {
      if (isLocal(connection)) local.serveRpc(link);
      else serveConnectionRpc(link, connection!, openers);
    },
    serveConsole(link, vm, opts) {
      if (isLocal(opts.connection)) local.serveConsole(link, vm, { replay: opts.replay });
      else serveConnectionStream(link, opts.connection!, openers, (s) => s.openConsole(vm, opts.replay), false);
    },
    serveDisplay(link, vm, connection) {
      if (isLocal(connection)) local.serveDisplay(link, vm);
      else serveConnectionStream(link, connection!, openers, (s) => s.openDisplay(vm), true);
    },
    serveTerminal(link, vm, opts) {
      if (opts.login) serveLoginTerminal(link, opts);
      else serveGuestTerminal(link, vm, opts, openers.open);
    },
  };
}
