// Renderer entry: picks the transport (Electron MessagePort or browser WebSocket), connects to
// the core on the window's connection (?connection= in the URL, else the one remembered, else
// local), and mounts the app.
import '@xterm/xterm/css/xterm.css';
import './styles/app.css';
import { createPinia } from 'pinia';
import { createApp } from 'vue';
import App from './App.vue';
import { createAppRouter } from './router.ts';
import { CONNECTION_STORAGE_KEY, initialConnection, useConnectionStore } from './stores/connection.ts';
import { useVmsStore } from './stores/vms.ts';
import { getBridge } from './transport/bridge.ts';
import { pickTransport } from './transport/pick-transport.ts';

const app = createApp(App);
const pinia = createPinia();
app.use(pinia);
const router = createAppRouter();
app.use(router);

const transport = pickTransport();
const bridge = getBridge();
const connection = useConnectionStore(pinia);
useVmsStore(pinia);
/** localStorage may be unavailable (storage disabled): the window then starts on local each time. */
function remembered(): string | null {
  try { return window.localStorage.getItem(CONNECTION_STORAGE_KEY); } catch { return null; }
}

function remember(name: string): void {
  try { window.localStorage.setItem(CONNECTION_STORAGE_KEY, name); } catch { /* not kept */ }
  // A ?connection= link the page was opened with must not switch it back on reload.
  const url = new URL(window.location.href);
  if (url.searchParams.has('connection')) {
    url.searchParams.set('connection', name);
    window.history.replaceState(window.history.state, '', url.href);
  }
}

const first = initialConnection(window.location, remembered());
connection.start({
  transport,
  connection: first,
  remember,
  ...(bridge ? { onCoreRestarted: (cb: () => void) => bridge.onCoreRestarted(cb) } : {}),
});
bridge?.onMenu?.((action) => {
  if (action === 'new-vm') void router.push('/new');
});
window.addEventListener('pagehide', () => connection.stop());

app.mount('#app');
