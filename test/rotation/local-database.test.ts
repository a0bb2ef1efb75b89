import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import { createRequire } from 'module';
import * as path from 'path';
import { removeTempDirs, tempDir } from '../demo-app-helpers';
import { PostgresServer, psqlAsAdmin, startPostgres } from '../postgres-server';
import { AwsError, FakeSecretsManager } from './fake-secrets-manager';

// Real servers start and answer here: a timeout that fits a busy 2-core machine, not jest's 5 s.
jest.setTimeout(60_000);

/**
 * The stage-1 local database rotation (assets/rotation/local-database): the handler's four steps
 * with fake Secrets Manager and SSM clients that keep state as the services do, then the two
 * scripts it sends through SSM Run Command, run for real (as the exact command line the handler
 * builds) against a real PostgreSQL with a stub `aws` CLI on PATH.
 */

type Deps = Record<string, unknown>;
type Step = (deps: Deps, arn: string, token: string) => Promise<void>;
interface RotationModule {
  rotate(deps: Deps, event: { SecretId: string; ClientRequestToken: string; Step: string }): Promise<void>;
  createSecret: Step;
  setSecret: Step;
  testSecret: Step;
  finishSecret: Step;
  readScripts(): { setSecret: string; testSecret: string };
  shellCommand(script: string, variables: Record<string, string>, name: string): string;
  DOCUMENT: string;
  PASSWORD_LENGTH: number;
  DELIVERY_TIMEOUT_SECONDS: number;
  EXECUTION_TIMEOUT_SECONDS: number;
}

const FOLDER = path.join(__dirname, '..', '..', 'assets', 'rotation', 'local-database');
const load = createRequire(__filename);
const rotation = load(path.join(FOLDER, 'index.js')) as RotationModule;

const ARN = 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:ServerLocalDatabaseSecret-AbCdEf';
const INSTANCE = 'i-0123456789abcdef0';
const CURRENT = 'a1b2c3d4-0000-4000-8000-000000000001';
const TOKEN = 'a1b2c3d4-0000-4000-8000-000000000002';
const OLD_PASSWORD = 'OldPassword0123456789abcdefghijk';
const NEW_PASSWORD = 'NewPassword9876543210zyxwvutsrqp';

interface SendCommandInput {
  DocumentName: string;
  InstanceIds: string[];
  Comment?: string;
  Parameters: { commands: string[]; executionTimeout: string[] };
  TimeoutSeconds: number;
}

/**
 * Run Command as the function sees it: SendCommand returns an id; GetCommandInvocation first does
 * not know the invocation (eventual consistency), then reports `statuses` one call at a time.
 */
class FakeSsm {
  readonly sent: SendCommandInput[] = [];
  readonly polls: object[] = [];
  statuses: string[] = ['InProgress', 'Success'];
  invisibleFor = 1;
  stderr = '';

  async sendCommand(input: SendCommandInput) {
    this.sent.push(input);
    return { Command: { CommandId: `command-${this.sent.length}` } };
  }

  async getCommandInvocation(input: { CommandId: string; InstanceId: string }) {
    this.polls.push(input);
    if (this.invisibleFor > 0) {
      this.invisibleFor--;
      throw new AwsError('InvocationDoesNotExist', 'The command invocation does not exist');
    }
    const status = this.statuses.length > 1 ? this.statuses.shift()! : this.statuses[0];
    return {
      CommandId: input.CommandId,
      InstanceId: input.InstanceId,
      Status: status,
      StatusDetails: status,
      ResponseCode: status === 'Success' ? 0 : status === 'Failed' ? 1 : -1,
      StandardOutputContent: '',
      StandardErrorContent: status === 'Failed' ? this.stderr : '',
    };
  }
}

const scripts = { setSecret: 'echo set-password script', testSecret: 'echo test-password script' };

