// `hangar device list|resize`: a VM's virtual hardware, each device with its I/O virtualization
// mode (from the one advice table), and growing disks offline or online.
import type { CoreApi } from '../../common/api.ts';
import { deviceRows } from '../../common/device-rows.ts';
import { HangarError } from '../../common/errors.ts';
import { table } from './table.ts';
import { formatBytes } from '../store/import-disk.ts';
import { parseSize } from '../store/qemu-img.ts';

export const DEVICE_USAGE = `Usage:
  hangar device list NAME [--json]          every device of the VM with its mode (emulated, paravirtual ...)
  hangar device resize NAME DISK SIZE       grow a disk (e.g. 20G): offline with qemu-img, online with
                                            block_resize while the VM runs; never shrinks
`;

export async function deviceCommand(sub: string | undefined, positionals: string[], values: Record<string, unknown>,
  withCore: <T>(fn: (api: CoreApi) => Promise<T>) => Promise<T>, print: (s: string) => void): Promise<number> {
  if (!sub || values.help || sub === 'help' || sub === '--help') {
    print(DEVICE_USAGE);
    return sub ? 0 : 2;
  }
  if (sub === 'list') {
    if (positionals.length !== 1) throw new HangarError('invalid-input', 'expected one VM name', 'hangar device list NAME');
    const info = await withCore((api) => api.get(positionals[0]!));
    if (!info.definition) throw new HangarError('invalid-state', `VM "${info.name}" has no readable definition: ${info.reason ?? 'broken'}`, 'fix or delete its definition file');
    const rows = deviceRows(info.definition);
    if (values.json) print(JSON.stringify(rows, null, 2));
    else print(table([['KIND', 'ID', 'TYPE', 'MODE', 'DETAIL'], ...rows.map((r) => [r.kind, r.id, r.type, r.mode, r.detail])]));
    return 0;
  }
  if (sub === 'resize') {
    if (positionals.length !== 3) throw new HangarError('invalid-input', 'expected NAME DISK SIZE', 'e.g. hangar device resize web disk0 20G');
    const [name, disk, size] = positionals as [string, string, string];
    const r = await withCore((api) => api.resizeDisk(name, disk, parseSize(size)));
    if (values.json) print(JSON.stringify(r));
    else print(`Disk ${disk} of "${name}": ${formatBytes(r.oldBytes)} -> ${formatBytes(r.newBytes)}${r.online ? ' (online: the guest sees the new size now; grow its partition and file system inside)' : ''}`);
    return 0;
  }
  throw new HangarError('invalid-input', `unknown subcommand "device ${sub}"`, 'use `hangar device list NAME` or `hangar device resize NAME DISK SIZE`');
}
