import * as fs from 'fs';
import * as path from 'path';
import * as zlib from 'zlib';

/** The path of a file or folder shipped in the package's `assets/` (same depth from `lib/` and `dist/`). */
export function assetPath(relativePath: string): string {
  return path.join(__dirname, '..', '..', 'assets', relativePath);
}

/** The text of a file shipped in the package's `assets/` folder. */
export function readAsset(relativePath: string): string {
  return fs.readFileSync(assetPath(relativePath), 'utf8');
}

/**
 * A script of `assets/` without its full-line comments (shell `#` lines but the shebang and
 * shellcheck directives; JavaScript `//` lines and doc-comment blocks): comments cost EC2 user data
 * bytes, not behaviour. Tests run the demo app and parse the scripts in this form.
 */
export function scriptWithoutComments(relativePath: string): string {
  const comment = relativePath.endsWith('.js')
    ? /^\s*(\/\/|\/\*\*|\*\/|\*( |$))/
    : /^\s*#(?!!|\s*shellcheck )/;
  return readAsset(relativePath)
    .split('\n')
    .filter((line) => !comment.test(line))
    .join('\n');
}

/** A script of `assets/` without comments, gzipped and base64-encoded: a third of its size. */
export function compressedScript(relativePath: string): string {
  return zlib.gzipSync(scriptWithoutComments(relativePath), { level: 9 }).toString('base64');
}

/**
 * Scripts of `assets/` without comments, as one tar (POSIX ustar) compressed with Brotli, base64-encoded:
 * one compressed stream shares its dictionary across the files, about a tenth smaller than each file
 * compressed alone, and Brotli's is a tenth smaller than gzip's, which matters in 16 KB of EC2 user
 * data. Node.js unpacks it. Entries are regular files (mode 644, owner root, time 0),
 * so the same files always give the same bytes.
 *
 * @param files the scripts, relative to `assets/`; each is stored under its base name
 */
export function compressedTarball(files: string[]): string {
  const blocks: Buffer[] = [];
  for (const file of files) {
    const body = Buffer.from(scriptWithoutComments(file));
    const header = Buffer.alloc(512);
    const field = (offset: number, length: number, value: string) =>
      header.write(value, offset, length, 'ascii');
    const octal = (offset: number, length: number, value: number) =>
      field(offset, length, value.toString(8).padStart(length - 1, '0') + '\0');
    field(0, 100, path.basename(file));
    octal(100, 8, 0o644);
    octal(108, 8, 0);
    octal(116, 8, 0);
    octal(124, 12, body.length);
    octal(136, 12, 0);
    field(148, 8, ' '.repeat(8)); // the checksum counts its own field as spaces
    field(156, 1, '0');
    field(257, 8, 'ustar\u000000');
    const checksum = header.reduce((sum, byte) => sum + byte, 0);
    field(148, 8, checksum.toString(8).padStart(6, '0') + '\0 ');
    blocks.push(header, body, Buffer.alloc((512 - (body.length % 512)) % 512));
  }
  blocks.push(Buffer.alloc(1024)); // two zero blocks end the archive
  const quality = { [zlib.constants.BROTLI_PARAM_QUALITY]: zlib.constants.BROTLI_MAX_QUALITY };
  return zlib.brotliCompressSync(Buffer.concat(blocks), { params: quality }).toString('base64');
}

/**
 * A shell command that runs a script of `assets/` shipped compressed, with the exported environment
 * of the user data. It runs as `bash -c`, not from a pipe, so the script's own commands keep stdin.
 */
export function compressedShellScript(relativePath: string): string {
  return `bash -c "$(echo '${compressedScript(relativePath)}' | base64 -d | gunzip)"`;
}
