// One serial console view: owns the xterm.js Terminal and its addons (fit, search, web links)
// and a ConsoleChannel for the protocol. A plain class, kept out of reactive state: Vue must
// never proxy a Terminal.
import { FitAddon } from '@xterm/addon-fit';
import { SearchAddon } from '@xterm/addon-search';
import { WebLinksAddon } from '@xterm/addon-web-links';
import { Terminal } from '@xterm/xterm';
import type { CoreTransport } from '../../../core/common/transport.ts';
import { ConsoleChannel } from './console-channel.ts';
import type { ConsoleStatus } from './console-channel.ts';
import { watchTheme } from './theme.ts';

export interface ConsoleSessionOptions {
  vm: string;
  transport: Pick<CoreTransport, 'openConsole'>;
  /** The connection the VM lives on (absent = this machine's core). */
  connection?: string;
  onStatus?: (status: ConsoleStatus, detail?: string) => void;
  /** Opens a link found in the output (window.hangar.openExternal or window.open). */
  openLink: (url: string) => void;
  /** Ctrl+Shift+F: the view shows its search box. */
  onSearchRequested?: () => void;
  /** Something the user should know (e.g. the clipboard is not available). */
  onMessage?: (text: string) => void;
}

export class ConsoleSession {
  readonly terminal: Terminal;
  private readonly fit = new FitAddon();
  private readonly search = new SearchAddon();
  private readonly channel: ConsoleChannel;
  private resizeObserver: ResizeObserver | null = null;
  private fitFrame = 0;
  private stopTheme: () => void = () => {};
  private disposed = false;

  constructor(private readonly opts: ConsoleSessionOptions) {
    this.terminal = new Terminal({
      convertEol: false,
      cursorBlink: true,
      scrollback: 10_000,
      fontFamily: 'ui-monospace, "DejaVu Sans Mono", "Cascadia Mono", Menlo, Consolas, monospace',
      fontSize: 14,
      allowProposedApi: false,
    });
    this.terminal.loadAddon(this.fit);
    this.terminal.loadAddon(this.search);
    this.terminal.loadAddon(new WebLinksAddon((_ev, uri) => opts.openLink(uri)));
    const t = this.terminal;
    this.channel = new ConsoleChannel({
      vm: opts.vm,
      transport: opts.transport,
      ...(opts.connection !== undefined ? { connection: opts.connection } : {}),
      onStatus: (s, d) => opts.onStatus?.(s, d),
      sink: {
        write: (data, done) => t.write(data, done),
        reset: () => t.reset(),
        // Dim (SGR 2), on a line of its own.
        // Once earlier output is processed, so the line break is only added when needed.
        notice: (text) => t.write('', () => {
          t.write(`${t.buffer.active.cursorX > 0 ? '\r\n' : ''}\x1b[2m${text}\x1b[0m\r\n`);
        }),
      },
    });
    t.onData((s) => this.channel.input(s));
    t.onBinary((s) => {
      const bytes = new Uint8Array(s.length);
      for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i) & 0xff;
      this.channel.input(bytes);
    });
    t.attachCustomKeyEventHandler((ev) => this.onKey(ev));
  }

  /** Puts the terminal into the page and starts following its size and the colour scheme. */
  mount(el: HTMLElement): void {
    this.terminal.open(el);
    this.stopTheme = watchTheme((theme) => { this.terminal.options.theme = theme; });
    this.fitNow();
    this.resizeObserver = new ResizeObserver(() => this.scheduleFit());
    this.resizeObserver.observe(el);
  }

  get status(): ConsoleStatus {
    return this.channel.status;
  }

  setVmLive(live: boolean): void {
    this.channel.setVmLive(live);
  }

  reconnect(): void {
    this.channel.connect();
  }

  focus(): void {
    this.terminal.focus();
  }

  /** incremental: extend the current match while typing instead of jumping to the next one. */
  findNext(q: string, incremental = false): boolean {
    return q ? this.search.findNext(q, { incremental }) : false;
  }

  findPrevious(q: string): boolean {
    return q ? this.search.findPrevious(q) : false;
  }

  clearSearch(): void {
    this.search.clearDecorations();
    this.terminal.clearSelection();
  }

  async copySelection(): Promise<void> {
    const text = this.terminal.getSelection();
    if (!text) return;
    try {
      await navigator.clipboard.writeText(text);
    } catch {
      this.opts.onMessage?.('Copying needs clipboard access, which this page does not have.');
    }
  }

  async paste(): Promise<void> {
    try {
      const text = await navigator.clipboard.readText();
      if (text) this.terminal.paste(text);
    } catch {
      this.opts.onMessage?.('Pasting needs clipboard access, which this page does not have (try middle-click or the browser’s paste).');
    }
  }

  private onKey(ev: KeyboardEvent): boolean {
    if (ev.type !== 'keydown' || !ev.ctrlKey || !ev.shiftKey || ev.altKey || ev.metaKey) return true;
    switch (ev.code) {
      case 'KeyC':
        ev.preventDefault();
        void this.copySelection();
        return false;
      case 'KeyV':
        ev.preventDefault();
        void this.paste();
        return false;
      case 'KeyF':
        ev.preventDefault();
        this.opts.onSearchRequested?.();
        return false;
      default:
        return true;
    }
  }

  private scheduleFit(): void {
    if (this.fitFrame || this.disposed) return;
    this.fitFrame = requestAnimationFrame(() => {
      this.fitFrame = 0;
      this.fitNow();
    });
  }

  private fitNow(): void {
    if (this.disposed) return;
    try {
      this.fit.fit();
    } catch {
      /* not visible yet */
    }
  }

  dispose(): void {
    if (this.disposed) return;
    this.disposed = true;
    if (this.fitFrame) cancelAnimationFrame(this.fitFrame);
    this.resizeObserver?.disconnect();
    this.stopTheme();
    this.channel.dispose();
    this.terminal.dispose();
  }
}
