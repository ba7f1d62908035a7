// What the Electron preload exposes as window.hangar (electron/preload-api.ts is the other side;
// the renderer may not import electron/, so the shape is restated here).

/** connection: a saved connection's name or a URI; absent = this machine's core. */
export type PortRequest =
  | { kind: 'rpc'; connection?: string }
  | { kind: 'console'; vm: string; replay: boolean; connection?: string }
  | { kind: 'display'; vm: string; connection?: string }
  /** A guest shell (ssh in a pty on the core host), or with login an ssh login to the connection's host (vm ''). */
  | { kind: 'terminal'; vm: string; user?: string; cols?: number; rows?: number; login?: boolean; connection?: string };

export interface HangarBridge {
  requestPort(request: PortRequest): string;
  appInfo(): Promise<{ version: string; electron: string }>;
  onCoreRestarted(cb: () => void): () => void;
  onMenu?(cb: (action: string) => void): () => void;
  openExternal(url: string): void;
}

declare global {
  interface Window {
    hangar?: HangarBridge;
  }
}

export function getBridge(): HangarBridge | undefined {
  return typeof window !== 'undefined' ? window.hangar : undefined;
}

/** Opens an http(s) link outside the app: the system browser in Electron, a new tab otherwise. */
export function openExternal(url: string): void {
  let u: URL;
  try {
    u = new URL(url);
  } catch {
    return;
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return;
  const bridge = getBridge();
  if (bridge) bridge.openExternal(u.href);
  else window.open(u.href, '_blank', 'noopener');
}
