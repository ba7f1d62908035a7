/** Resolves like `p`, or rejects with `message()` after `ms` (the timer is always cleared). */
export async function withTimeout<T>(p: Promise<T>, ms: number, message: () => string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  try {
    return await Promise.race([
      p,
      new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(message())), ms); }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}
