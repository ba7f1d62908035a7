// What this host can run, for the device panels: the core's doctor checks (vhost-net, tun,
// passt ...) and hostInfo (bridges, TPM). Loaded once per connection; the panels disable what
// is missing with the check's reason and fix.
import { defineStore } from 'pinia';
import { shallowRef } from 'vue';
import type { DoctorCheckInfo, HostInfo } from '../../../core/common/api.ts';
import { toUiError } from '../util/ui-error.ts';
import type { UiError } from '../util/ui-error.ts';
import { useConnectionStore } from './connection.ts';

export const useHostStore = defineStore('host', () => {
  const conn = useConnectionStore();
  /** null until the first answer. */
  const checks = shallowRef<readonly DoctorCheckInfo[] | null>(null);
  const info = shallowRef<HostInfo | null>(null);
  const error = shallowRef<UiError | null>(null);
  let loading: Promise<void> | null = null;

  /** Loads once (again with force, e.g. after the user fixed something on the host). */
  function load(force = false): Promise<void> {
    if (loading && !force) return loading;
    loading = (async () => {
      try {
        const [c, h] = await Promise.all([conn.api.doctor(), conn.api.hostInfo()]);
        checks.value = c;
        info.value = h;
        error.value = null;
      } catch (e) {
        error.value = toUiError(e);
        loading = null;
      }
    })();
    return loading;
  }

  // Another connection's host: forget this one's answers, ask again on connect if something showed them.
  let reload = false;
  conn.onSwitching(() => {
    reload = checks.value !== null || error.value !== null;
    checks.value = null;
    info.value = null;
    error.value = null;
    loading = null;
  });
  conn.onConnected(() => {
    if (checks.value || reload) void load(true);
    reload = false;
  });

  return { checks, info, error, load };
});
