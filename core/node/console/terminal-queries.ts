// Replayed scrollback may hold terminal queries (busybox asks for the cursor position after each
// prompt). A terminal that sees them answers, and the answer would reach the guest's shell as
// input long after the question: strip them from history before it is shown.

// DSR (ESC[5n, ESC[6n, ESC[?6n) and device attributes (ESC[c, ESC[0c, ESC[>c, ESC[=c).
// eslint-disable-next-line no-control-regex
const QUERIES = /\x1b\[(?:\??[56]n|[>=]?0?c)/g;

export function stripTerminalQueries(history: Buffer): Buffer {
  const text = history.toString('latin1');
  const cleaned = text.replace(QUERIES, '');
  return cleaned.length === text.length ? history : Buffer.from(cleaned, 'latin1');
}
