// The QMP events Hangar reacts to, typed after QEMU 7.2's schema (query-qmp-schema), plus
// helpers to subscribe by name without casting at every call site.
import { HangarError } from '../../common/errors.ts';
import type { QmpEvent, QmpTransport } from './transport.ts';

export type ShutdownCause =
  | 'none' | 'host-error' | 'host-qmp-quit' | 'host-qmp-system-reset' | 'host-signal' | 'host-ui'
  | 'guest-shutdown' | 'guest-reset' | 'guest-panic' | 'subsystem-reset' | 'snapshot-load';

export type JobType =
  | 'commit' | 'stream' | 'mirror' | 'backup' | 'create' | 'amend'
  | 'snapshot-load' | 'snapshot-save' | 'snapshot-delete';

export type JobStatus =
  | 'undefined' | 'created' | 'running' | 'paused' | 'ready' | 'standby' | 'waiting'
  | 'pending' | 'aborting' | 'concluded' | 'null';

export type WatchdogAction = 'reset' | 'shutdown' | 'poweroff' | 'pause' | 'debug' | 'none' | 'inject-nmi';

export type NoData = Record<string, never>;

export interface QmpEventMap {
  SHUTDOWN: { guest: boolean; reason: ShutdownCause };
  POWERDOWN: NoData;
  RESET: { guest: boolean; reason: ShutdownCause };
  STOP: NoData;
  RESUME: NoData;
  GUEST_PANICKED: { action: 'pause' | 'poweroff' | 'run'; info?: { type: 'hyper-v' | 's390'; [k: string]: unknown } };
  DEVICE_DELETED: { device?: string; path: string };
  BLOCK_JOB_COMPLETED: { type: JobType; device: string; len: number; offset: number; speed: number; error?: string };
  BLOCK_JOB_ERROR: { device: string; operation: 'read' | 'write'; action: 'ignore' | 'report' | 'stop' };
  NIC_RX_FILTER_CHANGED: { name?: string; path: string };
  BALLOON_CHANGE: { actual: number };
  WATCHDOG: { action: WatchdogAction };
  JOB_STATUS_CHANGE: { id: string; status: JobStatus };
  /** With the migration capability `events` on: each status change of a migration (setup, active, pre-switchover, completed ...). */
  MIGRATION: { status: string };
}

export type QmpEventName = keyof QmpEventMap;

/** Calls fn for every `name` event; returns the unsubscribe function. */
export function onEvent<K extends QmpEventName>(
  t: QmpTransport,
  name: K,
  fn: (data: QmpEventMap[K], event: QmpEvent) => void,
): () => void {
  const listener = (ev: QmpEvent): void => {
    // The wire is trusted to match the schema; the table is where that trust is written down.
    if (ev.event === name) fn(ev.data as unknown as QmpEventMap[K], ev);
  };
  t.on('event', listener);
  return () => {
    t.off('event', listener);
  };
}

export interface WaitForEventOptions<D> {
  /** Default 30 s; 0 waits forever. */
  timeoutMs?: number;
  predicate?: (data: D) => boolean;
}

/**
 * Resolves with the first matching event. Subscribe BEFORE issuing the command that causes it,
 * or the event may already have gone by. Rejects on timeout or when the connection closes.
 */
export function waitForEvent<K extends QmpEventName>(
  t: QmpTransport,
  name: K,
  opts: WaitForEventOptions<QmpEventMap[K]> = {},
): Promise<QmpEventMap[K]> {
  if (t.closeError) return Promise.reject(t.closeError);
  return new Promise((resolve, reject) => {
    let timer: NodeJS.Timeout | undefined;
    const finish = (): void => {
      clearTimeout(timer);
      off();
      t.off('close', onClose);
    };
    const onClose = (err: HangarError | undefined): void => {
      finish();
      reject(err ?? t.closeError ?? new HangarError('qmp-closed', `QMP connection closed while waiting for ${name}`));
    };
    const off = onEvent(t, name, (data) => {
      try {
        if (opts.predicate && !opts.predicate(data)) return;
      } catch (e) {
        finish();
        reject(e);
        return;
      }
      finish();
      resolve(data);
    });
    t.on('close', onClose);
    const ms = opts.timeoutMs ?? 30_000;
    if (ms > 0 && Number.isFinite(ms)) {
      timer = setTimeout(() => {
        finish();
        reject(new HangarError('timeout', `QMP event ${name} did not arrive within ${ms} ms`, undefined, { event: name }));
      }, ms);
    }
  });
}