function setup(overrides: Deps = {}) {
  const secrets = new FakeSecretsManager({
    current: { versionId: CURRENT, value: JSON.stringify({ username: 'app', password: OLD_PASSWORD }) },
    pendingVersionId: TOKEN,
    randomPassword: NEW_PASSWORD,
  });
  const ssm = new FakeSsm();
  const logs: string[] = [];
  let clock = 0;
  const deps: Deps = {
    secrets,
    ssm,
    instanceId: INSTANCE,
    databaseName: 'app',
    region: 'eu-west-1',
    scripts,
    deadline: 60_000,
    now: () => clock,
    sleep: async (ms: number) => {
      clock += ms;
    },
    pollMillis: 2_000,
    log: (message: string) => logs.push(message),
    ...overrides,
  };
  return { secrets, ssm, logs, deps, elapsed: () => clock };
}

const event = (step: string, token = TOKEN) => ({ SecretId: ARN, ClientRequestToken: token, Step: step });

describe('local database rotation: staging checks (as the generic template)', () => {
  test('a secret without rotation enabled fails', async () => {
    const { secrets, deps } = setup();
    secrets.rotationEnabled = false;
    await expect(rotation.rotate(deps, event('createSecret'))).rejects.toThrow(/not enabled for rotation/);
  });

  test('a version that is not staged fails', async () => {
    const { deps } = setup();
    await expect(rotation.rotate(deps, event('createSecret', 'unknown-version'))).rejects.toThrow(
      /has no stage for rotation/,
    );
  });

  test('a version that is already AWSCURRENT is left alone, whatever the step', async () => {
    const { secrets, ssm, deps } = setup();
    await rotation.rotate(deps, event('setSecret', CURRENT));
    expect(ssm.sent).toEqual([]);
    expect(secrets.calls).toEqual(['DescribeSecret']);
  });

  test('a version that is neither AWSCURRENT nor AWSPENDING fails', async () => {
    const { secrets, deps } = setup();
    secrets.stages.set(TOKEN, ['AWSPREVIOUS']);
    await expect(rotation.rotate(deps, event('createSecret'))).rejects.toThrow(/is not AWSPENDING/);
  });

  test('an unknown step fails', async () => {
    const { deps } = setup();
    await expect(rotation.rotate(deps, event('dropSecret'))).rejects.toThrow(
      /Invalid step parameter dropSecret/,
    );
  });

  test('both spellings of the steps are accepted (createSecret, create_secret)', async () => {
    const { secrets, deps } = setup();
    await rotation.rotate(deps, event('create_secret'));
    expect(secrets.calls).toContain('PutSecretValue');
  });
});

describe('createSecret', () => {
  test('puts a new password with the current username in the AWSPENDING version', async () => {
    const { secrets, deps } = setup();
    await rotation.createSecret(deps, ARN, TOKEN);
    expect(JSON.parse(secrets.values.get(TOKEN)!)).toEqual({ username: 'app', password: NEW_PASSWORD });
    expect(secrets.stagesOf(TOKEN)).toEqual(['AWSPENDING']);
    expect(secrets.stagesOf(CURRENT)).toEqual(['AWSCURRENT']);
  });

  test("generates the password by the secret generator's rules: 32 characters, no punctuation", async () => {
    const { secrets, deps } = setup();
    await rotation.createSecret(deps, ARN, TOKEN);
    expect(secrets.randomPasswordRequests).toEqual([
      { PasswordLength: 32, ExcludePunctuation: true, IncludeSpace: false, RequireEachIncludedType: true },
    ]);
    expect(rotation.PASSWORD_LENGTH).toBe(32);
  });

  test('keeps the other keys of the current version', async () => {
    const { secrets, deps } = setup();
    secrets.values.set(
      CURRENT,
      JSON.stringify({ username: 'app', password: OLD_PASSWORD, engine: 'postgres' }),
    );
    await rotation.createSecret(deps, ARN, TOKEN);
    expect(JSON.parse(secrets.values.get(TOKEN)!)).toEqual({
      username: 'app',
      password: NEW_PASSWORD,
      engine: 'postgres',
    });
  });

  test('is idempotent: a retry keeps the pending password it already put', async () => {
    const { secrets, deps } = setup();
    await rotation.createSecret(deps, ARN, TOKEN);
    const first = secrets.values.get(TOKEN);
    await rotation.createSecret(deps, ARN, TOKEN);
    expect(secrets.values.get(TOKEN)).toBe(first);
    expect(secrets.calls.filter((c) => c === 'PutSecretValue')).toHaveLength(1);
    expect(secrets.calls.filter((c) => c === 'GetRandomPassword')).toHaveLength(1);
  });

  test('an error other than "not found" when reading the pending version fails the step', async () => {
    const { secrets, deps } = setup();
    secrets.getSecretValueError = new AwsError('AccessDeniedException', 'not allowed');
    await expect(rotation.createSecret(deps, ARN, TOKEN)).rejects.toThrow(/not allowed/);
    expect(secrets.calls).not.toContain('PutSecretValue');
  });

  test('a current version without a username fails without showing the value', async () => {
    const { secrets, deps } = setup();
    secrets.values.set(CURRENT, JSON.stringify({ password: OLD_PASSWORD }));
    const error = await rotation.createSecret(deps, ARN, TOKEN).catch((e: Error) => e);
    expect(String(error)).toMatch(/AWSCURRENT version of the secret has no username/);
    expect(String(error)).not.toContain(OLD_PASSWORD);
  });
});

