/**
 * Snapshots show asset hashes as `<asset hash>`: a hash changes with any byte of an asset (the demo
 * app, a handler's bundle) and says nothing a reviewer can read; the assertions pin what matters.
 */
const ASSET_HASH = /[0-9a-f]{64}/g;

export = {
  test: (value: unknown): boolean => typeof value === 'string' && /[0-9a-f]{64}/.test(value),
  serialize: (
    value: string,
    _config: unknown,
    _indentation: string,
    _depth: number,
    _refs: unknown,
    printer: (v: unknown, ...rest: unknown[]) => string,
  ): string => printer(value.replace(ASSET_HASH, '<asset hash>'), _config, _indentation, _depth, _refs),
};
