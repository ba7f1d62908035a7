// The host's devices as device assignment sees them (the core's hostDevices report: PCI devices
// and IOMMU groups with what assigning each takes, SR-IOV, mdevs, USB, readiness, memlock,
// privilege) and the privileged host changes of the Host page (vfio-pci binding, VF count, VF
// MAC/VLAN, mdev create/remove). After every change, and on a VM's change while a view shows the
// report (which VMs run decides what may be released), the report is fetched again, coalesced.
import { defineStore } from 'pinia';
import { ref, shallowReactive, shallowRef } from 'vue';
import type { HostChangeResult, HostDeviceReport } from '../../../core/common/host-devices.ts';
import { actionKey, actionStatus } from '../host/host-report.ts';
import type { HostAction } from '../host/host-report.ts';
import { toUiError } from '../util/ui-error.ts';
import type { UiError } from '../util/ui-error.ts';
import { unsupportedIn, useConnectionStore } from './connection.ts';
import { coalesce } from './vms.ts';

export type HostActionResult = { ok: true; result: HostChangeResult; status: string } | { ok: false; error: UiError };

export const useHostDevicesStore = defineStore('host-devices', () => {
  const conn = useConnectionStore();
  /** null until the first answer. */
  const report = shallowRef<HostDeviceReport | null>(null);
  const error = shallowRef<UiError | null>(null);
  const loading = ref(false);
  /** Action keys (actionKey) in flight: one change at a time per thing acted on. */
  const busy = shallowReactive(new Set<string>());
  /** The last failure per action key, shown beside that action. */
  const actionErrors = shallowReactive(new Map<string, UiError>());
  /** What the last change did, in words, and the commands it ran. */
  const status = shallowRef<{ text: string; commands: readonly string[] } | null>(null);
  const fetches = { report: 0 };
  /** Views showing the report; events re-fetch only while one does (else the next load does). */
  let watchers = 0;
  let stale = false;

  const fetchReport = coalesce(async () => {
    // A connection without it (libvirt) is not asked: the page shows why instead.
    if (unsupportedIn(conn.capabilities, 'hostDevices')) return;
    fetches.report++;
    loading.value = true;
    try {
      report.value = await conn.api.hostDevices();
      error.value = null;
      stale = false;
    } catch (e) {
      error.value = toUiError(e);
    } finally {
      loading.value = false;
    }
  });

  /** Loads the report once (again when forced, or when something changed since). */
  function load(force = false): Promise<void> {
    if (report.value && !force && !stale) return Promise.resolve();
    return fetchReport('');
  }

  function refresh(): Promise<void> {
    return fetchReport('');
  }

  /** A view shows the report from now on; call the result when it goes away. */
  function follow(): () => void {
    watchers++;
    void load();
    let done = false;
    return () => {
      if (!done) watchers--;
      done = true;
    };
  }

  function invalidate(): void {
    if (!report.value) return;
    if (watchers > 0) void refresh();
    else stale = true;
  }

  conn.onEvent('vmChanged', invalidate);
  conn.onEvent('vmListChanged', invalidate);
  let reload = false;
  conn.onSwitching(() => {
    reload = report.value !== null || error.value !== null;
    report.value = null;
    error.value = null;
    status.value = null;
    actionErrors.clear();
  });
  conn.onConnected(() => {
    if ((report.value || error.value || reload) && !unsupportedIn(conn.capabilities, 'hostDevices')) void refresh();
    reload = false;
  });

  async function run(action: HostAction, call: () => Promise<HostChangeResult>): Promise<HostActionResult> {
    const key = actionKey(action);
    if (busy.has(key)) return { ok: false, error: { code: 'busy', message: 'this change is still being made', hint: 'wait for it to finish' } };
    busy.add(key);
    actionErrors.delete(key);
    try {
      const result = await call();
      const text = actionStatus(action, result);
      status.value = { text, commands: result.commands };
      return { ok: true, result, status: text };
    } catch (e) {
      const err = toUiError(e);
      actionErrors.set(key, err);
      return { ok: false, error: err };
    } finally {
      busy.delete(key);
      // What the host has now, whatever happened (a failed change may have done part of it).
      await refresh();
    }
  }

  const bindVfio = (address: string): Promise<HostActionResult> => run({ type: 'bind', address }, () => conn.api.bindVfio(address));
  const releaseVfio = (address: string): Promise<HostActionResult> => run({ type: 'release', address }, () => conn.api.releaseVfio(address));
  const setSriovVfs = (pf: string, count: number): Promise<HostActionResult> => run({ type: 'sriov', pf, count }, () => conn.api.setSriovVfs(pf, count));
  const setVfConfig = (pf: string, vf: number, cfg: { mac?: string; vlan?: number }): Promise<HostActionResult> =>
    run({ type: 'vf', pf, vf, cfg }, () => conn.api.setVfConfig(pf, vf, cfg));
  const createMdev = (parent: string, mdevType: string): Promise<HostActionResult> => run({ type: 'mdev-create', parent, mdevType }, () => conn.api.createMdev(parent, mdevType));
  const removeMdev = (uuid: string): Promise<HostActionResult> => run({ type: 'mdev-remove', uuid }, () => conn.api.removeMdev(uuid));

  function dismissError(key: string): void {
    actionErrors.delete(key);
  }

  function clearStatus(): void {
    status.value = null;
  }

  return {
    report, error, loading, busy, actionErrors, status, fetches,
    load, refresh, follow, bindVfio, releaseVfio, setSriovVfs, setVfConfig, createMdev, removeMdev, dismissError, clearStatus,
  };
});
