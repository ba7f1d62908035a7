// The versioned VM definition. Every object is "loose": fields this version does not know
// (written by a newer Hangar or by hand) survive a load/save round trip.
import { z } from 'zod';
import { shutdownModes } from './guest-agent.ts';
import { hugepageSizes, memoryHotplugMethods, numaPolicies } from './model-values.ts';

export const MODEL_VERSION = 1;

export const NAME_MAX_LENGTH = 64;

export const machineTypes = ['q35', 'pc', 'microvm'] as const;
export const accelerators = ['auto', 'kvm', 'tcg'] as const;
/** vhost-user-blk: the disk served by a qemu-storage-daemon process Hangar runs (shared guest memory). */
export const diskBuses = ['virtio-blk', 'ide', 'sata', 'scsi', 'vhost-user-blk'] as const;
export const cdromBuses = ['ide', 'sata', 'scsi'] as const;
export const diskFormats = ['qcow2', 'raw', 'vmdk', 'vdi', 'vhdx', 'vpc', 'qed'] as const;
export const cacheModes = ['none', 'writeback', 'writethrough', 'unsafe', 'directsync'] as const;
export const diskAioModes = ['threads', 'native', 'io_uring'] as const;
export const nicModels = ['virtio-net', 'e1000', 'rtl8139'] as const;
export const bootDevices = ['disk', 'cdrom', 'network'] as const;
/** bios = SeaBIOS; uefi = OVMF; uefi-secure = OVMF with Secure Boot on and Microsoft keys enrolled (q35 + SMM). */
export const tpmModels = ['tpm-crb', 'tpm-tis'] as const;
export const firmwareTypes = ['bios', 'uefi', 'uefi-secure'] as const;

export type MachineType = (typeof machineTypes)[number];
export type Accelerator = (typeof accelerators)[number];
export type DiskBus = (typeof diskBuses)[number];
export type CdromBus = (typeof cdromBuses)[number];
export type CacheMode = (typeof cacheModes)[number];
export type NicModel = (typeof nicModels)[number];
export type BootDevice = (typeof bootDevices)[number];
export type TpmModel = (typeof tpmModels)[number];
export type FirmwareType = (typeof firmwareTypes)[number];

/** Device ids become QEMU ids: keep them to a safe alphabet. */
const deviceId = z.string().regex(/^[a-z][a-z0-9-]{0,30}$/, 'device ids are lower-case letters, digits and "-", starting with a letter');
const absPath = z.string().min(1).refine((p) => p.startsWith('/'), 'must be an absolute path').refine((p) => !p.includes('\0'), 'must not contain NUL');

/** Host or guest CPU numbers as Linux writes them: "0-3,6,8-9". */
export const cpuSetSchema = z.string().regex(/^\d+(-\d+)?(,\d+(-\d+)?)*$/, 'a CPU list is numbers and ranges, e.g. 0-3,6');

export const cpuSchema = z.looseObject({
  /** host (KVM's host-passthrough), max, or one of QEMU's named models (query-cpu-definitions). */
  model: z.string().regex(/^[A-Za-z0-9._-]+$/, 'CPU model names are letters, digits, ".", "_" and "-"').default('max'),
  /** CPU feature flags added (+name) or removed (-name) from the model, e.g. +avx2, -svm. */
  features: z.array(z.string().regex(/^[+-][a-z0-9][a-z0-9._-]*$/, 'a CPU feature is +name or -name, e.g. +avx2 or -svm')).max(64).optional(),
  /** vCPUs online at boot. */
  vcpus: z.number().int().min(1).max(288).default(1),
  /** vCPU slots in all (hotplug adds up to this many); default: vcpus. */
  maxVcpus: z.number().int().min(1).max(288).optional(),
  sockets: z.number().int().min(1).optional(),
  dies: z.number().int().min(1).optional(),
  cores: z.number().int().min(1).optional(),
  threads: z.number().int().min(1).optional(),
  /** Host CPUs each thread may run on (sched_setaffinity): vCPU n's list at index n, the disks' I/O threads and the emulator's other threads apart. */
  pinning: z.looseObject({
    vcpus: z.array(cpuSetSchema.nullable()).max(288).optional(),
    emulator: cpuSetSchema.optional(),
    /** Every I/O thread (disks with iothread); unset: they run where the emulator does. */
    iothreads: cpuSetSchema.optional(),
  }).optional(),
});

