import { ChildProcess, spawn } from 'child_process';
import * as net from 'net';
import * as path from 'path';

interface DemoResponse {
  readonly database: { configured: boolean; reachable: boolean };
}

const SERVER = path.join(__dirname, '..', 'assets', 'demo-app', 'server.js');

/** Starts the demo app on a free port with the given environment and waits until it listens. */
async function startDemo(env: Record<string, string>): Promise<{ child: ChildProcess; url: string }> {
  const child = spawn(process.execPath, [SERVER], {
    env: { PATH: process.env.PATH ?? '', APP_PORT: '0', ...env },
  });
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      const match = /listening on port (\d+)/.exec(chunk.toString());
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`demo app exited with ${code}`)));
  });
  return { child, url: `http://127.0.0.1:${port}` };
}

async function stop(child: ChildProcess): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill('SIGTERM');
  await exited;
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

  test('answers / and /healthz and reports a reachable database', async () => {
    const { child, url } = await startDemo({
      DATABASE_HOST: '127.0.0.1',
      DATABASE_PORT: String(databasePort),
    });
    try {
      for (const route of ['/', '/healthz', '/api/status']) {
        const res = await fetch(url + route);
        expect(res.status).toBe(200);
        expect(await res.json()).toEqual({
          app: 'cdk-scale-stages demo',
          database: { configured: true, reachable: true },
        });
      }
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
      expect(((await res.json()) as DemoResponse).database).toEqual({ configured: true, reachable: false });
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
      });
    } finally {
      await stop(child);
    }
  });
});
