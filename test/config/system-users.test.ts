import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { resolveRunAs } from '../../src/config/system-users.js';
import { tempDir } from '../helpers/tmp.js';

async function accounts(passwd: string, group: string) {
  const dir = await tempDir();
  const files = { passwd: join(dir, 'passwd'), group: join(dir, 'group') };
  await writeFile(files.passwd, passwd);
  await writeFile(files.group, group);
  return files;
}

const PASSWD = ['root:x:0:0:root:/root:/bin/bash', 'deploy:x:1001:1001::/home/deploy:/bin/sh', 'other:x:1002:1002::/home/other:/bin/sh', 'no-uid:x::1001::/:/bin/sh', 'no-gid:x:1004:::/:/bin/sh', ''].join('\n');
const GROUP = [
  'root:x:0:',
  'deploy:x:1001:',
  'docker:x:998:other,deploy',
  'adm:x:4:deploy',
  'www-data:x:33:other',
  '# a comment:x:5:deploy',
  'broken:x::deploy',
  'deployers:x:1003:deployer',
  '',
].join('\n');

describe('run_as', () => {
  it("gives the user the groups a login would: its group first, then every group of /etc/group that lists it", async () => {
    const files = await accounts(PASSWD, GROUP);
    expect(await resolveRunAs('deploy', undefined, files)).toEqual({ user: 'deploy', uid: 1001, gid: 1001, groups: [1001, 998, 4], home: '/home/deploy' });
    expect(await resolveRunAs('1002', undefined, files)).toEqual({ user: 'other', uid: 1002, gid: 1002, groups: [1002, 998, 33], home: '/home/other' });
    // A named group replaces the user's own, and is listed once.
    expect(await resolveRunAs('deploy', 'docker', files)).toMatchObject({ gid: 998, groups: [998, 4] });
    expect(await resolveRunAs('deploy', '33', files)).toMatchObject({ gid: 33, groups: [33, 998, 4] });
  });

  it('gives a user known only by its number its group alone', async () => {
    const files = await accounts(PASSWD, GROUP);
    expect(await resolveRunAs('4242', '4242', files)).toEqual({ user: '4242', uid: 4242, gid: 4242, groups: [4242], home: '/' });
  });

  it('never takes an empty id field for 0 (root): such a line is reported', async () => {
    const files = await accounts(PASSWD, GROUP);
    expect(await resolveRunAs('no-uid', undefined, files)).toEqual({ problem: `expected a numeric user id for "no-uid" in ${files.passwd}, got ""` });
    expect(await resolveRunAs('no-gid', undefined, files)).toEqual({ problem: 'expected a group for user "no-gid"; name one with run_as.group' });
    expect(await resolveRunAs('deploy', 'broken', files)).toEqual({ problem: `expected a numeric group id for "broken" in ${files.group}, got ""` });
    expect(await resolveRunAs('no-gid', 'deploy', files)).toMatchObject({ uid: 1004, gid: 1001, groups: [1001] });
  });

  it('names a user or group that does not exist', async () => {
    const files = await accounts(PASSWD, GROUP);
    expect(await resolveRunAs('nobody-here', undefined, files)).toEqual({ problem: 'expected a user that exists on this machine, got "nobody-here"' });
    expect(await resolveRunAs('deploy', 'no-such-group', files)).toEqual({ problem: 'expected a group that exists on this machine, got "no-such-group"' });
  });
});
