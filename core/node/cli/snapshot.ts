// `hangar snapshot create|list|revert|delete|screenshot`: a VM's snapshots, the same operations and words
// (what a revert loses, what a delete merges) as the Snapshots tab.
import type { CoreApi } from '../../common/api.ts';
import { HangarError } from '../../common/errors.ts';
import { deleteConsequence, findSnapshot, revertConsequence, snapshotTreeRows } from '../../common/snapshots.ts';
import type { SnapshotList, SnapshotProgress } from '../../common/snapshots.ts';
import { formatBytes } from '../store/import-disk.ts';
import { table } from './table.ts';

export const SNAPSHOT_USAGE = `Usage:
  hangar snapshot create NAME SNAP [--disk-only] [--external] [--description TEXT]
        internal (inside every qcow2 disk; a running VM's RAM too unless --disk-only), or
        --external: the disks frozen under new qcow2 overlays (disk only; raw disks too)
  hangar snapshot list NAME [--json]      the tree, the current position (*), problems found
  hangar snapshot revert NAME SNAP        go back to it: changes since are lost (a RAM snapshot
                                          leaves the VM running from it, a disk-only one stopped)
  hangar snapshot delete NAME SNAP        delete it; its data is merged into what depends on it
  hangar snapshot screenshot NAME SNAP FILE.png
                                          the guest's screen when it was taken (VMs with a display)
`;

export function snapshotListText(list: SnapshotList): string {
  const lines: string[] = [];
  if (!list.snapshots.length) lines.push('No snapshots.');
  else {
    const rows = [['', 'NAME', 'KIND', 'TAKEN', 'STATE', 'DESCRIPTION']];
    for (const { snapshot: s, depth } of snapshotTreeRows(list)) {
      const kind = s.kind === 'internal' ? (s.memory ? `internal+RAM${s.vmStateBytes ? ` (${formatBytes(s.vmStateBytes)})` : ''}` : 'internal') : 'external';
      rows.push([s.id === list.current ? '*' : '', `${'  '.repeat(depth)}${s.name}`, kind, s.createdAt.replace('T', ' ').slice(0, 19), s.vmState, s.problem ? `PROBLEM: ${s.problem}` : s.description]);
    }
    lines.push(table(rows));
    if (list.current === null) lines.push('(the current state derives from none of these snapshots)');
  }
  for (const p of list.problems) lines.push(`problem: ${p}`);
  return lines.join('\n');
}

export async function snapshotCommand(sub: string | undefined, positionals: string[], values: Record<string, unknown>,
  withCore: <T>(fn: (api: CoreApi) => Promise<T>) => Promise<T>, print: (s: string) => void,
  progress: (fn: (api: CoreApi) => Promise<unknown>) => Promise<unknown>): Promise<number> {
  if (!sub || values.help || sub === 'help' || sub === '--help') {
    print(SNAPSHOT_USAGE);
    return sub ? 0 : 2;
  }
  const need = (n: number, usage: string): string[] => {
    if (positionals.length !== n) throw new HangarError('invalid-input', `expected ${usage}, got ${positionals.length ? positionals.map((p) => JSON.stringify(p)).join(' ') : 'nothing'}`, `hangar snapshot ${sub} ${usage}`);
    return positionals;
  };
  switch (sub) {
    case 'list': {
      const [vm] = need(1, 'NAME');
      const list = await withCore((api) => api.listSnapshots(vm!));
      print(values.json ? JSON.stringify(list, null, 2) : snapshotListText(list));
      return 0;
    }
    case 'create': {
      const [vm, snap] = need(2, 'NAME SNAP');
      const req = {
        name: snap!,
        ...(values.description !== undefined ? { description: String(values.description) } : {}),
        ...(values.external ? { kind: 'external' as const } : {}),
        ...(values['disk-only'] ? { memory: false } : {}),
      };
      const s = await progress((api) => api.createSnapshot(vm!, req)) as Awaited<ReturnType<CoreApi['createSnapshot']>>;
      if (values.json) print(JSON.stringify(s, null, 2));
      else print(`snapshot "${s.name}" of VM "${vm}" taken (${s.kind}${s.memory ? ', with RAM' : ', disk only'}${s.note ? `; ${s.note}` : ''})`);
      return 0;
    }
    case 'revert': {
      const [vm, snap] = need(2, 'NAME SNAP');
      const [list, info] = await withCore(async (api) => [await api.listSnapshots(vm!), await api.get(vm!)] as const);
      const s = findSnapshot(list, snap!, info.name);
      print(revertConsequence(list, s, info.state));
      const after = await progress((api) => api.revertSnapshot(vm!, snap!)) as Awaited<ReturnType<CoreApi['revertSnapshot']>>;
      print(`VM "${after.name}" reverted to snapshot "${s.name}"; it is ${after.state}`);
      return 0;
    }
    case 'delete': {
      const [vm, snap] = need(2, 'NAME SNAP');
      const list = await withCore((api) => api.listSnapshots(vm!));
      const s = findSnapshot(list, snap!, vm!);
      print(deleteConsequence(list, s));
      await progress((api) => api.deleteSnapshot(vm!, snap!));
      print(`snapshot "${s.name}" of VM "${vm}" deleted`);
      return 0;
    }
    case 'screenshot': {
      const [vm, snap, file] = need(3, 'NAME SNAP FILE.png');
      return (await import('./display.ts')).screenshotCommand(vm!, file, withCore, print, snap!);
    }
    default:
      throw new HangarError('invalid-input', `unknown snapshot command "${sub}"`, 'hangar snapshot create|list|revert|delete|screenshot');
  }
}

/** One progress line per step and tenth (the printer draws a bar on a terminal). */
export function snapshotProgressStep(e: SnapshotProgress): string {
  return `${e.op} ${e.snapshot}: ${e.step}${e.totalBytes ? ` (${formatBytes(e.doneBytes ?? 0)} of ${formatBytes(e.totalBytes)})` : ''}`;
}
