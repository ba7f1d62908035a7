// Every IPC channel main listens on. Each handler first checks the sender (the main frame of one
// of our windows, on the app origin) and then the payload's schema; anything else is dropped.
import { z } from 'zod';
import type { IpcMainEventLike, IpcMainLike, MessagePortLike, WebContentsLike } from './electron-api.ts';
import type { PortRequest } from './core-supervisor.ts';
import { isSafeExternalUrl, isTrustedSender } from './security.ts';
import { MAX_CONNECTION_REF, MAX_TERMINAL_SIZE } from '../core/common/transport.ts';

export const IPC = {
  openPort: 'hangar:open-port',
  port: 'hangar:port',
  appInfo: 'hangar:app-info',
  openExternal: 'hangar:open-external',
  coreRestarted: 'hangar:core-restarted',
  menu: 'hangar:menu',
} as const;

const requestId = z.string().min(1).max(64).regex(/^[A-Za-z0-9_-]+$/);

/** A saved connection's name or a URI; absent = this machine's core. */
const connection = z.string().min(1).max(MAX_CONNECTION_REF).optional();

export const openPortSchema = z.discriminatedUnion('kind', [
  z.strictObject({ id: requestId, kind: z.literal('rpc'), connection }),
  z.strictObject({ id: requestId, kind: z.literal('console'), vm: z.string().min(1).max(200), replay: z.boolean(), connection }),
  z.strictObject({ id: requestId, kind: z.literal('display'), vm: z.string().min(1).max(200), connection }),
  z.strictObject({
    id: requestId, kind: z.literal('terminal'), vm: z.string().max(200), connection,
    user: z.string().min(1).max(64).optional(),
    cols: z.number().int().min(1).max(MAX_TERMINAL_SIZE).optional(), rows: z.number().int().min(1).max(MAX_TERMINAL_SIZE).optional(),
    login: z.boolean().optional(),
  }).refine((r) => r.login === true || r.vm.length > 0, 'a guest terminal names its VM'),
]);
export type OpenPortPayload = z.infer<typeof openPortSchema>;

export const externalUrlSchema = z.string().max(2048).refine(isSafeExternalUrl, 'only http(s) URLs');

export interface AppInfo {
  version: string;
  electron: string;
}

export interface IpcDeps {
  /** The web contents of our windows. */
  windows(): Iterable<WebContentsLike>;
  /** Opens a channel to the core; returns the requester's port. */
  openPort(request: PortRequest): MessagePortLike;
  appInfo(): AppInfo;
  openExternal(url: string): void;
  log(message: string): void;
}

export function registerIpc(ipcMain: IpcMainLike, deps: IpcDeps): void {
  const trusted = (event: IpcMainEventLike, channel: string): boolean => {
    if (isTrustedSender(event, deps.windows())) return true;
    deps.log(`refused ${channel} from an untrusted sender (${safeUrl(event)})`);
    return false;
  };

  ipcMain.on(IPC.openPort, (event, payload) => {
    if (!trusted(event, IPC.openPort)) return;
    const parsed = openPortSchema.safeParse(payload);
    if (!parsed.success) {
      deps.log(`refused ${IPC.openPort}: bad request`);
      return;
    }
    const { id, ...request } = parsed.data;
    const port = deps.openPort(request);
    event.sender.postMessage(IPC.port, { id }, [port]);
  });

  ipcMain.handle(IPC.appInfo, (event) => {
    if (!trusted(event, IPC.appInfo)) throw new Error('refused');
    return deps.appInfo();
  });

  ipcMain.on(IPC.openExternal, (event, url) => {
    if (!trusted(event, IPC.openExternal)) return;
    const parsed = externalUrlSchema.safeParse(url);
    if (!parsed.success) {
      deps.log(`refused ${IPC.openExternal}: not an http(s) URL`);
      return;
    }
    deps.openExternal(parsed.data);
  });
}

function safeUrl(event: IpcMainEventLike): string {
  try {
    return event.senderFrame?.url.slice(0, 200) ?? 'no frame';
  } catch {
    return 'destroyed frame';
  }
}
