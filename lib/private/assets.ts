import * as fs from 'fs';
import * as path from 'path';

/** The path of a file or folder shipped in the package's `assets/` (same depth from `lib/` and `dist/`). */
export function assetPath(relativePath: string): string {
  return path.join(__dirname, '..', '..', 'assets', relativePath);
}

/** The text of a file shipped in the package's `assets/` folder. */
export function readAsset(relativePath: string): string {
  return fs.readFileSync(assetPath(relativePath), 'utf8');
}
