// POSIX shell quoting for commands shown to users (the QEMU command line, `hangar create ...`).

/** Quotes one argument for a POSIX shell, only when it needs it. */
export function shellQuote(arg: string): string {
  if (arg !== '' && /^[A-Za-z0-9_./:=,@%+-]+$/.test(arg)) return arg;
  return `'${arg.replace(/'/g, `'\\''`)}'`;
}

/** A command line a user can paste into a shell (one argument per continued line). */
export function shellCommand(argv: readonly string[]): string {
  return argv.map(shellQuote).join(' \\\n  ');
}

/** Like shellCommand, but each option shares its line with its value(s): `-m size=512M`. */
export function shellCommandGrouped(argv: readonly string[]): string {
  const lines: string[] = [];
  for (const a of argv) {
    if (lines.length === 0 || a.startsWith('-')) lines.push(shellQuote(a));
    else lines[lines.length - 1] += ` ${shellQuote(a)}`;
  }
  return lines.join(' \\\n  ');
}
