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
  tempDir,
} from './demo-app-helpers';

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

/**
 * A real Valkey-compatible server (Debian's redis-server, which `.ci/run` installs) that, like
 * ElastiCache here, requires TLS and an AUTH token. The certificate is made for 127.0.0.1 and the
 * demo app is told to trust it.
 */
async function startCacheServer(
  token: string,
): Promise<{ child: ChildProcess; port: number; caFile: string }> {
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
  let cacheServer: { child: ChildProcess; port: number; caFile: string };
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

  /** Sends one command to the test cache over TLS, authenticated, and returns the raw reply. */
  async function valkey(args: string[]): Promise<string> {
    const socket = tls.connect({
      host: '127.0.0.1',
      port: cacheServer.port,
      ca: fs.readFileSync(cacheServer.caFile),
    });
    const encode = (a: string[]) =>
      `*${a.length}\r\n${a.map((x) => `$${Buffer.byteLength(x)}\r\n${x}\r\n`).join('')}`;
    socket.write(encode(['AUTH', token]) + encode(args));
    let data = '';
    for await (const chunk of socket) {
      data += chunk.toString();
      if (data.startsWith('+OK\r\n') && data.length > 5 && data.endsWith('\r\n')) break;
    }
    socket.destroy();
    return data.slice(5);
  }
});
