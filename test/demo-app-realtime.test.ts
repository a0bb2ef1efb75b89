import * as crypto from 'crypto';
import * as http from 'http';
import * as net from 'net';
import * as os from 'os';
import WebSocket from 'ws';
import {
  createStoreTable,
  DemoProcess,
  Dynalite,
  dynamodb,
  emulatorRequest,
  readBody,
  SigV4Secrets,
  sigV4Problem,
  spawnDemo,
  startDynalite,
  stop,
  waitFor,
} from './demo-app-helpers';

// Real servers start and answer here: a timeout that fits a busy 2-core machine, not jest's 5 s.
jest.setTimeout(60_000);

// The demo app's realtime service (realtime.js, a WebSocket server written out by hand) in its own
// process, in a conversation with an independent client implementation, `ws` (npm), and with a raw
// TCP client for what `ws` will not do (ignore pings, send unmasked frames). The store is dynalite
// behind a front that checks each DynamoDB request's SigV4 signature as AWS would. Intervals are 1 s
// here so that the file runs in seconds.

const REGION = 'eu-west-1';
const KEY_ID = 'AKIDREALTIMETEST';
const SECRET = 'realtime/test/secret+key';
const SECRETS: SigV4Secrets = { [KEY_ID]: { secretAccessKey: SECRET } };
const TABLE = 'store';

/** A message of the application's protocol, as the server sends it (JSON text). */
interface Message {
  readonly type: string;
  readonly [field: string]: unknown;
}

/** A `ws` client with every message it received, parsed, and how it closed. */
interface Client {
  readonly ws: WebSocket;
  readonly messages: Message[];
  readonly pings: Buffer[];
  closed?: { code: number; reason: string };
}

const clients: Client[] = [];
const rawClients: RawClient[] = [];

/** Connects a `ws` client to `/ws/feed` and waits for the server's hello. */
async function connect(port: number): Promise<Client> {
  const ws = new WebSocket(`ws://127.0.0.1:${port}/ws/feed`);
  const client: Client = { ws, messages: [], pings: [] };
  clients.push(client);
  // The server sends JSON text only.
  ws.on('message', (data, isBinary) =>
    client.messages.push(isBinary ? { type: 'binary' } : (JSON.parse(data.toString()) as Message)),
  );
  ws.on('ping', (payload: Buffer) => client.pings.push(payload));
  ws.on('close', (code, reason) => (client.closed = { code, reason: reason.toString() }));
  await waitFor('the hello', () => client.messages.find((m) => m.type === 'hello'));
  return client;
}

/** Closes a client (if it is open) and waits until its TCP connection is gone. */
async function disconnect(client: Client): Promise<void> {
  if (client.ws.readyState === WebSocket.OPEN) client.ws.close(1000);
  await waitFor('the client to close', () => client.ws.readyState === WebSocket.CLOSED);
}

interface Frame {
  readonly fin: boolean;
  readonly opcode: number;
  readonly masked: boolean;
  readonly payload: Buffer;
}

/**
 * A WebSocket client on a plain TCP socket: it sends the handshake it is told to, reads the answer,
 * then parses the server's frames without ever answering one (no pong, no close).
 */
class RawClient {
  readonly frames: Frame[] = [];
  status = 0;
  headers: Record<string, string> = {};
  ended = false;
  closed = false;
  private buffer = Buffer.alloc(0);

  private constructor(private readonly socket: net.Socket) {}

