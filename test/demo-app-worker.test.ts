import { ChildProcess, spawn } from 'child_process';
import * as crypto from 'crypto';
import * as http from 'http';
import { AddressInfo } from 'net';
import { createRequire } from 'module';
import * as path from 'path';
import * as zlib from 'zlib';
import {
  amzDate,
  createStoreTable,
  demoAppDir,
  DemoProcess,
  Dynalite,
  dynamodb,
  emulatorRequest,
  readBody,
  SigV4Secrets,
  sigV4Problem,
  sigV4Signer,
  sleep,
  spawnDemo,
  startDynalite,
  stop,
  waitFor,
} from './demo-app-helpers';

// Real servers start and answer here: a timeout that fits a busy 2-core machine, not jest's 5 s.
jest.setTimeout(60_000);

// Stage 1m's side of the demo app against a real SQS and S3 emulator: fauxqs (npm), in memory,
// one per file. What fauxqs 1.9.2 does not do, the "front" below does in front of it, as AWS
// would: it checks every request's SigV4 signature with AWS's own signer (@smithy/signature-v4),
// accepts browser POST uploads only after checking the POST policy's signature and conditions,
// sends S3's event notifications to the queue, and plays Auto Scaling. fauxqs 2.x (which has
// POST uploads and keeps Cache-Control) needs Node 22.5 (node:sqlite); the project runs on Node 20.

const REGION = 'eu-west-1';
const KEY_ID = 'AKIDWORKERTEST';
const SECRET = 'worker/test/secret+key';
const IMDS_KEY_ID = 'ASIAIMDSTEST';
const IMDS_SECRET = 'imds/role/secret';
const IMDS_TOKEN = 'session-token-from-imds';
const INSTANCE_ID = 'i-0123456789abcdef0';
const MEDIA = 'media-bucket';
const WEB = 'web-bucket';

interface Png {
  decode(buf: Buffer): Image;
  encode(image: Image): Buffer;
  thumbnail(image: Image, maxSide: number): Image;
  PngUnsupported: new (message: string) => Error;
}
interface Image {
  width: number;
  height: number;
  data: Buffer;
}
/** png.js as the worker runs it (comments stripped). */
const png = createRequire(__filename)(path.join(demoAppDir(), 'png.js')) as Png;

const SECRETS: SigV4Secrets = {
  [KEY_ID]: { secretAccessKey: SECRET },
  [IMDS_KEY_ID]: { secretAccessKey: IMDS_SECRET, sessionToken: IMDS_TOKEN },
};

const signer = (accessKeyId: string, service: string) => sigV4Signer(SECRETS, REGION, accessKeyId, service);

/** A request the front received, after its signature was checked. */
interface Seen {
  readonly service: string;
  readonly method: string;
  readonly path: string;
  readonly headers: http.IncomingHttpHeaders;
  readonly body: Buffer;
  readonly action: string;
  readonly at: number;
}

/**
 * What the app calls "AWS": every SQS, S3 and Auto Scaling request comes here. It checks the
 * signature (re-signing the request with AWS's signer must give the same Authorization header, for
 * the service the request is for, in REGION), records the request, answers Auto Scaling itself and
 * passes the rest to fauxqs. POST uploads are checked against their policy, stored with PutObject
 * and announced on the bucket's notification queue in S3's event shape.
 */
class Front {
  readonly seen: Seen[] = [];
  readonly rejected: string[] = [];
  readonly notifications = new Map<string, string>();
  readonly failGroups = new Set<string>();
  private readonly delays = new Map<string, number>();
  private server!: http.Server;
  url = '';

  /** When set, the next DynamoDB request gets an internal server error (HTTP 500), as a failed call. */
  failNextDynamo = false;

  constructor(
    private readonly emulator: string,
    private readonly dynamo: string,
  ) {}

