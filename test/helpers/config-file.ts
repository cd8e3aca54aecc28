import { writeFile } from 'node:fs/promises';
import yaml from 'js-yaml';

/**
 * Writes a deployhook config to `file` as YAML: listening on 127.0.0.1 with a port of the
 * system's choosing, state and logs in folders beside the file, then `settings`, which may
 * override any of them. Tests write the same file again to have a daemon reload it.
 */
export async function writeConfigFile(file: string, settings: Record<string, unknown>): Promise<void> {
  await writeFile(file, yaml.dump({ listen: '127.0.0.1:0', state_dir: 'state', log_dir: 'logs', ...settings }));
}
