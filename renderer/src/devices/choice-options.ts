// The options a device panel offers, each with its I/O virtualization mode, its advice and
// whether this host can run it (from the core's doctor checks and hostInfo). Pure TS: the
// Vue components only render what these functions return, so the disabled logic is unit-tested.
import type { DoctorCheckInfo, HostInfo, HostOption } from '../../../core/common/api.ts';
import { choiceAvailability, deviceChoices, ioModeInfo } from '../../../core/common/device-advice.ts';
import type { DeviceChoice, DeviceKind, IoMode } from '../../../core/common/device-advice.ts';
import type { NicModel } from '../../../core/common/model.ts';

/** One radio option of a ChoiceGroup. */
export interface ChoiceOption<V extends string = string> {
  value: V;
  label: string;
  /** The mode badge (Emulated, Paravirtual, vhost ...); absent for "none" choices. */
  mode?: string;
  /** When to pick it. */
  detail?: string;
  disabled?: boolean;
  reason?: string;
  fix?: string;
  testid?: string;
}

export const modeLabel = (mode: IoMode): string => ioModeInfo[mode].label;

/** Doctor checks not loaded yet: choices that need something from the host wait for them. */
const PENDING: HostOption = { available: false, reason: 'checking what this host can run…' };

export function availabilityOf(choice: DeviceChoice, checks: readonly DoctorCheckInfo[] | null): HostOption {
  if (!checks && choice.needs.length) return PENDING;
  return choiceAvailability(choice, checks ?? []);
}

function fromChoice<V extends string>(choice: DeviceChoice, checks: readonly DoctorCheckInfo[] | null, testPrefix: string): ChoiceOption<V> {
  const a = availabilityOf(choice, checks);
  return withAvailability({ value: choice.id as V, label: choice.label, mode: modeLabel(choice.mode), detail: choice.advice, testid: `${testPrefix}-${choice.id}` }, a);
}

function withAvailability<V extends string>(o: ChoiceOption<V>, a: HostOption): ChoiceOption<V> {
  if (a.available) return o;
  return { ...o, disabled: true, ...(a.reason ? { reason: a.reason } : {}), ...(a.fix ? { fix: a.fix } : {}) };
}

/** The choices of one kind in the one table (device-advice), in its order; `only` keeps a subset. */
export function tableOptions<V extends string = string>(kind: DeviceKind, checks: readonly DoctorCheckInfo[] | null, only?: readonly string[], testPrefix: string = kind): ChoiceOption<V>[] {
  return deviceChoices.filter((c) => c.kind === kind && (!only || only.includes(c.id))).map((c) => fromChoice<V>(c, checks, testPrefix));
}

export function tableChoice(kind: DeviceKind, id: string): DeviceChoice | undefined {
  return deviceChoices.find((c) => c.kind === kind && c.id === id);
}

/** A value that is set but may not be chosen again: the current device keeps it, the user is told why. */
export function isSelectable(options: readonly ChoiceOption[], value: string): boolean {
  const o = options.find((x) => x.value === value);
  return !!o && !o.disabled;
}

// ---- NIC back ends: where the packets go. Not in the table (it lists front ends and data
// paths); each back end's mode is its front end's, except passt and vhost-user.

export const nicBackends = ['user', 'passt', 'bridge', 'tap', 'isolated', 'vhost-user'] as const;
export type NicBackend = (typeof nicBackends)[number];

const backendText: Record<NicBackend, { label: string; detail: string }> = {
  user: { label: 'NAT (user-mode, built into QEMU)', detail: 'no privileges: the guest reaches out, the host reaches in through port forwards' },
  passt: { label: 'passt', detail: '' },
  bridge: { label: 'Host bridge', detail: 'the guest is on the bridge\'s LAN like another machine (qemu-bridge-helper makes the tap)' },
  tap: { label: 'Existing tap device', detail: 'a tap made once by root for this user (ip tuntap add dev tap0 mode tap user $USER): no privileges at run time' },
  isolated: { label: 'Isolated VM-to-VM network', detail: 'only the VMs on the same network name see one another: no host, no outside' },
  'vhost-user': { label: 'vhost-user socket (DPDK/OVS)', detail: '' },
};

