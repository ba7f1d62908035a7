// The desktop app's security rules in one place (see README.md for the checklist): which URLs
// belong to the app, which IPC senders are trusted, which external links may open, and the
// hardening applied to every web contents and to the session.
import type {
  FrameLike, IpcMainEventLike, NavigationEventLike, SessionLike, WebContentsLike,
} from './electron-api.ts';

/** The renderer is served from app://hangar/ (a standard, secure, privileged scheme). */
export const APP_SCHEME = 'app';
export const APP_HOST = 'hangar';
export const APP_ORIGIN = `${APP_SCHEME}://${APP_HOST}`;
export const APP_INDEX_URL = `${APP_ORIGIN}/index.html`;

export const CSP = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "object-src 'none'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join('; ');

/** Permissions a page of ours may get: the console's "copy" uses navigator.clipboard.writeText. */
const ALLOWED_PERMISSIONS: ReadonlySet<string> = new Set(['clipboard-sanitized-write']);

function parseUrl(url: string): URL | null {
  try {
    return new URL(url);
  } catch {
    return null;
  }
}

/**
 * Whether a URL is on the app origin. Compared by protocol and host: Node's URL reports the
 * origin of a non-special scheme as "null", so `.origin` cannot be used.
 */
export function isAppUrl(url: string): boolean {
  const u = parseUrl(url);
  return !!u && u.protocol === `${APP_SCHEME}:` && u.host === APP_HOST && !u.username && !u.password;
}

/** Only http(s) URLs that parse leave the app, through the system browser. */
export function isSafeExternalUrl(url: unknown): url is string {
  if (typeof url !== 'string' || url.length > 2048) return false;
  const u = parseUrl(url);
  return !!u && (u.protocol === 'http:' || u.protocol === 'https:') && u.host !== '';
}

function sameFrame(a: FrameLike, b: FrameLike): boolean {
  return a === b || (a.processId === b.processId && a.routingId === b.routingId);
}

/**
 * An IPC message is trusted only from the main frame of one of our windows, while that frame
 * shows a page of the app origin. Sub-frames, destroyed frames and foreign pages are refused.
 */
export function isTrustedSender(event: IpcMainEventLike, ourContents: Iterable<WebContentsLike>): boolean {
  const frame = event.senderFrame;
  if (!frame) return false;
  try {
    if (frame.isDestroyed()) return false;
    if (frame.parent !== null) return false;
    if (!isAppUrl(frame.url)) return false;
    const sender = event.sender;
    if (sender.isDestroyed()) return false;
    for (const wc of ourContents) {
      if (wc === sender && sameFrame(wc.mainFrame, frame)) return true;
    }
  } catch {
    return false; // a frame torn down while we looked at it
  }
  return false;
}

/**
 * Hardening for every web contents (our windows and anything else that gets created): no
 * webviews, no new windows (http(s) links go to the system browser), no navigation or redirect
 * away from the app origin.
 */
export function hardenWebContents(contents: WebContentsLike, openExternal: (url: string) => void): void {
  contents.on('will-attach-webview', (e) => e.preventDefault());
  contents.setWindowOpenHandler(({ url }) => {
    if (isSafeExternalUrl(url)) openExternal(url);
    return { action: 'deny' };
  });
  const guard = (e: NavigationEventLike): void => {
    if (!isAppUrl(e.url)) e.preventDefault();
  };
  contents.on('will-navigate', guard);
  contents.on('will-frame-navigate', guard);
  contents.on('will-redirect', guard);
}

/** Adds the CSP (and nosniff) to a set of response headers, replacing any CSP already there. */
export function withSecurityHeaders(headers: Record<string, string[]> | undefined): Record<string, string[]> {
  const out: Record<string, string[]> = {};
  for (const [k, v] of Object.entries(headers ?? {})) {
    if (k.toLowerCase() !== 'content-security-policy' && k.toLowerCase() !== 'x-content-type-options') out[k] = v;
  }
  out['Content-Security-Policy'] = [CSP];
  out['X-Content-Type-Options'] = ['nosniff'];
  return out;
}

/**
 * Session-wide rules: permission requests and checks refused (except clipboard writes from a
 * page of ours), no device access, and the CSP header on every response the session sees
 * (the app scheme's handler sets it too).
 */
export function installSessionSecurity(session: SessionLike): void {
  session.setPermissionRequestHandler((wc, permission, callback, details) => {
    const url = details?.requestingUrl ?? wc.getURL();
    callback(ALLOWED_PERMISSIONS.has(permission) && isAppUrl(url));
  });
  session.setPermissionCheckHandler((_wc, permission, requestingOrigin) =>
    ALLOWED_PERMISSIONS.has(permission) && isAppUrl(requestingOrigin));
  session.setDevicePermissionHandler(() => false);
  session.webRequest.onHeadersReceived((details, callback) => {
    callback({ responseHeaders: withSecurityHeaders(details.responseHeaders) });
  });
}
