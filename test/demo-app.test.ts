import { ChildProcess, spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as path from 'path';
import * as tls from 'tls';
import {
  freePort,
  removeTempDirs,
  selfSignedCertificate,
  spawnDemo,
  stop,
  stubAwsCli,
  tempDir,
} from './demo-app-helpers';

// Real servers start and answer here: a timeout that fits a busy 2-core machine, not jest's 5 s.
jest.setTimeout(60_000);

interface DemoResponse {
  readonly database: { configured: boolean; reachable: boolean; authenticated: boolean };
}

/** Starts the demo app on a free port with the given environment and waits until it listens. */
async function startDemo(env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  const { child, port } = await spawnDemo(env);
  return { child, url: `http://127.0.0.1:${port}` };
}

describe('demo app over HTTP', () => {
  let database: net.Server;
  let databasePort: number;

  beforeAll(async () => {
    database = net.createServer((socket) => socket.end());
    await new Promise<void>((resolve) => database.listen(0, '127.0.0.1', resolve));
    databasePort = (database.address() as net.AddressInfo).port;
  });
  afterAll(() => new Promise<void>((resolve) => database.close(() => resolve())));

  // Without DATABASE_SECRET_ARN the app has no credentials: it only opens a connection. Logins
  // against a real PostgreSQL are in demo-app-database.test.ts.
  test('answers / and /healthz and reports a reachable database', async () => {
    const { child, url } = await startDemo({
      DATABASE_HOST: '127.0.0.1',
      DATABASE_PORT: String(databasePort),
    });
    try {
      for (const route of ['/', '/healthz']) {
        const res = await fetch(url + route);
        expect(res.status).toBe(200);
        expect(await res.json()).toEqual({
          app: 'cdk-scale-stages demo',
          database: { configured: true, reachable: true, authenticated: false },
        });
      }
      const status = await fetch(url + '/api/status');
      expect(await status.json()).toEqual({
        app: 'cdk-scale-stages demo',
        database: { configured: true, reachable: true, authenticated: false, checkedAt: expect.any(String) },
        cache: 'off',
      });
      const session = await fetch(url + '/api/session');
      expect(session.status).toBe(503);
      expect(await session.json()).toEqual({ error: expect.stringMatching(/sessions need the cache/) });
      expect((await fetch(url + '/nope')).status).toBe(404);
    } finally {
      await stop(child);
    }
  });

  test('reports an unreachable database and stays healthy', async () => {
    const closed = net.createServer();
    await new Promise<void>((resolve) => closed.listen(0, '127.0.0.1', resolve));
    const closedPort = (closed.address() as net.AddressInfo).port;
    await new Promise<void>((resolve) => closed.close(() => resolve()));

    const { child, url } = await startDemo({ DATABASE_HOST: '127.0.0.1', DATABASE_PORT: String(closedPort) });
    try {
      const res = await fetch(url + '/healthz');
      expect(res.status).toBe(200);
      expect(((await res.json()) as DemoResponse).database).toEqual({
        configured: true,
        reachable: false,
        authenticated: false,
      });
    } finally {
      await stop(child);
    }
  });

  test('without database settings it says so', async () => {
    const { child, url } = await startDemo({});
    try {
      expect(((await (await fetch(url + '/')).json()) as DemoResponse).database).toEqual({
        configured: false,
        reachable: false,
        authenticated: false,
      });
    } finally {
      await stop(child);
    }
  });
});

interface CacheServer {
  readonly child: ChildProcess;
  readonly port: number;
  readonly caFile: string;
}

/**
 * A real Valkey-compatible server (Debian's redis-server, which `.ci/run` installs) that, like
 * ElastiCache here, requires TLS and an AUTH token. The certificate is made for 127.0.0.1 and the
 * demo app is told to trust it.
 */
async function startCacheServer(token: string): Promise<CacheServer> {
  const redis = ['/usr/bin/redis-server', '/usr/sbin/redis-server'].find((p) => fs.existsSync(p));
  if (!redis) {
    throw new Error(
      'redis-server not found: install it (Debian: apt-get install redis-server), as .ci/run does',
    );
  }
  const dir = tempDir('demo-cache-');
  selfSignedCertificate(path.join(dir, 'key.pem'), path.join(dir, 'cert.pem'));
  const port = await freePort();
  const child = spawn(redis, [
    '--port',
    '0',
    '--tls-port',
    String(port),
    '--bind',
    '127.0.0.1',
    '--tls-cert-file',
    path.join(dir, 'cert.pem'),
    '--tls-key-file',
    path.join(dir, 'key.pem'),
    '--tls-auth-clients',
    'no',
    '--requirepass',
    token,
    '--save',
    '',
    '--appendonly',
    'no',
    '--dir',
    dir,
  ]);
  await new Promise<void>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      if (/Ready to accept connections/.test(chunk.toString())) resolve();
    });
    child.once('exit', (code) => reject(new Error(`redis-server exited with ${code}`)));
  });
  return { child, port, caFile: path.join(dir, 'cert.pem') };
}

