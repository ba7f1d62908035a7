// Host devices as device assignment sees them: PCI devices (IOMMU groups, reset, SR-IOV, mdev
// types, what the host itself uses), USB devices, mediated device instances, and the report the
// core serves to the Host page and the Devices tab. Pure types: the core reads sysfs
// (core/node/host/pci-devices.ts, usb-devices.ts), the renderer only displays.
import type { DoctorCheckInfo } from './api.ts';

export interface PciClass {
  /** 24-bit class code as 6 hex digits, e.g. "030000". */
  code: string;
  /** Base class, e.g. "03" (display controller). */
  classId: string;
  subclassId: string;
  progIf: string;
  className?: string;
  subclassName?: string;
  progIfName?: string;
}

export interface PciReset {
  /** The kernel can reset this device on its own (needed to hand it between host and guests cleanly). */
  supported: boolean;
  /** From reset_method (kernel >= 5.15): "flr", "pm", "bus", "device_specific"...; [] when the kernel does not say. */
  methods: string[];
  /** Function-level reset available; undefined when the kernel does not list methods. */
  flr?: boolean;
}

export interface PciSriov {
  totalVfs?: number;
  numVfs?: number;
  /** Addresses of the current virtual functions, in VF index order. */
  vfs: string[];
}

export interface MdevType {
  /** Directory name, e.g. "nvidia-222" or "i915-GVTg_V5_4". */
  id: string;
  name?: string;
  availableInstances?: number;
  deviceApi?: string;
  description?: string;
}

export interface PciDevice {
  /** Domain:bus:device.function, e.g. "0000:03:00.0". */
  address: string;
  vendorId?: string;
  deviceId?: string;
  vendorName?: string;
  deviceName?: string;
  subsystemVendorId?: string;
  subsystemDeviceId?: string;
  subsystemName?: string;
  class?: PciClass;
  /** Bound driver (basename of the driver link); undefined when none is bound. */
  driver?: string;
  /** driver_override: the only driver the next probe may bind (vfio-pci while Hangar assigns it); undefined when unset. */
  driverOverride?: string;
  /** IOMMU group number; undefined when the IOMMU is off (or the link is broken: see problems). */
  iommuGroup?: number;
  /** The group's other members: assigning this device means handling all of them. */
  iommuGroupPeers: string[];
  /** NUMA node; -1 when the platform has none. */
  numaNode?: number;
  reset?: PciReset;
  /** Present on SR-IOV physical functions. */
  sriov?: PciSriov;
  /** Present on SR-IOV virtual functions: the physical function's address. */
  physfn?: string;
  /** The firmware's boot display: the host console runs on it. */
  bootVga: boolean;
  mdevTypes: MdevType[];
  /** Why handing this device to a guest would take something away from the host; [] when nothing is known. */
  inUseByHost: string[];
  /** What could not be read; the matching fields are undefined. */
  problems: string[];
}

export interface UsbDevice {
  /** sysfs name: "usb1" for a root hub, else bus-port path like "1-1.2". */
  name: string;
  busnum?: number;
  devnum?: number;
  /** Port path below the root hub, as QEMU's hostport= wants it ("1.2"); undefined for root hubs. */
  portPath?: string;
  vendorId?: string;
  productId?: string;
  /** Strings the device reports about itself. */
  manufacturer?: string;
  product?: string;
  serial?: string;
  /** Names from usb.ids (undefined when the database or the id is missing). */
  vendorName?: string;
  productName?: string;
  /** Link speed in Mbit/s as the kernel reports it ("480", "5000", "1.5"). */
  speed?: string;
  /** USB device class (bDeviceClass), e.g. "09" for hubs, "00" when defined per interface. */
  deviceClass?: string;
  isHub: boolean;
  isRootHub: boolean;
  problems: string[];
}

/** PCI bridges (class 06: host, PCI-PCI, root ports) stay with the host; VFIO lets them share a group. */
export function isBridge(d: Pick<PciDevice, 'class'>): boolean {
  return d.class?.classId === '06';
}

/** A mediated device instance (/sys/bus/mdev/devices/UUID): a slice of a parent device (vGPU ...). */
export interface MdevInstance {
  uuid: string;
  /** The parent PCI device's address. */
  parent: string;
  /** The mdev type id (mdev_type link), e.g. "nvidia-222". */
  type?: string;
}

/** A VM definition that names a host device, and whether that VM runs now. */
export interface HostAssignment {
  /** PCI address, mdev UUID, or USB "vendor:product" / "bus-port" as the definition names it. */
  device: string;
  kind: 'hostpci' | 'mdev' | 'usbhost';
  vmId: string;
  vmName: string;
  deviceId: string;
  /** The VM is running (or paused): the device is the guest's now. */
  running: boolean;
}

/** What happens to one member of a device's IOMMU group when the device is assigned. */
export interface GroupMemberPlan {
  address: string;
  /** Vendor and device names, for the panel. */
  name: string;
  driver?: string;
  /**
   * bridge = a PCI bridge / root port: stays with the host (VFIO allows it);
   * vfio = bound to vfio-pci with the device and gone from the host while the VM runs;
   * ready = already on vfio-pci (or no driver);
   * blocked = the host uses it: the group cannot be assigned.
   */
  action: 'bridge' | 'vfio' | 'ready' | 'blocked';
  /** Why blocked, e.g. "network interface eth0 is up". */
  reasons: string[];
}

/** Whether a PCI device can be given to a guest, and what it takes. */
export interface PciViability {
  address: string;
  assignable: boolean;
  /** Why not (each with the fix where there is one); [] when assignable. */
  blockers: string[];
  /** Worth knowing but not blocking (no FLR, assigned in another VM's definition ...). */
  warnings: string[];
  /** The device itself and every other member of its IOMMU group, with what happens to each. */
  group: GroupMemberPlan[];
}

/** Locked (pinned) memory: VFIO pins all guest memory, so the limit must cover it. */
export interface MemlockInfo {
  /** RLIMIT_MEMLOCK of the core (QEMU inherits it); null = unlimited. */
  limitBytes: number | null;
  /** Root or CAP_IPC_LOCK: the limit does not apply. */
  exempt: boolean;
}

/** Everything the Host page shows: `hostDevices()`. */
export interface HostDeviceReport {
  /** The sysfs tree read (/sys, or a fixture tree chosen by HANGAR_SYSFS_ROOT). */
  sysRoot: string;
  pci: PciDevice[];
  /** Per PCI address. */
  viability: Record<string, PciViability>;
  usb: UsbDevice[];
  mdevs: MdevInstance[];
  readiness: DoctorCheckInfo[];
  assignments: HostAssignment[];
  memlock: MemlockInfo;
  /** How privileged host changes (vfio-pci binding, VFs, mdevs) are made here: directly as root, by sudo or pkexec, or not at all (the commands are shown). */
  privilege: 'root' | 'sudo' | 'pkexec' | 'none';
}

/** What a privileged host change did: the commands, in the shell form a user could run by hand. */
export interface HostChangeResult {
  commands: string[];
  /** How it was run. */
  via: 'root' | 'sudo' | 'pkexec';
  /** The new mdev's UUID (createMdev). */
  uuid?: string;
}
