// One way in for the CLI and the UI host, whatever the connection: this machine's Hangar core,
// a Hangar core over ssh, or a libvirtd. Each gives the same CoreApi (what a driver cannot do
// throws 'unsupported' with the reason, and capabilities() lists it), the same events, and
// console/display byte streams.
import type { Duplex } from 'node:stream';
import type { CoreApi, CoreEvents } from '../../common/api.ts';
import type { ConnectionTarget, DriverCapabilities } from '../../common/connections.ts';
import { connectionLabel } from '../../common/connections.ts';
import { HangarError } from '../../common/errors.ts';
import { connectCore, connectSocket, openConsoleStream, openDisplayStream } from '../rpc/client.ts';
import type { OpenCoreStream } from '../rpc/client.ts';
import { resolveConnection } from './connection-store.ts';
import { openSshStream } from './ssh-stream.ts';
import type { SshOptions } from './ssh-stream.ts';

export interface StreamChannel {
  socket: Duplex;
  rest: Buffer;
  vmName: string;
  replayBytes: number;
}

/** A VM's serial console or screen as a byte stream (what `hangar console` and the UI's tabs carry). */
export interface ConnectionStreams {
  openConsole(vm: string, replay: boolean): Promise<StreamChannel>;
  openDisplay(vm: string): Promise<StreamChannel>;
}

export interface HangarConnection extends ConnectionStreams {
  name: string;
  uri: string;
  target: ConnectionTarget;
  api: CoreApi;
  close(): void;
}

export interface OpenOptions {
  /** Start this machine's core when none runs (the CLI does; a status check does not). */
  autostart?: boolean;
  events?: Partial<CoreEvents>;
  ssh?: SshOptions;
}

/** The api with capabilities() naming this connection (a remote core calls itself `local`). */
function namedApi(api: CoreApi, name: string, target: ConnectionTarget): CoreApi {
  return new Proxy(api, {
    get: (t, method: string) => method === 'capabilities'
      ? async (): Promise<DriverCapabilities> => ({ ...await t.capabilities(), connection: name, label: connectionLabel(target) })
      : (t as unknown as Record<string, unknown>)[method],
  });
}

/** How a Hangar core is reached: undefined = this machine's socket. */
function coreStream(target: ConnectionTarget, opts: OpenOptions): OpenCoreStream | undefined {
  if (target.kind === 'hangar-ssh') return () => openSshStream(target, opts.ssh);
  if (target.kind === 'hangar-unix') return () => connectUnixCore(target.socket);
  return undefined;
}

/** Another core's socket on this machine (never started from here: it has its own data dir). */
async function connectUnixCore(path: string): Promise<Duplex> {
  try {
    return await connectSocket(path);
  } catch (e) {
    throw new HangarError('daemon-unavailable', `no Hangar core answers at ${path} (${(e as NodeJS.ErrnoException).code ?? String(e)})`,
      'start that core (HANGAR_HOME=<its data dir> hangar daemon run), or check the path');
  }
}

function hangarStreams(open: OpenCoreStream | undefined): ConnectionStreams {
  return {
    openConsole: (vm, replay) => openConsoleStream(vm, replay, open),
    openDisplay: async (vm) => ({ replayBytes: 0, ...await openDisplayStream(vm, open) }),
  };
}

/** Console and display streams of a connection, without an RPC session (`hangar console`). */
export async function connectionStreams(ref: string, opts: OpenOptions = {}): Promise<ConnectionStreams> {
  const { name, uri, target } = resolveConnection(ref);
  if (target.kind !== 'libvirt') return hangarStreams(coreStream(target, opts));
  const { libvirtStreams } = await import('./libvirt-connection.ts');
  return libvirtStreams(name, uri, target, opts.ssh);
}

async function openHangar(name: string, uri: string, target: ConnectionTarget, opts: OpenOptions): Promise<HangarConnection> {
  const open = coreStream(target, opts);
  const conn = await connectCore({ autostart: opts.autostart ?? true, events: opts.events ?? {}, ...(open ? { open } : {}) });
  return {
    name, uri, target,
    api: target.kind === 'local' ? conn.api : namedApi(conn.api, name, target),
    ...hangarStreams(open),
    close: () => conn.close(),
  };
}

/** Opens a connection by saved name, `local`, or URI. */
export async function openConnection(ref: string, opts: OpenOptions = {}): Promise<HangarConnection> {
  const { name, uri, target } = resolveConnection(ref);
  switch (target.kind) {
    case 'local':
    case 'hangar-unix':
    case 'hangar-ssh':
      return openHangar(name, uri, target, opts);
    case 'libvirt': {
      const { openLibvirtConnection } = await import('./libvirt-connection.ts');
      return openLibvirtConnection(name, uri, target, opts);
    }
  }
}