describe('demo app with the cache (stage 100k)', () => {
  const token = 'test-token-0123456789abcdef';
  let cacheServer: CacheServer;
  let credentials: string;

  beforeAll(async () => {
    cacheServer = await startCacheServer(token);
    credentials = tempDir('demo-credentials-');
    fs.writeFileSync(path.join(credentials, 'cache-auth-token'), `${token}\n`);
  });
  afterAll(async () => {
    await stop(cacheServer.child);
    removeTempDirs();
  });

  /** The demo app, configured as the fleet is at stage 100k, with the token as a systemd credential. */
  function startWithCache(tokenDir = credentials) {
    return startDemo({
      CACHE_HOST: '127.0.0.1',
      CACHE_PORT: String(cacheServer.port),
      CREDENTIALS_DIRECTORY: tokenDir,
      NODE_EXTRA_CA_CERTS: cacheServer.caFile,
    });
  }

  test('a session lives in the cache, so a second server knows it', async () => {
    const first = await startWithCache();
    const second = await startWithCache();
    try {
      const created = await fetch(first.url + '/api/session');
      expect(created.status).toBe(200);
      const cookie = created.headers.get('set-cookie')!;
      expect(cookie).toMatch(/^sid=[0-9a-f-]{36}; Path=\/; Max-Age=1800; HttpOnly; Secure; SameSite=Lax$/);
      expect(((await created.json()) as { session: { visits: number } }).session.visits).toBe(1);

      const sid = cookie.split(';')[0];
      const again = await fetch(second.url + '/api/session', { headers: { cookie: sid } });
      expect(((await again.json()) as { session: { visits: number } }).session.visits).toBe(2);
      expect(again.headers.get('set-cookie')).toContain(sid);
      expect(await valkey(['TTL', `session:${sid.slice(4)}`])).toMatch(/^:(17\d\d|1800)\r\n$/);
    } finally {
      await Promise.all([stop(first.child), stop(second.child)]);
    }
  });

  test('the status object is cached with a 30 s TTL (cache-aside): a miss, then hits with the same object', async () => {
    await valkey(['DEL', 'demo:status']);
    const { child, url } = await startWithCache();
    try {
      const miss = (await (await fetch(url + '/api/status')).json()) as { cache: string; database: object };
      const hit = (await (await fetch(url + '/api/status')).json()) as { cache: string; database: object };
      expect(miss.cache).toBe('miss');
      expect(hit).toEqual({ ...miss, cache: 'hit' });
      expect(await valkey(['TTL', 'demo:status'])).toMatch(/^:(2\d|30)\r\n$/);
    } finally {
      await stop(child);
    }
  });

  test('a wrong token: sessions answer 503 and the status is computed without the cache', async () => {
    const wrong = tempDir('demo-credentials-');
    fs.writeFileSync(path.join(wrong, 'cache-auth-token'), 'not-the-token');
    const { child, url } = await startWithCache(wrong);
    try {
      const session = await fetch(url + '/api/session');
      expect(session.status).toBe(503);
      expect(await session.json()).toEqual({
        error: expect.stringMatching(/cache is unavailable: .*(NOAUTH|WRONGPASS)/),
      });
      expect(((await (await fetch(url + '/api/status')).json()) as { cache: string }).cache).toBe(
        'unavailable',
      );
      expect((await fetch(url + '/healthz')).status).toBe(200);
    } finally {
      await stop(child);
    }
  });

  const valkey = (args: string[]) => command(cacheServer, token, args);
});