/** The back ends, given the front-end model (which sets the mode of the QEMU-served ones). */
export function nicBackendOptions(model: NicModel, host: HostInfo | null, checks: readonly DoctorCheckInfo[] | null): ChoiceOption<NicBackend>[] {
  const modelChoice = tableChoice('nic', model);
  const frontMode = modelChoice ? modeLabel(modelChoice.mode) : undefined;
  return nicBackends.map((b): ChoiceOption<NicBackend> => {
    const t = backendText[b];
    const base: ChoiceOption<NicBackend> = { value: b, label: t.label, detail: t.detail, testid: `nic-backend-${b}`, ...(frontMode ? { mode: frontMode } : {}) };
    if (b === 'passt' || b === 'vhost-user') {
      const choice = tableChoice('nic', b === 'passt' ? 'passt' : 'vhost-user-net')!;
      const o = { ...base, mode: modeLabel(choice.mode), detail: choice.advice };
      let a = availabilityOf(choice, checks);
      if (a.available && b === 'passt' && host && !host.network.passt.available) a = host.network.passt;
      if (a.available && b === 'vhost-user' && model !== 'virtio-net') a = { available: false, reason: 'vhost-user serves virtio rings: it needs the virtio-net model', fix: 'choose the virtio-net model' };
      return withAvailability(o, a);
    }
    if (b === 'bridge' && host && !host.network.bridge.available) return withAvailability(base, host.network.bridge);
    if (b === 'tap') {
      const tun = checks?.find((k) => k.id === 'tun');
      if (tun && tun.status !== 'ok') return withAvailability(base, { available: false, reason: tun.detail, ...(tun.fix ? { fix: tun.fix } : {}) });
    }
    return base;
  });
}

export type NicDataPath = 'qemu' | 'vhost';

/** Bridge and tap NICs on virtio-net: the data path in QEMU, or in the host kernel (vhost-net). */
export function nicDataPathOptions(model: NicModel, checks: readonly DoctorCheckInfo[] | null): ChoiceOption<NicDataPath>[] {
  const vhost = tableChoice('nic', 'vhost-net')!;
  const qemu: ChoiceOption<NicDataPath> = {
    value: 'qemu', label: 'In QEMU', mode: modeLabel('paravirtual'), testid: 'nic-datapath-qemu',
    detail: 'QEMU reads and writes the tap: works everywhere',
  };
  let a = availabilityOf(vhost, checks);
  if (model !== 'virtio-net') a = { available: false, reason: 'vhost-net serves virtio-net only', fix: 'choose the virtio-net model' };
  // The table marks vhost-net unsupported until the core configures it; the host's lack comes first either way.
  return [qemu, withAvailability({ value: 'vhost', label: 'In the host kernel (vhost-net)', mode: modeLabel(vhost.mode), detail: vhost.advice, testid: 'nic-datapath-vhost' }, a)];
}

/** Options for devices the table does not list (one mode each), e.g. TPM models. */
export function plainOptions<V extends string>(items: ReadonlyArray<{ value: V; label: string; detail?: string }>, mode: IoMode | undefined, testPrefix: string, avail: HostOption = { available: true }): ChoiceOption<V>[] {
  return items.map((i) => withAvailability({ ...i, ...(mode ? { mode: modeLabel(mode) } : {}), testid: `${testPrefix}-${i.value}` }, avail));
}

/** A kind whose only way to run is missing on this host cannot be added at all (the reason is shown). */
export function addBlocked(kind: string, checks: readonly DoctorCheckInfo[] | null): HostOption {
  if (kind !== 'vsock') return { available: true };
  return availabilityOf(tableChoice('vsock', 'vhost-vsock')!, checks);
}
