// Preload (bundled to CommonJS: sandboxed preloads cannot be ES modules). Sandboxed, with
// contextIsolation: only `electron`'s contextBridge and ipcRenderer are available here.
import { contextBridge, ipcRenderer } from 'electron';
import { installPreload, makeRequestId } from './preload-api.ts';

installPreload({
  contextBridge,
  ipcRenderer,
  window,
  randomId: () => makeRequestId(globalThis.crypto),
});
