// Renderer entry: picks the transport (Electron MessagePort or browser WebSocket), connects to
// the core, and mounts the app.
import '@xterm/xterm/css/xterm.css';
import './styles/app.css';
import { createPinia } from 'pinia';
import { createApp } from 'vue';
import App from './App.vue';
import { createAppRouter } from './router.ts';
import { useConnectionStore } from './stores/connection.ts';
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
connection.start({
  transport,
  ...(bridge ? { onCoreRestarted: (cb: () => void) => bridge.onCoreRestarted(cb) } : {}),
});
bridge?.onMenu?.((action) => {
  if (action === 'new-vm') void router.push('/new');
});
window.addEventListener('pagehide', () => connection.stop());

app.mount('#app');
