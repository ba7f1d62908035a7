// Progress of a long operation (a disk copy, a snapshot) on stderr.
/** Draws create progress on stderr: a bar on a terminal, else a line every 10%. */
export function progressPrinter(out: NodeJS.WriteStream): { update(step: string, fraction: number): void; end(): void } {
  let lastTenth = -1;
  let lastStep = '';
  let drawn = false;
  return {
    update(step, fraction) {
      const pct = Math.floor(fraction * 100);
      if (out.isTTY) {
        const width = 30;
        const full = Math.round(fraction * width);
        out.write(`\r${step} [${'#'.repeat(full)}${'-'.repeat(width - full)}] ${String(pct).padStart(3)}%\x1b[K`);
        drawn = true;
        return;
      }
      const tenth = Math.floor(fraction * 10);
      if (step === lastStep && tenth <= lastTenth) return;
      lastStep = step;
      lastTenth = tenth;
      out.write(`${step}: ${tenth * 10}%\n`);
    },
    end() {
      if (drawn) out.write('\n');
      drawn = false;
    },
  };
}