/** Sends one command to a test cache over TLS, authenticated with `token`, and returns the raw reply. */
async function command(server: CacheServer, token: string, args: string[]): Promise<string> {
  const socket = tls.connect({ host: '127.0.0.1', port: server.port, ca: fs.readFileSync(server.caFile) });
  const encode = (a: string[]) =>
    `*${a.length}\r\n${a.map((x) => `$${Buffer.byteLength(x)}\r\n${x}\r\n`).join('')}`;
  socket.write(encode(['AUTH', token]) + encode(args));
  let data = '';
  for await (const chunk of socket) {
    data += chunk.toString();
    if (!data.startsWith('+OK\r\n')) throw new Error(`AUTH failed: ${data.trim()}`);
    if (data.length > 5 && data.endsWith('\r\n')) break;
  }
  socket.destroy();
  return data.slice(5);
}

/**
 * The AUTH token rotated while the app runs, as CachedTier's rotation does it: ElastiCache's ROTATE
 * adds the new token and drops the oldest of two (played here with ACL passwords of the default
 * user), then Secrets Manager's AWSCURRENT moves (the stub `aws` prints the new token).
 */
describe('demo app with the cache across AUTH token rotations', () => {
  const tokens = [
    'first-token-0123456789abcdef',
    'second-token-0123456789abcde',
    'third-token-0123456789abcdef',
  ];
  const SECRET_ARN = 'arn:aws:secretsmanager:eu-west-1:111111111111:secret:CacheAuthToken-AbCdEf';
  let server: CacheServer;
  /** The token the test's own admin connections use. */
  let admin = tokens[0];

  beforeAll(async () => {
    server = await startCacheServer(tokens[0]);
  });
  afterAll(async () => {
    await stop(server.child);
    removeTempDirs();
  });

  /** ROTATE: `token` becomes valid too; with `drop`, that older one stops being valid. */
  async function rotate(token: string, drop?: string) {
    await command(server, admin, ['ACL', 'SETUSER', 'default', `>${token}`, ...(drop ? [`<${drop}`] : [])]);
    admin = token;
  }

  /** The app with the first token as its systemd credential and the stub AWS CLI on its PATH. */
  async function startApp(aws: { binDir: string }, bootToken = tokens[0]) {
    const credentials = tempDir('demo-credentials-');
    fs.writeFileSync(path.join(credentials, 'cache-auth-token'), `${bootToken}\n`);
    const demo = await spawnDemo({
      PATH: `${aws.binDir}:${process.env.PATH ?? ''}`,
      AWS_REGION: 'eu-west-1',
      CACHE_HOST: '127.0.0.1',
      CACHE_PORT: String(server.port),
      CACHE_SECRET_ARN: SECRET_ARN,
      CREDENTIALS_DIRECTORY: credentials,
      NODE_EXTRA_CA_CERTS: server.caFile,
    });
    const session = async (cookie?: string) => {
      const res = await fetch(`http://127.0.0.1:${demo.port}/api/session`, {
        headers: cookie ? { cookie } : {},
      });
      const text = await res.text();
      return {
        status: res.status,
        body: JSON.parse(text),
        cookie: res.headers.get('set-cookie')?.split(';')[0],
      };
    };
    return { ...demo, session };
  }

  test('after the token it holds is rotated away, the app reads the secret once, reconnects and keeps its sessions', async () => {
    const aws = stubAwsCli();
    fs.writeFileSync(aws.secretFile, `${tokens[0]}\n`);
    const app = await startApp(aws);
    try {
      const first = await app.session();
      expect(first.status).toBe(200);
      expect(aws.calls()).toEqual([]); // the boot-time credential was enough

      // Rotation 1: both tokens work; the app is not disturbed and reads nothing.
      await rotate(tokens[1]);
      fs.writeFileSync(aws.secretFile, `${tokens[1]}\n`);
      expect((await app.session(first.cookie)).body.session.visits).toBe(2);

      // Rotation 2 drops the token the app holds; its connection goes (a failover, a restart).
      await rotate(tokens[2], tokens[0]);
      fs.writeFileSync(aws.secretFile, `${tokens[2]}\n`);
      await command(server, admin, ['CLIENT', 'KILL', 'TYPE', 'normal']);

      const after = await app.session(first.cookie);
      expect(after.status).toBe(200);
      expect(after.body.session.visits).toBe(3);
      expect((await app.session(first.cookie)).body.session.visits).toBe(4);
      expect(aws.calls()).toEqual([
        `secretsmanager get-secret-value --secret-id ${SECRET_ARN} --region eu-west-1 --query SecretString --output text`,
      ]);
      expect(app.output()).toContain('cache: the AUTH token was refused; reading the cache secret again');
      for (const token of tokens) expect(app.output()).not.toContain(token);
    } finally {
      await stop(app.child);
    }
  });

  test('a connection the cache closed under the app is replaced, without reading the secret', async () => {
    const aws = stubAwsCli();
    fs.writeFileSync(aws.secretFile, `${admin}\n`);
    const app = await startApp(aws, admin); // the token the cache takes now
    try {
      const first = await app.session();
      for (let visit = 2; visit <= 4; visit++) {
        await command(server, admin, ['CLIENT', 'KILL', 'TYPE', 'normal']);
        const next = await app.session(first.cookie);
        expect(next.status).toBe(200);
        expect(next.body.session.visits).toBe(visit);
      }
      expect(aws.calls()).toEqual([]);
    } finally {
      await stop(app.child);
    }
  });

  test('several requests refused at once share one read of the secret', async () => {
    const aws = stubAwsCli();
    fs.writeFileSync(aws.secretFile, `${admin}\n`);
    const app = await startApp(aws, 'a-token-rotated-away-long-ago');
    try {
      const results = await Promise.all([app.session(), app.session(), app.session()]);
      expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
      expect(aws.calls()).toHaveLength(1);
      expect(app.output()).not.toContain(admin);
    } finally {
      await stop(app.child);
    }
  });

  test('a secret that the cache refuses too: one read per failed request, no loop, and the app stays up', async () => {
    const aws = stubAwsCli();
    const wrong = 'not-the-token-either-0123456789';
    fs.writeFileSync(aws.secretFile, `${wrong}\n`);
    const app = await startApp(aws, 'a-token-rotated-away-long-ago');
    try {
      for (let i = 1; i <= 2; i++) {
        const res = await app.session();
        expect(res.status).toBe(503);
        expect(res.body).toEqual({
          error: expect.stringMatching(/cache is unavailable: cache: (NOAUTH|WRONGPASS)/),
        });
        expect(aws.calls()).toHaveLength(i);
      }
      expect((await fetch(`http://127.0.0.1:${app.port}/healthz`)).status).toBe(200);
      expect(app.output()).not.toContain(wrong);
    } finally {
      await stop(app.child);
    }
  });

  test('an AWS CLI that fails: the request fails with the CLI error’s first line, after one try', async () => {
    const aws = stubAwsCli(); // no secret file: the stub's `cat` fails, so `aws` exits non-zero
    const app = await startApp(aws, 'a-token-rotated-away-long-ago');
    try {
      const res = await app.session();
      expect(res.status).toBe(503);
      expect(res.body.error).toMatch(
        /^the cache is unavailable: could not read the cache secret: Command failed: aws secretsmanager get-secret-value/,
      );
      expect(aws.calls()).toHaveLength(1);
    } finally {
      await stop(app.child);
    }
  });
});
