/**
 * The library's layers (.dependency-cruiser.cjs, checked by npm run lint): an import that points up
 * or closes a circle fails. This breaks a copy of lib/ on purpose, once per rule.
 */
import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';

const root = path.join(__dirname, '..');

/** Files that break one rule each, by the rule they break. */
const UPWARD: Record<string, [string, string]> = {
  'constructs-know-no-stages': [
    'lib/constructs/upward.ts',
    "export { STAGES } from '../stages/stage-table';",
  ],
  'private-is-a-leaf': ['lib/private/upward.ts', "export { CdnStatic } from '../constructs/cdn-static';"],
  'private-uses-the-app-model-by-type-only': [
    'lib/private/loads-the-app-model.ts',
    "import { AppSource } from '../app-source';\nexport const demo = () => AppSource.demo();",
  ],
  'stages-below-composition': [
    'lib/stages/upward.ts',
    "export { MultiRegion } from '../composition/multi-region';",
  ],
  'app-model-below-constructs': [
    'lib/upward.ts',
    "export { StageNetwork } from './constructs/stage-network';",
  ],
  'no-circular': [
    'lib/private/circle.ts',
    "export { ScaleStagesError } from './errors';\nexport const loop = 1;",
  ],
};

let output = '';
let status: number | null = null;

beforeAll(() => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'layers-'));
  fs.cpSync(path.join(root, 'lib'), path.join(dir, 'lib'), { recursive: true });
  for (const file of ['.dependency-cruiser.cjs', 'tsconfig.dev.json', 'tsconfig.json']) {
    fs.copyFileSync(path.join(root, file), path.join(dir, file));
  }
  for (const [file, text] of Object.values(UPWARD)) fs.writeFileSync(path.join(dir, file), `${text}\n`);
  // errors.ts imports the circle back.
  fs.appendFileSync(path.join(dir, 'lib/private/errors.ts'), "\nexport { loop } from './circle';\n");
  const run = spawnSync(
    process.execPath,
    [
      path.join(root, 'node_modules/dependency-cruiser/bin/dependency-cruise.mjs'),
      '--config',
      '.dependency-cruiser.cjs',
      'lib',
    ],
    {
      cwd: dir,
      encoding: 'utf8',
    },
  );
  output = run.stdout + run.stderr;
  status = run.status;
  fs.rmSync(dir, { recursive: true, force: true });
}, 60_000);

test('an upward import fails the dependency rule', () => {
  expect(status).not.toBe(0);
});

test.each(Object.entries(UPWARD).map(([rule, [file]]) => [rule, file]))('%s catches %s', (rule, file) => {
  expect(output).toMatch(new RegExp(`error ${rule}: ${file.replace(/\./g, '\\.')}`));
});
