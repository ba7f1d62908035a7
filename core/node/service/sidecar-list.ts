// Everything that lives beside QEMU, in start order (stopped in reverse). A new back end is its
// module's Sidecar (see sidecar.ts) plus one entry here.
import type { Sidecar } from './sidecar.ts';
import { vfioSidecar } from './vfio-session.ts';
import { swtpmSidecar } from './swtpm.ts';
import { passtSidecar } from './passt.ts';
import { storageDaemonSidecar } from './storage-daemon.ts';
import { virtiofsdSidecar } from './virtiofsd.ts';

export const SIDECARS: readonly Sidecar[] = [
  vfioSidecar, // devices go to vfio-pci before any back end runs, and back to the host after all are gone
  swtpmSidecar,
  passtSidecar,
  storageDaemonSidecar,
  virtiofsdSidecar,
];
