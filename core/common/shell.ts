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