export { hugepageSizes, memoryHotplugMethods, numaPolicies, portForwardsOf } from './model-values.ts';

/** A guest NUMA node: its vCPUs and memory, optionally placed on host nodes. */
export const numaNodeSchema = z.looseObject({
  cpus: cpuSetSchema,
  memoryMiB: z.number().int().min(1),
  /** Host NUMA nodes its memory comes from (with policy). */
  hostNodes: cpuSetSchema.optional(),
  policy: z.enum(numaPolicies).optional(),
});

export const memoryTuningSchema = z.looseObject({
  /** Back guest memory with huge pages of this size (memfd hugetlb); the pool must have them free. */
  hugepages: z.enum(hugepageSizes).optional(),
  /** KSM may merge identical pages of this guest (QEMU's mem-merge; on by default as in QEMU). */
  merge: z.boolean().default(true),
  /** Memory hotplug: the most the guest can grow to (MiB) and the DIMM slots for it. */
  maxMiB: z.number().int().min(16).optional(),
  slots: z.number().int().min(1).max(256).optional(),
  /**
   * How the room up to maxMiB is used: dimm (the default) plugs a pc-dimm per grow, and memory
   * only comes out at the next start; virtio-mem gives the guest one virtio-mem device over the
   * whole room whose plugged size is set live, both ways (a Linux 5.8+ guest with virtio_mem).
   */
  hotplug: z.enum(memoryHotplugMethods).optional(),
  /** Guest NUMA nodes (their memory adds up to memoryMiB, their CPUs cover every vCPU slot). */
  numa: z.array(numaNodeSchema).max(64).optional(),
  /** distances[i][j] from node i to node j (10 = local); default QEMU's (10 local, 20 remote). */
  numaDistances: z.array(z.array(z.number().int().min(10).max(255))).optional(),
});

export const kernelBootSchema = z.looseObject({
  kernel: absPath,
  initrd: absPath.optional(),
  append: z.string().default(''),
});

export const bootSchema = z.looseObject({
  order: z.array(z.enum(bootDevices)).default(['disk', 'cdrom', 'network']),
  kernel: kernelBootSchema.optional(),
});

export const diskSchema = z.looseObject({
  id: deviceId,
  file: absPath,
  format: z.enum(diskFormats).default('qcow2'),
  bus: z.enum(diskBuses).default('virtio-blk'),
  cache: z.enum(cacheModes).default('writeback'),
  readOnly: z.boolean().default(false),
  /** How QEMU submits I/O: a thread pool (default), Linux native AIO (needs cache none/directsync), or io_uring. */
  aio: z.enum(diskAioModes).optional(),
  /** Pass the guest's TRIM/UNMAP down, so freed blocks shrink the image (and the host's storage). */
  discard: z.boolean().default(false),
  /** virtio-blk: run this disk's I/O in its own thread, off QEMU's main loop. */
  iothread: z.boolean().default(false),
  /** True only for images Hangar created itself: the only ones it may ever delete. */
  owned: z.boolean().default(false),
});

export const cdromRoles = ['cloud-init'] as const;

export const cdromSchema = z.looseObject({
  id: deviceId,
  file: absPath.optional(),
  bus: z.enum(cdromBuses).default('ide'),
  /** Set when Hangar made the medium itself (cloud-init = the NoCloud seed): the UI labels it, the core rebuilds it. */
  role: z.enum(cdromRoles).optional(),
});

