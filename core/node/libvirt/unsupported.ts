// What a libvirt connection cannot do through Hangar, each with the reason and what to do
// instead. One table: capabilities() sends the reasons to the UI (which disables those actions),
// and the driver's stand-ins throw the same words as an 'unsupported' error.
import { coreApiMethods } from '../../common/api.ts';
import type { CoreApi } from '../../common/api.ts';
import { HangarError } from '../../common/errors.ts';

/** What the libvirt driver does (libvirt-driver.ts implements exactly these); every other CoreApi method is a gap below. */
export const libvirtSupported = [
  'list', 'get', 'create', 'migrate', 'cancelMigration', 'start', 'save', 'shutdown', 'destroy', 'reboot', 'reset', 'pause', 'resume', 'setAutostart', 'delete', 'capabilities',
] as const satisfies readonly (keyof CoreApi)[];
export type LibvirtSupported = (typeof libvirtSupported)[number];

interface Gap {
  /** What the user tried, as a noun phrase ("Snapshots"). */
  what: string;
  why: string;
  instead: string;
}

const NOT_YET = 'Hangar\'s libvirt driver does not do this yet';
const HANGAR_HOST = 'it concerns the computer running a Hangar core, and libvirtd is not one';
const VIRT_MANAGER = 'use virt-manager or virsh on this connection';

// Gaps that several methods share (one feature, several calls).
const SERIAL_LOG: Gap = { what: 'The serial log', why: 'libvirt keeps serial output only where the domain XML asks for a log file', instead: 'use `virsh console NAME`, or add <log file=.../> to the serial port' };
const LIVE_STATS: Gap = { what: 'Live statistics', why: NOT_YET, instead: 'use `virsh domstats` or virt-top' };
const INCOMING: Gap = { what: 'Receiving a migrating VM', why: 'only a Hangar core can receive a VM from another Hangar core', instead: 'migrate to a Hangar connection, or between libvirt hosts with virsh migrate' };
const WIZARD_ONLY = 'the wizard works on Hangar connections; libvirt domains are created from the command line';
const NOT_BROWSED = 'the files are on the libvirt host, which Hangar does not browse';

