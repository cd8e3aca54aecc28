import { readFile } from 'node:fs/promises';

export interface RunAs {
  user: string;
  uid: number;
  gid: number;
  /** The user's home folder, HOME for git and the command. */
  home: string;
}

async function entries(file: string): Promise<string[][]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').filter((line) => line !== '' && !line.startsWith('#')).map((line) => line.split(':'));
}

/**
 * Resolves `run_as` (names or numeric ids) from /etc/passwd and /etc/group. The group
 * defaults to the user's primary group. Returns a problem to report instead when a name
 * is unknown.
 */
export async function resolveRunAs(user: string, group: string | undefined): Promise<RunAs | { problem: string }> {
  const passwd = await entries('/etc/passwd');
  const account = passwd.find((fields) => fields[0] === user || (/^\d+$/.test(user) && fields[2] === user));
  if (!account && !/^\d+$/.test(user)) return { problem: `expected a user that exists on this machine, got ${JSON.stringify(user)}` };
  const uid = Number(account?.[2] ?? user);
  let gid = Number(account?.[3] ?? Number.NaN);
  if (group !== undefined) {
    const found = (await entries('/etc/group')).find((fields) => fields[0] === group || (/^\d+$/.test(group) && fields[2] === group));
    if (!found && !/^\d+$/.test(group)) return { problem: `expected a group that exists on this machine, got ${JSON.stringify(group)}` };
    gid = Number(found?.[2] ?? group);
  }
  if (!Number.isInteger(gid)) return { problem: `expected a group for user ${JSON.stringify(user)}; name one with run_as.group` };
  return { user: account?.[0] ?? user, uid, gid, home: account?.[5] ?? '/' };
}