/** RFC 1123 host name label: letters, digits and "-", 1-63 characters, not starting or ending with "-". */
export const HOSTNAME_RE = /^(?!-)[A-Za-z0-9-]{1,63}(?<!-)$/;
/** A POSIX-ish login name as cloud-init / useradd accept it. */
export const USERNAME_RE = /^[a-z_][a-z0-9_-]{0,31}$/;
/** One OpenSSH public key line: type, base64 blob, optional comment. */
export const SSH_PUBKEY_RE = /^(ssh-(rsa|ed25519|dss)|ecdsa-sha2-nistp(256|384|521)|sk-(ssh-ed25519|ecdsa-sha2-nistp256)@openssh\.com) [A-Za-z0-9+/]+={0,3}( [^\r\n]*)?$/;

/** Unattended first-boot set-up through a cloud-init NoCloud seed (a CD-ROM labelled cidata). */
export const cloudInitSchema = z.looseObject({
  user: z.string().regex(USERNAME_RE, 'user names are lower-case letters, digits, "_" and "-", starting with a letter or "_" (at most 32)').optional(),
  /** A SHA-512 crypt hash ($6$...), never the password itself. */
  passwordHash: z.string().regex(/^\$6\$[^\s:]+\$[./A-Za-z0-9]+$/, 'must be a SHA-512 crypt hash ($6$salt$hash), e.g. from `openssl passwd -6`').optional(),
  sshKeys: z.array(z.string().regex(SSH_PUBKEY_RE, 'must be an OpenSSH public key line (ssh-ed25519 AAAA... comment)')).default([]),
  hostname: z.string().regex(HOSTNAME_RE, 'a host name is 1-63 letters, digits and "-", not starting or ending with "-" (RFC 1123)').optional(),
});

export const portForwardSchema = z.looseObject({
  protocol: z.enum(['tcp', 'udp']).default('tcp'),
  hostAddress: z.string().regex(/^[0-9a-fA-F.:]*$/, 'host address must be an IP address').default('127.0.0.1'),
  hostPort: z.number().int().min(1).max(65535),
  guestPort: z.number().int().min(1).max(65535),
});

export const userNetworkSchema = z.looseObject({
  type: z.literal('user'),
  portForwards: z.array(portForwardSchema).default([]),
  /** A host folder served read-only by the built-in TFTP server at 10.0.2.2 (network boot). */
  tftp: absPath.optional(),
  /** The boot file name handed out by the built-in DHCP server (option 67), e.g. boot.ipxe or pxelinux.0. */
  // eslint-disable-next-line no-control-regex
  bootfile: z.string().min(1).max(255).refine((b) => !/[\u0000-\u001f\u007f]/.test(b), 'a boot file name cannot contain control characters').optional(),
});

/**
 * Rootless user-mode networking by a per-VM passt process (QEMU's stream netdev on passt's unix
 * socket). The guest gets the host's own address and routes by DHCP; port forwards are bound by passt.
 */
export const passtNetworkSchema = z.looseObject({
  type: z.literal('passt'),
  portForwards: z.array(portForwardSchema).default([]),
});

/** Linux interface names: at most 15 characters (IFNAMSIZ - 1), no "/", spaces or ":". */
export const BRIDGE_NAME_RE = /^[A-Za-z0-9_.-]{1,15}$/;

/**
 * Bridged networking: QEMU's bridge netdev runs qemu-bridge-helper, which creates a tap device
 * and adds it to the host bridge `bridge` (allowed by /etc/qemu/bridge.conf). The guest is on the
 * bridge's LAN like another machine; there are no port forwards.
 */
export const bridgeNetworkSchema = z.looseObject({
  type: z.literal('bridge'),
  bridge: z.string().regex(BRIDGE_NAME_RE, 'a bridge name is 1-15 letters, digits, "_", "." and "-" (a Linux interface name), e.g. br0'),
  /** virtio-net only: the data path in the host kernel (vhost-net); needs /dev/vhost-net. */
  vhost: z.boolean().default(false),
});

/**
 * A tap device that already exists (made once by root, e.g. `ip tuntap add dev tap0 mode tap
 * user $USER`), so the VM needs no privileges at run time. Optionally with vhost-net.
 */
