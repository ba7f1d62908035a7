// The application menu: File (New VM…, Quit), Edit (standard roles, so copy/paste work in
// forms), View (standard roles), Help (About Hangar).
import type { MenuItemConstructorOptions } from 'electron';

export interface MenuActions {
  platform: string;
  appName: string;
  newVm(): void;
  quit(): void;
  about(): void;
}

export function buildMenuTemplate(a: MenuActions): MenuItemConstructorOptions[] {
  const isMac = a.platform === 'darwin';
  const template: MenuItemConstructorOptions[] = [];
  if (isMac) {
    template.push({
      label: a.appName,
      submenu: [
        { label: `About ${a.appName}`, click: () => a.about() },
        { type: 'separator' },
        { role: 'services' },
        { type: 'separator' },
        { role: 'hide' },
        { role: 'hideOthers' },
        { role: 'unhide' },
        { type: 'separator' },
        { label: `Quit ${a.appName}`, accelerator: 'Cmd+Q', click: () => a.quit() },
      ],
    });
  }
  template.push(
    {
      label: '&File',
      submenu: [
        { id: 'new-vm', label: 'New VM…', accelerator: 'CmdOrCtrl+N', click: () => a.newVm() },
        ...(isMac ? [{ role: 'close' } as const] : [
          { type: 'separator' } as const,
          { id: 'quit', label: 'Quit', accelerator: 'CmdOrCtrl+Q', click: () => a.quit() },
        ]),
      ],
    },
    {
      label: '&Edit',
      submenu: [
        { role: 'undo' }, { role: 'redo' }, { type: 'separator' },
        { role: 'cut' }, { role: 'copy' }, { role: 'paste' }, { role: 'selectAll' },
      ],
    },
    {
      label: '&View',
      submenu: [
        { role: 'reload' },
        { role: 'forceReload' },
        { role: 'toggleDevTools' },
        { type: 'separator' },
        { role: 'resetZoom' },
        { role: 'zoomIn' },
        { role: 'zoomOut' },
        { type: 'separator' },
        { role: 'togglefullscreen' },
      ],
    },
    {
      label: '&Help',
      role: 'help',
      submenu: [
        ...(isMac ? [] : [{ id: 'about', label: `About ${a.appName}`, click: () => a.about() }]),
      ],
    },
  );
  return template;
}

export function aboutDetail(version: string, versions: { electron?: string; node?: string; chrome?: string }): string {
  return [
    `Version ${version}`,
    `Electron ${versions.electron ?? 'unknown'}`,
    `Node ${versions.node ?? 'unknown'}`,
    `Chrome ${versions.chrome ?? 'unknown'}`,
    '',
    'A desktop manager for QEMU/KVM virtual machines.',
  ].join('\n');
}
