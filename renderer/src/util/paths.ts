// Host paths as the path fields use them (POSIX: the core runs on Linux).

/** What the file chooser offers first for each kind of file. */
export const DISK_IMAGE_EXTENSIONS: readonly string[] = ['.qcow2', '.img', '.raw', '.vmdk', '.vdi', '.vhdx'];
export const ISO_EXTENSIONS: readonly string[] = ['.iso'];

/**
 * Where the chooser opens for a typed path: a folder field opens the folder itself, a file field
 * the file's folder; '' (nothing usable typed) lets the chooser fall back to the home folder.
 */
export function chooserStart(typed: string, pick: 'file' | 'directory'): string {
  const v = typed.trim();
  if (pick === 'directory' && v) return v;
  return v.includes('/') ? v.slice(0, v.lastIndexOf('/')) || '/' : '';
}
