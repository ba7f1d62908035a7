// The one table of I/O virtualization modes and device choices: what each mode is, what it
// costs, which choice of each device kind uses it, and what the host must have for it. The
// Devices panel and `hangar doctor` both show it; availability comes from the doctor's checks.
import type { DoctorCheckInfo, HostOption } from './api.ts';

export const ioModes = ['emulated', 'paravirtual', 'vhost', 'vhost-user', 'passthrough', 'sr-iov'] as const;
export type IoMode = (typeof ioModes)[number];

export const ioModeInfo: Record<IoMode, { label: string; summary: string; tradeoffs: string }> = {
  emulated: {
    label: 'Emulated',
    summary: 'QEMU imitates a real device (e1000, AHCI, VGA ...): any guest drives it with the drivers it already has.',
    tradeoffs: 'every register access traps to the hypervisor: the slowest mode, and the most compatible',
  },
  paravirtual: {
    label: 'Paravirtual',
    summary: 'A device designed for VMs (virtio, QXL): the guest queues requests in shared rings, QEMU serves them.',
    tradeoffs: 'far fewer exits than emulation; needs virtio drivers in the guest (Linux and the BSDs have them, Windows needs virtio-win)',
  },
  vhost: {
    label: 'vhost (host kernel)',
    summary: 'The virtio data path runs in the host kernel (vhost-net, vhost-vsock): packets skip QEMU.',
    tradeoffs: 'lowest latency without hardware; needs the vhost device nodes, and tap networking needs privileges',
  },
  'vhost-user': {
    label: 'vhost-user (user-space back end)',
    summary: 'A separate process (qemu-storage-daemon, DPDK, OVS) serves the virtio rings from shared guest memory.',
    tradeoffs: 'the back end can be restarted, shared and tuned apart from QEMU; guest memory must be shared (memfd), which Hangar sets up',
  },
  passthrough: {
    label: 'Passthrough (VFIO)',
    summary: 'A physical PCI device is handed to the guest: no emulation on the data path.',
    tradeoffs: 'near-native speed; needs an IOMMU; the device leaves the host, memory is pinned, live migration and memory snapshots are blocked',
  },
  'sr-iov': {
    label: 'SR-IOV virtual function',
    summary: 'A NIC or GPU carves out virtual functions; one is passed through like a physical device.',
    tradeoffs: 'passthrough speed while the host keeps the physical function; needs SR-IOV hardware and an IOMMU; blocks live migration',
  },
};

/** What a choice needs from the host, by the doctor check that tells whether it is there. */
export type Requirement = 'vhost-net' | 'vhost-vsock' | 'tun' | 'qemu-storage-daemon' | 'passt' | 'iommu' | 'virtiofsd';

/** hostdev: host devices given to the guest (a PCI device or VF through VFIO, an mdev, a USB device). */
export type DeviceKind = 'disk' | 'nic' | 'video' | 'input' | 'sound' | 'rng' | 'balloon' | 'watchdog' | 'share' | 'vsock' | 'usb' | 'channel' | 'serial' | 'hostdev';

export interface DeviceChoice {
  kind: DeviceKind;
  /** What the definition calls it (bus, model or back end). */
  id: string;
  label: string;
  mode: IoMode;
  needs: readonly Requirement[];
  /** When to pick it, in one sentence. */
  advice: string;
  /** false: Hangar cannot configure it yet (shown, never offered). */
  supported: boolean;
}

const c = (kind: DeviceKind, id: string, label: string, mode: IoMode, advice: string, needs: Requirement[] = [], supported = true): DeviceChoice =>
  ({ kind, id, label, mode, needs, advice, supported });

