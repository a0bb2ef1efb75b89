import { ChildProcess, execFileSync, spawn } from 'child_process';
import * as crypto from 'crypto';
import * as fs from 'fs';
import * as http from 'http';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
import { SignatureV4 } from '@smithy/signature-v4';
import { assetPath } from '../lib/private/assets';

/** The demo app's files as the servers get them: the folder assets/demo-app, shipped as an S3 asset. */
export function demoAppDir(): string {
  return assetPath('demo-app');
}

/** A running demo app: its process, its port, and everything it printed so far. */
export interface DemoProcess {
  readonly child: ChildProcess;
  readonly port: number;
  readonly output: () => string;
}

/**
 * Starts the demo app (or `script`, such as the worker) on a free port with the given environment
 * and waits until it listens.
 */
export async function spawnDemo(env: Record<string, string>, script = 'server.js'): Promise<DemoProcess> {
  const child = spawn(process.execPath, [path.join(demoAppDir(), script)], {
    env: { PATH: process.env.PATH ?? '', APP_PORT: '0', ...env },
  });
  let output = '';
  child.stderr!.on('data', (chunk: Buffer) => (output += chunk.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    child.stdout!.on('data', (chunk: Buffer) => {
      output += chunk.toString();
      const match = /listening on port (\d+)/.exec(chunk.toString());
      if (match) resolve(Number(match[1]));
    });
    child.once('exit', (code) => reject(new Error(`demo app exited with ${code}`)));
  });
  return { child, port, output: () => output };
}

/** Stops a child process (SIGTERM unless told) and waits until it has exited. */
export async function stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
  const exited = new Promise((resolve) => child.once('exit', resolve));
  child.kill(signal);
  await exited;
}

const tempDirs: string[] = [];

/** A new temporary directory, removed by `removeTempDirs`. */
export function tempDir(prefix: string): string {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), prefix));
  tempDirs.push(dir);
  return dir;
}

/** Removes every directory `tempDir` made. */
export function removeTempDirs(): void {
  for (const dir of tempDirs.splice(0)) fs.rmSync(dir, { recursive: true, force: true });
}

/** A TCP port nothing listens on right now. */
export async function freePort(): Promise<number> {
  const probe = net.createServer();
  await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
  const { port } = probe.address() as net.AddressInfo;
  await new Promise<void>((resolve) => probe.close(() => resolve()));
  return port;
}

/** Writes a self-signed certificate for 127.0.0.1, valid for a day, and its key. */
export function selfSignedCertificate(keyFile: string, certFile: string): void {
  execFileSync(
    'openssl',
    [
      'req',
      '-x509',
      '-newkey',
      'ec',
      '-pkeyopt',
      'ec_paramgen_curve:prime256v1',
      '-nodes',
      '-days',
      '1',
      '-subj',
      '/CN=127.0.0.1',
      '-addext',
      'subjectAltName=IP:127.0.0.1',
      '-keyout',
      keyFile,
      '-out',
      certFile,
    ],
    { stdio: 'ignore' },
  );
}

/**
 * A stub `aws` on PATH, as the servers' AWS CLI: it logs its arguments and prints the file
 * `secretFile` (what `--query SecretString --output text` prints). Tests write a new value there to
 * play a rotation.
 */
export function stubAwsCli(): { binDir: string; secretFile: string; calls: () => string[] } {
  const binDir = tempDir('demo-aws-');
  const secretFile = path.join(binDir, 'secret.txt');
  const callLog = path.join(binDir, 'calls.log');
  fs.writeFileSync(path.join(binDir, 'aws'), `#!/bin/sh\necho "$*" >> '${callLog}'\ncat '${secretFile}'\n`, {
    mode: 0o755,
  });
  const calls = () => (fs.existsSync(callLog) ? fs.readFileSync(callLog, 'utf8').trim().split('\n') : []);
  return { binDir, secretFile, calls };
}

export const sleep = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Polls `check` until it returns something truthy; fails after `timeoutMs` with `what`. */
export async function waitFor<T>(
  what: string,
  check: () => T | Promise<T>,
  timeoutMs = 8000,
): Promise<NonNullable<T>> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const value = await check();
    if (value) return value as NonNullable<T>;
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await sleep(25);
  }
}

