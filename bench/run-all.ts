// Prints the benchmark figures (not a test: these machines are noisy).
// npm run bench [scale|start|console|list|io-modes|display|snapshots|memory|stats|migrate|libvirt-list]
const which = process.argv.slice(2);
const want = (name: string): boolean => !which.length || which.includes(name);
if (want('scale')) await (await import('./scale.ts')).benchScale();
if (want('start')) await (await import('./start-overhead.ts')).benchStartOverhead();
if (want('console')) await (await import('./console-pipeline.ts')).benchConsolePipeline();
if (want('list')) await (await import('./list-render.ts')).benchListRender();
if (want('io-modes')) await (await import('./io-modes.ts')).benchIoModes();
if (want('display')) await (await import('./display.ts')).benchDisplay();
if (want('snapshots')) await (await import('./snapshots.ts')).benchSnapshots();
if (want('memory')) await (await import('./memory.ts')).benchMemory();
if (want('stats')) await (await import('./stats.ts')).benchStats();
if (want('migrate')) await (await import('./migrate.ts')).benchMigrate();
if (want('libvirt-list')) await (await import('./libvirt-list.ts')).benchLibvirtList();
export {};