export const tapNetworkSchema = z.looseObject({
  type: z.literal('tap'),
  ifname: z.string().regex(BRIDGE_NAME_RE, 'a tap name is 1-15 letters, digits, "_", "." and "-" (a Linux interface name), e.g. tap0'),
  /** virtio-net only: the data path in the host kernel (vhost-net); needs /dev/vhost-net. */
  vhost: z.boolean().default(false),
});

/**
 * vhost-user-net: a user-space switch (OVS-DPDK, DPDK testpmd, snabb ...) serves the virtio
 * rings on a unix socket the user names. QEMU connects to it (server: false) or listens on it
 * for the back end to connect (server: true). Guest memory is shared (memfd) on its own.
 */
export const vhostUserNetworkSchema = z.looseObject({
  type: z.literal('vhost-user'),
  socket: absPath,
  server: z.boolean().default(false),
});

/**
 * An isolated VM-to-VM network, no root needed: every NIC on the same network name joins one
 * UDP multicast group bound to the loopback interface (QEMU's socket netdev), so those VMs see
 * one another and nothing else: no host, no outside.
 */
export const ISOLATED_NETWORK_RE = /^[A-Za-z0-9_.-]{1,32}$/;
export const isolatedNetworkSchema = z.looseObject({
  type: z.literal('isolated'),
  network: z.string().regex(ISOLATED_NETWORK_RE, 'an isolated network name is 1-32 letters, digits, "_", "." and "-"'),
});

/** A NIC's back end, told apart by `type`. */
export const networkSchema = z.discriminatedUnion('type', [userNetworkSchema, passtNetworkSchema, bridgeNetworkSchema, isolatedNetworkSchema, tapNetworkSchema, vhostUserNetworkSchema]);

export const macSchema = z.string().regex(/^([0-9a-f]{2}:){5}[0-9a-f]{2}$/, 'MAC addresses look like 52:54:00:12:34:56 (lower case)')
  .refine((m) => (parseInt(m.slice(0, 2), 16) & 1) === 0, 'a NIC MAC must be unicast (first byte even)');

export const nicSchema = z.looseObject({
  id: deviceId,
  model: z.enum(nicModels).default('virtio-net'),
  mac: macSchema,
  network: networkSchema,
});

export const serialSchema = z.looseObject({
  enabled: z.boolean().default(true),
});

/** A TPM 2.0 emulated by swtpm (state kept in the VM folder). CRB is what Windows 11 and modern Linux expect. */
export const tpmSchema = z.looseObject({
  model: z.enum(tpmModels).default('tpm-crb'),
});

// ---- further virtual devices (one module each under core/node/qemu/devices) ----------------

/** virtio-rng: entropy from a host source. */
export const rngSources = ['urandom', 'random'] as const;
export const rngSchema = z.looseObject({
  source: z.enum(rngSources).default('urandom'),
});

/** virtio-balloon: the host can ask the guest to give memory back; free-page reporting returns freed pages. */
export const balloonSchema = z.looseObject({
  freePageReporting: z.boolean().default(false),
  deflateOnOom: z.boolean().default(false),
});

export const inputTypes = ['tablet', 'keyboard', 'mouse'] as const;
/** usb = emulated USB HID; virtio = virtio-input (needs a guest driver); ps2 = the i8042 built into pc/q35. */
export const inputBuses = ['usb', 'virtio', 'ps2'] as const;
export const inputSchema = z.looseObject({
  id: deviceId,
  type: z.enum(inputTypes),
  bus: z.enum(inputBuses).default('usb'),
});

export const displayTypes = ['vnc', 'none'] as const;

/** vga = the standard VGA (Bochs VBE) any OS drives; virtio-gpu needs a guest driver; qxl for SPICE guests; bochs = display-only, no legacy VGA. */
export const videoModels = ['none', 'vga', 'virtio-gpu', 'qxl', 'bochs'] as const;
export const videoSchema = z.looseObject({
  model: z.enum(videoModels).default('none'),
  /** Video memory in MiB (vga, qxl, bochs). */
  vramMiB: z.number().int().min(1).max(512).optional(),
  /**
   * How the screen is shown: vnc = QEMU's VNC server on a unix socket in the VM's private runtime
   * dir, carried to the app's Display tab (and `hangar display`) by the core; none = no viewer.
   */
  display: z.enum(displayTypes).default('vnc'),
  /** Host <-> guest clipboard over QEMU's qemu-vdagent on com.redhat.spice.0 (the guest runs spice-vdagent). */
  clipboard: z.boolean().default(false),
});