export async function readBody(req: http.IncomingMessage): Promise<Buffer> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks);
}

/** A request straight to an emulator (fauxqs, dynalite): the test's own setup and checks, unsigned. */
export function emulatorRequest(
  base: string,
  method: string,
  pathAndQuery: string,
  headers: http.OutgoingHttpHeaders,
  body?: Buffer | string,
): Promise<{ status: number; headers: http.IncomingHttpHeaders; body: Buffer }> {
  return new Promise((resolve, reject) => {
    const req = http.request(
      `${base}${pathAndQuery}`,
      { method, headers: Object.fromEntries(Object.entries(headers).filter(([name]) => name !== 'host')) },
      (res) =>
        readBody(res).then(
          (b) => resolve({ status: res.statusCode!, headers: res.headers, body: b }),
          reject,
        ),
    );
    req.on('error', reject).end(body);
  });
}

// ---------------------------------------------------------------------------------------------
// Signature Version 4 as AWS checks it, with AWS's own signer (@smithy/signature-v4).

/** The hash that @smithy/signature-v4 wants, from Node's crypto. */
class Sha256 {
  private readonly hash: crypto.Hash | crypto.Hmac;
  constructor(secret?: string | ArrayBuffer | ArrayBufferView) {
    this.hash = secret ? crypto.createHmac('sha256', bytes(secret)) : crypto.createHash('sha256');
  }
  update(data: string | ArrayBuffer | ArrayBufferView): void {
    this.hash.update(bytes(data));
  }
  async digest(): Promise<Uint8Array> {
    return new Uint8Array(this.hash.digest());
  }
  reset(): void {}
}

function bytes(data: string | ArrayBuffer | ArrayBufferView): Buffer {
  if (typeof data === 'string') return Buffer.from(data);
  if (ArrayBuffer.isView(data)) return Buffer.from(data.buffer, data.byteOffset, data.byteLength);
  return Buffer.from(data);
}

/** The access keys "AWS" knows, by key id: each one's secret and, for role credentials, session token. */
export type SigV4Secrets = Record<
  string,
  { readonly secretAccessKey: string; readonly sessionToken?: string }
>;

/** AWS's signer for one access key of `secrets`, in `region`, for `service`. */
export const sigV4Signer = (secrets: SigV4Secrets, region: string, accessKeyId: string, service: string) =>
  new SignatureV4({
    credentials: { accessKeyId, ...secrets[accessKeyId] },
    region,
    service,
    sha256: Sha256,
    uriEscapePath: service !== 's3',
    applyChecksum: false,
  });

/** `20260101T120000Z` as a Date. */
export const amzDate = (s: string) =>
  new Date(`${s.slice(0, 4)}-${s.slice(4, 6)}-${s.slice(6, 11)}:${s.slice(11, 13)}:${s.slice(13, 15)}Z`);

/**
 * Why a request's signature is wrong, or undefined when AWS would accept it: re-signing the request
 * with AWS's signer must give the same Authorization header, for the service the request is for,
 * in `region`, with one of `secrets`' keys (and its session token), every x-amz-* header signed.
 */
