// A TCP port on 127.0.0.1 that was free a moment ago (a caller that loses the race retries).
import { createServer } from 'node:net';

export async function freePort(): Promise<number> {
  const srv = createServer();
  await new Promise<void>((resolve, reject) => { srv.once('error', reject); srv.listen(0, '127.0.0.1', resolve); });
  const addr = srv.address();
  await new Promise((r) => srv.close(r));
  if (!addr || typeof addr === 'string') throw new Error('no port');
  return addr.port;
}
