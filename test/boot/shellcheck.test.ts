import { spawnSync } from 'child_process';
import * as fs from 'fs';
import * as os from 'os';
import * as path from 'path';
import { UserStage } from '../../lib';
import { fleetServer, requireShellcheck, singleServer } from './servers';

/**
 * shellcheck over every script asset and the rendered user data of every built stage; anything
 * at warning level or above fails. The assets are fragments that the user data concatenates, so
 * they are checked as bash.
 */
const SCRIPTS = path.join(__dirname, '..', '..', 'assets', 'scripts');
const SINGLE_SERVER_STAGES = [UserStage.USERS_1, UserStage.USERS_10, UserStage.USERS_100];
const FLEET_STAGES = [UserStage.USERS_1K, UserStage.USERS_10K, UserStage.USERS_100K, UserStage.USERS_1M];
let dir: string;

beforeAll(() => {
  requireShellcheck();
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'scale-stages-shellcheck-'));
});

afterAll(() => fs.rmSync(dir, { recursive: true, force: true }));

function shellcheck(file: string): string {
  const run = spawnSync('shellcheck', ['-S', 'warning', '-s', 'bash', '-f', 'gcc', file], {
    encoding: 'utf8',
  });
  if (run.error) throw run.error;
  return `${run.stdout}${run.stderr}`.trim() || (run.status === 0 ? '' : `shellcheck exited ${run.status}`);
}

test('shellcheck is installed', () => {
  expect(requireShellcheck()).toMatch(/^\d+\.\d+/);
});

test.each(fs.readdirSync(SCRIPTS).filter((file) => file.endsWith('.sh')))(
  'assets/scripts/%s passes shellcheck',
  (file) => {
    expect(shellcheck(path.join(SCRIPTS, file))).toBe('');
  },
);

/** The scripts the rotation functions send to servers through SSM Run Command (complete bash scripts). */
const ROTATION = path.join(__dirname, '..', '..', 'assets', 'rotation');
const rotationScripts = fs
  .readdirSync(ROTATION, { recursive: true, encoding: 'utf8' })
  .filter((file) => file.endsWith('.sh'))
  .sort();

test('the local database rotation scripts are among those checked', () => {
  expect(rotationScripts).toEqual(
    expect.arrayContaining(['local-database/set-password.sh', 'local-database/test-password.sh']),
  );
});

test.each(rotationScripts)('assets/rotation/%s passes shellcheck', (file) => {
  expect(shellcheck(path.join(ROTATION, file))).toBe('');
});

test.each(['scripts/test-prerequisites.sh', 'scripts/promote-region.sh', '.ci/run'])(
  'the project script %s passes shellcheck',
  (file) => {
    expect(shellcheck(path.join(__dirname, '..', '..', file))).toBe('');
  },
);

test.each([...SINGLE_SERVER_STAGES, ...FLEET_STAGES])(
  'the user data of stage %s passes shellcheck',
  (stage) => {
    const server = SINGLE_SERVER_STAGES.includes(stage) ? singleServer(stage) : fleetServer(stage);
    const file = path.join(dir, `user-data-${stage}.sh`);
    fs.writeFileSync(file, server.userData.script);
    expect(shellcheck(file)).toBe('');
  },
);

test('the user data of the stage-1m workers passes shellcheck', () => {
  const file = path.join(dir, 'user-data-1m-workers.sh');
  fs.writeFileSync(file, fleetServer(UserStage.USERS_1M, 'WorkersFleet').userData.script);
  expect(shellcheck(file)).toBe('');
});

test('a script with a warning fails the check', () => {
  const file = path.join(dir, 'bad.sh');
  fs.writeFileSync(file, '#!/bin/bash\nrm -rf $DIR/*\n');
  expect(shellcheck(file)).toMatch(/SC2115|SC2086/);
});
