// The connection to the Hangar core: one CoreClient over the transport's RPC link, reconnected
// with backoff when the link closes. Core events only invalidate: they are handed to the stores
// that subscribed (onEvent), which re-fetch. After every (re)connect, subscribers of onConnected
// re-fetch everything they show.
//
// Connections (issue 18): the window looks at one connection at a time (`current`: `local`, a saved
// connection's name, or a URI). switchTo() closes the client and opens the RPC channel on the new
// connection; the stores hear onSwitching (drop what they show: two connections' VMs never mix)
// and then the usual onConnected (fetch again). After every connect the connection's
// capabilities() are fetched before anyone hears onConnected, so views can disable what its
// driver cannot do, with the reason (unsupportedReason).
//
// Plain .ts (no .vue imports) so tests drive it in Node with a fake transport.
import { defineStore } from 'pinia';
import { computed, markRaw, ref, shallowRef } from 'vue';
import type { CoreApi, CoreEvents } from '../../../core/common/api.ts';
import { LOCAL_CONNECTION } from '../../../core/common/connections.ts';
import type { ConnectionInfo, DriverCapabilities } from '../../../core/common/connections.ts';
import { coreApiMethods } from '../../../core/common/api.ts';
import { createCoreClient } from '../../../core/common/core-client.ts';
import type { CoreClient } from '../../../core/common/core-client.ts';
import { HangarError } from '../../../core/common/errors.ts';
import type { CoreTransport, RpcLink } from '../../../core/common/transport.ts';

export type ConnectionStatus = 'connecting' | 'connected' | 'reconnecting';

export interface Timers {
  setTimeout(fn: () => void, ms: number): unknown;
  clearTimeout(handle: unknown): void;
}

export const realTimers: Timers = {
  setTimeout: (fn, ms) => setTimeout(fn, ms),
  clearTimeout: (h) => clearTimeout(h as ReturnType<typeof setTimeout>),
};

export interface ConnectionOptions {
  transport: CoreTransport;
  /** Builds the client over a link (default: createCoreClient). */
  createClient?: (link: RpcLink, events: Partial<CoreEvents>) => CoreClient;
  /** First retry delay; doubles up to maxBackoffMs. */
  initialBackoffMs?: number;
  maxBackoffMs?: number;
  /** How long "Reconnected to the Hangar core" stays up. */
  reconnectedNoticeMs?: number;
  /** Electron: called back after the core host restarted (retry at once instead of waiting). */
  onCoreRestarted?: (cb: () => void) => () => void;
  timers?: Timers;
  /** The connection to open first (default 'local'; see initialConnection). */
  connection?: string;
  /** Called with the new connection's name after a switch (localStorage, the page URL). */
  remember?: (name: string) => void;
}

/** Where the window's connection is remembered between runs. */
export const CONNECTION_STORAGE_KEY = 'hangar.connection';

/**
 * The connection a window opens on: `?connection=NAME` in the page URL (a link to a connection:
 * before the hash, or in the hash route's query), else the one remembered, else `local`.
 */
export function initialConnection(loc: { search: string; hash: string }, remembered: string | null | undefined): string {
  const hashQuery = loc.hash.includes('?') ? loc.hash.slice(loc.hash.indexOf('?')) : '';
  for (const q of [loc.search, hashQuery]) {
    const c = new URLSearchParams(q).get('connection');
    if (c && c.length <= 2048) return c;
  }
  return remembered && remembered.length <= 2048 ? remembered : LOCAL_CONNECTION;
}

/** What a display channel needs that no CoreApi method names: the driver's own words, else null. */
export const DISPLAY_METHOD = 'openDisplay';

/** A CoreApi method, or the display channel (DISPLAY_METHOD). */
export type CapabilityName = keyof CoreApi | typeof DISPLAY_METHOD | (string & {});

/**
 * Why a connection with these capabilities cannot do a method (the driver's words), or null when
 * it can (null capabilities: a core that can do everything). Stores use this with
 * `conn.capabilities` rather than the store's unsupportedReason action (see epoch).
 */
export function unsupportedIn(caps: DriverCapabilities | null, method: CapabilityName): string | null {
  if (!caps) return null;
  const r = (caps.unsupported as Record<string, string | undefined>)[method];
  if (r) return r;
  // The display is a channel, not an API method: every driver serves it (a libvirt domain's VNC
  // server through virsh domdisplay); a domain without a screen says so on its channel.
  return null;
}

