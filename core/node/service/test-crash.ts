// Test-only, read here and nowhere else: HANGAR_TEST_CRASH_AT=<point> makes the core SIGKILL
// itself at that point of an operation (HANGAR_TEST_KILL_QEMU_AT=<point>: the VM's QEMU instead), so the tests can prove that a restarted core finishes or
// cleans up every half-done start, snapshot, merge and save (tests/faults/reattach.test.ts,
// tests/integration/snapshot-crashes.test.ts).
export type CrashPoint =
  // start
  | 'after-sidecars' | 'after-spawn' | 'before-cont'
  // snapshots: journal written; one disk of several done; disks done, records not yet
  | 'snapshot-journal' | 'snapshot-disk' | 'snapshot-before-record'
  // deleting an external snapshot: definition names the merge target, QEMU has not pivoted; merged, records not yet
  | 'merge-before-pivot' | 'merge-done'
  // managed save: the state file is complete, QEMU still runs (postmigrate)
  | 'save-written';

export function crashPointForTests(point: CrashPoint): void {
  if (process.env.HANGAR_TEST_CRASH_AT === point) process.kill(process.pid, 'SIGKILL');
}

/**
 * Where HANGAR_TEST_KILL_QEMU_AT may SIGKILL a VM's QEMU: while it streams a save, while it merges
 * a snapshot. (A RAM snapshot is saved in QEMU's main loop, which answers its monitor only when
 * done: the test kills QEMU by watching the image grow instead.)
 */
export type QemuKillPoint = 'save-streaming' | 'merging';

export function killQemuForTests(point: QemuKillPoint, pid: number | undefined): void {
  if (pid === undefined || process.env.HANGAR_TEST_KILL_QEMU_AT !== point) return;
  try { process.kill(pid, 'SIGKILL'); } catch { /* gone already */ }
}