  async start(): Promise<void> {
    this.server = http.createServer((req, res) =>
      this.handle(req, res).catch((e: Error) => {
        this.rejected.push(`front failed: ${e.stack}`);
        res.writeHead(500).end();
      }),
    );
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  stop(): Promise<void> {
    this.server.closeAllConnections();
    return new Promise((resolve) => this.server.close(() => resolve()));
  }

  /** Holds the answer to the next request for `path` for `ms` (or until its client goes away). */
  delayOnce(path: string, ms: number): void {
    this.delays.set(path, ms);
  }

  calls(action: string): Seen[] {
    return this.seen.filter((s) => s.action === action);
  }

  private async handle(req: http.IncomingMessage, res: http.ServerResponse): Promise<void> {
    const body = await readBody(req);
    const url = new URL(req.url!, this.url);
    const contentType = req.headers['content-type'] ?? '';
    if (req.method === 'POST' && contentType.startsWith('multipart/form-data')) {
      return this.postUpload(url, contentType, body, res);
    }
    const target = String(req.headers['x-amz-target'] ?? '');
    const service = target.startsWith('DynamoDB_20120810.')
      ? 'dynamodb'
      : target
        ? 'sqs'
        : contentType.startsWith('application/x-www-form-urlencoded')
          ? 'autoscaling'
          : 's3';
    const problem = await sigV4Problem(req, url, body, service, SECRETS, REGION);
    if (problem) {
      this.rejected.push(`${req.method} ${url.pathname}: ${problem}`);
      const xml = `<Error><Code>SignatureDoesNotMatch</Code><Message>${problem}</Message></Error>`;
      return void res.writeHead(403, { 'content-type': 'application/xml' }).end(xml);
    }
    const action =
      service === 'sqs' || service === 'dynamodb'
        ? target.replace(/^(AmazonSQS|DynamoDB_20120810)\./, '')
        : service === 'autoscaling'
          ? String(new URLSearchParams(body.toString()).get('Action'))
          : `${req.method} ${decodeURIComponent(url.pathname)}`;
    this.seen.push({
      service,
      method: req.method!,
      path: url.pathname,
      headers: req.headers,
      body,
      action,
      at: Date.now(),
    });
    if (service === 'autoscaling') return this.autoScaling(body, res);
    if (service === 'dynamodb' && this.failNextDynamo) {
      this.failNextDynamo = false;
      const error = {
        __type: 'com.amazonaws.dynamodb.v20120810#InternalServerError',
        message: 'Internal server error',
      };
      return void res
        .writeHead(500, { 'content-type': 'application/x-amz-json-1.0' })
        .end(JSON.stringify(error));
    }
    const delay = this.delays.get(decodeURIComponent(url.pathname));
    if (delay) {
      this.delays.delete(decodeURIComponent(url.pathname));
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, delay);
        res.once('close', () => (clearTimeout(timer), resolve()));
      });
      if (res.destroyed) return;
    }
    const answer = await emulatorRequest(
      service === 'dynamodb' ? this.dynamo : this.emulator,
      req.method!,
      url.pathname + url.search,
      req.headers,
      body,
    );
    res.writeHead(answer.status, answer.headers).end(answer.body);
  }

  private autoScaling(body: Buffer, res: http.ServerResponse): void {
    const group = new URLSearchParams(body.toString()).get('AutoScalingGroupName')!;
    if (this.failGroups.has(group)) {
      const xml = `<ErrorResponse><Error><Type>Sender</Type><Code>ValidationError</Code><Message>AutoScalingGroup name not found - ${group}</Message></Error></ErrorResponse>`;
      return void res.writeHead(400, { 'content-type': 'text/xml' }).end(xml);
    }
    const xml =
      '<SetInstanceProtectionResponse xmlns="http://autoscaling.amazonaws.com/doc/2011-01-01/"><SetInstanceProtectionResult/><ResponseMetadata><RequestId>1</RequestId></ResponseMetadata></SetInstanceProtectionResponse>';
    res.writeHead(200, { 'content-type': 'text/xml' }).end(xml);
  }

  /**
   * A browser upload: checks it as S3 does ("Browser-Based Uploads Using POST (AWS Signature
   * Version 4)" and "POST Policy", S3 API Reference), then stores the file and notifies.
   */
  private async postUpload(
    url: URL,
    contentType: string,
    body: Buffer,
    res: http.ServerResponse,
  ): Promise<void> {
    const form = await new Response(body, { headers: { 'content-type': contentType } }).formData();
    const fields = new Map<string, string>();
    let file: Buffer | undefined;
    for (const [name, value] of form) {
      if (name === 'file') file = Buffer.from(await (value as Blob).arrayBuffer());
      else fields.set(name.toLowerCase(), String(value));
    }
    const bucket = url.pathname.split('/')[1];
    const problem = file ? await this.checkPolicy(bucket, fields, file.length) : 'no file';
    if (problem) {
      this.rejected.push(`POST ${bucket}: ${problem}`);
      return void res
        .writeHead(403, { 'content-type': 'application/xml' })
        .end(`<Error><Code>AccessDenied</Code><Message>${problem}</Message></Error>`);
    }
    const key = fields.get('key')!;
    const keyPath = `/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`;
    await emulatorRequest(
      this.emulator,
      'PUT',
      keyPath,
      { 'content-type': fields.get('content-type')! },
      file!,
    );
    this.seen.push({
      service: 's3',
      method: 'POST',
      path: keyPath,
      headers: {},
      body: file!,
      action: `POST /${bucket}/${key}`,
      at: Date.now(),
    });
    const queueUrl = this.notifications.get(bucket);
    if (queueUrl) await sendMessage(this.emulator, queueUrl, s3Event(bucket, key, file!.length));
    res.writeHead(204).end();
  }

  private async checkPolicy(
    bucket: string,
    fields: Map<string, string>,
    size: number,
  ): Promise<string | undefined> {
    const policy = fields.get('policy');
    const credential = /^([^/]+)\/(\d{8})\/([^/]+)\/s3\/aws4_request$/.exec(
      fields.get('x-amz-credential') ?? '',
    );
    if (!policy || !credential || fields.get('x-amz-algorithm') !== 'AWS4-HMAC-SHA256')
      return 'missing signature fields';
    const [, keyId, day, region] = credential;
    if (!SECRETS[keyId] || region !== REGION) return `credential ${fields.get('x-amz-credential')}`;
    const date = fields.get('x-amz-date') ?? '';
    if (!date.startsWith(day)) return 'x-amz-date does not match the credential';
    const expected = await signer(keyId, 's3').sign(policy, { signingDate: amzDate(date) });
    if (fields.get('x-amz-signature') !== expected) return 'the policy signature does not match';
    const document = JSON.parse(Buffer.from(policy, 'base64').toString()) as {
      expiration: string;
      conditions: Array<Record<string, string> | Array<string | number>>;
    };
    if (!(Date.parse(document.expiration) > Date.now())) return 'the policy expired';
    const value = (name: string) => (name === 'bucket' ? bucket : fields.get(name.toLowerCase()));
    const covered = new Set<string>();
    for (const condition of document.conditions) {
      if (Array.isArray(condition)) {
        const [op, a, b] = condition;
        if (op === 'content-length-range') {
          if (size < Number(a) || size > Number(b)) return `size ${size} is outside ${a}..${b}`;
          continue;
        }
        const name = String(a).replace(/^\$/, '').toLowerCase();
        covered.add(name);
        const actual = value(name) ?? '';
        if (op === 'eq' ? actual !== b : op === 'starts-with' ? !actual.startsWith(String(b)) : true) {
          return `${name} '${actual}' fails ${op} '${b}'`;
        }
      } else {
        const [name, expectedValue] = Object.entries(condition)[0];
        covered.add(name.toLowerCase());
        if (value(name) !== expectedValue) return `${name} '${value(name)}' is not '${expectedValue}'`;
      }
    }
    for (const name of fields.keys()) {
      if (
        !['policy', 'x-amz-signature'].includes(name) &&
        !name.startsWith('x-ignore-') &&
        !covered.has(name)
      ) {
        return `the policy has no condition for ${name}`;
      }
    }
    return undefined;
  }
}

/** S3's event notification for a new object: the key URL-encoded, a space as '+'. */
function s3Event(bucket: string, key: string, size: number): string {
  const encoded = key
    .split('/')
    .map((part) => new URLSearchParams({ k: part }).toString().slice(2))
    .join('/');
  return JSON.stringify({
    Records: [
      {
        eventVersion: '2.1',
        eventSource: 'aws:s3',
        awsRegion: REGION,
        eventTime: new Date().toISOString(),
        eventName: 'ObjectCreated:Post',
        s3: { s3SchemaVersion: '1.0', bucket: { name: bucket }, object: { key: encoded, size } },
      },
    ],
  });
}

async function sqs(base: string, action: string, input: object): Promise<Record<string, unknown>> {
  const res = await emulatorRequest(
    base,
    'POST',
    '/',
    { 'content-type': 'application/x-amz-json-1.0', 'x-amz-target': `AmazonSQS.${action}` },
    JSON.stringify(input),
  );
  if (res.status !== 200) throw new Error(`${action}: ${res.status} ${res.body}`);
  return JSON.parse(res.body.toString() || '{}') as Record<string, unknown>;
}

const sendMessage = (base: string, queueUrl: string, body: string) =>
  sqs(base, 'SendMessage', { QueueUrl: queueUrl, MessageBody: body });

interface Fauxqs {
  readonly child: ChildProcess;
  readonly url: string;
}

/** fauxqs in its own process (it is an ES module), with the two buckets of the app. */
async function startFauxqs(): Promise<Fauxqs> {
  const code = [
    "import { startFauxqs } from 'fauxqs';",
    'const server = await startFauxqs({ port: 0, logger: false });',
    `for (const bucket of ['${MEDIA}', '${WEB}']) server.createBucket(bucket);`,
    "console.log('fauxqs listening on port ' + server.port);",
  ].join('\n');
  const child = spawn(process.execPath, ['--input-type=module', '-e', code], {
    cwd: path.join(__dirname, '..'),
  });
  let output = '';
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      const match = /listening on port (\d+)/.exec((output += chunk.toString()));
      if (match) resolve(Number(match[1]));
    });
    child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
    child.once('exit', (code) => reject(new Error(`fauxqs exited with ${code}: ${output}`)));
  });
  return { child, url: `http://127.0.0.1:${port}` };
}

interface Imds {
  readonly url: string;
  readonly credentialFetches: () => number;
  readonly stop: () => Promise<void>;
}

