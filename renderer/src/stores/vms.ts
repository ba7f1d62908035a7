// VM list, details and lifecycle actions. Core events only invalidate: vmChanged/vmListChanged
// re-fetch what is shown (coalesced: at most one fetch per key in flight and one queued, so a
// burst of 1000 events costs two fetches). Fast with 1000 VMs: the list is one shallowRef
// (replaced per fetch, never deep-reactive) plus a name index.
import { defineStore } from 'pinia';
import { computed, ref, shallowReactive, shallowRef } from 'vue';
import type { AddDeviceOptions, DeviceChange, DeviceKindName, RemoveDeviceOptions, VmInfo, VmSummary } from '../../../core/common/api.ts';
import { canDo, isActive } from '../../../core/common/state.ts';
import type { VmAction, VmState } from '../../../core/common/state.ts';
import { changeStatus } from '../devices/device-forms.ts';
import { toUiError } from '../util/ui-error.ts';
import type { UiError } from '../util/ui-error.ts';
import { unsupportedIn, useConnectionStore } from './connection.ts';

export type LifecycleAction = 'start' | 'pause' | 'resume' | 'save' | 'shutdown' | 'reboot' | 'destroy';

export const actionLabels: Record<LifecycleAction | 'delete', string> = {
  start: 'Start',
  pause: 'Pause',
  resume: 'Resume',
  save: 'Save',
  shutdown: 'Shut Down',
  reboot: 'Reboot',
  destroy: 'Force Off',
  delete: 'Delete',
};

/** The CoreApi method behind each state-machine action (what a connection's capabilities name; migrate is its own method where the core has it). */
export const actionMethods: Record<VmAction, string> = {
  start: 'start', pause: 'pause', resume: 'resume', save: 'save', shutdown: 'shutdown', reboot: 'reboot',
  reset: 'reset', destroy: 'destroy', delete: 'delete', edit: 'edit', clone: 'clone', snapshot: 'createSnapshot',
  'resize-disk': 'resizeDisk', 'change-device': 'editDevice', tune: 'setVcpus', migrate: 'migrate',
};

/**
 * Runs fn(key) with at most one call per key in flight and at most one queued behind it: calls
 * made while one runs all share the queued run (which starts after the current one ends, so it
 * sees every change that caused the calls).
 */
export function coalesce(fn: (key: string) => Promise<void>): (key: string) => Promise<void> {
  const inflight = new Map<string, Promise<void>>();
  const queued = new Map<string, Promise<void>>();
  const run = (key: string): Promise<void> => {
    const current = inflight.get(key);
    if (!current) {
      const p = fn(key).catch(() => { /* fn reports its own errors */ }).finally(() => {
        if (inflight.get(key) === p) inflight.delete(key);
      });
      inflight.set(key, p);
      return p;
    }
    let next = queued.get(key);
    if (!next) {
      next = current.then(() => {
        queued.delete(key);
        return run(key);
      });
      queued.set(key, next);
    }
    return next;
  };
  return run;
}

/** What a device operation did: the change and its status line, or the core's error (the editor keeps the input). */
export type DeviceResult = { ok: true; change: DeviceChange; status: string } | { ok: false; error: UiError };