  /**
   * Opens a connection and sends an upgrade request for `path` with the handshake's headers, minus
   * those `changes` sets to undefined, plus the rest of `changes`; resolves when the answer's head is in.
   */
  static async connect(
    port: number,
    path = '/ws/feed',
    changes: Record<string, string | undefined> = {},
  ): Promise<RawClient> {
    const key = crypto.randomBytes(16).toString('base64');
    const headers: Record<string, string | undefined> = {
      Host: `127.0.0.1:${port}`,
      Upgrade: 'websocket',
      Connection: 'Upgrade',
      'Sec-WebSocket-Version': '13',
      'Sec-WebSocket-Key': key,
      ...changes,
    };
    const socket = net.connect(port, '127.0.0.1');
    const client = new RawClient(socket);
    rawClients.push(client);
    socket.on('end', () => (client.ended = true));
    socket.on('close', () => (client.closed = true));
    socket.on('error', () => {});
    const lines = Object.entries(headers).filter(([, value]) => value !== undefined);
    socket.write(`GET ${path} HTTP/1.1\r\n${lines.map(([n, v]) => `${n}: ${v}\r\n`).join('')}\r\n`);
    await new Promise<void>((resolve, reject) => {
      let head = Buffer.alloc(0);
      const onData = (chunk: Buffer) => {
        head = Buffer.concat([head, chunk]);
        const end = head.indexOf('\r\n\r\n');
        if (end < 0) return;
        socket.off('data', onData);
        const [statusLine, ...fields] = head.subarray(0, end).toString().split('\r\n');
        client.status = Number(statusLine.split(' ')[1]);
        for (const field of fields) {
          const colon = field.indexOf(':');
          client.headers[field.slice(0, colon).toLowerCase()] = field.slice(colon + 1).trim();
        }
        if (client.status === 101) {
          // The accept value, computed here as RFC 6455 section 4.2.2 says.
          const accept = crypto
            .createHash('sha1')
            .update(key + '258EAFA5-E914-47DA-95CA-C5AB0DC85B11')
            .digest('base64');
          expect(client.headers['sec-websocket-accept']).toBe(accept);
          socket.on('data', (data: Buffer) => client.receive(data));
          client.receive(head.subarray(end + 4));
        }
        resolve();
      };
      socket.on('data', onData);
      socket.once('close', () => reject(new Error('closed before the handshake')));
    });
    return client;
  }

  private receive(chunk: Buffer): void {
    this.buffer = Buffer.concat([this.buffer, chunk]);
    for (;;) {
      const buf = this.buffer;
      if (buf.length < 2) return;
      let length = buf[1] & 0x7f;
      let offset = 2;
      if (length === 127) throw new Error('no server frame here is 64 KiB or longer');
      if (length === 126) {
        if (buf.length < 4) return;
        length = buf.readUInt16BE(2);
        offset = 4;
      }
      if (buf.length < offset + length) return;
      this.frames.push({
        fin: (buf[0] & 0x80) !== 0,
        opcode: buf[0] & 0x0f,
        masked: (buf[1] & 0x80) !== 0,
        payload: buf.subarray(offset, offset + length),
      });
      this.buffer = buf.subarray(offset + length);
    }
  }

  /** Sends one frame: FIN set unless told, masked with a random key unless told. */
  send(opcode: number, payload: Buffer, { mask = true, fin = true } = {}): void {
    expect(payload.length).toBeLessThan(126);
    const header = Buffer.from([(fin ? 0x80 : 0) | opcode, (mask ? 0x80 : 0) | payload.length]);
    if (!mask) return void this.socket.write(Buffer.concat([header, payload]));
    const key = crypto.randomBytes(4);
    const masked = Buffer.from(payload.map((byte, i) => byte ^ key[i % 4]));
    this.socket.write(Buffer.concat([header, key, masked]));
  }

  /** The close frames received, as code and reason. */
  closes(): { code: number; reason: string }[] {
    return this.frames
      .filter((f) => f.opcode === 0x8)
      .map((f) => ({ code: f.payload.readUInt16BE(0), reason: f.payload.subarray(2).toString() }));
  }

  destroy(): void {
    this.socket.destroy();
  }
}

interface DynamoFront {
  readonly url: string;
  readonly rejected: string[];
  /** Query requests that reached dynalite. */
  queries: number;
  /** When set, the next request gets DynamoDB's internal server error (HTTP 500). */
  failNext: boolean;
  /** Requests waiting for `release`, while the front holds them. */
  held: (() => void)[] | undefined;
  readonly release: () => void;
  readonly stop: () => Promise<void>;
}

