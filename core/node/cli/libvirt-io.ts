// `hangar import --from-libvirt URI DOMAIN` and `hangar export NAME --libvirt-xml`: moving VM
// definitions between libvirt and Hangar, each listing what it could not carry over.
import type { CoreApi, CreateVmRequest, VmInfo } from '../../common/api.ts';
import { HangarError } from '../../common/errors.ts';

type Print = (s: string) => void;

export interface ImportFlags {
  'from-libvirt'?: string;
  name?: string;
  'copy-disks'?: boolean;
  json?: boolean;
}

export async function importCommand(positionals: string[], values: ImportFlags, create: (req: CreateVmRequest) => Promise<VmInfo>, print: Print, warn: Print): Promise<number> {
  const uri = values['from-libvirt'];
  if (!uri || positionals.length !== 1) {
    throw new HangarError('invalid-input', 'expected --from-libvirt URI DOMAIN', 'e.g. hangar import --from-libvirt qemu:///system web1 [--name NEW] [--copy-disks]');
  }
  const { planLibvirtImport } = await import('../libvirt/libvirt-import.ts');
  const plan = await planLibvirtImport(uri, positionals[0]!, { ...(values.name ? { name: values.name } : {}), copyDisks: values['copy-disks'] === true });
  const info = await create(plan.request);
  if (values.json) {
    print(JSON.stringify({ vm: info, notCarried: plan.notCarried, notes: plan.notes }, null, 2));
    return 0;
  }
  print(`Imported libvirt domain "${positionals[0]}" as VM "${info.name}" (${info.id}) in ${info.dir}`);
  for (const n of plan.notes) print(`Note: ${n}`);
  if (plan.notCarried.length) {
    warn(`Not carried over (${plan.notCarried.length}):`);
    for (const n of plan.notCarried) warn(`  - ${n}`);
  }
  return 0;
}

export async function exportCommand(positionals: string[], values: { 'libvirt-xml'?: boolean; json?: boolean }, api: CoreApi, print: Print, warn: Print): Promise<number> {
  if (!values['libvirt-xml'] || positionals.length !== 1) {
    throw new HangarError('invalid-input', 'expected NAME --libvirt-xml', 'hangar export NAME --libvirt-xml > NAME.xml; then virsh define NAME.xml');
  }
  const info = await api.get(positionals[0]!);
  if (!info.definition) throw new HangarError('broken-definition', `VM "${info.name}" has no readable definition to export`, `see hangar show ${info.name}`);
  const { writeDomainXml } = await import('../libvirt/domain-xml-write.ts');
  const { xml, notCarried } = writeDomainXml(info.definition);
  if (values.json) {
    print(JSON.stringify({ xml, notCarried }, null, 2));
    return 0;
  }
  print(xml.trimEnd());
  // On stderr, so `> NAME.xml` keeps only the XML.
  for (const n of notCarried) warn(`not carried over: ${n}`);
  return 0;
}