describe.each([
  ['setSecret', 'set-password.sh'],
  ['testSecret', 'test-password.sh'],
] as const)('%s', (step, file) => {
  test(`runs ${file} with AWS-RunShellScript on this instance only, then waits for it`, async () => {
    const { ssm, deps, logs } = setup();
    await rotation[step](deps, ARN, TOKEN);
    expect(ssm.sent).toEqual([
      {
        DocumentName: 'AWS-RunShellScript',
        InstanceIds: [INSTANCE],
        Comment: `${step} of the local database password rotation`,
        Parameters: { commands: [expect.any(String)], executionTimeout: ['120'] },
        TimeoutSeconds: 60,
      },
    ]);
    const [command] = ssm.sent[0].Parameters.commands;
    expect(command).toBe(
      `AWS_REGION='eu-west-1' DB_SECRET_ARN='${ARN}' SECRET_VERSION_ID='${TOKEN}' DB_NAME='app' bash --norc --noprofile -c '${scripts[step]}' '${file}'`,
    );
    // Not visible, in progress, success: three polls, two waits.
    expect(ssm.polls).toEqual(Array(3).fill({ CommandId: 'command-1', InstanceId: INSTANCE }));
    expect(logs.join('\n')).toMatch(/command command-1 succeeded/);
  });

  test('the password is in neither the command, nor its comment, nor the logs', async () => {
    const { secrets, ssm, deps, logs } = setup();
    await rotation.createSecret(deps, ARN, TOKEN);
    await rotation[step](deps, ARN, TOKEN);
    const sent = JSON.stringify(ssm.sent);
    for (const password of [NEW_PASSWORD, OLD_PASSWORD]) {
      expect(sent).not.toContain(password);
      expect(logs.join('\n')).not.toContain(password);
    }
    expect(secrets.values.get(TOKEN)).toContain(NEW_PASSWORD);
  });

  test('a failed command fails the step, with its error output', async () => {
    const { ssm, deps } = setup();
    ssm.statuses = ['InProgress', 'Failed'];
    ssm.stderr = 'psql: error: role "app" does not exist\n';
    await expect(rotation[step](deps, ARN, TOKEN)).rejects.toThrow(
      new RegExp(
        `${step}: command command-1 on ${INSTANCE} ended Failed \\(Failed, exit code 1\\): psql: error: role "app" does not exist$`,
      ),
    );
  });

  test.each(['TimedOut', 'Cancelled'])('a command that ends %s fails the step', async (status) => {
    const { ssm, deps } = setup();
    ssm.statuses = [status];
    await expect(rotation[step](deps, ARN, TOKEN)).rejects.toThrow(new RegExp(`ended ${status}`));
  });

  test('a command still running near the Lambda timeout fails the step; Secrets Manager retries', async () => {
    const { ssm, deps, elapsed } = setup({ deadline: 30_000 });
    ssm.statuses = ['Delayed'];
    await expect(rotation[step](deps, ARN, TOKEN)).rejects.toThrow(
      /has not ended yet \(status Delayed\); Secrets Manager retries the rotation/,
    );
    expect(elapsed()).toBeLessThanOrEqual(30_000);
  });

  test('a retry sends the command again: the scripts are idempotent', async () => {
    const { ssm, deps } = setup();
    await rotation[step](deps, ARN, TOKEN);
    ssm.invisibleFor = 1;
    await rotation[step](deps, ARN, TOKEN);
    expect(ssm.sent).toHaveLength(2);
    expect(ssm.sent[1]).toEqual(ssm.sent[0]);
  });

  test('without an instance id it fails before sending anything', async () => {
    const { ssm, deps } = setup({ instanceId: undefined });
    await expect(rotation[step](deps, ARN, TOKEN)).rejects.toThrow(/INSTANCE_ID is not set/);
    expect(ssm.sent).toEqual([]);
  });
});

