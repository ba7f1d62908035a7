// Adding, editing and removing one device of a VM. A stopped VM's definition simply changes. A
// running VM gets the change now where QEMU can (hotplug, unplug, a CD-ROM medium); otherwise the
// definition changes and the running QEMU keeps its hardware until the next start ("pending").
// Nothing is lost on a failure: the definition is saved only once the live part has worked.
import { existsSync } from 'node:fs';
import { rm } from 'node:fs/promises';
import { join } from 'node:path';
import type { AddDeviceOptions, DeviceChange, DeviceKindName, RemoveDeviceOptions } from '../../common/api.ts';
import { parseDefinition } from '../../common/definition.ts';
import { findDevice, withDeviceAdded, withDeviceEdited, withDeviceRemoved } from '../../common/device-edit.ts';
import { HangarError } from '../../common/errors.ts';
import type { VmDefinition } from '../../common/model.ts';
import { isActive } from '../../common/state.ts';
import { checkBridge } from '../host/bridges.ts';
import { checkDeviceBackends } from '../host/device-checks.ts';
import { createImage } from '../store/qemu-img.ts';
import { inspectPath } from '../store/inspect-path.ts';
import { checkDiskFile, checkDisksNotShared, checkIsoFile, checkNewDiskSpace } from './validate-request.ts';
import type { ValidationContext } from './validate-request.ts';
import type { VmInstance } from './vm-instance.ts';

export type DeviceOutcome = Omit<DeviceChange, 'info'>;

export interface DeviceOpsDeps {
  /** Writes the VM's definition (atomically) and tells clients it changed. */
  save(vm: VmInstance, def: VmDefinition): Promise<void>;
  randomMac(): string;
  /** The other VMs and the overcommit confirmation, for the one validation (validate-request.ts). */
  validation(allowOvercommit: boolean): ValidationContext;
  /** Where the VM folders are (new images go there): its free space is checked. */
  dataDir(): string;
}

type Raw = Record<string, unknown>;

const DEFAULT_UNPLUG_TIMEOUT_SEC = 20;

function raw(def: VmDefinition): Raw {
  return def as unknown as Raw;
}

/**
 * What a NIC needs from the host before QEMU is asked to plug it (bridge, helper and ACL; the
 * tap device; /dev/vhost-net): the start-time checks, for this NIC alone. Returns the bridge helper.
 */
async function nicHostCheck(def: VmDefinition, nic: Raw): Promise<string | undefined> {
  const one = { ...def, nics: [nic], vsock: undefined } as unknown as VmDefinition;
  try {
    await checkDeviceBackends(one);
  } catch (e) {
    if (e instanceof HangarError) throw new HangarError(e.code, e.message.replace(/^cannot start VM/, 'cannot plug a NIC into VM'), e.hint, e.details);
    throw e;
  }
  const net = nic.network as Raw | undefined;
  return net?.type === 'bridge' ? checkBridge(net.bridge as string) : undefined;
}

/** Whether this host could start the VM's device back ends now: a warning for a change saved to a stopped VM. */
async function hostWarning(def: VmDefinition): Promise<string | undefined> {
  try {
    await checkDeviceBackends(def);
    return undefined;
  } catch (e) {
    return e instanceof HangarError ? `but this host cannot start it now: ${e.message.replace(/^cannot start VM "[^"]*": /, '')}${e.hint ? `; fix: ${e.hint}` : ''}` : undefined;
  }
}

/**
 * The files a device names must be there and be what it needs, before it is saved (the same
 * checks as create): a disk image as qemu-img sees it (its format filled in, a contradicting one
 * refused, writable unless read-only, not another VM's), an ISO for a CD-ROM, a shared folder.
 */
async function checkFiles(vm: VmInstance, deps: DeviceOpsDeps, kind: DeviceKindName, device: Raw, base?: Raw): Promise<Raw> {
  if (kind === 'disk' && typeof device.file === 'string') {
    const disk: Raw = { file: device.file, readOnly: device.readOnly ?? base?.readOnly };
    if (device.format !== undefined) disk.format = device.format;
    const checked = await checkDiskFile(disk, `disk ${String(device.id ?? base?.id ?? '')}`.trim());
    await checkDisksNotShared([{ id: String(device.id ?? base?.id ?? 'new'), file: checked.file as string, readOnly: disk.readOnly === true }], deps.validation(false), vm.id);
    return { ...device, file: checked.file, format: checked.format };
  }
  if (kind === 'cdrom' && typeof device.file === 'string') return { ...device, file: await checkIsoFile(device.file, `CD-ROM ${String(device.id ?? base?.id ?? '')}`.trim()) };
  if (kind === 'share' && typeof device.source === 'string') return { ...device, source: (await inspectPath(device.source, 'directory')).path };
  return device;
}

