// What refuses a live migration before anything starts, each with the device and the fix:
// devices whose state cannot move (passthrough, vhost-user back ends, host USB, the TPM's swtpm
// state), and, asked of the destination core, files it does not have.
import { clipboardBlocksRamState } from '../../common/display.ts';
import type { CoreApi } from '../../common/api.ts';
import { HangarError } from '../../common/errors.ts';
import type { VmDefinition } from '../../common/model.ts';

const blocked = (name: string, why: string, fix: string): HangarError =>
  new HangarError('unsupported', `cannot migrate VM "${name}": ${why}`, fix);

/** Devices of the running definition that block a live migration; throws the first. */
export function checkMigratableDevices(def: VmDefinition, qemu?: { major: number; minor: number }): void {
  const n = def.name;
  if (def.hostPci.length) {
    throw blocked(n, `it has PCI passthrough (VFIO) device${def.hostPci.length > 1 ? 's' : ''} ${def.hostPci.map((d) => `${d.id} (${d.address})`).join(', ')}, whose state lives in the physical hardware and cannot move`,
      `remove ${def.hostPci.length > 1 ? 'them' : 'it'} first (hangar device remove ${n} hostpci ID), or shut the VM down and start it on the other host`);
  }
  if (def.mdevs.length) {
    throw blocked(n, `it has mediated (mdev) device${def.mdevs.length > 1 ? 's' : ''} ${def.mdevs.map((d) => d.id).join(', ')}, whose state lives in the host's device and cannot move`,
      `remove ${def.mdevs.length > 1 ? 'them' : 'it'} first (hangar device remove ${n} mdev ID), or shut the VM down`);
  }
  if (def.hostUsb.length) {
    throw blocked(n, `it has host USB device${def.hostUsb.length > 1 ? 's' : ''} ${def.hostUsb.map((d) => d.id).join(', ')} passed through, which stay on this host`,
      `remove ${def.hostUsb.length > 1 ? 'them' : 'it'} first (hangar device remove ${n} usbhost ID)`);
  }
  const vhostDisks = def.disks.filter((d) => d.bus === 'vhost-user-blk');
  if (vhostDisks.length) {
    throw blocked(n, `disk${vhostDisks.length > 1 ? 's' : ''} ${vhostDisks.map((d) => d.id).join(', ')} ${vhostDisks.length > 1 ? 'are' : 'is'} served by a vhost-user back end (qemu-storage-daemon), and this QEMU cannot migrate vhost-user-blk devices (their state is in the back end)`,
      'shut the VM down, or move the disk to virtio-blk (hangar device edit NAME disk ID bus=virtio-blk) and restart it before migrating');
  }
  const vhostNics = def.nics.filter((x) => x.network.type === 'vhost-user');
  if (vhostNics.length) {
    throw blocked(n, `NIC${vhostNics.length > 1 ? 's' : ''} ${vhostNics.map((x) => x.id).join(', ')} ${vhostNics.length > 1 ? 'are' : 'is'} on a vhost-user switch; Hangar cannot hand the switch port over to the destination's switch, so QEMU cannot migrate it here`,
      'shut the VM down, or use another NIC back end (user, passt, bridge, tap) for migration');
  }
  const vfs = def.shares.filter((s) => s.driver === 'virtiofs');
  if (vfs.length) {
    throw blocked(n, `it shares folder${vfs.length > 1 ? 's' : ''} ${vfs.map((s) => s.id).join(', ')} over virtiofs (vhost-user-fs), which QEMU cannot migrate`,
      'unmount and remove the share first, or shut the VM down');
  }
  if (def.tpm) {
    throw blocked(n, 'it has a TPM, whose state lives in its swtpm process; Hangar does not migrate swtpm state yet',
      'shut the VM down and move it offline, or remove the TPM (keys sealed in it are lost)');
  }
  const clip = clipboardBlocksRamState(def, qemu);
  if (clip) throw blocked(n, clip, 'turn the clipboard off (hangar edit) and restart the VM, then migrate');
}

/** Files the destination must have at the same path (shared storage, CD-ROMs, kernel): asked of the destination core. */
export function filesTheDestinationNeeds(def: VmDefinition, copyStorage: boolean): Array<{ what: string; file: string; fix: string }> {
  const need: Array<{ what: string; file: string; fix: string }> = [];
  const n = def.name;
  for (const d of def.disks) {
    if (copyStorage && !d.readOnly) continue;
    need.push({ what: `disk "${d.id}"`, file: d.file, fix: copyStorage
      ? 'copy the read-only image to the same path there first (copy-storage copies only writable disks)'
      : `put it on storage both hosts share at the same path, or migrate with --copy-storage` });
  }
  for (const c of def.cdroms) {
    if (c.file) need.push({ what: `CD-ROM "${c.id}"`, file: c.file, fix: `copy the image to the same path there, or eject it first: hangar device edit ${n} cdrom ${c.id} file=` });
  }
  if (def.boot.kernel) {
    need.push({ what: 'kernel', file: def.boot.kernel.kernel, fix: 'copy the kernel to the same path there' });
    if (def.boot.kernel.initrd) need.push({ what: 'initrd', file: def.boot.kernel.initrd, fix: 'copy the initrd to the same path there' });
  }
  return need;
}

/** Refuses when the destination already has this VM (id or name) or lacks a file the VM needs. */
export async function checkDestination(dest: CoreApi, def: VmDefinition, copyStorage: boolean, destLabel: string): Promise<void> {
  const caps = await dest.capabilities();
  if (caps.driver !== 'hangar') {
    throw new HangarError('unsupported', `cannot migrate VM "${def.name}" to ${destLabel}: it is a ${caps.driver} connection, not a Hangar core`,
      'migrate between Hangar cores (hangar+unix:// or ssh://); libvirt hosts migrate with virsh migrate');
  }
  for (const vm of await dest.list()) {
    if (vm.id === def.id) {
      throw new HangarError('already-exists', `cannot migrate VM "${def.name}": ${destLabel} already has a VM with its id ${def.id} ("${vm.name}", ${vm.state})`,
        `delete that one there first if it is a stale copy (hangar --connect ${destLabel} delete ${vm.name}), after checking it is not the one you want`);
    }
    if (vm.name === def.name) {
      throw new HangarError('already-exists', `cannot migrate VM "${def.name}": ${destLabel} already has a VM named "${def.name}" (another VM, id ${vm.id})`,
        `rename one of them first (hangar edit ${def.name} --name NEW)`);
    }
  }
  for (const f of filesTheDestinationNeeds(def, copyStorage)) {
    try {
      await dest.inspectPath(f.file, 'file');
    } catch (e) {
      const why = e instanceof Error ? e.message : String(e);
      throw new HangarError('invalid-state', `cannot migrate VM "${def.name}": its ${f.what} file ${f.file} is not usable on ${destLabel} (${why})`, f.fix);
    }
  }
}
