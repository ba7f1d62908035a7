// The connection to the Hangar core: one CoreClient over the transport's RPC link, reconnected
// with backoff when the link closes. Core events only invalidate: they are handed to the stores
// that subscribed (onEvent), which re-fetch. After every (re)connect, subscribers of onConnected
// re-fetch everything they show.
//
// Plain .ts (no .vue imports) so tests drive it in Node with a fake transport.
import { defineStore } from 'pinia';
import { computed, markRaw, ref } from 'vue';
import type { CoreApi, CoreEvents } from '../../../core/common/api.ts';
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
}

export const BANNER_LOST = 'Connection to the Hangar core lost — reconnecting…';
export const BANNER_RECONNECTED = 'Reconnected to the Hangar core';
export const BANNER_CONNECTING = 'Connecting to the Hangar core…';

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

  // Not reactive: the client, transport and timers are plain objects.
  let opts: Required<Omit<ConnectionOptions, 'onCoreRestarted'>> | null = null;
  let client: CoreClient | null = null;
  let retryTimer: unknown = null;
  let noticeTimer: unknown = null;
  let backoff = 250;
  let stopped = false;
  let attempting = false;
  let unsubscribeRestart: (() => void) | null = null;
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
    if (status.value === 'reconnecting') return BANNER_LOST;
    if (status.value === 'connecting' && failedAttempts.value > 0) return BANNER_CONNECTING;
    if (status.value === 'connected' && reconnectedNotice.value) return BANNER_RECONNECTED;
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
    let c: CoreClient;
    try {
      const link = await opts.transport.openRpc();
      if (stopped) {
        link.close();
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
      failedAttempts.value++;
      lastProblem.value = e instanceof Error ? e.message : String(e);
      scheduleRetry();
      return;
    } finally {
      attempting = false;
    }
    client = c;
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
    void c.closed.then((reason) => onClosed(c, reason));
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
    start, stop, retryNow, onEvent, onConnected, getTransport,
  };
});
