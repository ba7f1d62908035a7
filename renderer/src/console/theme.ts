// Terminal colours for the light and dark themes (xterm.js takes colours, not CSS variables).
import type { ITheme } from '@xterm/xterm';

export const darkTheme: ITheme = {
  background: '#16181d',
  foreground: '#d8dce3',
  cursor: '#d8dce3',
  cursorAccent: '#16181d',
  selectionBackground: '#3a4a66',
  black: '#1e2127', red: '#e06c75', green: '#98c379', yellow: '#d7ba7d',
  blue: '#61afef', magenta: '#c678dd', cyan: '#56b6c2', white: '#d8dce3',
  brightBlack: '#7f848e', brightRed: '#ff7a85', brightGreen: '#b5e890', brightYellow: '#f0d399',
  brightBlue: '#82c4ff', brightMagenta: '#de9bf0', brightCyan: '#7fd3de', brightWhite: '#ffffff',
};

export const lightTheme: ITheme = {
  background: '#fbfbfc',
  foreground: '#1f2328',
  cursor: '#1f2328',
  cursorAccent: '#fbfbfc',
  selectionBackground: '#b6d3f7',
  black: '#1f2328', red: '#b3261e', green: '#1a7f37', yellow: '#7d5700',
  blue: '#0b5cad', magenta: '#8a3ea8', cyan: '#0b7285', white: '#6e7781',
  brightBlack: '#57606a', brightRed: '#cf222e', brightGreen: '#2a9d49', brightYellow: '#9a6700',
  brightBlue: '#0969da', brightMagenta: '#a475f9', brightCyan: '#1b9aaa', brightWhite: '#8c959f',
};

/** The current theme, and a subscription to changes of the system colour scheme. */
export function watchTheme(cb: (theme: ITheme) => void): () => void {
  const mq = typeof matchMedia === 'function' ? matchMedia('(prefers-color-scheme: dark)') : null;
  const pick = (): ITheme => (mq?.matches ? darkTheme : lightTheme);
  cb(pick());
  if (!mq) return () => {};
  const onChange = (): void => cb(pick());
  mq.addEventListener('change', onChange);
  return () => mq.removeEventListener('change', onChange);
}