describe('finishSecret', () => {
  test('moves AWSCURRENT to the new version; AWSPREVIOUS follows the old one', async () => {
    const { secrets, deps } = setup();
    await rotation.createSecret(deps, ARN, TOKEN);
    await rotation.finishSecret(deps, ARN, TOKEN);
    expect(secrets.stagesOf(TOKEN)).toEqual(['AWSCURRENT']); // AWSPENDING goes (../steps.js)
    expect(secrets.stagesOf(CURRENT)).toEqual(['AWSPREVIOUS']);
  });

  test('is idempotent: a version that is already AWSCURRENT is not moved again', async () => {
    const { secrets, deps } = setup();
    await rotation.createSecret(deps, ARN, TOKEN);
    await rotation.finishSecret(deps, ARN, TOKEN);
    const updates = secrets.calls.filter((c) => c.startsWith('UpdateSecretVersionStage')).length;
    await rotation.finishSecret(deps, ARN, TOKEN);
    expect(secrets.calls.filter((c) => c.startsWith('UpdateSecretVersionStage'))).toHaveLength(updates);
  });
});

test('a whole rotation through rotate(): four steps, two commands, the new version current', async () => {
  const { secrets, ssm, deps, logs } = setup();
  for (const step of ['createSecret', 'setSecret', 'testSecret', 'finishSecret']) {
    await rotation.rotate(deps, event(step));
  }
  expect(ssm.sent.map((s) => s.Parameters.commands[0].split(' -c ')[1])).toEqual([
    `'${scripts.setSecret}' 'set-password.sh'`,
    `'${scripts.testSecret}' 'test-password.sh'`,
  ]);
  expect(secrets.stagesOf(TOKEN)).toContain('AWSCURRENT');
  expect(JSON.parse(secrets.values.get(TOKEN)!).password).toBe(NEW_PASSWORD);
  // Once AWSCURRENT, a late retry of any step does nothing.
  await rotation.rotate(deps, event('setSecret'));
  expect(ssm.sent).toHaveLength(2);
  expect(logs.join('\n')).not.toContain(NEW_PASSWORD);
});

test('the handler reads the scripts from its own package, and quotes them so the shell expands nothing', async () => {
  const read = rotation.readScripts();
  expect(read.setSecret).toBe(fs.readFileSync(path.join(FOLDER, 'set-password.sh'), 'utf8'));
  expect(read.testSecret).toBe(fs.readFileSync(path.join(FOLDER, 'test-password.sh'), 'utf8'));
  const command = rotation.shellCommand(`printf '%s\\n' "$X" '$(date)' "it's"`, { X: `a'b $HOME` }, 'name');
  expect(execFileSync('sh', ['-c', command], { encoding: 'utf8' })).toBe(`a'b $HOME\n$(date)\nit's\n`);
  expect(() => rotation.shellCommand('true', { X: '' }, 'name')).toThrow(/name: X is not set/);
});

// ---------------------------------------------------------------------------------------------
// The scripts against a real PostgreSQL.

/** The scripts run the PostgreSQL client `psql`, as the server has it (postgresql16 from dnf). */
function requirePsql(): void {
  const run = spawnSync('psql', ['--version'], { encoding: 'utf8' });
  if (run.status !== 0) {
    throw new Error(
      'the local database rotation scripts need the PostgreSQL client psql on PATH (Debian/Ubuntu: apt-get install postgresql-client; macOS: brew install libpq).',
    );
  }
}

