import { ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import * as net from 'net';
import * as os from 'os';
import * as path from 'path';
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