/** hda = Intel HD Audio (ICH6 on pc, ICH9 on q35) with a duplex codec; ac97 for old guests. */
export const soundModels = ['hda', 'ac97'] as const;
export const soundSchema = z.looseObject({
  model: z.enum(soundModels).default('hda'),
});

/** What QEMU does when the guest stops petting its watchdog. */
export const watchdogActions = ['reset', 'shutdown', 'poweroff', 'pause', 'inject-nmi', 'none'] as const;
export const watchdogSchema = z.looseObject({
  model: z.enum(['i6300esb']).default('i6300esb'),
  action: z.enum(watchdogActions).default('reset'),
});

/**
 * A host folder shared with the guest over virtio-9p (mount -t 9p -o trans=virtio TAG /mnt).
 * mapped-xattr keeps guest owners and modes in extended attributes (works for any host user);
 * passthrough uses them for real (needs root); none is passthrough that ignores failures.
 */
export const shareSecurityModels = ['mapped-xattr', 'passthrough', 'none'] as const;
/** virtio-9p is served by QEMU itself; virtiofs by a virtiofsd process Hangar runs (vhost-user, shared memory). */
export const shareDrivers = ['virtio-9p', 'virtiofs'] as const;
export const shareSchema = z.looseObject({
  id: deviceId,
  driver: z.enum(shareDrivers).default('virtio-9p'),
  source: absPath,
  tag: z.string().regex(/^[A-Za-z0-9_.-]{1,31}$/, 'a mount tag is 1-31 letters, digits, "_", "." or "-"'),
  readOnly: z.boolean().default(false),
  securityModel: z.enum(shareSecurityModels).default('mapped-xattr'),
});

/** USB host controllers: qemu-xhci (USB 3, any modern OS), ich9 EHCI+UHCI (USB 2, old guests). */
export const usbModels = ['qemu-xhci', 'ich9-ehci'] as const;
export const usbSchema = z.looseObject({
  model: z.enum(usbModels).default('qemu-xhci'),
});

/** A virtio-serial port (guest: /dev/virtio-ports/NAME) on a unix socket in the VM's runtime dir. */
export const channelSchema = z.looseObject({
  id: deviceId,
  /** The port name the guest sees, e.g. org.qemu.guest_agent.0. */
  name: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'a channel name is 1-64 letters, digits, "_", "." and "-", e.g. org.qemu.guest_agent.0'),
});

/** A further 16550 UART (ttyS1 ...), beside the console: its output goes to a log file in the VM folder or to a unix socket. */
export const serialOutputs = ['log', 'socket'] as const;
export const serialPortSchema = z.looseObject({
  id: deviceId,
  output: z.enum(serialOutputs).default('log'),
});

/** AF_VSOCK host<->guest sockets over vhost-vsock (kernel back end; needs /dev/vhost-vsock). */
export const vsockSchema = z.looseObject({
  /** The guest's context id: 3 and up (0-2 are reserved for the hypervisor, local and host). */
  cid: z.number().int().min(3).max(0xfffffffe),
});

// ---- host devices given to the guest (issue 6) ---------------------------------------------

/** A PCI address as sysfs names it: domain:bus:device.function, lower case (0000:03:10.1). */
export const PCI_ADDRESS_RE = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;
const pciAddress = z.string().regex(PCI_ADDRESS_RE, 'a PCI address looks like 0000:03:00.0 (domain:bus:device.function, lower-case hex), as `hangar host devices` lists it');

