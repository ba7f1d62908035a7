// One Display tab's screen: a DisplayChannel (connection and reconnect rules) whose viewers are
// noVNC RFB objects drawing into the page. A plain class kept out of reactive state: Vue must
// never proxy an RFB object or the canvas it owns.
//
// Keyboard grab: noVNC sends keys to the guest while its canvas has the focus (a click on the
// screen, or capture()). Ctrl+Alt (pressed together, as virt-viewer's release combination)
// releases it: the canvas loses the focus and every key the guest still sees pressed is let go.
import RFB from '@novnc/novnc';
import type { CoreTransport } from '../../../core/common/transport.ts';
import { DisplayChannel } from './display-channel.ts';
import type { DisplayStatus } from './display-channel.ts';

export interface DisplayViewOptions {
  /** Scale the guest's screen to the element (true) or show it 1:1 with scroll bars (false). */
  scale: boolean;
  /** Ask the guest to take the element's size (virtio-gpu with a guest driver). */
  resize: boolean;
  /** Show only: no keys or pointer reach the guest. */
  viewOnly: boolean;
}

export interface DisplaySessionOptions {
  vm: string;
  transport: Pick<CoreTransport, 'openDisplay'>;
  /** The connection the VM lives on (absent = this machine's core). */
  connection?: string;
  view: DisplayViewOptions;
  onStatus?: (status: DisplayStatus, detail?: string) => void;
  /** The keyboard is (no longer) captured by the screen. */
  onGrab?: (captured: boolean) => void;
  /** The guest's clipboard changed (text). */
  onClipboard?: (text: string) => void;
  /** The guest's screen size, once known and on every change. */
  onSize?: (width: number, height: number) => void;
}

/** X keysyms and key codes of the modifiers, released in the guest when the keyboard is given back. */
const MODIFIER_KEYS: ReadonlyArray<readonly [number, string]> = [
  [0xffe3, 'ControlLeft'], [0xffe4, 'ControlRight'], [0xffe9, 'AltLeft'], [0xffea, 'AltRight'],
  [0xffe1, 'ShiftLeft'], [0xffe2, 'ShiftRight'], [0xffeb, 'MetaLeft'], [0xffec, 'MetaRight'],
];

/** Whether a key event is the release combination: Ctrl and Alt held, the last of them just pressed. */
export function isReleaseCombo(ev: Pick<KeyboardEvent, 'ctrlKey' | 'altKey' | 'key' | 'shiftKey' | 'metaKey'>): boolean {
  return ev.ctrlKey && ev.altKey && !ev.shiftKey && !ev.metaKey && (ev.key === 'Control' || ev.key === 'Alt');
}

export class DisplaySession {
  private readonly channel: DisplayChannel;
  private rfb: RFB | null = null;
  private host: HTMLElement | null = null;
  private view: DisplayViewOptions;
  private captured = false;
  private sizeObserver: MutationObserver | null = null;
  private disposed = false;
  private readonly onFocusIn = (): void => this.updateGrab();
  private readonly onFocusOut = (): void => { queueMicrotask(() => this.updateGrab()); };
  private readonly onKeyCapture = (ev: KeyboardEvent): void => {
    if (!isReleaseCombo(ev)) return;
    ev.preventDefault();
    ev.stopPropagation();
    this.release();
  };

  constructor(private readonly opts: DisplaySessionOptions) {
    this.view = { ...opts.view };
    this.channel = new DisplayChannel({
      vm: opts.vm,
      transport: opts.transport,
      ...(opts.connection !== undefined ? { connection: opts.connection } : {}),
      onStatus: (s, d) => opts.onStatus?.(s, d),
      createViewer: (socket, events) => {
        const host = this.host;
        if (!host) throw new Error('the display is not in the page');
        const rfb = new RFB(host, socket, { shared: true });
        let disconnected = false;
        rfb.background = 'transparent';
        rfb.focusOnClick = true;
        this.rfb = rfb;
        this.apply(rfb);
        rfb.addEventListener('connect', () => {
          events.connected();
          this.watchSize();
        });
        rfb.addEventListener('disconnect', () => {
          disconnected = true;
          if (this.rfb === rfb) this.rfb = null;
          this.updateGrab();
        });
        rfb.addEventListener('securityfailure', (ev) => {
          events.failed(`the VNC server refused the viewer${ev.detail.reason ? `: ${ev.detail.reason}` : ''}`);
        });
        rfb.addEventListener('credentialsrequired', () => {
          events.failed('the VNC server asks for a password, which Hangar\'s own display never does');
        });
        rfb.addEventListener('clipboard', (ev) => opts.onClipboard?.(ev.detail.text));
        return {
          dispose: () => {
            if (this.rfb === rfb) this.rfb = null;
            if (!disconnected) {
              disconnected = true;
              try {
                rfb.disconnect();
              } catch {
                /* already gone */
              }
            }
            this.sizeObserver?.disconnect();
            this.sizeObserver = null;
            this.updateGrab();
          },
        };
      },
    });
  }

