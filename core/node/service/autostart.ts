// Autostart: VMs marked so start when the core starts, once per host boot (libvirt's habit: a
// core restarted by hand, or by its service manager after a crash, does not start again a VM the
// user has shut down since). The boot is told by the kernel's boot id, kept in the runtime dir.
// Each VM starts on its own: one that fails is reported (its reason and event log), the next
// still starts.
import { readFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { writeFileAtomic } from '../store/atomic-write.ts';
import { HangarError } from '../../common/errors.ts';
import type { VmInstance } from './vm-instance.ts';

export const AUTOSTART_MARKER = 'autostarted-boot';

function bootId(): string {
  try {
    return readFileSync('/proc/sys/kernel/random/boot_id', 'utf8').trim();
  } catch {
    return 'unknown-boot';
  }
}

export interface AutostartReport {
  /** false: already done in this boot. */
  ran: boolean;
  started: string[];
  failed: Array<{ name: string; error: string }>;
}

export async function autostartOnce(runtimeDir: string, vms: () => VmInstance[], log: (line: string) => void): Promise<AutostartReport> {
  const marker = join(runtimeDir, AUTOSTART_MARKER);
  const boot = bootId();
  if ((await readFile(marker, 'utf8').catch(() => '')).trim() === boot) return { ran: false, started: [], failed: [] };
  // Marked before starting: a core that dies during autostart does not start them twice.
  await writeFileAtomic(marker, `${boot}\n`, 0o600).catch(() => {});
  const report: AutostartReport = { ran: true, started: [], failed: [] };
  for (const vm of vms()) {
    if (!vm.stored.definition?.autostart || (vm.state !== 'stopped' && vm.state !== 'crashed')) continue;
    try {
      await vm.start();
      report.started.push(vm.name);
      log(`autostart: VM "${vm.name}" started`);
    } catch (e) {
      const error = e instanceof HangarError && e.hint ? `${e.message}; fix: ${e.hint}` : (e as Error).message ?? String(e);
      report.failed.push({ name: vm.name, error });
      await vm.noteProblem(`autostart failed: ${error}`);
      log(`autostart: VM "${vm.name}" did not start: ${error}`);
    }
  }
  return report;
}
