// Hands out slots on the storage buses each machine type has, adding controllers on demand.
import { HangarError } from '../../../common/errors.ts';
import type { MachineType } from '../../../common/model.ts';
import type { PropObject } from '../qemu-option.ts';

export type StorageBus = 'ide' | 'sata' | 'scsi';

export interface Slot {
  bus: string;
  unit?: number;
  /** For SCSI: properties placing the device on the virtio-scsi controller. */
  scsi?: { channel: number; 'scsi-id': number; lun: number };
}

export const SCSI_CONTROLLER_ID = 'ctl_scsi0';
export const SATA_CONTROLLER_ID = 'ctl_sata0';

export class BusAllocator {
  private ideUsed = 0;
  private sataUsed = 0;
  private scsiUsed = 0;
  readonly controllers: PropObject[] = [];

  constructor(private readonly machine: MachineType) {}

  allocate(kind: StorageBus, deviceId: string): Slot {
    if (this.machine === 'microvm') {
      throw new HangarError('invalid-input', `device "${deviceId}": a microvm has no ${kind} bus`, 'use a virtio-blk disk');
    }
    if (kind === 'scsi') {
      if (this.scsiUsed === 0) this.controllers.push({ driver: 'virtio-scsi-pci', id: SCSI_CONTROLLER_ID });
      const id = this.scsiUsed++;
      return { bus: `${SCSI_CONTROLLER_ID}.0`, scsi: { channel: 0, 'scsi-id': id, lun: 0 } };
    }
    if (this.machine === 'q35') {
      // q35's built-in ICH9 AHCI exposes ide.0 .. ide.5, one device each, for IDE and SATA alike.
      const port = this.ideUsed++;
      if (port > 5) throw new HangarError('invalid-input', `device "${deviceId}": all 6 SATA/IDE ports of q35 are used`, 'put further disks on virtio-blk or scsi');
      return { bus: `ide.${port}`, unit: 0 };
    }
    if (kind === 'ide') {
      // pc's PIIX IDE: two channels with a master and a slave each.
      const n = this.ideUsed++;
      if (n > 3) throw new HangarError('invalid-input', `device "${deviceId}": all 4 IDE slots of the pc machine are used`, 'use sata, scsi or virtio-blk');
      return { bus: `ide.${n >> 1}`, unit: n & 1 };
    }
    if (this.sataUsed === 0) this.controllers.push({ driver: 'ahci', id: SATA_CONTROLLER_ID });
    const port = this.sataUsed++;
    if (port > 5) throw new HangarError('invalid-input', `device "${deviceId}": all 6 ports of the SATA controller are used`, 'use scsi or virtio-blk');
    return { bus: `${SATA_CONTROLLER_ID}.${port}`, unit: 0 };
  }
}
