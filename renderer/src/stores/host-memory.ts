// The host's CPUs and memory (the core's hostCpuMemory: CPU topology, NUMA nodes, huge page pools,
// KSM, guest memory committed) and the privileged changes of the Host page's KSM and Huge pages
// cards. The Host page follows it: refreshed every few seconds while it shows and the window is
// visible, never otherwise; the VM's pinning grid only loads it once. QEMU's CPU model lists are
// kept per accelerator for the life of the connection.
import { defineStore } from 'pinia';
import { ref, shallowReactive, shallowRef } from 'vue';
import type { CpuModelList, HostCpuMemory } from '../../../core/common/api.ts';
import type { HostChangeResult } from '../../../core/common/host-devices.ts';
import { hostChangeText } from '../host/host-memory.ts';
import { Poller } from '../util/poller.ts';
import { toUiError } from '../util/ui-error.ts';
import type { UiError } from '../util/ui-error.ts';
import { unsupportedIn, useConnectionStore } from './connection.ts';
import { coalesce } from './vms.ts';

export const HOST_MEMORY_INTERVAL_MS = 3000;

export type HostMemoryActionResult = { ok: true; result: HostChangeResult; status: string } | { ok: false; error: UiError };

export const useHostMemoryStore = defineStore('host-memory', () => {
  const conn = useConnectionStore();
  /** null until the first answer. */
  const data = shallowRef<HostCpuMemory | null>(null);
  const error = shallowRef<UiError | null>(null);
  const loading = ref(false);
  /** Action keys in flight ('ksm', 'hugepages:2M'). */
  const busy = shallowReactive(new Set<string>());
  /** The last failure per action key, shown beside that action. */
  const actionErrors = shallowReactive(new Map<string, UiError>());
  /** What the last change per action key did, in words, and the commands it ran. */
  const status = shallowReactive(new Map<string, { text: string; commands: readonly string[] }>());
  const fetches = { data: 0 };

  const fetchData = coalesce(async () => {
    // A connection without it (libvirt) is not asked: the page shows why instead.
    if (unsupportedIn(conn.capabilities, 'hostCpuMemory')) return;
    fetches.data++;
    loading.value = true;
    try {
      data.value = await conn.api.hostCpuMemory();
      error.value = null;
    } catch (e) {
      error.value = toUiError(e);
    } finally {
      loading.value = false;
    }
  });

  const refresh = (): Promise<void> => fetchData('');
  /** Loads once (the pinning grid needs the host's CPUs, which do not change while it shows). */
  function load(): Promise<void> {
    return data.value ? Promise.resolve() : refresh();
  }

  const poller = new Poller(refresh, HOST_MEMORY_INTERVAL_MS);
  if (typeof document !== 'undefined') {
    poller.setPageVisible(document.visibilityState !== 'hidden');
    document.addEventListener('visibilitychange', () => poller.setPageVisible(document.visibilityState !== 'hidden'));
  }
  /** A view shows the live figures from now on; call the result when it goes away. */
  const follow = (): (() => void) => poller.watch();

  let reload = false;
  conn.onSwitching(() => {
    reload = data.value !== null || error.value !== null;
    data.value = null;
    error.value = null;
    actionErrors.clear();
    status.clear();
  });
  conn.onConnected(() => {
    if ((data.value || error.value || reload) && !unsupportedIn(conn.capabilities, 'hostCpuMemory')) void refresh();
    reload = false;
  });

  async function run(key: string, what: string, call: () => Promise<HostChangeResult>): Promise<HostMemoryActionResult> {
    if (busy.has(key)) return { ok: false, error: { code: 'busy', message: 'this change is still being made', hint: 'wait for it to finish' } };
    busy.add(key);
    actionErrors.delete(key);
    status.delete(key);
    try {
      const result = await call();
      const text = hostChangeText(what, result);
      status.set(key, { text, commands: result.commands });
      return { ok: true, result, status: text };
    } catch (e) {
      const err = toUiError(e);
      actionErrors.set(key, err);
      return { ok: false, error: err };
    } finally {
      busy.delete(key);
      // What the host has now, whatever happened.
      await refresh();
    }
  }

  const setKsm = (on: boolean): Promise<HostMemoryActionResult> => run('ksm', `KSM ${on ? 'on' : 'off'}`, () => conn.api.setKsm(on));
  const setHugepages = (size: '2M' | '1G', count: number): Promise<HostMemoryActionResult> =>
    run(`hugepages:${size}`, `${size} huge page pool set to ${count} page${count === 1 ? '' : 's'}`, () => conn.api.setHugepages(size, count));

  function dismissError(key: string): void {
    actionErrors.delete(key);
  }

  // QEMU's CPU models, per accelerator asked ('' = the core's choice); a failure is not kept.
  const models = new Map<string, Promise<CpuModelList>>();
  function cpuModels(accel?: 'kvm' | 'tcg'): Promise<CpuModelList> {
    const key = accel ?? '';
    let p = models.get(key);
    if (!p) {
      p = accel ? conn.api.cpuModels(accel) : conn.api.cpuModels();
      models.set(key, p);
      p.catch(() => models.delete(key));
    }
    return p;
  }
  conn.onConnected(() => models.clear());

  return { data, error, loading, busy, actionErrors, status, fetches, load, refresh, follow, setKsm, setHugepages, dismissError, cpuModels, poller };
});
