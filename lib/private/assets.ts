import * as fs from 'fs';
import * as path from 'path';

/** Reads a file shipped in the package's `assets/` folder (same depth from `lib/` and `dist/`). */
export function readAsset(relativePath: string): string {
  return fs.readFileSync(path.join(__dirname, '..', '..', 'assets', relativePath), 'utf8');
}
