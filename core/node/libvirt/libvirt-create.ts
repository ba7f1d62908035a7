// Creating a VM on a libvirt connection from Hangar's model (virt-install's role): the request is
// completed and checked by this computer's Hangar core exactly as for a Hangar VM (previewCreate:
// defaults, file checks; nothing written), its new disks are made in libvirt's image directory,
// and the domain XML from writeDomainXml is defined with virsh.
import { mkdir, mkdtemp, rm, stat, writeFile } from 'node:fs/promises';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import type { CreatePreview, CreateVmRequest } from '../../common/api.ts';
import { HangarError } from '../../common/errors.ts';
import type { VmDefinition } from '../../common/model.ts';
import { createImage } from '../store/qemu-img.ts';
import { writeDomainXml } from './domain-xml-write.ts';
import { runVirsh } from './virsh.ts';

/** libvirt's default image directory for the URI (its "default" pool's path). */
export function libvirtImageDir(mode: 'system' | 'session', env: NodeJS.ProcessEnv = process.env): string {
  if (mode === 'system') return '/var/lib/libvirt/images';
  return join(env.XDG_DATA_HOME || join(homedir(), '.local', 'share'), 'libvirt', 'images');
}

export interface LibvirtCreateResult {
  name: string;
  notCarried: string[];
  madeDisks: string[];
}

/**
 * Defines a domain from a create request. `preview` is this computer's core's previewCreate; the
 * disks it planned inside a Hangar VM folder are made in libvirt's image directory instead.
 */
export async function createOnLibvirt(uri: string, mode: 'system' | 'session', req: CreateVmRequest,
  preview: (req: CreateVmRequest) => Promise<CreatePreview>): Promise<LibvirtCreateResult> {
  if (req.cloudInit) {
    throw new HangarError('unsupported', 'unattended set-up (cloud-init) is not available when creating on a libvirt connection',
      'create it on this computer\'s Hangar, or use virt-install --cloud-init on the libvirt host');
  }
  const { definition } = await preview(req);
  const newIds = new Set<string>();
  const planned = new Map(definition.disks.filter((d) => d.owned).map((d) => [d.id, d]));
  const made = (req.newDisks ?? []).length;
  // previewCreate lists imported copies and new disks as owned files in the VM folder: only new
  // blank disks can be made here (a copy would need the core's progress and cancel).
  if ((req.importDisks ?? []).some((i) => i.mode !== 'in-place')) {
    throw new HangarError('unsupported', 'copying or converting an image into a new libvirt domain is not available',
      'use the image in place (import-disk mode in-place), or copy it into the libvirt image directory first');
  }
  const dir = libvirtImageDir(mode);
  const owned = made ? [...planned.values()].slice(-made) : [];
  for (const d of owned) newIds.add(d.id);
  const def: VmDefinition = {
    ...definition,
    disks: definition.disks.map((d) => newIds.has(d.id) ? { ...d, file: join(dir, `${definition.name}-${d.id}.${d.format}`), owned: true } : d),
  };
  const { xml, notCarried } = writeDomainXml(def);
  const madeDisks: string[] = [];
  const tmp = await mkdtemp(join(tmpdir(), 'hangar-define-'));
  try {
    await mkdir(dir, { recursive: true });
    const sizes = new Map((req.newDisks ?? []).map((nd, i) => [owned[i]?.id, nd.sizeBytes]));
    for (const d of def.disks.filter((x) => newIds.has(x.id))) {
      // qemu-img create would overwrite: an image of that name (another domain's?) is never touched.
      if (await stat(d.file).then(() => true, () => false)) {
        throw new HangarError('already-exists', `${d.file} already exists`, `choose another VM name, or remove the file if nothing uses it`);
      }
      await createImage(d.file, d.format as 'qcow2' | 'raw', sizes.get(d.id) ?? 0);
      madeDisks.push(d.file);
    }
    const file = join(tmp, 'domain.xml');
    await writeFile(file, xml, { mode: 0o600 });
    await runVirsh(uri, ['define', file]);
  } catch (e) {
    for (const f of madeDisks) await rm(f, { force: true }).catch(() => {});
    throw e;
  } finally {
    await rm(tmp, { recursive: true, force: true });
  }
  return { name: def.name, notCarried, madeDisks };
}
