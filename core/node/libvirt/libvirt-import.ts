// `hangar import --from-libvirt URI DOMAIN`: a libvirt domain becomes a Hangar VM of this
// computer's core. The persistent XML is read with the same reader the libvirt driver uses;
// disks are used where they are (the default) or copied into the VM's folder; whatever the
// model cannot hold is listed, never dropped silently. The domain itself is left as it was.
import type { CreateVmRequest } from '../../common/api.ts';
import { HangarError } from '../../common/errors.ts';
import { parseConnectionUri } from '../../common/connections.ts';
import { readDomainXml } from './domain-xml-read.ts';
import { runVirsh } from './virsh.ts';

export interface LibvirtImportPlan {
  request: CreateVmRequest;
  notCarried: string[];
  /** Things to know that are not losses (e.g. both sides now name the same disks). */
  notes: string[];
}

export async function planLibvirtImport(uri: string, domain: string, opts: { name?: string; copyDisks?: boolean } = {}): Promise<LibvirtImportPlan> {
  const target = parseConnectionUri(uri);
  if (target.kind !== 'libvirt') throw new HangarError('invalid-input', `"${uri}" is not a libvirt URI`, 'use qemu:///system or qemu:///session');
  if (target.host) {
    throw new HangarError('unsupported', `importing from a libvirt on another host (${target.host}) is not supported: its disks are on that host`,
      `run \`hangar import --from-libvirt qemu:///${target.mode} ${domain}\` on ${target.host}, or manage the domain there with hangar --connect ${uri}`);
  }
  const state = (await runVirsh(uri, ['domstate', domain])).trim();
  if (state !== 'shut off') {
    throw new HangarError('invalid-state', `libvirt domain "${domain}" is ${state}: importing it now would give its disks two writers, or copy them mid-write`,
      `shut it down first: virsh -c ${uri} shutdown ${domain}`);
  }
  const { definition, notCarried } = readDomainXml(await runVirsh(uri, ['dumpxml', '--inactive', domain]));
  const def: Record<string, unknown> = { ...definition };
  if (opts.name) def.name = opts.name;
  // The libvirt domain stays defined and autostart belongs to libvirtd: do not start both.
  def.autostart = false;
  const notes: string[] = [];
  const request: CreateVmRequest = { definition: def };
  const disks = definition.disks;
  if (opts.copyDisks && disks.length) {
    def.disks = [];
    request.importDisks = disks.map((d) => ({ source: d.file, mode: 'copy' as const, bus: d.bus }));
  } else if (disks.length) {
    notes.push(`the VM uses the domain's disks where they are (${disks.map((d) => d.file).join(', ')}): run it or the libvirt domain, never both at once (or import with --copy-disks)`);
  }
  if (definition.nics.length) notes.push('the NICs keep the domain\'s MAC addresses');
  return { request, notCarried, notes };
}