/**
 * A host PCI device (or an SR-IOV virtual function) given to the guest through VFIO. managed:
 * Hangar binds it and the rest of its IOMMU group to vfio-pci at start and gives them back to
 * their host drivers at stop (libvirt's managed='yes'); unmanaged devices must already be on vfio-pci.
 */
export const hostPciSchema = z.looseObject({
  id: deviceId,
  address: pciAddress,
  managed: z.boolean().default(true),
  /** Show the guest the device's option ROM (the PCI ROM BAR). Off for GPUs whose ROM confuses the guest. */
  rom: z.boolean().default(true),
});

/** A mediated device instance (a vGPU slice ...) given to the guest through VFIO. */
export const mdevSchema = z.looseObject({
  id: deviceId,
  uuid: z.string().regex(/^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$/, 'an mdev UUID is lower-case 8-4-4-4-12 hex, as /sys/bus/mdev/devices lists it'),
  /** The parent device and mdev type, so a missing instance can be created again at start. */
  parent: pciAddress.optional(),
  type: z.string().regex(/^[A-Za-z0-9_.-]{1,64}$/, 'an mdev type is its directory name under mdev_supported_types, e.g. nvidia-222').optional(),
});

export const USB_ID_RE = /^[0-9a-f]{4}$/;
/** A USB port path below a root hub as sysfs and QEMU's hostport= write it: 1, 1.4, 1.4.2 ... */
export const USB_PORT_RE = /^[1-9][0-9]{0,2}(\.[1-9][0-9]{0,2}){0,6}$/;

/**
 * A host USB device given to the guest (QEMU usb-host). Picked by vendor:product (follows the
 * device to any port) or by bus + port (whatever is plugged into that port).
 */
export const usbHostSchema = z.looseObject({
  id: deviceId,
  vendorId: z.string().regex(USB_ID_RE, 'a USB vendor id is 4 lower-case hex digits, e.g. 046d').optional(),
  productId: z.string().regex(USB_ID_RE, 'a USB product id is 4 lower-case hex digits, e.g. c52b').optional(),
  hostbus: z.number().int().min(1).max(255).optional(),
  hostport: z.string().regex(USB_PORT_RE, 'a USB port path looks like 1 or 1.4 (as `hangar host usb` lists it)').optional(),
}).refine((u) => (u.vendorId !== undefined && u.productId !== undefined) || (u.hostbus !== undefined && u.hostport !== undefined),
  'a USB host device needs vendorId + productId, or hostbus + hostport (see hangar host usb)');

export const vmNameSchema = z.string()
  .min(1, 'a VM name cannot be empty')
  .max(NAME_MAX_LENGTH, `a VM name can be at most ${NAME_MAX_LENGTH} characters`)
  .refine((n) => !n.includes('/'), 'a VM name cannot contain "/"')
  // eslint-disable-next-line no-control-regex
  .refine((n) => !/[\u0000-\u001f\u007f]/.test(n), 'a VM name cannot contain control characters')
  .refine((n) => n.trim() === n, 'a VM name cannot start or end with spaces')
  .refine((n) => n !== '.' && n !== '..', 'a VM name cannot be "." or ".."');