  /** Puts the screen into the page (the element noVNC draws into). */
  mount(el: HTMLElement): void {
    this.host = el;
    el.addEventListener('focusin', this.onFocusIn);
    el.addEventListener('focusout', this.onFocusOut);
    el.addEventListener('keydown', this.onKeyCapture, true);
  }

  get status(): DisplayStatus {
    return this.channel.status;
  }

  /** The canvas noVNC draws on (for screenshots of what the viewer shows, and tests). */
  get canvas(): HTMLCanvasElement | null {
    return this.host?.querySelector('canvas') ?? null;
  }

  setVmLive(live: boolean): void {
    this.channel.setVmLive(live);
  }

  reconnect(): void {
    this.channel.connect();
  }

  setView(view: Partial<DisplayViewOptions>): void {
    this.view = { ...this.view, ...view };
    if (this.rfb) this.apply(this.rfb);
    if (this.view.viewOnly && this.captured) this.release();
  }

  private apply(rfb: RFB): void {
    rfb.scaleViewport = this.view.scale;
    rfb.clipViewport = false;
    rfb.resizeSession = this.view.resize;
    rfb.viewOnly = this.view.viewOnly;
  }

  /** Sends keys to the screen from now on (focuses the canvas). */
  capture(): void {
    if (!this.rfb || this.view.viewOnly) return;
    this.rfb.focus({ preventScroll: true });
    this.updateGrab();
  }

  /** Gives the keyboard back: the canvas loses the focus and held keys are released in the guest. */
  release(): void {
    const rfb = this.rfb;
    if (rfb) {
      rfb.blur();
      // The guest saw Ctrl (and maybe Alt) go down before the release combination was complete:
      // let go of every modifier there, or the guest keeps typing ^C for c after the next capture
      // (virt-viewer does the same on ungrab). noVNC's own "all keys up" drops them in view-only.
      if (!rfb.viewOnly) for (const [keysym, code] of MODIFIER_KEYS) rfb.sendKey(keysym, code, false);
    } else if (this.host?.contains(document.activeElement)) {
      (document.activeElement as HTMLElement).blur();
    }
    this.updateGrab();
  }

  /** Puts text on the guest's clipboard (VNC client cut text; the guest needs the vdagent). */
  pasteToGuest(text: string): boolean {
    if (!this.rfb || this.channel.status !== 'live') return false;
    this.rfb.clipboardPasteFrom(text);
    return true;
  }

  private updateGrab(): void {
    const canvas = this.canvas;
    const now = !!canvas && !this.disposed && document.activeElement === canvas && !!this.rfb && !this.view.viewOnly;
    if (now === this.captured) return;
    this.captured = now;
    this.opts.onGrab?.(now);
  }

  /** Follows the canvas' size (noVNC resizes it when the guest changes its resolution). */
  private watchSize(): void {
    const canvas = this.canvas;
    if (!canvas) return;
    const report = (): void => { if (canvas.width && canvas.height) this.opts.onSize?.(canvas.width, canvas.height); };
    report();
    this.sizeObserver?.disconnect();
    this.sizeObserver = new MutationObserver(report);
    this.sizeObserver.observe(canvas, { attributes: true, attributeFilter: ['width', 'height'] });
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    this.channel.dispose();
    this.sizeObserver?.disconnect();
    const el = this.host;
    if (el) {
      el.removeEventListener('focusin', this.onFocusIn);
      el.removeEventListener('focusout', this.onFocusOut);
      el.removeEventListener('keydown', this.onKeyCapture, true);
    }
    this.host = null;
  }
}