export const useVmsStore = defineStore('vms', () => {
  const conn = useConnectionStore();

  const list = shallowRef<readonly VmSummary[]>([]);
  /** True once the first list fetch answered. */
  const loaded = ref(false);
  const listError = shallowRef<UiError | null>(null);
  const selected = ref<string | null>(null);
  const details = shallowReactive(new Map<string, VmInfo>());
  const detailsErrors = shallowReactive(new Map<string, UiError>());
  const commandLines = shallowReactive(new Map<string, readonly string[]>());
  const commandLineErrors = shallowReactive(new Map<string, UiError>());
  /** VM name -> the action in progress. */
  const busy = shallowReactive(new Map<string, LifecycleAction | 'delete'>());
  /** The last failed action, readable (message + hint). */
  const lastError = shallowRef<UiError | null>(null);
  /** VM name -> a device operation is in flight (one at a time per VM, as the core allows). */
  const deviceBusy = shallowReactive(new Set<string>());
  /** VM name -> what the last device change did, in words ("Saved; applies at next boot"). */
  const deviceStatus = shallowReactive(new Map<string, string>());
  /** VM name -> the balloon's last answer (target and what the guest had); dropped when QEMU stops. */
  const balloons = shallowReactive(new Map<string, { targetMiB: number; actualMiB: number }>());
  /** Fetch counters (diagnostics and tests). */
  const fetches = { list: 0, details: 0, commandLine: 0 };

  const byName = computed(() => {
    const m = new Map<string, VmSummary>();
    for (const v of list.value) m.set(v.name, v);
    return m;
  });
  const count = computed(() => list.value.length);

  const fetchList = coalesce(async () => {
    fetches.list++;
    const epoch = conn.epoch;
    try {
      const got = await conn.api.list();
      if (epoch !== conn.epoch) return; // another connection's VMs: never mixed in
      list.value = got;
      listError.value = null;
      loaded.value = true;
    } catch (e) {
      if (epoch === conn.epoch) listError.value = toUiError(e);
    }
  });

  const fetchDetails = coalesce(async (name) => {
    fetches.details++;
    const epoch = conn.epoch;
    try {
      const info = await conn.api.get(name);
      if (epoch !== conn.epoch) return;
      details.set(name, info);
      detailsErrors.delete(name);
    } catch (e) {
      if (epoch !== conn.epoch) return;
      const err = toUiError(e);
      if (err.code === 'not-found') details.delete(name);
      detailsErrors.set(name, err);
    }
  });

  const fetchCommandLine = coalesce(async (name) => {
    fetches.commandLine++;
    const epoch = conn.epoch;
    try {
      const argv = await conn.api.commandLine(name);
      if (epoch !== conn.epoch) return;
      commandLines.set(name, argv);
      commandLineErrors.delete(name);
    } catch (e) {
      if (epoch === conn.epoch) commandLineErrors.set(name, toUiError(e));
    }
  });

  function refreshList(): Promise<void> {
    return fetchList('');
  }

  /** Loads (or re-loads) one VM's details; from then on its changes keep it fresh. */
  function loadDetails(name: string): Promise<void> {
    return fetchDetails(name);
  }

  function loadCommandLine(name: string): Promise<void> {
    return fetchCommandLine(name);
  }

  /** Re-fetches everything shown: the list and every cached VM. */
  function refreshAll(): Promise<void> {
    const names = new Set([...details.keys(), ...detailsErrors.keys()]);
    return Promise.all([
      refreshList(),
      ...[...names].map((n) => fetchDetails(n)),
      ...[...commandLines.keys()].map((n) => fetchCommandLine(n)),
    ]).then(() => undefined);
  }

  /** Drops a VM from the caches (the details view for it closed). */
  function forget(name: string): void {
    details.delete(name);
    detailsErrors.delete(name);
    commandLines.delete(name);
    commandLineErrors.delete(name);
  }

  function onVmChanged(e: { id: string; name: string; state: VmState }): void {
    void refreshList();
    // A new QEMU starts with a full balloon: the last answer no longer holds.
    if (!isActive(e.state)) balloons.delete(e.name);
    for (const [name, info] of details) {
      if (name === e.name || info.id === e.id) {
        void fetchDetails(name);
        if (commandLines.has(name)) void fetchCommandLine(name);
      }
    }
    if (!details.has(e.name) && detailsErrors.has(e.name)) void fetchDetails(e.name);
  }

  function onVmListChanged(): void {
    void refreshList();
    // A VM shown in details may have been created, deleted or renamed behind our back.
    for (const name of new Set([...details.keys(), ...detailsErrors.keys()])) void fetchDetails(name);
  }

  conn.onEvent('vmChanged', onVmChanged);
  conn.onEvent('vmListChanged', onVmListChanged);
  conn.onConnected(() => { void refreshAll(); });
  // Another connection: nothing of this one stays on screen (the list empties, then refills on connect).
  conn.onSwitching(() => {
    list.value = [];
    loaded.value = false;
    listError.value = null;
    lastError.value = null;
    selected.value = null;
    details.clear();
    detailsErrors.clear();
    commandLines.clear();
    commandLineErrors.clear();
    busy.clear();
    deviceBusy.clear();
    deviceStatus.clear();
    balloons.clear();
  });
  if (conn.status === 'connected') void refreshList();

  /** The freshest state known for a VM (list first, then details). */
  function stateOf(name: string): VmState | undefined {
    return byName.value.get(name)?.state ?? details.get(name)?.state;
  }

  /** Whether the button for an action should be enabled. */
  function canAct(name: string, action: VmAction): boolean {
    const state = stateOf(name);
    return state !== undefined && !busy.has(name) && conn.status === 'connected' && canDo(action, state)
      && unsupportedIn(conn.capabilities, actionMethods[action]) === null;
  }

  function fail(e: unknown): void {
    lastError.value = toUiError(e);
  }

  function dismissError(): void {
    lastError.value = null;
  }

  /** Runs a lifecycle action; false if it failed (lastError says why) or the VM was busy. */
  async function act(name: string, action: LifecycleAction): Promise<boolean> {
    if (busy.has(name)) return false;
    busy.set(name, action);
    try {
      const api = conn.api;
      let info: VmInfo;
      switch (action) {
        case 'start': info = await api.start(name); break;
        case 'pause': info = await api.pause(name); break;
        case 'resume': info = await api.resume(name); break;
        case 'save': info = await api.save(name); break;
        case 'shutdown': info = await api.shutdown(name); break;
        case 'reboot': info = await api.reboot(name); break;
        case 'destroy': info = await api.destroy(name); break;
      }
      if (details.has(name)) details.set(name, info);
      lastError.value = null;
      return true;
    } catch (e) {
      fail(e);
      return false;
    } finally {
      busy.delete(name);
      void refreshList();
    }
  }

  /** Deletes a VM (and its disk images Hangar created, if asked). */
  async function remove(name: string, deleteDisks: boolean): Promise<boolean> {
    if (busy.has(name)) return false;
    busy.set(name, 'delete');
    try {
      await conn.api.delete(name, { deleteDisks });
      forget(name);
      if (selected.value === name) selected.value = null;
      lastError.value = null;
      return true;
    } catch (e) {
      fail(e);
      return false;
    } finally {
      busy.delete(name);
      void refreshList();
    }
  }

  /** Runs one device operation: the answer's VmInfo is shown at once, then details are re-fetched. */
  async function changeDevice(name: string, action: 'add' | 'edit' | 'remove', run: () => Promise<DeviceChange>): Promise<DeviceResult> {
    if (deviceBusy.has(name) || busy.has(name)) return { ok: false, error: { code: 'busy', message: `${name} is busy with another operation`, hint: 'try again when it finishes' } };
    deviceBusy.add(name);
    try {
      const change = await run();
      details.set(name, change.info);
      const status = changeStatus(action, change);
      deviceStatus.set(name, status);
      return { ok: true, change, status };
    } catch (e) {
      return { ok: false, error: toUiError(e) };
    } finally {
      deviceBusy.delete(name);
      void fetchDetails(name);
      if (commandLines.has(name)) void fetchCommandLine(name);
      void refreshList();
    }
  }

  function addDevice(name: string, kind: DeviceKindName, device: Record<string, unknown>, opts?: AddDeviceOptions): Promise<DeviceResult> {
    return changeDevice(name, 'add', () => conn.api.addDevice(name, kind, device, opts));
  }

  function editDevice(name: string, kind: DeviceKindName, id: string, patch: Record<string, unknown>): Promise<DeviceResult> {
    return changeDevice(name, 'edit', () => conn.api.editDevice(name, kind, id, patch));
  }

  function removeDevice(name: string, kind: DeviceKindName, id: string, opts?: RemoveDeviceOptions): Promise<DeviceResult> {
    return changeDevice(name, 'remove', () => conn.api.removeDevice(name, kind, id, opts));
  }

  /** Asks a running guest's balloon for a target size; the answer (kept in balloons) says where it got. */
  async function setBalloon(name: string, targetMiB: number): Promise<{ ok: true; targetMiB: number; actualMiB: number } | { ok: false; error: UiError }> {
    try {
      const r = await conn.api.setBalloon(name, targetMiB);
      balloons.set(name, r);
      return { ok: true, ...r };
    } catch (e) {
      // Refused: perhaps the VM stopped meanwhile; what is shown catches up.
      void fetchDetails(name);
      return { ok: false, error: toUiError(e) };
    }
  }

  /** Grows a disk (never shrinks); the answer says from what to what, and whether the running guest saw it. */
  async function resizeDisk(name: string, diskId: string, sizeBytes: number): Promise<({ ok: true } & { oldBytes: number; newBytes: number; online: boolean }) | { ok: false; error: UiError }> {
    try {
      const r = await conn.api.resizeDisk(name, diskId, sizeBytes);
      return { ok: true, ...r };
    } catch (e) {
      return { ok: false, error: toUiError(e) };
    }
  }

  function clearDeviceStatus(name: string): void {
    deviceStatus.delete(name);
  }

  function select(name: string | null): void {
    selected.value = name;
  }

  return {
    list, loaded, listError, selected, details, detailsErrors, commandLines, commandLineErrors, busy, lastError, deviceBusy, deviceStatus, balloons, resizeDisk,
    byName, count, fetches,
    refreshList, loadDetails, loadCommandLine, refreshAll, forget, stateOf, canAct, act, remove, select,
    dismissError, fail, addDevice, editDevice, removeDevice, setBalloon, clearDeviceStatus,
  };
});
