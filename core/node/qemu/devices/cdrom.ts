// CD-ROMs: a read-only raw ISO on an IDE/SATA/SCSI CD drive; an empty drive has no medium.
import type { CdromDefinition } from '../../../common/model.ts';
import { emptyParts } from './types.ts';
import type { BuildContext, DeviceParts } from './types.ts';

export function cdromParts(cd: CdromDefinition, ctx: BuildContext): DeviceParts {
  const parts = emptyParts();
  const before = ctx.buses.controllers.length;
  const slot = ctx.buses.allocate(cd.bus, cd.id);
  parts.controllers.push(...ctx.buses.controllers.slice(before));
  let drive: string | undefined;
  if (cd.file) {
    drive = `${cd.id}-fmt`;
    parts.blockdevs.push(
      { driver: 'file', 'node-name': `${cd.id}-file`, filename: cd.file, 'read-only': true },
      { driver: 'raw', 'node-name': drive, file: `${cd.id}-file`, 'read-only': true },
    );
  }
  const common = { id: cd.id, drive, bootindex: ctx.bootIndex.get(cd.id) };
  parts.devices.push(cd.bus === 'scsi'
    ? { driver: 'scsi-cd', bus: slot.bus, ...slot.scsi, ...common }
    : { driver: 'ide-cd', bus: slot.bus, unit: slot.unit, ...common });
  return parts;
}
