// A libvirt connection as a HangarConnection: the libvirt driver in this process (virsh -c URI),
// its events, and the serial console through `virsh console` in a pty (virsh wants a terminal).
import type { ConnectionTarget } from '../../common/connections.ts';
import { LibvirtDriver } from '../libvirt/libvirt-driver.ts';
import type { ConnectionStreams, HangarConnection, OpenOptions } from './open-connection.ts';
import { openVirshConsole } from './virsh-console.ts';
import { openLibvirtDisplay } from './libvirt-display.ts';
import type { SshOptions } from './ssh-stream.ts';

type LibvirtTarget = Extract<ConnectionTarget, { kind: 'libvirt' }>;

export function libvirtStreams(_name: string, uri: string, target: LibvirtTarget, ssh: SshOptions = {}): ConnectionStreams {
  return {
    openConsole: async (vm) => openVirshConsole(uri, vm),
    openDisplay: async (vm) => openLibvirtDisplay(target, vm, ssh),
  };
}

export async function openLibvirtConnection(name: string, uri: string, target: LibvirtTarget, opts: OpenOptions): Promise<HangarConnection> {
  const driver = new LibvirtDriver(uri, { connectionName: name });
  // Not probed here: the first call says why libvirtd cannot be reached, in virsh's words, and a
  // CLI run does not pay for a second list.
  const api = driver.api();
  const events = opts.events ?? {};
  if (events.vmChanged) driver.on('vmChanged', (e: Parameters<NonNullable<typeof events.vmChanged>>[0]) => events.vmChanged?.(e));
  if (events.vmListChanged) driver.on('vmListChanged', () => events.vmListChanged?.());
  if (events.migrationProgress) driver.on('migrationProgress', (e: Parameters<NonNullable<typeof events.migrationProgress>>[0]) => events.migrationProgress?.(e));
  return { name, uri, target, api, ...libvirtStreams(name, uri, target, opts.ssh), close: () => driver.close() };
}