/** The instance metadata service, IMDSv2 only: a PUT for a token, then GETs that carry it. */
async function startImds(): Promise<Imds> {
  const token = crypto.randomUUID();
  let fetches = 0;
  const server = http.createServer((req, res) => {
    if (
      req.method === 'PUT' &&
      req.url === '/latest/api/token' &&
      req.headers['x-aws-ec2-metadata-token-ttl-seconds']
    ) {
      return void res.end(token);
    }
    if (req.headers['x-aws-ec2-metadata-token'] !== token) return void res.writeHead(401).end();
    if (req.url === '/latest/meta-data/instance-id') return void res.end(INSTANCE_ID);
    if (req.url === '/latest/meta-data/iam/security-credentials/') return void res.end('worker-role');
    if (req.url === '/latest/meta-data/iam/security-credentials/worker-role') {
      fetches++;
      const expiration = new Date(Date.now() + 3600 * 1000).toISOString().replace(/\.\d+/, '');
      return void res.end(
        JSON.stringify({
          Code: 'Success',
          Type: 'AWS-HMAC',
          AccessKeyId: IMDS_KEY_ID,
          SecretAccessKey: IMDS_SECRET,
          Token: IMDS_TOKEN,
          Expiration: expiration,
        }),
      );
    }
    res.writeHead(404).end();
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    credentialFetches: () => fetches,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

// ---------------------------------------------------------------------------------------------
// PNG files made here, independently of png.js: every filter type, colour type and bit depth.

function crc32(buf: Buffer): number {
  return zlib.crc32(buf);
}

function chunk(type: string, data: Buffer): Buffer {
  const length = Buffer.alloc(4);
  length.writeUInt32BE(data.length);
  const crc = Buffer.alloc(4);
  crc.writeUInt32BE(crc32(Buffer.concat([Buffer.from(type), data])));
  return Buffer.concat([length, Buffer.from(type), data, crc]);
}

/** Applies PNG filter `type` to one row of bytes, given the previous (unfiltered) row. */
function filterRow(type: number, row: Buffer, prior: Buffer | undefined, bpp: number): Buffer {
  const out = Buffer.alloc(row.length);
  for (let i = 0; i < row.length; i++) {
    const a = i >= bpp ? row[i - bpp] : 0;
    const b = prior ? prior[i] : 0;
    const c = prior && i >= bpp ? prior[i - bpp] : 0;
    let predictor = 0;
    if (type === 1) predictor = a;
    if (type === 2) predictor = b;
    if (type === 3) predictor = Math.floor((a + b) / 2);
    if (type === 4) {
      const p = a + b - c;
      const [pa, pb, pc] = [Math.abs(p - a), Math.abs(p - b), Math.abs(p - c)];
      predictor = pa <= pb && pa <= pc ? a : pb <= pc ? b : c;
    }
    out[i] = (row[i] - predictor + 256) % 256;
  }
  return out;
}

interface TestPng {
  width: number;
  height: number;
  colorType: number;
  depth: number;
  /** Unfiltered rows of packed samples. */
  rows: Buffer[];
  filters: number[];
  palette?: Buffer;
  transparency?: Buffer;
  interlace?: number;
}

function makePng(p: TestPng): Buffer {
  const channels = { 0: 1, 2: 3, 3: 1, 4: 2, 6: 4 }[p.colorType]!;
  const bpp = Math.max(1, (channels * p.depth) / 8);
  const header = Buffer.alloc(13);
  header.writeUInt32BE(p.width, 0);
  header.writeUInt32BE(p.height, 4);
  header.set([p.depth, p.colorType, 0, 0, p.interlace ?? 0], 8);
  const filtered = p.rows.map((row, y) =>
    Buffer.concat([
      Buffer.from([p.filters[y % p.filters.length]]),
      filterRow(p.filters[y % p.filters.length], row, p.rows[y - 1], bpp),
    ]),
  );
  // Two IDAT chunks: decoders must join them.
  const data = zlib.deflateSync(Buffer.concat(filtered));
  const half = Math.floor(data.length / 2);
  return Buffer.concat([
    Buffer.from([137, 80, 78, 71, 13, 10, 26, 10]),
    chunk('IHDR', header),
    ...(p.palette ? [chunk('PLTE', p.palette)] : []),
    ...(p.transparency ? [chunk('tRNS', p.transparency)] : []),
    chunk('IDAT', data.subarray(0, half)),
    chunk('tEXt', Buffer.from('Comment\0ignored')),
    chunk('IDAT', data.subarray(half)),
    chunk('IEND', Buffer.alloc(0)),
  ]);
}

/** An RGB image of `width` x `height` whose pixel colour comes from `color(x, y)`. */
function rgbPng(
  width: number,
  height: number,
  color: (x: number, y: number) => number[],
  filters = [0, 1, 2, 3, 4],
) {
  const rows = Array.from({ length: height }, (_, y) =>
    Buffer.from(Array.from({ length: width }, (_, x) => color(x, y)).flat()),
  );
  return makePng({ width, height, colorType: 2, depth: 8, rows, filters });
}

/** Four quadrants: red, green / blue, white. */
const quadrant = (width: number, height: number) => (x: number, y: number) =>
  y < height / 2
    ? x < width / 2
      ? [255, 0, 0]
      : [0, 255, 0]
    : x < width / 2
      ? [0, 0, 255]
      : [255, 255, 255];

const pixel = (image: Image, x: number, y: number) => [
  ...image.data.subarray((y * image.width + x) * 4, (y * image.width + x) * 4 + 4),
];

// ---------------------------------------------------------------------------------------------

describe('demo worker and uploads (stage 1m) against an SQS and S3 emulator and a DynamoDB server', () => {
  let emulator: Fauxqs;
  let dynamo: Dynalite;
  let front: Front;
  let imds: Imds;
  const running: DemoProcess[] = [];

  beforeAll(async () => {
    emulator = await startFauxqs();
    dynamo = await startDynalite();
    front = new Front(emulator.url, dynamo.url);
    await front.start();
    imds = await startImds();
  });
  afterAll(async () => {
    await Promise.all(
      running
        .filter((p) => p.child.exitCode === null && p.child.signalCode === null)
        .map((p) => stop(p.child, 'SIGKILL')),
    );
    await front.stop();
    await imds.stop();
    await stop(emulator.child);
    await dynamo.stop();
  });

  let queueCount = 0;
  /** A new queue for one test (the emulator is shared): its URL and name. */
  async function createQueue(
    attributes: Record<string, string> = {},
  ): Promise<{ url: string; name: string }> {
    const name = `jobs-${++queueCount}`;
    const out = await sqs(emulator.url, 'CreateQueue', { QueueName: name, Attributes: attributes });
    return { url: String(out.QueueUrl), name };
  }

  /** Messages of a queue: ready (visible), delayed and in flight. */
  async function queueState(name: string): Promise<{ ready: number; inflight: number; receives: number[] }> {
    const res = await emulatorRequest(emulator.url, 'GET', `/_fauxqs/queues/${name}`, {});
    const { messages } = JSON.parse(res.body.toString()) as {
      messages: {
        ready: { approximateReceiveCount: number }[];
        delayed: unknown[];
        inflight: { message: { approximateReceiveCount: number } }[];
      };
    };
    return {
      ready: messages.ready.length + messages.delayed.length,
      inflight: messages.inflight.length,
      receives: [
        ...messages.ready.map((m) => m.approximateReceiveCount),
        ...messages.inflight.map((m) => m.message.approximateReceiveCount),
      ],
    };
  }

  const isEmpty = async (name: string) => {
    const state = await queueState(name);
    return state.ready === 0 && state.inflight === 0;
  };

  async function getObject(bucket: string, key: string) {
    const res = await emulatorRequest(
      emulator.url,
      'GET',
      `/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`,
      {},
    );
    return res.status === 200 ? res : undefined;
  }

  async function putObject(bucket: string, key: string, body: Buffer | string, contentType: string) {
    const res = await emulatorRequest(
      emulator.url,
      'PUT',
      `/${bucket}/${key.split('/').map(encodeURIComponent).join('/')}`,
      { 'content-type': contentType },
      body,
    );
    expect(res.status).toBe(200);
  }

  /** The environment of a worker (or the web server) on this machine's "AWS". */
  function awsEnv(extra: Record<string, string> = {}): Record<string, string> {
    return {
      AWS_REGION: REGION,
      AWS_ACCESS_KEY_ID: KEY_ID,
      AWS_SECRET_ACCESS_KEY: SECRET,
      AWS_ENDPOINT_URL_SQS: front.url,
      AWS_ENDPOINT_URL_S3: front.url,
      AWS_ENDPOINT_URL_AUTO_SCALING: front.url,
      AWS_ENDPOINT_URL_DYNAMODB: front.url,
      AWS_EC2_METADATA_SERVICE_ENDPOINT: imds.url,
      MEDIA_BUCKET: MEDIA,
      WEB_BUCKET: WEB,
      JOB_WAIT_SECONDS: '1',
      ...extra,
    };
  }

  async function startWorker(queueUrl: string, extra: Record<string, string> = {}): Promise<DemoProcess> {
    const worker = await spawnDemo(awsEnv({ JOB_QUEUE_URL: queueUrl, ...extra }), 'worker.js');
    running.push(worker);
    return worker;
  }

  /** Stops a worker with SIGTERM and returns its exit code. */
  async function terminate(worker: DemoProcess): Promise<number | null> {
    const exited = new Promise<number | null>((resolve) =>
      worker.child.once('exit', (code) => resolve(code)),
    );
    worker.child.kill('SIGTERM');
    return exited;
  }

  afterEach(() => {
    // Every request the app sent was signed as AWS requires; a wrong one fails its test here.
    expect(front.rejected.splice(0)).toEqual([]);
  });

  test('a pre-render job is received, writes prerendered/feed.json with its Cache-Control, and is deleted', async () => {
    const queue = await createQueue();
    await putObject(MEDIA, 'media/thumbnails/older.png', 'x', 'image/png');
    await sleep(20);
    await putObject(MEDIA, 'media/thumbnails/newer one.png', 'xy', 'image/png');
    await putObject(MEDIA, 'uploads/not-in-the-feed.png', 'z', 'image/png');
    await sendMessage(emulator.url, queue.url, JSON.stringify({ type: 'prerender' }));

    const worker = await startWorker(queue.url, { PRERENDER_TTL_SECONDS: '120' });
    const feedObject = await waitFor('the feed', () => getObject(WEB, 'prerendered/feed.json'));
    const feed = JSON.parse(feedObject.body.toString()) as {
      maxAgeSeconds: number;
      items: { url: string; key: string; size: number }[];
    };
    expect(feed.maxAgeSeconds).toBe(120);
    expect(feed.items.map((i) => [i.key, i.url, i.size])).toEqual([
      ['media/thumbnails/newer one.png', '/media/thumbnails/newer%20one.png', 2],
      ['media/thumbnails/older.png', '/media/thumbnails/older.png', 1],
    ]);
    // fauxqs 1.9 does not keep Cache-Control, so the PutObject request says it.
    const put = front.calls('PUT /web-bucket/prerendered/feed.json');
    expect(put).toHaveLength(1);
    expect(put[0].headers['cache-control']).toBe('public, max-age=120');
    expect(put[0].headers['content-type']).toBe('application/json');

    await waitFor('the message to be deleted', () => isEmpty(queue.name));
    const health = (await (await fetch(`http://127.0.0.1:${worker.port}/healthz`)).json()) as object;
    expect(health).toEqual({ app: 'cdk-scale-stages worker', jobs: { done: 1, failed: 0 }, busy: false });
    expect(await terminate(worker)).toBe(0);
    expect(worker.output()).toMatch(/job [\w-]+ done: prerendered\/feed.json with 2 thumbnails/);
  });

  test('an upload end to end: a signed form from POST /api/uploads, a POST to S3, the event on the queue, a thumbnail', async () => {
    const queue = await createQueue();
    front.notifications.set(MEDIA, queue.url);
    const web = await spawnDemo(awsEnv({ JOB_QUEUE_URL: queue.url }));
    running.push(web);
    const api = `http://127.0.0.1:${web.port}/api/uploads`;
    try {
      const post = (body: object) => fetch(api, { method: 'POST', body: JSON.stringify(body) });
      expect((await post({ contentType: 'text/plain' })).status).toBe(400);
      // SVG is an image that can carry scripts, and /media/ is the app's origin.
      expect((await post({ contentType: 'image/svg+xml' })).status).toBe(400);
      expect((await post({})).status).toBe(400);
      expect((await fetch(api)).status).toBe(400);
      const res = await post({ contentType: 'image/png' });
      expect(res.status).toBe(200);
      const { url, fields, maxBytes } = (await res.json()) as {
        url: string;
        fields: Record<string, string>;
        maxBytes: number;
      };
      expect(url).toBe(`${front.url}/${MEDIA}/`);
      expect(maxBytes).toBe(10 * 1024 * 1024);
      expect(fields.key).toMatch(
        /^uploads\/[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/,
      );
      expect(fields['Content-Type']).toBe('image/png');
      const policy = JSON.parse(Buffer.from(fields.policy, 'base64').toString()) as {
        expiration: string;
        conditions: unknown[];
      };
      expect(Date.parse(policy.expiration) - Date.now()).toBeGreaterThan(240 * 1000);
      expect(Date.parse(policy.expiration) - Date.now()).toBeLessThanOrEqual(300 * 1000);
      expect(policy.conditions).toEqual([
        { bucket: MEDIA },
        ['content-length-range', 1, 10 * 1024 * 1024],
        ['starts-with', '$Content-Type', 'image/'],
        { key: fields.key },
        { 'x-amz-algorithm': 'AWS4-HMAC-SHA256' },
        {
          'x-amz-credential': expect.stringMatching(
            new RegExp(`^${KEY_ID}/\\d{8}/${REGION}/s3/aws4_request$`),
          ),
        },
        { 'x-amz-date': fields['x-amz-date'] },
      ]);

      /** Posts the form as a browser does: the fields, then the file last. */
      const upload = (changes: Record<string, string>, file: Buffer) => {
        const form = new FormData();
        for (const [name, value] of Object.entries({ ...fields, ...changes })) form.append(name, value);
        form.append('file', new Blob([file]), 'photo.png');
        return fetch(url, { method: 'POST', body: form });
      };
      const image = rgbPng(480, 320, quadrant(480, 320));
      // What the policy forbids, S3 (here the front) refuses.
      expect((await upload({ 'Content-Type': 'text/html' }, image)).status).toBe(403);
      expect((await upload({ key: 'media/index.html' }, image)).status).toBe(403);
      expect((await upload({}, Buffer.alloc(0))).status).toBe(403);
      expect(front.rejected.splice(0)).toEqual([
        expect.stringMatching(/content-type 'text\/html' fails starts-with 'image\/'/),
        expect.stringMatching(/key 'media\/index.html' is not 'uploads\//),
        expect.stringMatching(/size 0 is outside 1\.\.10485760/),
      ]);
      expect((await upload({}, image)).status).toBe(204);

      const worker = await startWorker(queue.url);
      const name = fields.key.replace('uploads/', '');
      const thumb = await waitFor('the thumbnail', () => getObject(MEDIA, `media/thumbnails/${name}.png`));
      const decoded = png.decode(thumb.body);
      expect([decoded.width, decoded.height]).toEqual([160, 107]);
      expect(pixel(decoded, 40, 26)).toEqual([255, 0, 0, 255]);
      expect(pixel(decoded, 120, 26)).toEqual([0, 255, 0, 255]);
      expect(pixel(decoded, 40, 80)).toEqual([0, 0, 255, 255]);
      expect(pixel(decoded, 120, 80)).toEqual([255, 255, 255, 255]);
      const put = front.calls(`PUT /${MEDIA}/media/thumbnails/${name}.png`);
      expect(put[0].headers).toMatchObject({
        'content-type': 'image/png',
        'cache-control': 'public, max-age=31536000, immutable',
      });
      await waitFor('the message to be deleted', () => isEmpty(queue.name));
      expect(await terminate(worker)).toBe(0);
    } finally {
      front.notifications.delete(MEDIA);
      await stop(web.child);
    }
  });

  test('below stage 1m (no MEDIA_BUCKET or JOB_QUEUE_URL) /api/uploads answers 503', async () => {
    const web = await spawnDemo({ MEDIA_BUCKET: MEDIA });
    running.push(web);
    try {
      const res = await fetch(`http://127.0.0.1:${web.port}/api/uploads`, {
        method: 'POST',
        body: '{"contentType":"image/png"}',
      });
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({
        error: expect.stringMatching(/MEDIA_BUCKET and JOB_QUEUE_URL, which stage 1m adds/),
      });
    } finally {
      await stop(web.child);
    }
  });

  test('S3 events: URL-encoded keys are decoded, a non-PNG is copied with a note, the S3 test event is deleted', async () => {
    const queue = await createQueue();
    await putObject(
      MEDIA,
      'uploads/red flower+1.png',
      rgbPng(40, 200, () => [200, 10, 10]),
      'image/png',
    );
    await putObject(MEDIA, 'uploads/photo.jpg', Buffer.from([0xff, 0xd8, 0xff, 0xe0, 1, 2, 3]), 'image/jpeg');
    await sendMessage(emulator.url, queue.url, s3Event(MEDIA, 'uploads/red flower+1.png', 100));
    expect(s3Event(MEDIA, 'uploads/red flower+1.png', 100)).toContain('"key":"uploads/red+flower%2B1.png"');
    await sendMessage(emulator.url, queue.url, s3Event(MEDIA, 'uploads/photo.jpg', 7));
    await sendMessage(
      emulator.url,
      queue.url,
      JSON.stringify({
        Service: 'Amazon S3',
        Event: 's3:TestEvent',
        Time: new Date().toISOString(),
        Bucket: MEDIA,
      }),
    );
    const worker = await startWorker(queue.url);
    const thumb = await waitFor('the thumbnail', () => getObject(MEDIA, 'media/thumbnails/red flower+1.png'));
    const decoded = png.decode(thumb.body);
    expect([decoded.width, decoded.height]).toEqual([32, 160]);
    expect(pixel(decoded, 16, 80)).toEqual([200, 10, 10, 255]);
    const copy = await waitFor('the copy', () => getObject(MEDIA, 'media/thumbnails/photo.jpg'));
    expect(copy.headers['content-type']).toBe('image/jpeg');
    expect(front.calls(`PUT /${MEDIA}/media/thumbnails/photo.jpg`)[0].headers['x-amz-meta-thumbnail']).toBe(
      'original',
    );
    await waitFor('all three messages to be deleted', () => isEmpty(queue.name));
    expect(await terminate(worker)).toBe(0);
    expect(worker.output()).toMatch(/media\/thumbnails\/photo.jpg copied as it is \(not a PNG\)/);
    expect(worker.output()).toMatch(/done: S3 test event/);
  });

  let tableCount = 0;
  /** A new store table for one test: its name. */
  async function createStore(): Promise<string> {
    const name = `store-${++tableCount}`;
    await createStoreTable(dynamo.url, name);
    return name;
  }

  /** Every item of a store table. */
  async function itemsOf(table: string): Promise<Record<string, Record<string, string>>[]> {
    const out = await dynamodb(dynamo.url, 'Scan', { TableName: table });
    return out.Items as Record<string, Record<string, string>>[];
  }

  describe('with the store (STORE_TABLE_NAME, stage 1m)', () => {
    test("a thumbnail's feed item is written to the store at the upload's time; the pre-render and /api/feed read the feed from it", async () => {
      const table = await createStore();
      const queue = await createQueue();
      await putObject(
        MEDIA,
        'uploads/store-cat.png',
        rgbPng(30, 30, () => [1, 2, 3]),
        'image/png',
      );
      const event = s3Event(MEDIA, 'uploads/store-cat.png', 100);
      const eventTime = (JSON.parse(event) as { Records: { eventTime: string }[] }).Records[0].eventTime;
      await sendMessage(emulator.url, queue.url, event);
      const worker = await startWorker(queue.url, { STORE_TABLE_NAME: table });
      await waitFor('the feed item', async () => (await itemsOf(table)).length === 1);
      const [item] = await itemsOf(table);
      const thumbnail = await getObject(MEDIA, 'media/thumbnails/store-cat.png');
      expect(item).toEqual({
        pk: { S: `feed#${eventTime.slice(0, 10)}` },
        sk: { S: `${eventTime}#media/thumbnails/store-cat.png` },
        key: { S: 'media/thumbnails/store-cat.png' },
        size: { N: String(thumbnail!.body.length) },
        lastModified: { S: eventTime },
        region: { S: REGION },
        expiresAt: { N: String(Math.floor(Date.parse(eventTime) / 1000) + 30 * 24 * 3600) },
      });
      await waitFor('the message to be deleted', () => isEmpty(queue.name));

      // The pre-render lists no bucket: it reads the feed's items from the store.
      const lists = front.seen.filter((c) => c.method === 'GET' && c.path === `/${MEDIA}/`).length;
      await sendMessage(emulator.url, queue.url, JSON.stringify({ type: 'prerender' }));
      await waitFor('the pre-render', () =>
        /done: prerendered\/feed.json with 1 thumbnails/.test(worker.output()),
      );
      const rendered = JSON.parse((await getObject(WEB, 'prerendered/feed.json'))!.body.toString()) as {
        items: object[];
      };
      expect(rendered.items).toEqual([
        {
          url: '/media/thumbnails/store-cat.png',
          key: 'media/thumbnails/store-cat.png',
          size: thumbnail!.body.length,
          lastModified: eventTime,
          region: REGION,
        },
      ]);
      expect(front.seen.filter((c) => c.method === 'GET' && c.path === `/${MEDIA}/`)).toHaveLength(lists);
      expect(front.calls('Query').length).toBeGreaterThanOrEqual(1);

      const web = await spawnDemo(awsEnv({ STORE_TABLE_NAME: table }));
      running.push(web);
      const feed = await (await fetch(`http://127.0.0.1:${web.port}/api/feed`)).json();
      expect(feed).toEqual({ region: REGION, consistency: 'eventual', items: rendered.items });
      await stop(web.child);
      expect(await terminate(worker)).toBe(0);
    });

    test('/api/feed reads newest first across the days of the feed, at most 20 items, and answers 503 without the store', async () => {
      const table = await createStore();
      const day = (daysAgo: number, minute: number) =>
        new Date(Date.now() - daysAgo * 86400000 - minute * 60000).toISOString();
      const times = [...[1, 2, 3].map((m) => day(0, m)), ...Array.from({ length: 25 }, (_, m) => day(1, m))];
      for (const [i, time] of times.entries()) {
        await dynamodb(dynamo.url, 'PutItem', {
          TableName: table,
          Item: {
            pk: { S: `feed#${time.slice(0, 10)}` },
            sk: { S: `${time}#media/thumbnails/${i}.png` },
            key: { S: `media/thumbnails/${i}.png` },
            size: { N: '1' },
            lastModified: { S: time },
            region: { S: i % 2 ? 'us-west-2' : REGION },
          },
        });
      }
      const web = await spawnDemo(awsEnv({ STORE_TABLE_NAME: table }));
      running.push(web);
      const feed = (await (await fetch(`http://127.0.0.1:${web.port}/api/feed`)).json()) as {
        items: { lastModified: string; region: string }[];
      };
      const newest = [...times].sort().reverse().slice(0, 20);
      expect(feed.items.map((i) => i.lastModified)).toEqual(newest);
      expect(new Set(feed.items.map((i) => i.region))).toEqual(new Set([REGION, 'us-west-2']));
      await stop(web.child);

      const without = await spawnDemo(awsEnv());
      running.push(without);
      const res = await fetch(`http://127.0.0.1:${without.port}/api/feed`);
      expect(res.status).toBe(503);
      expect(await res.json()).toEqual({
        error: 'the feed needs the store (STORE_TABLE_NAME), which stage 1m adds',
      });
      await stop(without.child);
    });

    test('a region whose replica is not there yet keeps the thumbnail without a feed item; any other store error fails the job, which runs again', async () => {
      const queue = await createQueue();
      await putObject(
        MEDIA,
        'uploads/early.png',
        rgbPng(8, 8, () => [9, 9, 9]),
        'image/png',
      );
      await sendMessage(emulator.url, queue.url, s3Event(MEDIA, 'uploads/early.png', 10));
      const early = await startWorker(queue.url, { STORE_TABLE_NAME: 'not-replicated-here-yet' });
      await waitFor('the message to be deleted', () => isEmpty(queue.name));
      expect(await getObject(MEDIA, 'media/thumbnails/early.png')).toBeDefined();
      expect(early.output()).toMatch(
        /media\/thumbnails\/early.png: not in the feed, the store has no replica in eu-west-1 yet \(DynamoDB PutItem: HTTP 400 ResourceNotFoundException/,
      );
      expect(await terminate(early)).toBe(0);

      const table = await createStore();
      const retried = await createQueue({ VisibilityTimeout: '1' });
      await putObject(
        MEDIA,
        'uploads/later.png',
        rgbPng(8, 8, () => [7, 7, 7]),
        'image/png',
      );
      front.failNextDynamo = true;
      await sendMessage(emulator.url, retried.url, s3Event(MEDIA, 'uploads/later.png', 10));
      const worker = await startWorker(retried.url, {
        STORE_TABLE_NAME: table,
        JOB_VISIBILITY_TIMEOUT_SECONDS: '1',
      });
      await waitFor('the item, on the second try', async () => (await itemsOf(table)).length === 1, 15000);
      await waitFor('the message to be deleted', () => isEmpty(retried.name));
      expect(worker.output()).toMatch(/failed \(receive 1\): DynamoDB PutItem: HTTP 500 InternalServerError/);
      expect(await terminate(worker)).toBe(0);
    });
  });

  test('a job that always fails is received maxReceiveCount times, then SQS moves it to the dead-letter queue', async () => {
    const dlq = await createQueue();
    const { Attributes } = (await sqs(emulator.url, 'GetQueueAttributes', {
      QueueUrl: dlq.url,
      AttributeNames: ['QueueArn'],
    })) as {
      Attributes: { QueueArn: string };
    };
    const queue = await createQueue({
      VisibilityTimeout: '1',
      RedrivePolicy: JSON.stringify({ deadLetterTargetArn: Attributes.QueueArn, maxReceiveCount: 2 }),
    });
    await sendMessage(emulator.url, queue.url, JSON.stringify({ type: 'resize-the-moon' }));
    // An SVG that did not come through the form (which takes raster types only) is not served.
    await putObject(MEDIA, 'uploads/evil.svg', '<svg onload="alert(1)"/>', 'image/svg+xml');
    await sendMessage(emulator.url, queue.url, s3Event(MEDIA, 'uploads/evil.svg', 24));
    const worker = await startWorker(queue.url, { JOB_VISIBILITY_TIMEOUT_SECONDS: '1' });
    await waitFor(
      'the dead-letter queue to hold both messages',
      async () => (await queueState(dlq.name)).ready === 2,
    );
    expect(await isEmpty(queue.name)).toBe(true);
    expect(await terminate(worker)).toBe(0);
    for (const reason of ['unknown job', 'uploads/evil.svg is image/svg\\+xml, not a raster image']) {
      const failures = worker
        .output()
        .match(new RegExp(`job [\\w-]+ failed \\(receive \\d\\): ${reason}`, 'g'));
      expect(failures).toEqual([
        expect.stringContaining('(receive 1)'),
        expect.stringContaining('(receive 2)'),
      ]);
    }
    expect(await getObject(MEDIA, 'media/thumbnails/evil.svg')).toBeUndefined();
    expect(worker.output()).not.toMatch(/done:/);
  });

  /** An uploaded PNG and its S3 event on `queueUrl`; GetObject of it answers after `delayMs`. */
  async function slowUpload(queueUrl: string, name: string, delayMs: number): Promise<string> {
    const key = `uploads/${name}.png`;
    await putObject(MEDIA, key, rgbPng(320, 320, quadrant(320, 320)), 'image/png');
    front.delayOnce(`/${MEDIA}/${key}`, delayMs);
    await sendMessage(emulator.url, queueUrl, s3Event(MEDIA, key, 1000));
    return key;
  }

  test('a worker killed mid-job (SIGKILL) leaves the message, which a second worker receives and completes', async () => {
    const queue = await createQueue({ VisibilityTimeout: '2' });
    const key = await slowUpload(queue.url, 'killed-mid-job', 60000);
    const first = await startWorker(queue.url, { JOB_VISIBILITY_TIMEOUT_SECONDS: '2' });
    await waitFor(
      'the first worker to read the upload',
      () => front.calls(`GET /${MEDIA}/${key}`).length === 1,
    );
    await stop(first.child, 'SIGKILL');
    expect(front.calls('DeleteMessage').filter((c) => c.body.includes(queue.url))).toEqual([]);
    expect(await queueState(queue.name)).toMatchObject({ ready: 0, inflight: 1 });

    const second = await startWorker(queue.url, { JOB_VISIBILITY_TIMEOUT_SECONDS: '2' });
    await waitFor('the thumbnail', () => getObject(MEDIA, 'media/thumbnails/killed-mid-job.png'));
    await waitFor('the message to be deleted', () => isEmpty(queue.name));
    expect(front.calls(`GET /${MEDIA}/${key}`)).toHaveLength(2);
    expect(await terminate(second)).toBe(0);
    expect(second.output()).toMatch(/done: thumbnail media\/thumbnails\/killed-mid-job.png \(160x160\)/);
  });

  test('SIGTERM mid-job: the worker stops receiving, finishes the job (heartbeats extend it), deletes it and exits 0', async () => {
    const queue = await createQueue({ VisibilityTimeout: '2' });
    const key = await slowUpload(queue.url, 'terminated-mid-job', 2600);
    const worker = await startWorker(queue.url, { JOB_VISIBILITY_TIMEOUT_SECONDS: '2' });
    await waitFor('the worker to read the upload', () => front.calls(`GET /${MEDIA}/${key}`).length === 1);
    const receivesBefore = front.calls('ReceiveMessage').filter((c) => c.body.includes(queue.url)).length;
    const exited = new Promise<number | null>((resolve) =>
      worker.child.once('exit', (code) => resolve(code)),
    );
    worker.child.kill('SIGTERM');
    expect(await exited).toBe(0);
    expect(worker.output()).toMatch(/SIGTERM: finishing the current job, then stopping/);
    expect(await getObject(MEDIA, 'media/thumbnails/terminated-mid-job.png')).toBeDefined();
    expect(await isEmpty(queue.name)).toBe(true);
    const mine = (action: string) => front.calls(action).filter((c) => c.body.includes(queue.url));
    expect(mine('ReceiveMessage')).toHaveLength(receivesBefore);
    // Half the 2 s visibility timeout: extended at about 1 s and 2 s into the 2.6 s job.
    const beats = mine('ChangeMessageVisibility');
    expect(beats.length).toBeGreaterThanOrEqual(2);
    expect(JSON.parse(beats[0].body.toString())).toMatchObject({ VisibilityTimeout: 2 });
    expect(beats.every((b) => b.at < mine('DeleteMessage')[0].at)).toBe(true);
  });

  test('SIGTERM while idle abandons the 20 s long poll and exits 0 at once', async () => {
    const queue = await createQueue();
    const env = awsEnv({ JOB_QUEUE_URL: queue.url });
    delete env.JOB_WAIT_SECONDS;
    const worker = await spawnDemo(env, 'worker.js');
    running.push(worker);
    const polls = () => front.calls('ReceiveMessage').filter((c) => c.body.includes(queue.url));
    await waitFor('a long poll', () => polls().length === 1);
    expect(JSON.parse(polls()[0].body.toString())).toMatchObject({
      WaitTimeSeconds: 20,
      MaxNumberOfMessages: 1,
    });
    const started = Date.now();
    expect(await terminate(worker)).toBe(0);
    expect(Date.now() - started).toBeLessThan(2000);
  });

  test('scale-in protection: on when busy, off when idle, signed with the role credentials from IMDSv2', async () => {
    const queue = await createQueue();
    const env = awsEnv({
      JOB_QUEUE_URL: queue.url,
      WORKER_AUTO_SCALING_GROUP: 'workers-asg',
      PRERENDER_TTL_SECONDS: '60',
    });
    delete env.AWS_ACCESS_KEY_ID;
    delete env.AWS_SECRET_ACCESS_KEY;
    const protection = () =>
      front
        .calls('SetInstanceProtection')
        .map((c) => Object.fromEntries(new URLSearchParams(c.body.toString())));
    const worker = await spawnDemo(env, 'worker.js');
    running.push(worker);
    // Unknown at start: the first empty receive clears it.
    await waitFor('protection off at start', () => protection().length === 1);
    front.delayOnce(`/${WEB}/prerendered/feed.json`, 1200);
    await sendMessage(emulator.url, queue.url, JSON.stringify({ type: 'prerender' }));
    await waitFor('protection on', () => protection().length === 2);
    const busy = (await (await fetch(`http://127.0.0.1:${worker.port}/healthz`)).json()) as { busy: boolean };
    expect(busy.busy).toBe(true);
    await waitFor('protection off after the job', () => protection().length === 3, 5000);
    expect(protection()).toEqual(
      [false, true, false].map((on) => ({
        Action: 'SetInstanceProtection',
        Version: '2011-01-01',
        AutoScalingGroupName: 'workers-asg',
        'InstanceIds.member.1': INSTANCE_ID,
        ProtectedFromScaleIn: String(on),
      })),
    );
    const [, on, off] = front.calls('SetInstanceProtection');
    const deleted = front.calls('DeleteMessage').find((c) => c.body.includes(queue.url))!;
    expect(on.at).toBeLessThan(front.calls(`PUT /${WEB}/prerendered/feed.json`).at(-1)!.at);
    expect(off.at).toBeGreaterThanOrEqual(deleted.at);
    expect(on.headers.authorization).toMatch(
      new RegExp(
        `^AWS4-HMAC-SHA256 Credential=${IMDS_KEY_ID}/\\d{8}/${REGION}/autoscaling/aws4_request, SignedHeaders=content-type;host;x-amz-date;x-amz-security-token, Signature=[0-9a-f]{64}$`,
      ),
    );
    expect(on.headers['x-amz-security-token']).toBe(IMDS_TOKEN);
    // The role's credentials were read once and kept until shortly before they expire.
    expect(imds.credentialFetches()).toBe(1);
    expect(await terminate(worker)).toBe(0);
    expect(front.calls('SetInstanceProtection')).toHaveLength(3);
  });

  test('a failed SetInstanceProtection is logged and the job still runs', async () => {
    const queue = await createQueue();
    front.failGroups.add('no-such-group');
    await sendMessage(emulator.url, queue.url, JSON.stringify({ type: 'prerender' }));
    const worker = await startWorker(queue.url, { WORKER_AUTO_SCALING_GROUP: 'no-such-group' });
    await waitFor('the message to be deleted', () => isEmpty(queue.name));
    expect(await terminate(worker)).toBe(0);
    expect(worker.output()).toMatch(
      /scale-in protection: Auto Scaling SetInstanceProtection: HTTP 400 ValidationError: AutoScalingGroup name not found - no-such-group/,
    );
    expect(worker.output()).toMatch(/done: prerendered\/feed.json/);
    expect(worker.output()).not.toContain(SECRET);
  });
});

describe('png.js', () => {
  test.each([
    ['greyscale', 0, 8, 1],
    ['RGB', 2, 8, 3],
    ['grey + alpha', 4, 8, 2],
    ['RGBA', 6, 8, 4],
  ])('decodes 8-bit %s with each of the five filter types', (_, colorType, depth, channels) => {
    const width = 7;
    const height = 10;
    const sample = (x: number, y: number, k: number) => (x * 37 + y * 91 + k * 53 + x * y * 7) % 256;
    const rows = Array.from({ length: height }, (_, y) =>
      Buffer.from(
        Array.from({ length: width * channels }, (_, i) => sample(Math.floor(i / channels), y, i % channels)),
      ),
    );
    for (const filters of [[0], [1], [2], [3], [4], [0, 1, 2, 3, 4]]) {
      const image = png.decode(makePng({ width, height, colorType, depth, rows, filters }));
      expect([image.width, image.height]).toEqual([width, height]);
      for (let y = 0; y < height; y++) {
        for (let x = 0; x < width; x++) {
          const s = (k: number) => sample(x, y, k);
          const expected =
            channels === 1
              ? [s(0), s(0), s(0), 255]
              : channels === 2
                ? [s(0), s(0), s(0), s(1)]
                : channels === 3
                  ? [s(0), s(1), s(2), 255]
                  : [s(0), s(1), s(2), s(3)];
          expect(pixel(image, x, y)).toEqual(expected);
        }
      }
    }
  });

  test('the Paeth filter breaks ties as the specification says (left, then above, then upper left)', () => {
    // Few distinct values make ties between the predictor's candidates common.
    let seed = 7;
    const next = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) >>> 16) & 3;
    const rows = Array.from({ length: 16 }, () => Buffer.from(Array.from({ length: 16 * 3 }, next)));
    const image = png.decode(makePng({ width: 16, height: 16, colorType: 2, depth: 8, rows, filters: [4] }));
    for (let y = 0; y < 16; y++) {
      for (let x = 0; x < 16; x++)
        expect(pixel(image, x, y)).toEqual([...rows[y].subarray(x * 3, x * 3 + 3), 255]);
    }
  });

  test('decodes palette images of 1, 2, 4 and 8 bits with tRNS, 2-bit greyscale, and 16-bit RGBA (high bytes)', () => {
    const palette = Buffer.from([10, 20, 30, 40, 50, 60, 70, 80, 90, 100, 110, 120]);
    for (const depth of [1, 2, 4, 8]) {
      const width = 9;
      const indexes = Array.from({ length: width * 3 }, (_, i) => i % (depth === 1 ? 2 : 4));
      const rows = [0, 1, 2].map((y) => {
        const row = Buffer.alloc(Math.ceil((width * depth) / 8));
        for (let x = 0; x < width; x++) {
          const bit = x * depth;
          row[bit >> 3] |= indexes[y * width + x] << (8 - depth - (bit & 7));
        }
        return row;
      });
      const image = png.decode(
        makePng({
          width,
          height: 3,
          colorType: 3,
          depth,
          rows,
          filters: [1, 4, 3],
          palette,
          transparency: Buffer.from([0, 128]),
        }),
      );
      for (let i = 0; i < width * 3; i++) {
        const index = indexes[i];
        expect(pixel(image, i % width, Math.floor(i / width))).toEqual([
          ...palette.subarray(index * 3, index * 3 + 3),
          [0, 128, 255, 255][index],
        ]);
      }
    }
    const grey = png.decode(
      makePng({
        width: 4,
        height: 1,
        colorType: 0,
        depth: 2,
        rows: [Buffer.from([0b00011011])],
        filters: [0],
        transparency: Buffer.from([0, 2]),
      }),
    );
    expect([0, 1, 2, 3].map((x) => pixel(grey, x, 0))).toEqual([
      [0, 0, 0, 255],
      [85, 85, 85, 255],
      [170, 170, 170, 0],
      [255, 255, 255, 255],
    ]);
    const deep = png.decode(
      makePng({
        width: 2,
        height: 2,
        colorType: 6,
        depth: 16,
        rows: [Buffer.from([1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16]), Buffer.alloc(16, 200)],
        filters: [2, 4],
      }),
    );
    expect(pixel(deep, 1, 0)).toEqual([9, 11, 13, 15]);
    expect(pixel(deep, 0, 1)).toEqual([200, 200, 200, 200]);
  });

  test('thumbnails keep the aspect ratio within 160 px and average boxes; encode and decode round-trip', () => {
    const image = png.decode(rgbPng(400, 100, (x) => (x % 2 ? [0, 0, 0] : [200, 100, 50])));
    const small = png.thumbnail(image, 160);
    expect([small.width, small.height]).toEqual([160, 40]);
    // Boxes of 2.5 source pixels average black and colour.
    expect(pixel(small, 0, 0)[3]).toBe(255);
    expect(pixel(small, 0, 0)[0]).toBeGreaterThan(60);
    expect(pixel(small, 0, 0)[0]).toBeLessThan(140);
    expect(
      [png.thumbnail(png.decode(rgbPng(90, 900, () => [1, 2, 3])), 160)].map((t) => [t.width, t.height]),
    ).toEqual([[16, 160]]);
    const tiny = png.decode(rgbPng(20, 10, () => [9, 9, 9]));
    expect(png.thumbnail(tiny, 160)).toBe(tiny);

    const encoded = png.encode(small);
    expect(encoded.subarray(12, 16).toString()).toBe('IHDR');
    expect(encoded.readUInt32BE(16)).toBe(160);
    expect(encoded.readUInt32BE(20)).toBe(40);
    expect(png.decode(encoded)).toEqual(small);
  });

  test('refuses what it cannot read: not a PNG and interlaced ones as unsupported (fallback), damaged ones as errors', () => {
    expect(() => png.decode(Buffer.from('GIF89a...'))).toThrow(png.PngUnsupported);
    const interlaced = makePng({
      width: 2,
      height: 2,
      colorType: 2,
      depth: 8,
      rows: [Buffer.alloc(6), Buffer.alloc(6)],
      filters: [0],
      interlace: 1,
    });
    expect(() => png.decode(interlaced)).toThrow(png.PngUnsupported);
    const good = rgbPng(8, 8, () => [1, 2, 3]);
    const damaged = Buffer.from(good);
    damaged[damaged.length - 20] ^= 0xff;
    expect(() => png.decode(damaged)).toThrow(/damaged/);
    expect(() => png.decode(damaged)).not.toThrow(png.PngUnsupported);
    const huge = Buffer.from(good);
    huge.writeUInt32BE(100000, 16);
    huge.writeUInt32BE(100000, 20);
    huge.writeUInt32BE(crc32(huge.subarray(12, 29)), 29);
    expect(() => png.decode(huge)).toThrow(/too large/);
  });
});
