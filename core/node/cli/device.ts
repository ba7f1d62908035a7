// `hangar device list|add|edit|remove|resize|balloon`: a VM's virtual hardware, each device with
// its I/O virtualization mode (from the one advice table); changes hotplugged into a running VM
// where QEMU can, else saved for its next boot.
import type { CoreApi, DeviceChange } from '../../common/api.ts';
import { deviceRows } from '../../common/device-rows.ts';
import { HangarError } from '../../common/errors.ts';
import { table } from './table.ts';
import { formatBytes } from '../store/import-disk.ts';
import { parseSize } from '../store/qemu-img.ts';
import { parseDeviceKind, parseDeviceSpec } from './device-spec.ts';

export const DEVICE_USAGE = `Usage:
  hangar device list NAME [--json]          every device of the VM with its mode (emulated, paravirtual ...)
  hangar device add NAME KIND [SPEC] [--allow-overcommit]
                                            add a device; SPEC is HEAD,key=value,... e.g.
      disk size=8G,bus=virtio-blk,cache=none     a new image in the VM folder (or disk /path/img.qcow2,...);
                                                 larger than the free space only with --allow-overcommit
      nic user,model=e1000,hostfwd=tcp::2222-:22 (back ends as hangar create --nic takes them)
      cdrom /path/x.iso   input tablet,bus=usb   share /srv,tag=data[,driver=virtiofs]
      channel org.qemu.guest_agent.0   serial log   rng   balloon   video virtio-gpu
      sound hda   watchdog action=poweroff   usb qemu-xhci   vsock cid=3   tpm
      hostpci 0000:03:10.0[,managed=off][,rom=off]   a host PCI device or SR-IOV VF through VFIO
                                                     (managed: bound to vfio-pci at start, given back at stop)
      mdev UUID[,parent=ADDR,type=TYPE]              a mediated device instance (vGPU slice)
      usbhost 046d:c52b  |  usbhost bus=1,port=1.4   a host USB device by vendor:product, or whatever is
                                                     in that port (hangar host usb lists both)
  hangar device edit NAME KIND ID SPEC      change fields, e.g. disk disk1 cache=none; cdrom cd0 /path/y.iso
                                            swaps the medium of a running VM at once
  hangar device remove NAME KIND ID [--delete-file] [--timeout SEC]
                                            remove (unplug from a running VM, waiting SEC for the guest,
                                            default 20); --delete-file also deletes a disk image the VM made
  hangar device resize NAME DISK SIZE       grow a disk (e.g. 20G): offline with qemu-img, online with
                                            block_resize while the VM runs; never shrinks
  hangar device balloon NAME SIZE           running VM with a balloon: ask the guest to shrink to SIZE (e.g. 256M)

  A running VM takes virtio-blk/SCSI disks, NICs (user, isolated, bridge, tap), USB inputs and host USB
  devices at once (q35: up to hotplugSlots of the PCI ones); anything else (hostpci and mdev too: VFIO
  groups are bound at start) is saved and applies at its next boot (PENDING).
`;

function changeText(kind: string, verb: string, c: DeviceChange): string {
  const lines = [`${kind} ${c.id} ${verb}: ${c.applied === 'now' ? 'done in the running VM' : c.applied === 'next-boot' ? 'applies at next boot' : 'saved'}${c.note ? ` (${c.note})` : ''}`];
  for (const p of c.info.pending ?? []) lines.push(`  pending: ${p.summary}`);
  return lines.join('\n');
}

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
    const pending = info.pending ?? [];
    const mark = (kind: string, id: string): string => pending.find((p) => p.kind === kind && p.id === id)?.change ?? '';
    // A device waiting to be removed is not in the saved definition: list it from the pending list.
    const removals = pending.filter((p) => p.change === 'remove');
    if (values.json) print(JSON.stringify({ devices: rows, pending }, null, 2));
    else {
      print(table([['KIND', 'ID', 'TYPE', 'MODE', 'PENDING', 'DETAIL'],
        ...rows.map((r) => [r.kind, r.id, r.type, r.mode, mark(r.kind, r.id), r.detail]),
        ...removals.map((p) => [p.kind, p.id, '', '', 'remove', p.summary])]));
      for (const p of pending.filter((x) => x.kind === 'cpu' || x.kind === 'memory')) print(`pending: ${p.summary}`);
      if (pending.length) print('PENDING changes apply at the next start of the VM.');
    }
    return 0;
  }
  if (sub === 'add') {
    if (positionals.length < 2 || positionals.length > 3) throw new HangarError('invalid-input', 'expected NAME KIND [SPEC]', 'e.g. hangar device add web disk size=8G');
    const [name, kindWord, spec = ''] = positionals as [string, string, string?];
    const kind = parseDeviceKind(kindWord);
    const parsed = await parseDeviceSpec(kind, spec, false);
    const opts = { ...(parsed.newDiskBytes ? { newDiskBytes: parsed.newDiskBytes } : {}), ...(values['allow-overcommit'] ? { allowOvercommit: true } : {}) };
    const c = await withCore((api) => api.addDevice(name, kind, parsed.fields, Object.keys(opts).length ? opts : undefined));
    print(values.json ? JSON.stringify(c) : changeText(kind, 'added', c));
    return 0;
  }
  if (sub === 'edit') {
    if (positionals.length !== 4) throw new HangarError('invalid-input', 'expected NAME KIND ID SPEC', 'e.g. hangar device edit web disk disk1 cache=none');
    const [name, kindWord, id, spec] = positionals as [string, string, string, string];
    const kind = parseDeviceKind(kindWord);
    const parsed = await parseDeviceSpec(kind, spec, true);
    const c = await withCore((api) => api.editDevice(name, kind, id, parsed.fields));
    print(values.json ? JSON.stringify(c) : changeText(kind, 'changed', c));
    return 0;
  }
  if (sub === 'remove') {
    if (positionals.length !== 3) throw new HangarError('invalid-input', 'expected NAME KIND ID', 'e.g. hangar device remove web disk disk1');
    const [name, kindWord, id] = positionals as [string, string, string];
    const kind = parseDeviceKind(kindWord);
    const timeout = values.timeout === undefined ? undefined : Number(values.timeout);
    if (timeout !== undefined && !(Number.isInteger(timeout) && timeout > 0)) throw new HangarError('invalid-input', `--timeout must be whole seconds, got "${String(values.timeout)}"`);
    const c = await withCore((api) => api.removeDevice(name, kind, id, { ...(values['delete-file'] ? { deleteFile: true } : {}), ...(timeout ? { timeoutSec: timeout } : {}) }));
    print(values.json ? JSON.stringify(c) : changeText(kind, 'removed', c));
    return 0;
  }
  if (sub === 'balloon') {
    if (positionals.length !== 2) throw new HangarError('invalid-input', 'expected NAME SIZE', 'e.g. hangar device balloon web 256M');
    const [name, size] = positionals as [string, string];
    const r = await withCore((api) => api.setBalloon(name, Math.round(parseSize(size) / (1024 * 1024))));
    print(values.json ? JSON.stringify(r) : `Balloon of "${name}": target ${r.targetMiB} MiB, the guest has ${r.actualMiB} MiB now (it gives memory back over a few seconds)`);
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
  throw new HangarError('invalid-input', `unknown subcommand "device ${sub}"`, 'use hangar device list|add|edit|remove|resize|balloon (hangar device --help)');
}
