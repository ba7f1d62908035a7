// The typed core client over any RpcLink (MessagePort, WebSocket, unix socket). birpc does the
// request/response correlation; errors come back as HangarError with the core's message + hint.
import { createBirpc } from 'birpc';
import type { CoreApi, CoreEvents } from './api.ts';
import { HangarError } from './errors.ts';
import type { ErrorPayload } from './errors.ts';
import type { RpcLink } from './transport.ts';

export interface CoreClient {
  api: CoreApi;
  /** Resolves when the link closes (the reason in words). */
  closed: Promise<string>;
  readonly isClosed: boolean;
  close(): void;
}

/** Turns what crossed the wire (a plain payload) back into a HangarError. */
export function toHangarError(e: unknown): Error {
  if (e instanceof HangarError) return e;
  if (e && typeof e === 'object' && 'code' in e && 'message' in e && !(e instanceof Error)) {
    return HangarError.fromPayload(e as ErrorPayload);
  }
  return e instanceof Error ? e : new Error(String(e));
}

export function createCoreClient(link: RpcLink, events: Partial<CoreEvents> = {}): CoreClient {
  let handler: ((data: unknown) => void) | null = null;
  let isClosed = false;
  let resolveClosed!: (reason: string) => void;
  const closed = new Promise<string>((r) => { resolveClosed = r; });
  const rpc = createBirpc<CoreApi, CoreEvents>({
    vmChanged: (e) => events.vmChanged?.(e),
    vmListChanged: () => events.vmListChanged?.(),
    createProgress: (e) => events.createProgress?.(e),
    snapshotProgress: (e) => events.snapshotProgress?.(e),
    statsSample: (e) => events.statsSample?.(e),
    hostStats: (e) => events.hostStats?.(e),
    migrationProgress: (e) => events.migrationProgress?.(e),
  }, {
    post: (data: string) => { if (!isClosed) link.send(data); },
    on: (fn) => { handler = fn; },
    serialize: (v) => JSON.stringify(v),
    deserialize: (v: string) => JSON.parse(v),
    timeout: -1, // no RPC deadline: long operations (shutdown --wait) carry their own
  });
  link.onMessage((m) => handler?.(m));
  link.onClose((reason) => {
    if (isClosed) return;
    isClosed = true;
    rpc.$close(new HangarError('daemon-unavailable', `the connection to the Hangar core was lost (${reason})`,
      'the core restarts on its own; try again in a moment'));
    resolveClosed(reason);
  });
  const api = new Proxy({} as CoreApi, {
    get: (_t, method: string) => async (...args: unknown[]) => {
      if (isClosed) throw new HangarError('daemon-unavailable', 'not connected to the Hangar core', 'wait for the connection to come back');
      try {
        return await (rpc as unknown as Record<string, (...a: unknown[]) => Promise<unknown>>)[method]!(...args);
      } catch (e) {
        throw toHangarError(e);
      }
    },
  });
  return {
    api,
    closed,
    get isClosed() { return isClosed; },
    close: () => {
      if (!isClosed) {
        isClosed = true;
        rpc.$close();
        resolveClosed('closed by client');
      }
      link.close();
    },
  };
}
