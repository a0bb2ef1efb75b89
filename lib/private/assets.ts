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
 * A shell command that runs a script of `assets/` shipped compressed, with the exported environment
 * of the user data. It runs as `bash -c`, not from a pipe, so the script's own commands keep stdin.
 */
export function compressedShellScript(relativePath: string): string {
  return `bash -c "$(echo '${compressedScript(relativePath)}' | base64 -d | gunzip)"`;
}
