// UEFI firmware on the two pflash chips: read-only code (pflash0) and the VM's own writable
// NVRAM (pflash1), as -blockdev nodes the machine refers to. Secure Boot builds need SMM so the
// guest OS cannot write the varstore behind the firmware's back, and the flash marked secure.
import type { ResolvedFirmware } from '../../host/firmware.ts';
import type { PropObject, QemuOption } from '../qemu-option.ts';

export const FW_CODE_NODE = 'fw-code';
export const FW_VARS_NODE = 'fw-vars';

export interface FirmwareParts {
  /** Properties added to -machine. */
  machine: PropObject;
  blockdevs: PropObject[];
  globals: QemuOption[];
}

export function firmwareParts(fw: ResolvedFirmware): FirmwareParts {
  const code = { file: `${FW_CODE_NODE}-file`, fmt: `${FW_CODE_NODE}-fmt` };
  const vars = { file: `${FW_VARS_NODE}-file`, fmt: `${FW_VARS_NODE}-fmt` };
  const smm = fw.secureBoot || fw.requiresSmm;
  return {
    machine: { pflash0: code.fmt, pflash1: vars.fmt, ...(smm ? { smm: true } : {}) },
    blockdevs: [
      { driver: 'file', 'node-name': code.file, filename: fw.code.filename, 'read-only': true },
      { driver: fw.code.format, 'node-name': code.fmt, file: code.file, 'read-only': true },
      { driver: 'file', 'node-name': vars.file, filename: fw.vars.filename, 'read-only': false },
      { driver: fw.vars.format, 'node-name': vars.fmt, file: vars.file, 'read-only': false },
    ],
    globals: fw.secureBoot ? [{ opt: '-global', keyval: { driver: 'cfi.pflash01', property: 'secure', value: true } }] : [],
  };
}
