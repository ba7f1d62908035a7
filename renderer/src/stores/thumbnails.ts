// Screen thumbnails of running VMs for the VM list and the Overview (see display/thumbnails.ts
// for when they are fetched). One IntersectionObserver for every thumbnail on the page, one
// visibilitychange listener; images are shrunk to a small PNG before they reach the DOM.
import { defineStore } from 'pinia';
import { shallowReactive } from 'vue';
import type { Screenshot } from '../../../core/common/api.ts';
import { base64Bytes } from '../display/display-helpers.ts';
import { ThumbnailScheduler } from '../display/thumbnails.ts';
import type { ThumbnailHandle } from '../display/thumbnails.ts';
import { useConnectionStore } from './connection.ts';

/** The largest thumbnail any view shows (CSS pixels, times 2 for high-DPI screens). */
const THUMB_WIDTH = 320;

async function shrink(shot: Screenshot): Promise<string> {
  const url = `data:image/png;base64,${shot.pngBase64}`;
  if (typeof createImageBitmap !== 'function' || shot.width <= THUMB_WIDTH) return url;
  // Not fetch(url): the page's CSP (connect-src 'self') refuses data: URLs.
  const blob = new Blob([base64Bytes(shot.pngBase64)], { type: 'image/png' });
  const scale = THUMB_WIDTH / shot.width;
  const w = THUMB_WIDTH;
  const h = Math.max(1, Math.round(shot.height * scale));
  const bitmap = await createImageBitmap(blob, { resizeWidth: w, resizeHeight: h, resizeQuality: 'medium' });
  const canvas = document.createElement('canvas');
  canvas.width = w;
  canvas.height = h;
  canvas.getContext('2d')?.drawImage(bitmap, 0, 0);
  bitmap.close();
  return canvas.toDataURL('image/png');
}

export const useThumbnailsStore = defineStore('thumbnails', () => {
  const conn = useConnectionStore();
  /** VM name -> a data URL of its screen (small). */
  const images = shallowReactive(new Map<string, string>());
  const scheduler = new ThumbnailScheduler({
    screenshot: (vm) => conn.api.screenshot(vm),
    shrink: (shot) => shrink(shot).catch(() => `data:image/png;base64,${shot.pngBase64}`),
    onImage: (vm, url) => {
      if (url) images.set(vm, url);
      else images.delete(vm);
    },
  });

  const handles = new Map<Element, ThumbnailHandle>();
  let observer: IntersectionObserver | null = null;
  function io(): IntersectionObserver | null {
    if (observer || typeof IntersectionObserver === 'undefined') return observer;
    observer = new IntersectionObserver((entries) => {
      for (const en of entries) handles.get(en.target)?.setVisible(en.isIntersecting);
    });
    return observer;
  }

  if (typeof document !== 'undefined') {
    scheduler.setPageVisible(document.visibilityState !== 'hidden');
    document.addEventListener('visibilitychange', () => scheduler.setPageVisible(document.visibilityState !== 'hidden'));
  }

  /** A view shows the thumbnail of `vm` in `el`; returns what to call when it goes or the VM's state changes. */
  function follow(el: Element, vm: string, running: boolean): { setRunning(running: boolean): void; stop(): void } {
    const handle = scheduler.watch(vm, running);
    handles.set(el, handle);
    const o = io();
    if (o) o.observe(el);
    else handle.setVisible(true);
    return {
      setRunning: (r) => handle.setRunning(r),
      stop: () => {
        o?.unobserve(el);
        handles.delete(el);
        handle.release();
      },
    };
  }

  return { images, follow, scheduler };
});
