// Prints the benchmark figures (not a test: these machines are noisy).
const which = process.argv.slice(2);
if (!which.length || which.includes('scale')) await (await import('./scale.ts')).benchScale();
if (!which.length || which.includes('start')) await (await import('./start-overhead.ts')).benchStartOverhead();
export {};
