// Typed QMP commands over a QmpTransport. Reply types follow QEMU 7.2's schema; only the fields
// Hangar reads are spelled out, the rest stay `unknown` so newer QEMUs don't break the types.
import { HangarError } from '../../common/errors.ts';
import { onEvent, waitForEvent } from './events.ts';
import type { QmpEventMap, QmpEventName, WaitForEventOptions } from './events.ts';
import { QmpTransport } from './transport.ts';
import type {
  QmpConnectOptions, QmpEvent, QmpExecuteOptions, QmpTransportEvents, QmpVersion,
} from './transport.ts';

export type RunState =
  | 'debug' | 'inmigrate' | 'internal-error' | 'io-error' | 'paused' | 'postmigrate' | 'prelaunch'
  | 'finish-migrate' | 'restore-vm' | 'running' | 'save-vm' | 'shutdown' | 'suspended' | 'watchdog'
  | 'guest-panicked' | 'colo';

export interface StatusInfo {
  status: RunState;
  running: boolean;
  /** Present in 7.2, deprecated and later removed upstream. */
  singlestep?: boolean;
}

export type VersionInfo = QmpVersion;

export interface KvmInfo {
  enabled: boolean;
  present: boolean;
}

export interface PciMemoryRegion {
  bar: number;
  type: 'io' | 'memory';
  address: number;
  size: number;
  prefetch?: boolean;
  mem_type_64?: boolean;
}

export interface PciDeviceInfo {
  bus: number;
  slot: number;
  function: number;
  class_info: { class: number; desc?: string };
  id: { vendor: number; device: number; subsystem?: number; 'subsystem-vendor'?: number };
  irq?: number;
  irq_pin: number;
  /** Empty for devices QEMU created itself. */
  qdev_id: string;
  pci_bridge?: { bus: Record<string, unknown>; devices?: PciDeviceInfo[] };
  regions: PciMemoryRegion[];
}

export interface PciInfo {
  bus: number;
  devices: PciDeviceInfo[];
}

export interface BlockDeviceInfo {
  file: string;
  'node-name'?: string;
  ro: boolean;
  drv: string;
  backing_file?: string;
  encrypted: boolean;
  image: { filename: string; format: string; 'virtual-size': number; 'actual-size'?: number; [k: string]: unknown };
  [k: string]: unknown;
}

export interface BlockInfo {
  device: string;
  qdev?: string;
  type: string;
  removable: boolean;
  locked: boolean;
  inserted?: BlockDeviceInfo;
  tray_open?: boolean;
  'io-status'?: 'ok' | 'failed' | 'nospace';
}

export interface ObjectPropertyInfo {
  name: string;
  type: string;
  description?: string;
  'default-value'?: unknown;
}

export interface ChardevInfo {
  label: string;
  filename: string;
  'frontend-open': boolean;
}

export interface SchemaInfo {
  name: string;
  'meta-type': 'builtin' | 'enum' | 'array' | 'object' | 'alternate' | 'command' | 'event';
  features?: string[];
  [k: string]: unknown;
}

export class QmpClient {
  readonly transport: QmpTransport;

  constructor(transport: QmpTransport) {
    this.transport = transport;
  }

  static async connect(socketPath: string, opts?: QmpConnectOptions): Promise<QmpClient> {
    return new QmpClient(await QmpTransport.connect(socketPath, opts));
  }

  execute<T = unknown>(command: string, args?: Record<string, unknown>, opts?: QmpExecuteOptions): Promise<T> {
    return this.transport.execute<T>(command, args, opts);
  }

  on<E extends keyof QmpTransportEvents>(event: E, listener: (...args: QmpTransportEvents[E]) => void): this {
    // TS cannot correlate a generic E with Node's conditional listener type; the signature above is exact.
    this.transport.on(event, listener as never);
    return this;
  }

  off<E extends keyof QmpTransportEvents>(event: E, listener: (...args: QmpTransportEvents[E]) => void): this {
    this.transport.off(event, listener as never);
    return this;
  }