export async function addDevice(vm: VmInstance, deps: DeviceOpsDeps, kind: DeviceKindName, device: Raw, opts: AddDeviceOptions = {}): Promise<DeviceOutcome> {
  const before = vm.definition;
  let input = { ...device };
  if (kind === 'nic' && input.mac === undefined) input.mac = deps.randomMac();
  // Picks the id (or refuses a taken one) before anything is made under it.
  const { id } = withDeviceAdded(raw(before), kind, input);
  let newImage: string | undefined;
  if (kind === 'disk' && input.file === undefined) {
    if (!opts.newDiskBytes) throw new HangarError('invalid-input', 'a new disk needs a file or a size', 'give file=PATH for an existing image, or size=SIZE (e.g. 8G) for a new one');
    await checkNewDiskSpace(deps.dataDir(), [opts.newDiskBytes], deps.validation(opts.allowOvercommit === true));
    const format = opts.newDiskFormat ?? 'qcow2';
    // An image left by a removed disk of the same id is kept, never overwritten: pick a free name.
    newImage = join(vm.stored.dir, `${id}.${format}`);
    for (let n = 1; existsSync(newImage); n++) newImage = join(vm.stored.dir, `${id}-${n}.${format}`);
    input = { ...input, id, file: newImage, format, owned: true };
  } else if (kind === 'disk' && opts.newDiskBytes) {
    throw new HangarError('invalid-input', 'a disk is either an existing file or a new image of a size, not both', 'leave out file=, or size=');
  } else {
    input = await checkFiles(vm, deps, kind, input);
  }
  const def = parseDefinition(withDeviceAdded(raw(before), kind, { ...input, id }).definition);
  const added = findDevice(def, kind, id)!;
  if (newImage) await createImage(newImage, (added.format as 'qcow2' | 'raw'), opts.newDiskBytes!);
  try {
    if (!isActive(vm.state)) {
      await deps.save(vm, def);
      const warning = await hostWarning(def);
      return { applied: 'saved', id, ...(warning ? { note: warning } : {}) };
    }
    const bridgeHelper = kind === 'nic' ? await nicHostCheck(vm.runningDefinition, added) : undefined;
    const blocker = vm.plugBlocker(kind, added);
    if (blocker) {
      await deps.save(vm, def);
      return { applied: 'next-boot', id, note: `saved; applies at next boot: ${blocker}` };
    }
    await vm.plug(kind, added, bridgeHelper);
    await deps.save(vm, def);
    return { applied: 'now', id, note: 'hotplugged: the guest sees it now' };
  } catch (e) {
    // Nothing of this add may stay behind: not the image made for it.
    if (newImage) await rm(newImage, { force: true });
    throw e;
  }
}

export async function editDevice(vm: VmInstance, deps: DeviceOpsDeps, kind: DeviceKindName, id: string, patch: Raw): Promise<DeviceOutcome> {
  const before = vm.definition;
  const checked = await checkFiles(vm, deps, kind, patch, findDevice(before, kind, id) as Raw | undefined);
  const def = parseDefinition(withDeviceEdited(raw(before), kind, id, checked));
  if (!isActive(vm.state)) {
    await deps.save(vm, def);
    return { applied: 'saved', id };
  }
  const keys = Object.keys(patch).filter((k) => k !== 'id');
  if (kind === 'cdrom' && keys.every((k) => k === 'file') && vm.hasLive('cdrom', id)) {
    // The one edit a running VM takes at once: a CD-ROM medium.
    const cd = findDevice(def, 'cdrom', id)!;
    await vm.changeMedium(id, cd.file as string | undefined);
    await deps.save(vm, def);
    return { applied: 'now', id, note: cd.file ? 'medium inserted' : 'medium ejected' };
  }
  await deps.save(vm, def);
  const why = vm.hasLive(kind, id) ? `a running VM's ${kind} settings cannot change` : 'the running VM does not have this device yet';
  return { applied: 'next-boot', id, note: `saved; applies at next boot: ${why}` };
}

export async function removeDevice(vm: VmInstance, deps: DeviceOpsDeps, kind: DeviceKindName, id: string, opts: RemoveDeviceOptions = {}): Promise<DeviceOutcome> {
  const before = vm.definition;
  const { definition: next, removed } = withDeviceRemoved(raw(before), kind, id);
  const def = parseDefinition(next);
  const image = kind === 'disk' ? (removed.file as string) : undefined;
  if (opts.deleteFile) {
    if (kind !== 'disk') throw new HangarError('invalid-input', `only a disk has a file to delete, not a ${kind}`, 'leave out the delete-file option');
    if (!removed.owned) throw new HangarError('invalid-input', `disk "${id}" uses ${image}, which Hangar did not create, so Hangar never deletes it`, 'remove the disk without deleting its file (delete it yourself if you mean to)');
  }
  if (!isActive(vm.state)) {
    await deps.save(vm, def);
    if (opts.deleteFile && image) await rm(image, { force: true });
    return { applied: 'saved', id, ...(opts.deleteFile ? { note: `deleted ${image}` } : {}) };
  }
  if (!vm.hasLive(kind, id)) {
    await deps.save(vm, def);
    if (opts.deleteFile && image) await rm(image, { force: true });
    return { applied: 'now', id, note: 'the running VM never had it (it was waiting for the next boot)' };
  }
  const blocker = vm.unplugBlocker(kind, id);
  if (blocker) {
    await deps.save(vm, def);
    return { applied: 'next-boot', id, note: `saved; removed at next boot: ${blocker}${opts.deleteFile ? ' (the image is kept: QEMU still uses it)' : ''}` };
  }
  const timeoutSec = opts.timeoutSec ?? DEFAULT_UNPLUG_TIMEOUT_SEC;
  const gone = await vm.unplug(kind, id, timeoutSec * 1000);
  await deps.save(vm, def);
  if (!gone) {
    return { applied: 'next-boot', id, note: `the guest did not release it within ${timeoutSec} s (no hot-unplug support, or busy): it goes when the guest lets go, or at next boot${opts.deleteFile ? '; the image is kept' : ''}` };
  }
  if (opts.deleteFile && image) await rm(image, { force: true });
  return { applied: 'now', id, note: `unplugged: the guest released it${opts.deleteFile ? `; deleted ${image}` : ''}` };
}
