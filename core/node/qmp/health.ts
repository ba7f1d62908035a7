// Whether a running VM's QEMU still answers its monitor, in words for `hangar list/show` and the
// UI: a SIGSTOPped or hung QEMU keeps its state ("running") but says it is not responding, the
// way libvirt reports "monitor not responding" without blocking anyone who asks.
import type { QmpClient } from './client.ts';

/** The VM's reason with a not-responding note in front when its QMP monitor has gone silent. */
export function withQmpHealth(qmp: QmpClient | null | undefined, reason: string | undefined): string | undefined {
  if (!qmp || !qmp.transport.notResponding) return reason;
  const s = Math.round(qmp.transport.silentForMs() / 1000);
  const note = `not responding: QEMU has not answered its monitor for ${s} s (stopped with SIGSTOP, hung or overloaded); Force Off still works`;
  return reason ? `${note}; ${reason}` : note;
}
