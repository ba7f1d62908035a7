// The host helper's entry (bundled into dist/hangar-host-helper.mjs; bin/hangar-host-helper.mjs
// runs it from the sources in a checkout). See host-helper.ts for what it accepts.
import { hostHelperMain } from './host-helper.ts';

const r = await hostHelperMain(process.argv.slice(2));
process.stdout.write(r.stdout);
process.stderr.write(r.stderr);
process.exitCode = r.code;