export const vmDefinitionSchema = z.looseObject({
  version: z.literal(MODEL_VERSION),
  id: z.uuid(),
  name: vmNameSchema,
  description: z.string().max(4096).default(''),
  /** The OS the defaults came from (an osinfo short id or generic-*), for display and advice. */
  osId: z.string().max(128).optional(),
  machine: z.enum(machineTypes).default('q35'),
  accel: z.enum(accelerators).default('auto'),
  cpu: cpuSchema.default({ model: 'max', vcpus: 1 }),
  memoryMiB: z.number().int().min(16).max(4 * 1024 * 1024).default(512),
  /** Huge pages, KSM merging, memory hotplug and guest NUMA nodes. */
  memory: memoryTuningSchema.optional(),
  firmware: z.enum(firmwareTypes).default('bios'),
  boot: bootSchema.default({ order: ['disk', 'cdrom', 'network'] }),
  disks: z.array(diskSchema).default([]),
  cdroms: z.array(cdromSchema).default([]),
  nics: z.array(nicSchema).default([]),
  serial: serialSchema.default({ enabled: true }),
  tpm: tpmSchema.optional(),
  rng: rngSchema.optional(),
  balloon: balloonSchema.optional(),
  inputs: z.array(inputSchema).default([]),
  video: videoSchema.default({ model: 'none', display: 'vnc', clipboard: false }),
  sound: soundSchema.optional(),
  watchdog: watchdogSchema.optional(),
  /** Added on its own when a USB device needs one. */
  usb: usbSchema.optional(),
  shares: z.array(shareSchema).default([]),
  channels: z.array(channelSchema).default([]),
  /** Serial ports beside the console (serial). */
  serialPorts: z.array(serialPortSchema).default([]),
  vsock: vsockSchema.optional(),
  /** Host PCI devices and SR-IOV VFs through VFIO. */
  hostPci: z.array(hostPciSchema).default([]),
  mdevs: z.array(mdevSchema).default([]),
  hostUsb: z.array(usbHostSchema).default([]),
  /** q35: spare PCIe root ports, each one slot a PCI device can be hotplugged into while the VM runs. */
  hotplugSlots: z.number().int().min(0).max(16).default(4),
  cloudInit: cloudInitSchema.optional(),
  /** Seconds to wait for an ACPI shutdown before forcing the VM off. */
  shutdownTimeoutSec: z.number().int().min(1).max(3600).default(60),
  /** How Shut Down asks the guest: auto (absent) = the guest agent when it answers, else ACPI; agent; acpi. */
  shutdownMode: z.enum(shutdownModes).optional(),
  /** A linked clone: the VM whose disk images this one's disks read through (that VM is protected while this one exists). */
  linkedTo: z.uuid().optional(),
  /** Started when the core starts (once per host boot; see core/node/service/autostart.ts). */
  autostart: z.boolean().default(false),
  createdAt: z.string().optional(),
});

export type VmDefinition = z.infer<typeof vmDefinitionSchema>;
export type DiskDefinition = z.infer<typeof diskSchema>;
export type CpuDefinition = z.infer<typeof cpuSchema>;
export type MemoryTuning = z.infer<typeof memoryTuningSchema>;
export type NumaNode = z.infer<typeof numaNodeSchema>;
export type MemoryHotplugMethod = (typeof memoryHotplugMethods)[number];
export type CdromDefinition = z.infer<typeof cdromSchema>;
export type NicDefinition = z.infer<typeof nicSchema>;
export type TpmDefinition = z.infer<typeof tpmSchema>;
export type RngDefinition = z.infer<typeof rngSchema>;
export type BalloonDefinition = z.infer<typeof balloonSchema>;
export type InputDefinition = z.infer<typeof inputSchema>;
export type VideoDefinition = z.infer<typeof videoSchema>;
export type SoundDefinition = z.infer<typeof soundSchema>;
export type WatchdogDefinition = z.infer<typeof watchdogSchema>;
export type UsbDefinition = z.infer<typeof usbSchema>;
export type ShareDefinition = z.infer<typeof shareSchema>;
export type ChannelDefinition = z.infer<typeof channelSchema>;
export type SerialPortDefinition = z.infer<typeof serialPortSchema>;
export type VsockDefinition = z.infer<typeof vsockSchema>;
export type HostPciDefinition = z.infer<typeof hostPciSchema>;
export type MdevDefinition = z.infer<typeof mdevSchema>;
export type UsbHostDefinition = z.infer<typeof usbHostSchema>;
export type CloudInitDefinition = z.infer<typeof cloudInitSchema>;
export type PortForward = z.infer<typeof portForwardSchema>;
export type NetworkDefinition = z.infer<typeof networkSchema>;
export type UserNetwork = z.infer<typeof userNetworkSchema>;
export type PasstNetwork = z.infer<typeof passtNetworkSchema>;
export type BridgeNetwork = z.infer<typeof bridgeNetworkSchema>;
export type NetworkType = NetworkDefinition['type'];
