// The QEMU guest agent (qemu-ga) as the API and the UI see it: what the core learned from the
// agent, and how to get an agent into a guest that has none.

/** The virtio-serial port name qemu-ga listens on (libvirt and virt-manager use the same). */
export const AGENT_CHANNEL_NAME = 'org.qemu.guest_agent.0';

/** How "Shut Down" asks the guest: through the agent, through ACPI, or the agent when it answers (auto). */
export const shutdownModes = ['auto', 'agent', 'acpi'] as const;
export type ShutdownMode = (typeof shutdownModes)[number];

export interface AgentInterface {
  name: string;
  /** Hardware address, absent for interfaces without one. */
  mac?: string;
  /** "10.0.2.15/24", "fe80::1/64". */
  addresses: string[];
}

export interface AgentInfo {
  /** The agent answered (guest-sync-delimited and guest-info). */
  available: boolean;
  /** Why not, when it did not (no channel, VM not running, no answer within the timeout). */
  reason?: string;
  /** What to do about it. */
  fix?: string;
  version?: string;
  /** e.g. "Debian GNU/Linux 12 (bookworm)". */
  os?: { name?: string; version?: string; prettyName?: string; id?: string; kernel?: string };
  hostname?: string;
  /** The guest's interfaces except loopback. */
  interfaces: AgentInterface[];
}

/** What the core last learned from a running VM's agent (polled in the background), for lists. */
export interface GuestSummary {
  /** The agent answered at the last poll. */
  agent: boolean;
  /** Addresses without prefix length and without link-local IPv6 (guestAddresses), in interface order. */
  addresses: string[];
  /** e.g. "Debian GNU/Linux 12 (bookworm)". */
  os?: string;
  hostname?: string;
  /** Epoch ms of the poll. */
  at: number;
}

export interface AgentExecOptions {
  /** How long the command may run (default 30 s). */
  timeoutMs?: number;
  /** Text for the command's standard input. */
  input?: string;
}

export interface AgentExecResult {
  exitCode: number | null;
  /** Set when the command was killed by a signal. */
  signal?: number;
  stdout: string;
  stderr: string;
  /** The agent cut the output (it keeps at most 16 MiB). */
  truncated?: boolean;
}

/** A definition gets the agent channel when it says nothing about channels (new VMs; `channels: []` keeps it off). */
export function withAgentChannel(raw: Record<string, unknown>): Record<string, unknown> {
  if (raw.channels !== undefined) return raw;
  return { ...raw, channels: [{ id: 'agent0', name: AGENT_CHANNEL_NAME }] };
}

/** The guest's addresses without link-local IPv6 ones (what people look for in a list). */
export function guestAddresses(info: Pick<AgentInfo, 'interfaces'>): string[] {
  return info.interfaces.flatMap((i) => i.addresses).map((a) => a.replace(/\/\d+$/, '')).filter((a) => !/^fe80:/i.test(a));
}

/** How to install qemu-guest-agent in a guest, by the OS id of the definition (osinfo short ids such as debian12, fedora40, win11). */
export function agentInstallHint(osId?: string): string {
  const id = (osId ?? '').toLowerCase();
  if (/^win/.test(id)) return 'install the virtio-win guest tools in Windows (virtio-win-guest-tools.exe on the virtio-win ISO): they include the QEMU guest agent service';
  if (/^(debian|ubuntu|mint|pop)/.test(id)) return 'in the guest: sudo apt install qemu-guest-agent && sudo systemctl enable --now qemu-guest-agent';
  if (/^(fedora|rhel|centos|rocky|alma|ol)/.test(id)) return 'in the guest: sudo dnf install qemu-guest-agent && sudo systemctl enable --now qemu-guest-agent';
  if (/^(opensuse|sles)/.test(id)) return 'in the guest: sudo zypper install qemu-guest-agent && sudo systemctl enable --now qemu-guest-agent';
  if (/^arch/.test(id)) return 'in the guest: sudo pacman -S qemu-guest-agent && sudo systemctl enable --now qemu-guest-agent';
  if (/^alpine/.test(id)) return 'in the guest: apk add qemu-guest-agent && rc-update add qemu-guest-agent && rc-service qemu-guest-agent start';
  return 'install the qemu-guest-agent package in the guest (apt install / dnf install qemu-guest-agent; on Windows the virtio-win guest tools) and start its service';
}
