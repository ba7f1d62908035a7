// Electron when the preload bridge exists, else browser mode over WebSocket.
import type { CoreTransport } from '../../../core/common/transport.ts';
import { getBridge } from './bridge.ts';
import { ElectronTransport } from './electron-transport.ts';
import { WebSocketTransport } from './websocket-transport.ts';

export function pickTransport(): CoreTransport {
  const bridge = getBridge();
  return bridge ? new ElectronTransport(bridge) : new WebSocketTransport();
}