/**
 * A cluster set up as the server's: the admin comes in on the Unix socket (`trust` for postgres,
 * standing in for the server's peer authentication), the app over TCP on 127.0.0.1 with a
 * scram-sha-256 password.
 */
function startDatabase(): Promise<PostgresServer> {
  return startPostgres({
    tempPrefix: 'rotation-postgres-',
    hba: ['host app app 127.0.0.1/32 scram-sha-256'],
  });
}

/**
 * A stub `aws` that logs its arguments and, for `get-secret-value ... --version-stage AWSPENDING`,
 * prints the pending secret file as `--query SecretString --output text` would.
 */
function stubAwsCli(): { binDir: string; secretFile: string; calls: () => string[] } {
  const binDir = tempDir('rotation-aws-');
  const secretFile = path.join(binDir, 'pending.json');
  const callLog = path.join(binDir, 'calls.log');
  fs.writeFileSync(
    path.join(binDir, 'aws'),
    [
      '#!/bin/sh',
      `echo "$*" >> '${callLog}'`,
      'case " $* " in',
      `  *" --version-stage AWSPENDING "*) cat '${secretFile}' ;;`,
      '  *) echo "stub aws: unexpected call" >&2; exit 254 ;;',
      'esac',
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  const calls = () => (fs.existsSync(callLog) ? fs.readFileSync(callLog, 'utf8').trim().split('\n') : []);
  return { binDir, secretFile, calls };
}

describe('set-password.sh and test-password.sh against a real PostgreSQL', () => {
  const INITIAL = 'Initial0Password1234567890abcdef';
  let db: PostgresServer;
  let aws: ReturnType<typeof stubAwsCli>;
  let commands: { setSecret: string; testSecret: string };

  beforeAll(async () => {
    requirePsql();
    db = await startDatabase();
    aws = stubAwsCli();
    admin(`CREATE ROLE app LOGIN PASSWORD '${INITIAL}'`);
    admin('CREATE DATABASE app OWNER app');
    const scripts = rotation.readScripts();
    const variables = {
      AWS_REGION: 'eu-west-1',
      DB_SECRET_ARN: ARN,
      SECRET_VERSION_ID: TOKEN,
      DB_NAME: 'app',
    };
    // The exact command lines the handler sends.
    commands = {
      setSecret: rotation.shellCommand(scripts.setSecret, variables, 'set-password.sh'),
      testSecret: rotation.shellCommand(scripts.testSecret, variables, 'test-password.sh'),
    };
  }, 60_000);

  afterAll(async () => {
    await db?.stop();
    removeTempDirs();
  });

  /** The admin psql the scripts use instead of `sudo -u postgres psql`: the Unix socket, as postgres. */
  const adminPsql = () => `psql -h ${db.socketDir} -p ${db.port} -U postgres`;

  function admin(sql: string): string {
    return psqlAsAdmin(db, sql);
  }

  /** Runs one command line as the SSM agent would (a shell), with the stub aws first on PATH. */
  function run(command: string) {
    const result = spawnSync('sh', ['-c', command], {
      encoding: 'utf8',
      stdio: ['ignore', 'pipe', 'pipe'],
      env: {
        PATH: `${aws.binDir}:${process.env.PATH ?? ''}`,
        ADMIN_PSQL: adminPsql(),
        PGPORT: String(db.port),
        HOME: process.env.HOME ?? '/tmp',
      },
    });
    return { status: result.status, output: `${result.stdout}${result.stderr}` };
  }

  const pending = (password: string, username = 'app') => {
    fs.writeFileSync(aws.secretFile, JSON.stringify({ username, password }));
  };

  /** Whether `app` can log in over TCP with `password` (the test's own check, not the script's). */
  function logsIn(password: string): boolean {
    const result = spawnSync(
      'psql',
      [
        '-X',
        '-q',
        '-w',
        '-h',
        '127.0.0.1',
        '-p',
        String(db.port),
        '-U',
        'app',
        '-d',
        'app',
        '-c',
        'select 1',
      ],
      {
        env: { ...process.env, PGPASSWORD: password },
      },
    );
    return result.status === 0;
  }

  test('set-password.sh sets the AWSPENDING password, read with the instance role, and prints no password', () => {
    expect(logsIn(INITIAL)).toBe(true);
    pending(NEW_PASSWORD);
    const result = run(commands.setSecret);
    expect(result).toEqual({
      status: 0,
      output: `the password of role app is the one of secret version ${TOKEN} (AWSPENDING)\n`,
    });
    expect(logsIn(NEW_PASSWORD)).toBe(true);
    expect(logsIn(INITIAL)).toBe(false);
    expect(aws.calls()).toContain(
      `secretsmanager get-secret-value --region eu-west-1 --secret-id ${ARN} --version-id ${TOKEN} --version-stage AWSPENDING --query SecretString --output text`,
    );
    // Stored as a SCRAM verifier, as the server's password_encryption says.
    expect(admin("SELECT left(rolpassword, 14) FROM pg_authid WHERE rolname = 'app'")).toBe(
      'SCRAM-SHA-256$\n',
    );
  });

  test('set-password.sh run again with the same version changes nothing (a retried setSecret)', () => {
    pending(NEW_PASSWORD);
    expect(run(commands.setSecret).status).toBe(0);
    expect(run(commands.setSecret).status).toBe(0);
    expect(logsIn(NEW_PASSWORD)).toBe(true);
  });

  test('test-password.sh logs in over TCP with the AWSPENDING password and prints no password', () => {
    pending(NEW_PASSWORD);
    expect(run(commands.testSecret)).toEqual({
      status: 0,
      output: `role app logs in to database app on 127.0.0.1 with secret version ${TOKEN}\n`,
    });
  });

  test('test-password.sh fails with a wrong password, and prints no password', () => {
    const wrong = 'Wrong0Password1234567890abcdefgh';
    pending(wrong);
    const result = run(commands.testSecret);
    expect(result.status).not.toBe(0);
    expect(result.output).toMatch(/password authentication failed for user "app"/);
    expect(result.output).toContain(
      `role app cannot log in to database app on 127.0.0.1 with secret version ${TOKEN}`,
    );
    expect(result.output).not.toContain(wrong);
  });

  /** The server's log once it has written `pattern` (spawnSync blocks the loop that collects it). */
  async function logUntil(pattern: RegExp): Promise<string> {
    for (let i = 0; i < 50 && !pattern.test(db.log()); i++) await new Promise((r) => setTimeout(r, 100));
    return db.log();
  }

  test('by default PostgreSQL logs a failed statement, password and all (why set-password.sh turns that off)', async () => {
    const control = 'Control0Password1234567890abcdef';
    expect(() => admin(`ALTER ROLE control_role WITH PASSWORD '${control}'`)).toThrow();
    expect(await logUntil(/control_role/)).toContain(
      `STATEMENT:  ALTER ROLE control_role WITH PASSWORD '${control}'`,
    );
  });

  test('set-password.sh for a role that does not exist fails; the password is neither printed nor in the server log', async () => {
    const secretPassword = 'Unlogged0Password1234567890abcde';
    pending(secretPassword, 'nobody_here');
    const result = run(commands.setSecret);
    expect(result.status).not.toBe(0);
    expect(result.output).toMatch(/role "nobody_here" does not exist/);
    expect(result.output).not.toContain(secretPassword);
    const log = await logUntil(/nobody_here/);
    expect(log).toMatch(/ERROR: {2}role "nobody_here" does not exist/);
    expect(log).not.toContain(secretPassword);
    expect(logsIn(NEW_PASSWORD)).toBe(true);
  });

  test('a password with quotes and backslashes is set literally (nothing is interpreted)', () => {
    const odd = `it's a \\back\\slash $HOME \`x\` "q"`;
    pending(odd);
    expect(run(commands.setSecret).status).toBe(0);
    expect(logsIn(odd)).toBe(true);
    expect(run(commands.testSecret).status).toBe(0);
    pending(NEW_PASSWORD);
    expect(run(commands.setSecret).status).toBe(0);
  });

  test('the server logged no password the scripts handled', async () => {
    const log = await logUntil(/Wrong0Password|password authentication failed/);
    for (const password of [INITIAL, NEW_PASSWORD, 'Wrong0Password1234567890abcdefgh']) {
      expect(log).not.toContain(password);
    }
  });
});
