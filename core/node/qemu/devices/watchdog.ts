// A hardware watchdog (Intel 6300ESB): a guest that stops petting it gets the configured action
// from QEMU (-action watchdog=...): reset, shutdown, poweroff, pause, inject-nmi or none.
import type { WatchdogDefinition } from '../../../common/model.ts';
import { emptyParts } from './types.ts';
import type { DeviceParts } from './types.ts';

export const WATCHDOG_DEVICE_ID = 'watchdog0';

export function watchdogParts(w: WatchdogDefinition): DeviceParts {
  const parts = emptyParts();
  parts.options.push({ opt: '-action', keyval: { watchdog: w.action } });
  parts.devices.push({ driver: w.model, id: WATCHDOG_DEVICE_ID });
  return parts;
}