export async function sigV4Problem(
  req: http.IncomingMessage,
  url: URL,
  body: Buffer,
  service: string,
  secrets: SigV4Secrets,
  region: string,
): Promise<string | undefined> {
  const auth =
    /^AWS4-HMAC-SHA256 Credential=([^/]+)\/(\d{8})\/([^/]+)\/([^/]+)\/aws4_request, SignedHeaders=([a-z0-9;-]+), Signature=[0-9a-f]{64}$/.exec(
      req.headers.authorization ?? '',
    );
  if (!auth) return `malformed Authorization header: ${req.headers.authorization}`;
  const [, keyId, day, scopeRegion, scopeService, signedHeaders] = auth;
  if (!secrets[keyId]) return `unknown access key ${keyId}`;
  if (scopeRegion !== region || scopeService !== service)
    return `scope ${scopeRegion}/${scopeService} for a ${service} call`;
  const date = String(req.headers['x-amz-date']);
  if (!date.startsWith(day) || Math.abs(amzDate(date).getTime() - Date.now()) > 5 * 60 * 1000) {
    return `x-amz-date ${date} does not match the scope or the clock`;
  }
  if (secrets[keyId].sessionToken !== req.headers['x-amz-security-token'])
    return 'wrong x-amz-security-token';
  const names = signedHeaders.split(';');
  for (const required of [
    'host',
    'x-amz-date',
    ...Object.keys(req.headers).filter((h) => h.startsWith('x-amz-')),
  ]) {
    if (!names.includes(required)) return `${required} is not signed`;
  }
  if (
    service === 's3' &&
    req.headers['x-amz-content-sha256'] !== crypto.createHash('sha256').update(body).digest('hex')
  ) {
    return 'x-amz-content-sha256 is not the hash of the body';
  }
  const headers = Object.fromEntries(names.map((n) => [n, String(req.headers[n])]));
  const signed = await sigV4Signer(secrets, region, keyId, service).sign(
    {
      method: req.method!,
      protocol: 'http:',
      hostname: url.hostname,
      port: Number(url.port),
      path: url.pathname,
      query: Object.fromEntries(url.searchParams),
      headers,
      body,
    },
    { signingDate: amzDate(date) },
  );
  return signed.headers.authorization === req.headers.authorization
    ? undefined
    : `signature differs from AWS's signer: expected ${signed.headers.authorization}`;
}

// ---------------------------------------------------------------------------------------------
// DynamoDB: dynalite.

export interface Dynalite {
  readonly url: string;
  readonly stop: () => Promise<void>;
}

/**
 * dynalite (npm), a DynamoDB-compatible server on an in-memory LevelDB, in this process: tables are
 * ACTIVE at once. It speaks the DynamoDB JSON protocol 1.0 the demo app sends, and does not check
 * signatures (a test's front does, with `sigV4Problem`).
 */
export async function startDynalite(): Promise<Dynalite> {
  // eslint-disable-next-line @typescript-eslint/no-require-imports -- dynalite has no types
  const server = require('dynalite')({ createTableMs: 0, deleteTableMs: 0 }) as http.Server;
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as net.AddressInfo).port}`,
    stop: () => new Promise((resolve) => server.close(() => resolve())),
  };
}

/** A DynamoDB call straight to dynalite (the test's own setup and checks, unsigned). */
export async function dynamodb(
  base: string,
  action: string,
  input: object,
): Promise<Record<string, unknown>> {
  const res = await emulatorRequest(
    base,
    'POST',
    '/',
    {
      'content-type': 'application/x-amz-json-1.0',
      'x-amz-target': `DynamoDB_20120810.${action}`,
      // dynalite wants an Authorization header of SigV4's shape (any key, a real region); it does
      // not check the signature, and its tables are not per region.
      authorization:
        'AWS4-HMAC-SHA256 Credential=AKIDTESTSETUP/20260101/us-east-1/dynamodb/aws4_request, SignedHeaders=host, Signature=0',
      'x-amz-date': '20260101T000000Z',
    },
    JSON.stringify(input),
  );
  if (res.status !== 200) throw new Error(`${action}: ${res.status} ${res.body}`);
  return JSON.parse(res.body.toString()) as Record<string, unknown>;
}

/** Creates the store table `name` in dynalite, keyed as DenormalizedStore keys it, and waits until it is ACTIVE. */
export async function createStoreTable(base: string, name: string): Promise<void> {
  await dynamodb(base, 'CreateTable', {
    TableName: name,
    AttributeDefinitions: [
      { AttributeName: 'pk', AttributeType: 'S' },
      { AttributeName: 'sk', AttributeType: 'S' },
    ],
    KeySchema: [
      { AttributeName: 'pk', KeyType: 'HASH' },
      { AttributeName: 'sk', KeyType: 'RANGE' },
    ],
    BillingMode: 'PAY_PER_REQUEST',
  });
  // dynalite answers CreateTable with CREATING and makes the table ACTIVE on its next tick.
  await waitFor('the table', async () => {
    const { Table } = (await dynamodb(base, 'DescribeTable', { TableName: name })) as {
      Table: { TableStatus: string };
    };
    return Table.TableStatus === 'ACTIVE';
  });
}
