// Makes the demo job's webhook secret on first start: random, private to this machine,
// and outside git, so no shipped secret can end up in a production config.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const file = join(dirname(fileURLToPath(import.meta.url)), '..', 'var', 'demo-secret');
mkdirSync(dirname(file), { recursive: true });
try {
  writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { flag: 'wx', mode: 0o600 });
  console.log(`deployhook demo: created a random webhook secret in ${file}`);
} catch (error) {
  if (error.code !== 'EEXIST') throw error;
}