/**
 * The region's DynamoDB endpoint as one realtime server sees it: each request's signature is
 * checked as AWS would (a wrong one gets 403 and is listed in `rejected`), then dynalite answers.
 * With `hold`, requests wait until `release`.
 */
async function startDynamoFront(dynamoUrl: string, { hold = false } = {}): Promise<DynamoFront> {
  const server = http.createServer((req, res) =>
    answer(req, res).catch((e: Error) => {
      front.rejected.push(`front failed: ${e.stack}`);
      res.writeHead(500).end();
    }),
  );
  async function answer(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readBody(req);
    if (front.held) await new Promise<void>((resolve) => front.held!.push(resolve));
    const url = new URL(req.url!, front.url);
    const problem = await sigV4Problem(req, url, body, 'dynamodb', SECRETS, REGION);
    const error = (status: number, type: string, message: string) =>
      res
        .writeHead(status, { 'content-type': 'application/x-amz-json-1.0' })
        .end(JSON.stringify({ __type: `com.amazonaws.dynamodb.v20120810#${type}`, message }));
    if (problem) {
      front.rejected.push(problem);
      return void error(403, 'InvalidSignatureException', problem);
    }
    if (front.failNext) {
      front.failNext = false;
      return void error(500, 'InternalServerError', 'Internal server error');
    }
    if (req.headers['x-amz-target'] === 'DynamoDB_20120810.Query') front.queries++;
    const reply = await emulatorRequest(dynamoUrl, 'POST', url.pathname, req.headers, body);
    res.writeHead(reply.status, reply.headers).end(reply.body);
  }
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const front: DynamoFront = {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    rejected: [],
    queries: 0,
    failNext: false,
    held: hold ? [] : undefined,
    release: () => {
      const waiting = front.held ?? [];
      front.held = undefined;
      for (const resume of waiting) resume();
    },
    stop: () => {
      server.closeAllConnections();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
  fronts.push(front);
  return front;
}

const fronts: DynamoFront[] = [];

/** Writes the feed item of a thumbnail as feed.js's putFeedItem does, at `time`. */
async function putFeedItem(dynamoUrl: string, key: string, time: string): Promise<void> {
  await dynamodb(dynamoUrl, 'PutItem', {
    TableName: TABLE,
    Item: {
      pk: { S: `feed#${time.slice(0, 10)}` },
      sk: { S: `${time}#${key}` },
      key: { S: key },
      size: { N: '42' },
      lastModified: { S: time },
      region: { S: REGION },
      expiresAt: { N: String(Math.floor(Date.parse(time) / 1000) + 30 * 86400) },
    },
  });
}

const processes: DemoProcess[] = [];

/** realtime.js in its own process with `env`, on a free port (APP_PORT 0: the system picks it). */
async function startRealtime(env: Record<string, string>): Promise<DemoProcess> {
  const realtime = await spawnDemo(env, 'realtime.js');
  processes.push(realtime);
  return realtime;
}

/** The exit code of a process that is stopping. */
const exitCode = (p: DemoProcess) =>
  p.child.exitCode !== null
    ? Promise.resolve(p.child.exitCode)
    : new Promise<number | null>((resolve) => p.child.once('exit', (code) => resolve(code)));

async function healthz(port: number): Promise<{ status: number; body: Record<string, unknown> }> {
  const res = await fetch(`http://127.0.0.1:${port}/healthz`);
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
}

afterEach(async () => {
  await Promise.all(clients.splice(0).map(disconnect));
  for (const raw of rawClients.splice(0)) raw.destroy();
  // Every request a server sent was signed as AWS requires.
  expect(fronts.flatMap((f) => f.rejected.splice(0))).toEqual([]);
});

/** Stops every realtime server still running, then every front. */
async function stopAll(): Promise<void> {
  await Promise.all(
    processes
      .filter((p) => p.child.exitCode === null && p.child.signalCode === null)
      .map((p) => stop(p.child, 'SIGKILL')),
  );
  await Promise.all(fronts.splice(0).map((f) => f.stop()));
}

afterAll(stopAll);

describe('demo realtime service (WebSocket) with the store', () => {
  let dynamo: Dynalite;
  /** The server most tests share: the store, polls and pings every second. */
  let realtime: DemoProcess;
  const oldItem = 'media/thumbnails/there-before.png';

  /** A realtime server with the store, its DynamoDB requests through `front`. */
  const withStore = (front: DynamoFront, pingSeconds: string) =>
    startRealtime({
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: KEY_ID,
      AWS_SECRET_ACCESS_KEY: SECRET,
      AWS_ENDPOINT_URL_DYNAMODB: front.url,
      STORE_TABLE_NAME: TABLE,
      REALTIME_POLL_SECONDS: '1',
      REALTIME_PING_SECONDS: pingSeconds,
    });

  beforeAll(async () => {
    dynamo = await startDynalite();
    await createStoreTable(dynamo.url, TABLE);
    await putFeedItem(dynamo.url, oldItem, new Date(Date.now() - 60_000).toISOString());
    realtime = await withStore(await startDynamoFront(dynamo.url), '1');
  });

  afterAll(async () => {
    await stopAll();
    await dynamo.stop();
  });

  test('the handshake: `ws` connects to /ws/feed and gets the hello, with the store', async () => {
    const client = await connect(realtime.port);
    expect(client.messages).toEqual([{ type: 'hello', server: os.hostname(), store: true }]);
    expect(client.ws.protocol).toBe('');
    // `ws` offers permessage-deflate; the server takes no extension.
    expect(client.ws.extensions).toBe('');
  });

  test('the conversation: echo comes back, invalid JSON gets an error and the connection stays open', async () => {
    const client = await connect(realtime.port);
    client.ws.send(JSON.stringify({ type: 'echo', text: 'héllo, wörld ✓' }));
    await waitFor('the echo', () => client.messages.length === 2);
    expect(client.messages[1]).toEqual({ type: 'echo', text: 'héllo, wörld ✓' });
    client.ws.send('{"type": "echo", "text": ');
    await waitFor('the error', () => client.messages.length === 3);
    expect(client.messages[2]).toEqual({ type: 'error', message: expect.stringMatching(/^not JSON: /) });
    expect(client.ws.readyState).toBe(WebSocket.OPEN);
    client.ws.send(JSON.stringify({ type: 'echo', text: 'still here' }));
    await waitFor('the second echo', () => client.messages.length === 4);
    expect(client.messages[3]).toEqual({ type: 'echo', text: 'still here' });
    expect(client.closed).toBeUndefined();
  });

  test('a feed item written after connecting reaches every connection, from one poll per process; items there before do not, and a failed poll is retried', async () => {
    // A server of its own, whose first poll waits at the front until three clients are connected.
    const front = await startDynamoFront(dynamo.url, { hold: true });
    const server = await withStore(front, '30');
    const all = [await connect(server.port), await connect(server.port), await connect(server.port)];
    await waitFor('the first poll to reach the front', () => front.held!.length === 1);
    front.release();
    await waitFor('the first poll', () =>
      /feed: watching the store, 1 items there already/.test(server.output()),
    );
    const queriesBefore = front.queries;
    const started = Date.now();
    const time = new Date().toISOString();
    await putFeedItem(dynamo.url, 'media/thumbnails/new cat.png', time);
    // The next poll fails; it is logged, and the one after it (a second later) reads the store again.
    front.failNext = true;
    await waitFor('the failed poll', () =>
      /feed poll failed, trying again in 1 s: DynamoDB Query: HTTP 500 InternalServerError/.test(
        server.output(),
      ),
    );
    for (const client of all) {
      const message = await waitFor('the feed item', () =>
        client.messages.find((m) => m.type === 'feed-item'),
      );
      expect(message).toEqual({
        type: 'feed-item',
        item: {
          url: '/media/thumbnails/new%20cat.png',
          key: 'media/thumbnails/new cat.png',
          size: 42,
          lastModified: time,
          region: REGION,
        },
      });
    }
    // Within a few poll intervals (here the failed one and the next).
    expect(Date.now() - started).toBeLessThan(4000);
    // A poll reads today's and yesterday's partitions, once whatever the number of connections.
    const polls = Math.ceil((Date.now() - started) / 1000) + 1;
    expect(front.queries - queriesBefore).toBeLessThanOrEqual(2 * polls);
    // After the next poll (done when the one after it starts), the item was still sent once only,
    // and the one that was there before the first poll never was.
    const queriesAfter = front.queries;
    await waitFor('the next poll', () => front.queries >= queriesAfter + 3, 5000);
    for (const client of all) {
      expect(client.messages.filter((m) => m.type === 'feed-item')).toHaveLength(1);
      expect(JSON.stringify(client.messages)).not.toContain(oldItem);
    }
  });

  test('keepalive: `ws` answers the server pings and stays connected; a client that never answers is closed with 1001', async () => {
    const [client, silent] = await Promise.all([connect(realtime.port), RawClient.connect(realtime.port)]);
    expect(silent.status).toBe(101);
    const pings = () => silent.frames.filter((f) => f.opcode === 0x9);
    // Two pings unanswered, then at the next tick the close and the end of the TCP connection.
    await waitFor('the silent client to be closed', () => silent.closed, 6000);
    expect(pings().length).toBeGreaterThanOrEqual(2);
    expect(silent.closes()).toEqual([{ code: 1001, reason: 'no pong' }]);
    expect(silent.frames.at(-1)!.opcode).toBe(0x8);
    expect(silent.frames.every((f) => f.fin && !f.masked)).toBe(true);
    // `ws` got as many pings in the same time (more than two intervals), answered each, and is open.
    await waitFor('three pings', () => client.pings.length >= 3, 3000);
    expect(client.ws.readyState).toBe(WebSocket.OPEN);
    expect(client.closed).toBeUndefined();
    expect((await healthz(realtime.port)).body.connections).toBeGreaterThanOrEqual(1);
  });

  test('bad handshakes get 400 or 426, a plain GET of /ws/feed 426, other paths 404; /healthz counts the connections', async () => {
    const noKey = await RawClient.connect(realtime.port, '/ws/feed', { 'Sec-WebSocket-Key': undefined });
    expect(noKey.status).toBe(400);
    const shortKey = await RawClient.connect(realtime.port, '/ws/feed', {
      'Sec-WebSocket-Key': crypto.randomBytes(8).toString('base64'),
    });
    expect(shortKey.status).toBe(400);
    const notWebSocket = await RawClient.connect(realtime.port, '/ws/feed', { Upgrade: 'h2c' });
    expect(notWebSocket.status).toBe(400);
    const noConnection = await RawClient.connect(realtime.port, '/ws/feed', { Connection: undefined });
    expect(noConnection.status).toBe(400);
    const version8 = await RawClient.connect(realtime.port, '/ws/feed', { 'Sec-WebSocket-Version': '8' });
    expect(version8.status).toBe(426);
    expect(version8.headers['sec-websocket-version']).toBe('13');
    const elsewhere = await RawClient.connect(realtime.port, '/ws/other');
    expect(elsewhere.status).toBe(404);
    // Refused upgrades close their connection (the one Node took for a plain request may stay).
    for (const refused of [noKey, shortKey, notWebSocket, version8, elsewhere]) {
      await waitFor('the refused connection to be closed', () => refused.closed);
    }
    noConnection.destroy();

    const plain = await fetch(`http://127.0.0.1:${realtime.port}/ws/feed`);
    expect(plain.status).toBe(426);
    expect(plain.headers.get('upgrade')).toBe('websocket');
    expect((await fetch(`http://127.0.0.1:${realtime.port}/nothing-here`)).status).toBe(404);

    const before = (await healthz(realtime.port)).body.connections as number;
    const two = [await connect(realtime.port), await connect(realtime.port)];
    expect(await healthz(realtime.port)).toEqual({
      status: 200,
      body: { ok: true, connections: before + 2 },
    });
    await Promise.all(two.map(disconnect));
    await waitFor(
      'the count to go down',
      async () => (await healthz(realtime.port)).body.connections === before,
    );
  });

  test('fragments are reassembled and echoed; messages over 64 KiB get 1009; an unmasked frame gets 1002', async () => {
    const client = await connect(realtime.port);
    client.ws.send('{"type":"echo",', { fin: false });
    client.ws.send('"text":"in three', { fin: false });
    client.ws.send(' fragments"}', { fin: true });
    await waitFor('the echo', () => client.messages.length === 2);
    expect(client.messages[1]).toEqual({ type: 'echo', text: 'in three fragments' });

    // The limit holds for a whole message, not per frame.
    const big = await connect(realtime.port);
    big.ws.send('x'.repeat(40 * 1024), { fin: false });
    big.ws.send('x'.repeat(40 * 1024), { fin: true });
    await waitFor('the close', () => big.closed);
    expect(big.closed).toEqual({ code: 1009, reason: 'messages are limited to 65536 bytes' });
    expect(client.ws.readyState).toBe(WebSocket.OPEN);

    const raw = await RawClient.connect(realtime.port);
    expect(raw.status).toBe(101);
    raw.send(0x1, Buffer.from('{"type":"echo","text":"unmasked"}'), { mask: false });
    await waitFor('the TCP connection to end', () => raw.ended);
    expect(raw.closes()).toEqual([{ code: 1002, reason: 'client frames must be masked' }]);
    // The hello, then the close (and maybe a ping between them).
    expect(raw.frames.map((f) => f.opcode).filter((opcode) => opcode !== 0x9)).toEqual([0x1, 0x8]);
    raw.destroy();
  });
});

describe('demo realtime service draining on SIGTERM', () => {
  test('connections get 1001, a new upgrade gets 503, and the process exits 0 once they are closed (at most REALTIME_DRAIN_SECONDS)', async () => {
    // Without the store: the hello says so.
    const realtime = await startRealtime({});
    const client = await connect(realtime.port);
    expect(client.messages).toEqual([{ type: 'hello', server: os.hostname(), store: false }]);
    const slow = await RawClient.connect(realtime.port);
    const sent = Date.now();
    realtime.child.kill('SIGTERM');
    await waitFor('the close', () => client.closed);
    expect(client.closed).toEqual({ code: 1001, reason: 'server shutting down' });
    await waitFor('the close frame', () => slow.closes().length === 1);
    expect(slow.closes()).toEqual([{ code: 1001, reason: 'server shutting down' }]);
    // `slow` has not answered its close yet: the server still drains, and refuses new connections.
    const late = await RawClient.connect(realtime.port);
    expect(late.status).toBe(503);
    expect(await healthz(realtime.port)).toEqual({
      status: 503,
      body: { ok: false, draining: true, connections: 1 },
    });
    expect(realtime.child.exitCode).toBeNull();
    const close = Buffer.alloc(2);
    close.writeUInt16BE(1001);
    slow.send(0x8, close);
    await waitFor('the server to end the connection', () => slow.ended);
    expect(await exitCode(realtime)).toBe(0);
    // Far sooner than the default 20 s of draining.
    expect(Date.now() - sent).toBeLessThan(5000);
    expect(realtime.output()).toMatch(/SIGTERM: closing 2 connections/);
    expect(realtime.output()).toMatch(/realtime stopped: every connection closed/);

    // A client that never answers the close is dropped after REALTIME_DRAIN_SECONDS.
    const capped = await startRealtime({ REALTIME_DRAIN_SECONDS: '1' });
    const stuck = await RawClient.connect(capped.port);
    const signalled = Date.now();
    capped.child.kill('SIGTERM');
    expect(await exitCode(capped)).toBe(0);
    expect(Date.now() - signalled).toBeGreaterThanOrEqual(1000);
    expect(capped.output()).toMatch(/realtime stopped: 1 connections left after 1 s/);
    await waitFor('the stuck connection to be closed', () => stuck.closed);
    expect(stuck.closes()).toEqual([{ code: 1001, reason: 'server shutting down' }]);
  });
});
