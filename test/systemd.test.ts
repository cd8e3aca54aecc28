import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import yaml from 'js-yaml';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from './helpers/cli.js';

function directives(unit: string): Map<string, string[]> {
  const found = new Map<string, string[]>();
  for (const line of unit.split('\n')) {
    const match = /^([A-Za-z]+)=(.*)$/.exec(line.trim());
    if (match?.[1] && match[2] !== undefined) found.set(match[1], [...(found.get(match[1]) ?? []), match[2]]);
  }
  return found;
}

describe('systemd/deployhook.service', () => {
  it('runs as a dedicated user, hardened, restarting on failure, with folders that match the production config', async () => {
    const unit = directives(await readFile(join(REPO_ROOT, 'systemd', 'deployhook.service'), 'utf8'));
    const config = yaml.load(await readFile(join(REPO_ROOT, 'config', 'production.example.yml'), 'utf8')) as Record<string, string>;
    expect(unit.get('User')).toEqual(['deployhook']);
    expect(unit.get('NoNewPrivileges')).toEqual(['yes']);
    expect(unit.get('ProtectSystem')).toEqual(['strict']);
    expect(unit.get('Restart')).toEqual(['on-failure']);
    expect(unit.get('KillMode')).toEqual(['mixed']);
    expect(config.state_dir).toBe(`/var/lib/${unit.get('StateDirectory')?.[0]}`);
    expect(config.log_dir).toBe(`/var/log/${unit.get('LogsDirectory')?.[0]}`);
    expect(unit.get('ExecStart')?.[0]).toBe(`/usr/bin/node /opt/deployhook/dist/cli.js serve --config /etc/${unit.get('ConfigurationDirectory')?.[0]}/deployhook.yml`);
  });
});
