import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { openRunLog } from '../../src/log/run-log.js';
import { tempDir } from '../helpers/tmp.js';

describe('openRunLog', () => {
  it('masks every secret in notes, output split across writes, the held-back end and the closing line', async () => {
    const path = join(await tempDir(), 'logs', 'run.log');
    const log = await openRunLog(path, ['s3cr3t-token'], 1024 * 1024);

    log.note('using s3cr3t-token');
    log.output.write('a split s3cr');
    log.output.write('3t-token here\nthe end: s3cr');
    await log.close('run ended (token s3cr3t-token)');

    expect(await readFile(path, 'utf8')).toBe('[deployhook] using ***\na split *** here\nthe end: s3cr\n[deployhook] run ended (token ***)\n');
    expect(log.error).toBeUndefined();
  });

  it('adds no blank line before the closing line when the output ended its last line', async () => {
    const path = join(await tempDir(), 'run.log');
    const log = await openRunLog(path, [], 1024);

    log.output.write('done\n');
    await log.close('finished');

    expect(await readFile(path, 'utf8')).toBe('done\n[deployhook] finished\n');
  });
});
