// Vite config for the renderer. `base: './'` keeps every asset URL relative, so the same build
// works from app://hangar/ (Electron), file:// and `hangar serve` (http://127.0.0.1:PORT/).
import vue from '@vitejs/plugin-vue';
import { defineConfig } from 'vite';

const here = import.meta.dirname;

export default defineConfig({
  root: here,
  base: './',
  plugins: [vue()],
  // No source-map eval, no inline scripts: the CSP forbids both.
  build: {
    outDir: `${here}/../dist/renderer`,
    emptyOutDir: true,
    target: 'es2022',
    sourcemap: true,
    chunkSizeWarningLimit: 1024,
    modulePreload: { polyfill: false },
  },
  server: { host: '127.0.0.1' },
});