export const deviceChoices: readonly DeviceChoice[] = [
  c('disk', 'ide', 'IDE', 'emulated', 'only for very old guests (DOS, Windows XP): one request at a time'),
  c('disk', 'sata', 'SATA (AHCI)', 'emulated', 'guests without virtio drivers, e.g. a Windows installer without virtio-win'),
  c('disk', 'virtio-blk', 'virtio-blk', 'paravirtual', 'the default for Linux and BSD guests: simple and fast'),
  c('disk', 'scsi', 'virtio-scsi', 'paravirtual', 'many disks on one controller, discard/UNMAP and SCSI pass-through commands'),
  c('disk', 'vhost-user-blk', 'vhost-user-blk', 'vhost-user', 'serve the disk from qemu-storage-daemon, apart from QEMU', ['qemu-storage-daemon']),
  c('nic', 'rtl8139', 'Realtek RTL8139', 'emulated', 'very old guests only'),
  c('nic', 'e1000', 'Intel e1000', 'emulated', 'guests without virtio drivers: every OS has an e1000 driver'),
  c('nic', 'virtio-net', 'virtio-net', 'paravirtual', 'the default for Linux and BSD guests: about twice the bandwidth of e1000 at a fraction of the latency'),
  c('nic', 'passt', 'virtio-net on passt', 'paravirtual', 'rootless networking with the host\'s own addresses', ['passt']),
  c('nic', 'tap', 'virtio-net on a tap device', 'paravirtual', 'a tap made once by root (ip tuntap add ... user $USER): the VM needs no privileges to run', ['tun']),
  c('nic', 'vhost-net', 'virtio-net with vhost-net on a tap', 'vhost', 'highest throughput without hardware, on a bridge the host manages', ['vhost-net', 'tun']),
  c('nic', 'vhost-user-net', 'vhost-user-net (DPDK/OVS socket)', 'vhost-user', 'a software switch (OVS-DPDK) owns the data path'),
  c('video', 'vga', 'Standard VGA', 'emulated', 'any guest, including firmware and boot loaders'),
  c('video', 'bochs', 'Bochs display', 'emulated', 'UEFI guests that need no legacy VGA'),
  c('video', 'qxl', 'QXL', 'paravirtual', 'older guests with QXL drivers (SPICE era)'),
  c('video', 'virtio-gpu', 'virtio-gpu', 'paravirtual', 'modern Linux guests: resizable display, optional 3D'),
  c('input', 'ps2', 'PS/2 keyboard and mouse', 'emulated', 'always there on pc and q35; relative mouse only'),
  c('input', 'usb', 'USB tablet/keyboard/mouse', 'emulated', 'a USB tablet gives an absolute pointer that follows the host\'s'),
  c('input', 'virtio', 'virtio-input', 'paravirtual', 'Linux guests: fewer exits than USB HID'),
  c('sound', 'ac97', 'AC97', 'emulated', 'guests from before HD Audio (Windows XP era)'),
  c('sound', 'hda', 'Intel HD Audio', 'emulated', 'any current guest'),
  c('rng', 'virtio-rng', 'virtio-rng', 'paravirtual', 'guests that starve for entropy at boot (key generation, TLS)'),
  c('balloon', 'virtio-balloon', 'virtio-balloon', 'paravirtual', 'give memory back to the host from idle guests; free page reporting does it on its own'),
  c('watchdog', 'i6300esb', 'Intel 6300ESB watchdog', 'emulated', 'reset or power off a guest that hangs'),
  c('share', 'virtio-9p', 'virtio-9p shared folder', 'paravirtual', 'share a host folder without a network file server'),
  c('share', 'virtiofs', 'virtiofs shared folder', 'vhost-user', 'faster shared folders with local file semantics', ['virtiofsd']),
  c('vsock', 'vhost-vsock', 'vhost-vsock', 'vhost', 'host-guest sockets without networking (guest agents, SSH over vsock)', ['vhost-vsock']),
  c('channel', 'virtio-serial', 'virtio-serial port', 'paravirtual', 'a named byte stream between a host program and the guest (guest agents)'),
  c('serial', 'isa-serial', '16550 UART (ttyS1-ttyS3)', 'emulated', 'a further serial line any OS drives: a kernel log, a debug shell, a legacy program'),
  c('usb', 'qemu-xhci', 'USB 3 (qemu-xhci)', 'emulated', 'any current guest'),
  c('usb', 'ich9-ehci', 'USB 2 (ICH9 EHCI + UHCI)', 'emulated', 'guests older than USB 3 drivers'),
  c('hostdev', 'vfio-pci', 'Host PCI device (VFIO)', 'passthrough', 'a GPU, NIC or NVMe drive for one guest alone at native speed; its whole IOMMU group leaves the host while the VM runs', ['iommu']),
  c('hostdev', 'sr-iov-vf', 'SR-IOV virtual function (VFIO)', 'sr-iov', 'near-native NIC speed for several guests at once: each gets a VF, the host keeps the physical function', ['iommu']),
  c('hostdev', 'mdev', 'Mediated device (vGPU slice)', 'passthrough', 'a slice of a GPU that supports mediation (NVIDIA vGPU, Intel GVT-g), shared by several guests', ['iommu']),
  c('hostdev', 'usb-host', 'Host USB device (usb-host)', 'passthrough', 'a dongle, token or camera used by the guest; QEMU forwards it through libusb, no IOMMU needed (not VFIO)'),
];

/** Whether the host can run a choice, from the doctor's checks (by requirement id). */
export function choiceAvailability(choice: DeviceChoice, checks: readonly DoctorCheckInfo[]): HostOption {
  // What the host lacks comes first: it stays true once Hangar can configure the choice.
  for (const need of choice.needs) {
    const check = checks.find((k) => k.id === need);
    if (!check) return { available: false, reason: `the host check "${need}" did not run`, fix: 'run hangar doctor' };
    if (check.status !== 'ok') return { available: false, reason: check.detail, ...(check.fix ? { fix: check.fix } : {}) };
  }
  if (!choice.supported) return { available: false, reason: 'the host has what it needs, but Hangar cannot configure it yet', fix: 'choose another option for now' };
  return { available: true };
}

const kindLabel: Record<DeviceKind, string> = {
  disk: 'Disks', nic: 'Network', video: 'Video', input: 'Input', sound: 'Sound', rng: 'RNG', balloon: 'Memory balloon',
  watchdog: 'Watchdog', share: 'Shared folders', vsock: 'vsock', usb: 'USB', channel: 'Channels', serial: 'Serial ports',
  hostdev: 'Host devices',
};

/** The advice as text (hangar doctor): per device kind, each choice with its mode and whether it runs here. */
export function adviceText(checks: readonly DoctorCheckInfo[]): string {
  const lines: string[] = ['I/O virtualization modes on this host:'];
  for (const kind of Object.keys(kindLabel) as DeviceKind[]) {
    const choices = deviceChoices.filter((d) => d.kind === kind);
    if (!choices.length) continue;
    lines.push(`  ${kindLabel[kind]}:`);
    for (const ch of choices) {
      const a = choiceAvailability(ch, checks);
      const mark = a.available ? 'yes' : 'no ';
      lines.push(`    [${mark}] ${ch.label} (${ioModeInfo[ch.mode].label}): ${ch.advice}${a.available ? '' : `\n          not here: ${a.reason}${a.fix ? ` — fix: ${a.fix}` : ''}`}`);
    }
  }
  return lines.join('\n');
}
