// Sound cards, with a silent audio back end: -display none has no host audio to play to, and a
// sound card is still useful to guests that expect one. hda = Intel HD Audio (ICH9 on q35,
// ICH6 on pc) with a duplex codec; ac97 for old guests.
import type { MachineType, SoundDefinition } from '../../../common/model.ts';
import { emptyParts } from './types.ts';
import type { DeviceParts } from './types.ts';

export const AUDIODEV_ID = 'audio0';
export const SOUND_DEVICE_ID = 'sound0';

export function soundParts(s: SoundDefinition, machine: MachineType): DeviceParts {
  const parts = emptyParts();
  parts.options.push({ opt: '-audiodev', implied: 'none', keyval: { id: AUDIODEV_ID } });
  if (s.model === 'ac97') {
    parts.devices.push({ driver: 'AC97', id: SOUND_DEVICE_ID, audiodev: AUDIODEV_ID });
    return parts;
  }
  parts.devices.push(
    { driver: machine === 'q35' ? 'ich9-intel-hda' : 'intel-hda', id: SOUND_DEVICE_ID },
    { driver: 'hda-duplex', id: `${SOUND_DEVICE_ID}-codec0`, bus: `${SOUND_DEVICE_ID}.0`, cad: 0, audiodev: AUDIODEV_ID },
  );
  return parts;
}
