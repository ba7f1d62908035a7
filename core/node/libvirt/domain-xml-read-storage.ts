// libvirt <disk> elements -> Hangar disks and CD-ROMs. File-backed disks map one to one; network,
// pool-volume and NVMe sources have no place in Hangar's model and are listed as not carried.
import { cacheModes, diskAioModes, diskFormats } from '../../common/model.ts';
import { DEVICE_ID_RE, DISK_BUS_FROM_LIBVIRT, aliasId, attr, child, list } from './domain-xml-common.ts';
import type { XNode } from './domain-xml-common.ts';

/** Where a device asked to boot (<boot order='n'/>), for the domain's boot order. */
export interface BootMark { order: number; kind: 'disk' | 'cdrom' | 'network' }

export interface StorageResult {
  disks: Record<string, unknown>[];
  cdroms: Record<string, unknown>[];
  boot: BootMark[];
  notCarried: string[];
}

function pick<T extends string>(values: readonly T[], v: string | undefined): T | undefined {
  return values.includes(v as T) ? v as T : undefined;
}

/** A device id: the user alias Hangar wrote, else the guest device name (vda, sdb), else a fallback. */
export function deviceIdOf(dev: XNode, fallback: string, taken: Set<string>, useTarget = true): string {
  const candidates = [aliasId(dev), useTarget ? attr(child(dev, 'target'), 'dev')?.toLowerCase() : undefined, fallback];
  let id = candidates.find((c) => c !== undefined && DEVICE_ID_RE.test(c) && !taken.has(c)) ?? fallback;
  for (let n = 1; taken.has(id); n++) id = `${fallback}-${n}`;
  taken.add(id);
  return id;
}

export function readStorage(devices: XNode, taken: Set<string>): StorageResult {
  const out: StorageResult = { disks: [], cdroms: [], boot: [], notCarried: [] };
  for (const disk of list(devices.disk)) {
    const type = attr(disk, 'type') ?? 'file';
    const device = attr(disk, 'device') ?? 'disk';
    const target = child(disk, 'target');
    const dev = attr(target, 'dev') ?? `${device} ${out.disks.length + out.cdroms.length}`;
    const bus = attr(target, 'bus');
    const source = child(disk, 'source');
    const driver = child(disk, 'driver');
    const label = `${device === 'cdrom' ? 'CD-ROM' : 'disk'} ${dev}`;
    if (device !== 'disk' && device !== 'cdrom') {
      out.notCarried.push(`${device} ${dev}: ${device} devices are not supported`);
      continue;
    }
    if (type !== 'file') {
      // Hangar opens images with QEMU's file driver, which takes regular files only.
      const detail = type === 'network' ? `network-backed (${attr(source, 'protocol') ?? 'network'}) disks are not supported`
        : type === 'volume' ? `storage pool volumes (pool ${attr(source, 'pool') ?? '?'}, volume ${attr(source, 'volume') ?? '?'}) are not supported; use the volume's path (virsh vol-path)`
          : type === 'block' ? `host block devices (${attr(source, 'dev') ?? '?'}) are not supported; Hangar uses image files`
            : `${type} disk sources are not supported`;
      out.notCarried.push(`${label}: ${detail}`);
      continue;
    }
    const file = attr(source, 'file');
    const bootOrder = Number(attr(child(disk, 'boot'), 'order'));
    if (device === 'cdrom') {
      const cdBus = bus === 'ide' || bus === 'sata' || bus === 'scsi' ? bus : undefined;
      if (cdBus === undefined) {
        out.notCarried.push(`${label}: CD-ROMs on bus ${bus ?? '(none)'} are not supported (Hangar has ide, sata and scsi)`);
        continue;
      }
      const id = deviceIdOf(disk, `cdrom${out.cdroms.length}`, taken);
      out.cdroms.push({ id, bus: cdBus, ...(file ? { file } : {}) });
      if (bootOrder > 0) out.boot.push({ order: bootOrder, kind: 'cdrom' });
      continue;
    }
    const hBus = bus === undefined ? undefined : DISK_BUS_FROM_LIBVIRT[bus];
    if (hBus === undefined) {
      out.notCarried.push(`${label}: disks on bus ${bus ?? '(none)'} are not supported (Hangar has virtio, sata, scsi and ide)`);
      continue;
    }
    if (!file) {
      out.notCarried.push(`${label}: no source file`);
      continue;
    }
    // No driver type: libvirt treats the image as raw (it never probes formats).
    const fmtName = attr(driver, 'type') ?? 'raw';
    const format = pick(diskFormats, fmtName === 'vhd' ? 'vpc' : fmtName);
    if (format === undefined) {
      out.notCarried.push(`${label}: image format ${fmtName} is not supported`);
      continue;
    }
    const readOnly = child(disk, 'readonly') !== undefined;
    if (readOnly && (hBus === 'ide' || hBus === 'sata')) {
      // QEMU's IDE/SATA hard disks cannot be read-only; making it writable would be worse than leaving it out.
      out.notCarried.push(`${label}: a read-only ${hBus.toUpperCase()} hard disk is not supported by QEMU; attach it on virtio or scsi`);
      continue;
    }
    const id = deviceIdOf(disk, `disk${out.disks.length}`, taken);
    const cacheName = attr(driver, 'cache');
    // libvirt's "default" cache is QEMU's, writeback: Hangar's default too.
    const cache = cacheName === undefined || cacheName === 'default' ? 'writeback' : pick(cacheModes, cacheName);
    if (cache === undefined) out.notCarried.push(`${label}: cache mode ${cacheName} is not supported; writeback is used`);
    const ioName = attr(driver, 'io');
    let aio = ioName === undefined || ioName === 'default' ? undefined : pick(diskAioModes, ioName);
    if (ioName !== undefined && ioName !== 'default' && aio === undefined) out.notCarried.push(`${label}: I/O mode ${ioName} is not supported`);
    if (aio === 'native' && cache !== 'none' && cache !== 'directsync') {
      // Native AIO needs O_DIRECT (cache none/directsync); QEMU would fall back to threads anyway.
      aio = 'threads';
      out.notCarried.push(`${label}: I/O mode native without cache none/directsync becomes threads`);
    }
    const iothread = attr(driver, 'iothread') !== undefined && hBus === 'virtio-blk';
    if (child(disk, 'shareable') !== undefined) out.notCarried.push(`${label}: shareable (several guests writing one disk) is not supported`);
    if (child(disk, 'iotune') !== undefined) out.notCarried.push(`${label}: I/O limits (iotune) are not supported`);
    if (child(disk, 'encryption') !== undefined || child(source, 'encryption') !== undefined) out.notCarried.push(`${label}: encrypted images are not supported`);
    out.disks.push({
      id, file, format, bus: hBus, cache: cache ?? 'writeback', readOnly,
      ...(aio ? { aio } : {}),
      discard: attr(driver, 'discard') === 'unmap' && !readOnly,
      iothread,
      // Imported images stay the user's: Hangar never deletes a disk it did not create.
      owned: false,
    });
    if (bootOrder > 0) out.boot.push({ order: bootOrder, kind: 'disk' });
  }
  return out;
}