// Keyed by method name as a string: methods added to CoreApi later fall back to NOT_YET until listed here.
const gaps: Record<string, Gap | undefined> = {
  create: { what: 'Creating a VM', why: 'a domain on a libvirt of another host needs its disks made there', instead: 'run `hangar --connect qemu:///system create ...` on that host, or define the domain with virsh or virt-install' },
  cancelCreate: { what: 'Cancelling a create', why: 'a libvirt create copies nothing, so there is nothing to cancel', instead: 'nothing to do' },
  previewCreate: { what: 'The New VM wizard', why: WIZARD_ONLY, instead: 'hangar --connect URI create --name NAME ... (see hangar create --help), or virt-install' },
  clone: { what: 'Cloning', why: NOT_YET, instead: 'use virt-clone (virtinst) on the libvirt host' },
  edit: { what: 'Editing the VM', why: 'Hangar does not write libvirt domain XML back yet', instead: 'use `virsh edit NAME` or virt-manager' },
  resizeDisk: { what: 'Resizing a disk', why: NOT_YET, instead: 'use `virsh blockresize` (running) or `qemu-img resize` (stopped)' },
  addDevice: { what: 'Adding a device', why: NOT_YET, instead: 'use `virsh attach-device` or virt-manager' },
  editDevice: { what: 'Changing a device', why: NOT_YET, instead: 'use `virsh update-device` or virt-manager' },
  removeDevice: { what: 'Removing a device', why: NOT_YET, instead: 'use `virsh detach-device` or virt-manager' },
  setBalloon: { what: 'The memory balloon', why: NOT_YET, instead: 'use `virsh setmem NAME SIZE --live`' },
  setVcpus: { what: 'Changing vCPUs', why: NOT_YET, instead: 'use `virsh setvcpus`' },
  setCpuPinning: { what: 'CPU pinning', why: NOT_YET, instead: 'use `virsh vcpupin` and `virsh emulatorpin`' },
  resizeMemory: { what: 'Changing memory', why: NOT_YET, instead: 'use `virsh setmaxmem` / `virsh setmem`' },
  agentInfo: { what: 'Guest agent information', why: 'Hangar talks to the guest agent over its own socket, which libvirt keeps to itself', instead: 'use `virsh domifaddr --source agent` or `virsh guestinfo`' },
  agentPing: { what: 'Pinging the guest agent', why: 'libvirt owns the guest agent channel', instead: 'use `virsh qemu-agent-command NAME \'{"execute":"guest-ping"}\'`' },
  agentExec: { what: 'Running commands in the guest', why: 'libvirt owns the guest agent channel', instead: 'use `virsh qemu-agent-command` with guest-exec' },
  setShutdownMode: { what: 'The shutdown mode setting', why: 'libvirt chooses the shutdown method per call, there is no stored setting to change', instead: 'use `virsh shutdown --mode agent|acpi NAME`' },
  commandLine: { what: 'The QEMU command line', why: 'libvirt builds it, not Hangar', instead: 'use `virsh domxml-to-native qemu-argv --domain NAME`' },
  screenshot: { what: 'Screenshots', why: NOT_YET, instead: 'use `virsh screenshot NAME FILE`' },
  sendKeys: { what: 'Sending keys', why: NOT_YET, instead: 'use `virsh send-key NAME KEY...`' },
  serialLog: SERIAL_LOG,
  serialLogRead: SERIAL_LOG,
  listSnapshots: { what: 'Snapshots', why: NOT_YET, instead: 'use `virsh snapshot-list NAME` or virt-manager' },
  createSnapshot: { what: 'Taking a snapshot', why: NOT_YET, instead: 'use `virsh snapshot-create-as NAME SNAP` or virt-manager' },
  revertSnapshot: { what: 'Reverting to a snapshot', why: NOT_YET, instead: 'use `virsh snapshot-revert NAME SNAP`' },
  deleteSnapshot: { what: 'Deleting a snapshot', why: NOT_YET, instead: 'use `virsh snapshot-delete NAME SNAP`' },
  snapshotScreenshot: { what: 'Snapshot screenshots', why: 'libvirt snapshots keep no screenshot', instead: 'nothing: only Hangar\'s own snapshots have one' },
  statsHistory: { what: 'Performance history', why: NOT_YET, instead: 'use `virsh domstats NAME` or virt-manager\'s graphs' },
  statsLatest: LIVE_STATS,
  watchStats: LIVE_STATS,
  statsMetrics: { what: 'Prometheus metrics', why: NOT_YET, instead: 'use a libvirt exporter (prometheus-libvirt-exporter)' },
  hostSummary: { what: 'The host summary', why: NOT_YET, instead: 'use `virsh nodeinfo` and `virsh nodememstats`' },
  doctor: { what: 'Host checks', why: HANGAR_HOST, instead: 'use `virt-host-validate` on the libvirt host' },
  hostInfo: { what: 'Host information for the New VM wizard', why: WIZARD_ONLY, instead: 'use `virsh nodeinfo` / `virsh capabilities`' },
  osList: { what: 'The OS list', why: WIZARD_ONLY, instead: 'use `osinfo-query os`' },
  inspectPath: { what: 'Inspecting files', why: NOT_BROWSED, instead: 'use `virsh vol-info` for storage volumes' },
  listDir: { what: 'Browsing folders', why: NOT_BROWSED, instead: 'use `virsh vol-list POOL`' },
  hostCpuMemory: { what: 'Host CPU and memory tuning', why: NOT_YET, instead: 'use `virsh capabilities` and `virsh nodememstats`' },
  cpuModels: { what: 'The CPU model list', why: NOT_YET, instead: 'use `virsh cpu-models x86_64` or `virsh domcapabilities`' },
  setKsm: { what: 'KSM', why: HANGAR_HOST, instead: 'use `virsh node-memory-tune --shm-run`' },
  setHugepages: { what: 'Huge page pools', why: HANGAR_HOST, instead: 'use `virsh allocpages`' },
  hostDevices: { what: 'Host devices', why: NOT_YET, instead: 'use `virsh nodedev-list --tree`' },
  bindVfio: { what: 'Binding to VFIO', why: 'libvirt detaches host devices itself when a domain uses them (managed=yes)', instead: 'use `virsh nodedev-detach`' },
  releaseVfio: { what: 'Releasing from VFIO', why: 'libvirt reattaches host devices itself (managed=yes)', instead: 'use `virsh nodedev-reattach`' },
  setSriovVfs: { what: 'SR-IOV virtual functions', why: HANGAR_HOST, instead: 'set sriov_numvfs on the libvirt host, or use a libvirt hostdev network' },
  setVfConfig: { what: 'SR-IOV VF settings', why: HANGAR_HOST, instead: 'use `ip link set PF vf N ...` on the libvirt host, or a libvirt hostdev network' },
  createMdev: { what: 'Creating mediated devices', why: NOT_YET, instead: 'use `virsh nodedev-define` / `nodedev-create`' },
  removeMdev: { what: 'Removing mediated devices', why: NOT_YET, instead: 'use `virsh nodedev-destroy`' },
  daemonStatus: { what: 'Core status', why: 'libvirtd is not a Hangar core', instead: 'use `virsh version` and `virsh uri`' },
  prepareIncomingMigration: INCOMING,
  finishIncomingMigration: INCOMING,
  abortIncomingMigration: INCOMING,
  daemonStop: { what: 'Stopping the core', why: 'libvirtd is not a Hangar core, and Hangar does not stop it', instead: 'stop libvirtd with its service manager (systemctl stop libvirtd)' },
};

function gap(method: string): Gap {
  return gaps[method] ?? { what: `"${method}"`, why: NOT_YET, instead: VIRT_MANAGER };
}

/** CoreApi methods a libvirt connection cannot do, with the reason in words (capabilities().unsupported). */
export const libvirtUnsupported: Partial<Record<keyof CoreApi, string>> = Object.fromEntries(
  coreApiMethods.filter((m) => !(libvirtSupported as readonly string[]).includes(m)).map((m) => [m, gap(m).why]),
);

/** The error an unsupported method throws. */
export function unsupportedError(method: keyof CoreApi): HangarError {
  const g = gap(method);
  return new HangarError('unsupported', `${g.what} is not available on a libvirt connection: ${g.why}`, g.instead, { method });
}