  onEvent<K extends QmpEventName>(name: K, fn: (data: QmpEventMap[K], event: QmpEvent) => void): () => void {
    return onEvent(this.transport, name, fn);
  }

  waitForEvent<K extends QmpEventName>(name: K, opts?: WaitForEventOptions<QmpEventMap[K]>): Promise<QmpEventMap[K]> {
    return waitForEvent(this.transport, name, opts);
  }

  close(): void {
    this.transport.close();
  }

  queryStatus(): Promise<StatusInfo> {
    return this.execute<StatusInfo>('query-status');
  }

  async cont(): Promise<void> {
    await this.execute('cont');
  }

  async stop(): Promise<void> {
    await this.execute('stop');
  }

  /** ACPI power button: the guest decides whether to shut down. */
  async systemPowerdown(): Promise<void> {
    await this.execute('system_powerdown');
  }

  async systemReset(): Promise<void> {
    await this.execute('system_reset');
  }

  /**
   * Asks QEMU to exit and resolves once the connection has closed. QEMU may drop the socket
   * before (or instead of) replying, so 'qmp-closed' counts as success here.
   */
  async quit(opts: { timeoutMs?: number } = {}): Promise<void> {
    const t = this.transport;
    const closed = new Promise<void>((resolve) => {
      if (t.isClosed) resolve();
      else t.once('close', () => resolve());
    });
    try {
      await t.execute('quit', undefined, opts);
    } catch (e) {
      if (!(e instanceof HangarError && e.code === 'qmp-closed')) throw e;
    }
    const ms = opts.timeoutMs ?? 10_000;
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(new HangarError('timeout',
        `QEMU accepted quit but kept the QMP connection open for ${ms} ms`,
        'Force-stop the VM process.')), ms);
    });
    try {
      await Promise.race([closed, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }

  queryVersion(): Promise<VersionInfo> {
    return this.execute<VersionInfo>('query-version');
  }

  queryKvm(): Promise<KvmInfo> {
    return this.execute<KvmInfo>('query-kvm');
  }

  queryPci(): Promise<PciInfo[]> {
    return this.execute<PciInfo[]>('query-pci');
  }

  queryBlock(): Promise<BlockInfo[]> {
    return this.execute<BlockInfo[]>('query-block');
  }

  qomList(path: string): Promise<ObjectPropertyInfo[]> {
    return this.execute<ObjectPropertyInfo[]>('qom-list', { path });
  }

  /** The property's value; its shape depends on the property type, so the caller names it. */
  qomGet<T = unknown>(path: string, property: string): Promise<T> {
    return this.execute<T>('qom-get', { path, property });
  }

  queryChardev(): Promise<ChardevInfo[]> {
    return this.execute<ChardevInfo[]>('query-chardev');
  }

  deviceListProperties(typename: string): Promise<ObjectPropertyInfo[]> {
    return this.execute<ObjectPropertyInfo[]>('device-list-properties', { typename });
  }

  queryQmpSchema(): Promise<SchemaInfo[]> {
    return this.execute<SchemaInfo[]>('query-qmp-schema');
  }

  /** HMP escape hatch for things QMP lacks; the output is human text, not a stable format. */
  humanMonitorCommand(commandLine: string): Promise<string> {
    return this.execute<string>('human-monitor-command', { 'command-line': commandLine });
  }

  /** props must include `driver`; pass `id` to be able to deviceDel it later. */
  async deviceAdd(props: Record<string, unknown>): Promise<void> {
    await this.execute('device_add', props);
  }

  /** Only requests removal: the device is gone when DEVICE_DELETED arrives. */
  async deviceDel(id: string): Promise<void> {
    await this.execute('device_del', { id });
  }

  async blockdevAdd(props: Record<string, unknown>): Promise<void> {
    await this.execute('blockdev-add', props);
  }

  async blockdevDel(nodeName: string): Promise<void> {
    await this.execute('blockdev-del', { 'node-name': nodeName });
  }
}
