// Writes the snapshots of the deploy tests (test/integ/integ.*.ts), offline, as integ-runner's
// --update-on-failed --dry-run would: `npm run integ:update` after a change that alters a stage's
// templates. npm test checks them (test/integ-snapshots.test.ts).
import * as path from 'path';
import { appOf, committedSnapshot, integFiles, snapshotOf, writeSnapshot } from '../test/integ/snapshots';

const started = Date.now();
for (const file of integFiles()) {
  const snapshot = snapshotOf(appOf(file));
  const committed = committedSnapshot(file);
  const names = Object.keys(snapshot);
  const same =
    names.length === Object.keys(committed).length &&
    names.every((name) => snapshot[name] === committed[name]);
  if (!same) writeSnapshot(file, snapshot);
  console.log(`${same ? 'unchanged' : 'wrote    '} ${path.relative(process.cwd(), file)}.snapshot`);
}
console.log(`${integFiles().length} deploy tests in ${((Date.now() - started) / 1000).toFixed(1)} s`);