export const BANNER_LOST = 'Connection to the Hangar core lost — reconnecting…';
export const BANNER_RECONNECTED = 'Reconnected to the Hangar core';
export const BANNER_CONNECTING = 'Connecting to the Hangar core…';

/** The banners for a connection other than local name what was lost (a libvirt host, a remote core). */
export function connectionBanners(label: string): { lost: string; reconnected: string; connecting: string } {
  return {
    lost: `Connection to ${label} lost — reconnecting…`,
    reconnected: `Reconnected to ${label}`,
    connecting: `Connecting to ${label}…`,
  };
}

type EventName = keyof CoreEvents;
type EventListener = { [K in EventName]: (...args: Parameters<CoreEvents[K]>) => void };

export const useConnectionStore = defineStore('connection', () => {
  const status = ref<ConnectionStatus>('connecting');
  /** True for a few seconds after a reconnect. */
  const reconnectedNotice = ref(false);
  /** Why the core is unreachable right now, in words (null while connected). */
  const lastProblem = ref<string | null>(null);
  /** Failed attempts since the last successful connect. */
  const failedAttempts = ref(0);
  const transportKind = ref<'electron' | 'browser' | null>(null);
  /** How many times a connection was made (1 after the first connect). */
  const connectCount = ref(0);
  /** The connection this window looks at: 'local', a saved connection's name, or a URI. */
  const current = ref<string>(LOCAL_CONNECTION);
  /** What the current connection's driver can do (null until known, or for a core without capabilities()). */
  const capabilities = shallowRef<DriverCapabilities | null>(null);
  /** Why capabilities() failed on the current connection (e.g. libvirtd does not answer), in words. */
  const connectionProblem = ref<string | null>(null);
  /**
   * Bumped by every switch: an answer fetched under an older value belongs to another connection
   * and is dropped. State, not a function: Pinia makes a store's functions actions, and an action
   * called from an old test's leftover promise would make that store's Pinia the active one.
   */
  const epoch = ref(0);
  /** The saved connections (this computer's list), once asked for. */
  const connections = shallowRef<readonly ConnectionInfo[]>([]);
  /** The current connection's label for people. */
  const label = computed(() => capabilities.value?.label
    ?? connections.value.find((c) => c.name === current.value)?.label
    ?? (current.value === LOCAL_CONNECTION ? 'Hangar on this computer' : current.value));

  // Not reactive: the client, transport and timers are plain objects.
  let opts: Required<Omit<ConnectionOptions, 'onCoreRestarted' | 'connection' | 'remember'>> | null = null;
  let client: CoreClient | null = null;
  let retryTimer: unknown = null;
  let noticeTimer: unknown = null;
  let backoff = 250;
  let stopped = false;
  let attempting = false;
  let unsubscribeRestart: (() => void) | null = null;
  let remember: ((name: string) => void) | null = null;
  const eventListeners: { [K in EventName]: Set<EventListener[K]> } = {
    vmChanged: new Set(),
    vmListChanged: new Set(),
    createProgress: new Set(),
    snapshotProgress: new Set(),
    statsSample: new Set(),
    hostStats: new Set(),
    migrationProgress: new Set(),
  };
  const connectedListeners = new Set<(info: { reconnect: boolean }) => void>();
  const switchingListeners = new Set<(name: string) => void>();

  function emit<K extends EventName>(name: K, ...args: Parameters<CoreEvents[K]>): void {
    for (const cb of eventListeners[name]) {
      try {
        (cb as (...a: Parameters<CoreEvents[K]>) => void)(...args);
      } catch (e) {
        console.error(e);
      }
    }
  }

  /** The core API of the current connection; calls while disconnected fail with a HangarError. */
  const api = markRaw(Object.fromEntries(coreApiMethods.map((m) => [m, (...args: unknown[]) => {
    if (!client || client.isClosed) {
      return Promise.reject(new HangarError('daemon-unavailable', 'not connected to the Hangar core',
        'wait for the connection to come back'));
    }
    return (client.api[m] as (...a: unknown[]) => Promise<unknown>)(...args);
  }])) as unknown as CoreApi);

  const bannerText = computed<string | null>(() => {
    const b = current.value === LOCAL_CONNECTION
      ? { lost: BANNER_LOST, reconnected: BANNER_RECONNECTED, connecting: BANNER_CONNECTING }
      : connectionBanners(label.value);
    if (status.value === 'reconnecting') return b.lost;
    if (status.value === 'connecting' && failedAttempts.value > 0) return b.connecting;
    if (status.value === 'connected' && reconnectedNotice.value) return b.reconnected;
    return null;
  });

  function scheduleRetry(): void {
    if (stopped || !opts) return;
    const delay = backoff;
    backoff = Math.min(backoff * 2, opts.maxBackoffMs);
    retryTimer = opts.timers.setTimeout(() => {
      retryTimer = null;
      void attempt();
    }, delay);
  }

  async function attempt(): Promise<void> {
    if (stopped || !opts || attempting || client) return;
    attempting = true;
    const epochAtStart = epoch.value;
    let c: CoreClient;
    try {
      const link = await opts.transport.openRpc(current.value);
      if (stopped || epochAtStart !== epoch.value) {
        // Stopped, or switched to another connection while this one opened: try the new one.
        link.close();
        attempting = false;
        if (!stopped) void attempt();
        return;
      }
      c = opts.createClient(link, {
        vmChanged: (e) => emit('vmChanged', e),
        vmListChanged: () => emit('vmListChanged'),
        createProgress: (e) => emit('createProgress', e),
        snapshotProgress: (e) => emit('snapshotProgress', e),
        statsSample: (e) => emit('statsSample', e),
        hostStats: (e) => emit('hostStats', e),
        migrationProgress: (e) => emit('migrationProgress', e),
      });
    } catch (e) {
      attempting = false;
      if (epochAtStart !== epoch.value) {
        if (!stopped) void attempt();
        return;
      }
      failedAttempts.value++;
      lastProblem.value = e instanceof Error ? e.message : String(e);
      scheduleRetry();
      return;
    }
    attempting = false;
    client = c;
    void c.closed.then((reason) => onClosed(c, reason));
    // What this connection can do, before anyone re-fetches: views disable the rest.
    let caps: DriverCapabilities | null = null;
    let problem: string | null = null;
    try {
      caps = await c.api.capabilities();
    } catch (e) {
      // An older core without capabilities() can do everything; a connection that could not be
      // opened (libvirtd down, ssh refused) says why here and in every call.
      const err = e as { code?: string; message?: string };
      if (err?.code !== 'unknown-method' && !/not found|unknown method/i.test(String(err?.message))) problem = String(err?.message ?? e);
    }
    if (client !== c) return; // closed, or switched, meanwhile
    capabilities.value = caps;
    connectionProblem.value = problem;
    const reconnect = connectCount.value > 0;
    connectCount.value++;
    backoff = opts.initialBackoffMs;
    failedAttempts.value = 0;
    lastProblem.value = null;
    status.value = 'connected';
    if (reconnect) {
      reconnectedNotice.value = true;
      if (noticeTimer !== null) opts.timers.clearTimeout(noticeTimer);
      noticeTimer = opts.timers.setTimeout(() => {
        noticeTimer = null;
        reconnectedNotice.value = false;
      }, opts.reconnectedNoticeMs);
    }
    for (const cb of connectedListeners) {
      try {
        cb({ reconnect });
      } catch (e) {
        console.error(e);
      }
    }
  }

  function onClosed(c: CoreClient, reason: string): void {
    if (client !== c) return;
    client = null;
    if (stopped) return;
    status.value = connectCount.value > 0 ? 'reconnecting' : 'connecting';
    reconnectedNotice.value = false;
    lastProblem.value = reason;
    scheduleRetry();
  }

  /** Starts connecting (once). */
  function start(options: ConnectionOptions): void {
    if (opts) return;
    stopped = false;
    opts = {
      transport: options.transport,
      createClient: options.createClient ?? createCoreClient,
      initialBackoffMs: options.initialBackoffMs ?? 250,
      maxBackoffMs: options.maxBackoffMs ?? 2000,
      reconnectedNoticeMs: options.reconnectedNoticeMs ?? 4000,
      timers: options.timers ?? realTimers,
    };
    transportKind.value = options.transport.kind;
    current.value = options.connection || LOCAL_CONNECTION;
    remember = options.remember ?? null;
    backoff = opts.initialBackoffMs;
    unsubscribeRestart = options.onCoreRestarted?.(() => retryNow()) ?? null;
    void attempt();
  }

  /** Skips the remaining backoff wait (e.g. the core host just restarted). */
  function retryNow(): void {
    if (!opts || stopped || client) return;
    if (retryTimer !== null) {
      opts.timers.clearTimeout(retryTimer);
      retryTimer = null;
    }
    backoff = opts.initialBackoffMs;
    void attempt();
  }

  /** Closes the connection for good (tests, page unload). */
  function stop(): void {
    stopped = true;
    if (opts) {
      if (retryTimer !== null) opts.timers.clearTimeout(retryTimer);
      if (noticeTimer !== null) opts.timers.clearTimeout(noticeTimer);
    }
    retryTimer = noticeTimer = null;
    unsubscribeRestart?.();
    unsubscribeRestart = null;
    const c = client;
    client = null;
    c?.close();
  }

  /**
   * Looks at another connection: closes the client, tells onSwitching listeners (drop what you
   * show), and connects on the new one (onConnected listeners then fetch). The same name again
   * does nothing while connected.
   */
  function switchTo(name: string, how: { reopen?: boolean } = {}): void {
    const next = name.trim() || LOCAL_CONNECTION;
    if (next === current.value && client && status.value === 'connected' && !how.reopen) return;
    epoch.value++;
    current.value = next;
    capabilities.value = null;
    connectionProblem.value = null;
    try { remember?.(next); } catch (e) { console.error(e); }
    for (const cb of switchingListeners) {
      try { cb(next); } catch (e) { console.error(e); }
    }
    if (!opts || stopped) return;
    if (retryTimer !== null) {
      opts.timers.clearTimeout(retryTimer);
      retryTimer = null;
    }
    reconnectedNotice.value = false;
    failedAttempts.value = 0;
    lastProblem.value = null;
    status.value = 'connecting';
    backoff = opts.initialBackoffMs;
    const old = client;
    client = null;
    old?.close();
    void attempt();
  }

  /** Opens the current connection afresh (after a login in a terminal made it reachable). */
  function reopen(): void {
    switchTo(current.value, { reopen: true });
  }

  /** Why the current connection cannot do a CoreApi method (the driver's words), or null when it can. */
  function unsupportedReason(method: CapabilityName): string | null {
    return unsupportedIn(capabilities.value, method);
  }

  function setConnections(list: readonly ConnectionInfo[]): void {
    connections.value = list;
  }

  /** Re-reads the saved connections (this computer's list, whatever the current connection). */
  async function refreshConnections(): Promise<readonly ConnectionInfo[]> {
    setConnections(await api.connections());
    return connections.value;
  }

  /** Saves a connection; rejects with the core's error (a refused URI says how to write it). */
  async function addConnection(name: string, uri: string): Promise<readonly ConnectionInfo[]> {
    setConnections(await api.addConnection(name, uri));
    return connections.value;
  }

  /** Forgets a saved connection; the window goes back to local if it was looking at it. */
  async function removeConnection(name: string): Promise<readonly ConnectionInfo[]> {
    setConnections(await api.removeConnection(name));
    if (current.value === name) switchTo(LOCAL_CONNECTION);
    return connections.value;
  }

  function onSwitching(cb: (name: string) => void): () => void {
    switchingListeners.add(cb);
    return () => { switchingListeners.delete(cb); };
  }

  function onEvent<K extends EventName>(name: K, cb: EventListener[K]): () => void {
    eventListeners[name].add(cb);
    return () => { eventListeners[name].delete(cb); };
  }

  function onConnected(cb: (info: { reconnect: boolean }) => void): () => void {
    connectedListeners.add(cb);
    return () => { connectedListeners.delete(cb); };
  }

  function getTransport(): CoreTransport | null {
    return opts?.transport ?? null;
  }

  return {
    status, reconnectedNotice, lastProblem, failedAttempts, transportKind, connectCount, bannerText, api,
    current, capabilities, connectionProblem, connections, label, epoch,
    start, stop, retryNow, onEvent, onConnected, getTransport,
    switchTo, reopen, unsupportedReason, refreshConnections, addConnection, removeConnection, onSwitching,
  };
});
