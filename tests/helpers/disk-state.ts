// Disk contents as signatures, checked byte for byte with qemu-io (snapshot, clone and crash tests):
// region 0 holds `top`, each listed region its own number, every other region (1..8) is empty.
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';

export const REGION = 64 * 1024;

export interface DiskState { top: number; regions: number[] }
export const st = (top: number, ...regions: number[]): DiskState => ({ top, regions });

export function qemuIo(file: string, format: string, cmds: string[]): { ok: boolean; out: string } {
  const r = spawnSync('qemu-io', ['-f', format, ...cmds.flatMap((c) => ['-c', c]), file], { encoding: 'utf8' });
  return { ok: r.status === 0 && !/verification failed|error/i.test(r.stdout + r.stderr), out: r.stdout + r.stderr };
}

/** null when the disk shows exactly the state, else what differs. */
export function hasState(file: string, format: string, want: DiskState): string | null {
  const cmds = [`read -P ${want.top} 0 ${REGION}`];
  for (let j = 1; j <= 8; j++) cmds.push(`read -P ${want.regions.includes(j) ? j : 0} ${j * REGION} ${REGION}`);
  const r = qemuIo(file, format, cmds);
  return r.ok ? null : `${file} does not show ${JSON.stringify(want)}:\n${r.out}`;
}

/** qemu-img check on a qcow2 file (raw has nothing to check); -U: the file may be open in a QEMU. */
export function imageCheck(file: string): void {
  const info = JSON.parse(spawnSync('qemu-img', ['info', '-U', '--output=json', file], { encoding: 'utf8' }).stdout) as { format: string };
  if (info.format === 'raw') return;
  const r = spawnSync('qemu-img', ['check', '-q', '-U', file], { encoding: 'utf8' });
  assert.equal(r.status, 0, `qemu-img check ${file}: ${r.stdout}${r.stderr}`);
}
