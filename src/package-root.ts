import { basename, dirname } from 'node:path';
import { fileURLToPath } from 'node:url';

/**
 * The package's folder, seen from the module at `moduleUrl` (its `import.meta.url`), which
 * lives one folder below `src/` (tests) or runs from the bundle's entry in `dist/` or one of
 * its chunks in `dist/chunks/`: the package is the folder above `dist/`, or two above otherwise.
 */
export function packageRoot(moduleUrl: string): string {
  const here = dirname(fileURLToPath(moduleUrl));
  return basename(here) === 'dist' ? dirname(here) : dirname(dirname(here));
}
