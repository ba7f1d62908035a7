// TPM 2.0: QEMU's "emulator" TPM back end talking to a per-VM swtpm over its control socket,
// and a CRB (default; what Windows 11 expects) or TIS front end. Neither is a PCI device: the
// guest finds it through the ACPI TPM2 table.
import type { TpmDefinition } from '../../../common/model.ts';
import { emptyParts } from './types.ts';
import type { DeviceParts } from './types.ts';

export const TPM_CHARDEV_ID = 'chrtpm';
export const TPM_BACKEND_ID = 'tpmdev0';
export const TPM_DEVICE_ID = 'tpm0';

export function tpmParts(tpm: TpmDefinition, swtpmSocket: string): DeviceParts {
  const parts = emptyParts();
  parts.chardevs.push(
    { opt: '-chardev', implied: 'socket', keyval: { id: TPM_CHARDEV_ID, path: swtpmSocket } },
    { opt: '-tpmdev', implied: 'emulator', keyval: { id: TPM_BACKEND_ID, chardev: TPM_CHARDEV_ID } },
  );
  parts.devices.push({ driver: tpm.model, id: TPM_DEVICE_ID, tpmdev: TPM_BACKEND_ID });
  return parts;
}
