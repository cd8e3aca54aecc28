// Makes the demo's webhook secret and API token on first start: random, private to this
// machine, and outside git, so no shipped secret can end up in a production config.
import { randomBytes } from 'node:crypto';
import { mkdirSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const folder = join(dirname(fileURLToPath(import.meta.url)), '..', 'var');
mkdirSync(folder, { recursive: true });
for (const name of ['demo-secret', 'demo-api-token']) {
  const file = join(folder, name);
  try {
    writeFileSync(file, `${randomBytes(32).toString('hex')}\n`, { flag: 'wx', mode: 0o600 });
    console.log(`deployhook demo: created a random ${name === 'demo-secret' ? 'webhook secret' : 'API token'} in ${file}`);
  } catch (error) {
    if (error.code !== 'EEXIST') throw error;
  }
}
