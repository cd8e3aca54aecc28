import { readFile } from 'node:fs/promises';

export interface RunAs {
  user: string;
  uid: number;
  gid: number;
  /**
   * The groups the user's processes have, as a login or systemd's `User=` gives them
   * (initgroups): `gid` first, then each group of /etc/group that lists the user as a member.
   */
  groups: number[];
  /** The user's home folder, HOME for git and the command. */
  home: string;
}

/** Where users and groups are read from; another pair only in tests. */
export interface AccountFiles {
  passwd: string;
  group: string;
}

const SYSTEM_FILES: AccountFiles = { passwd: '/etc/passwd', group: '/etc/group' };

async function entries(file: string): Promise<string[][]> {
  const text = await readFile(file, 'utf8').catch(() => '');
  return text.split('\n').filter((line) => line !== '' && !line.startsWith('#')).map((line) => line.split(':'));
}

/**
 * Resolves `run_as` (names or numeric ids) from /etc/passwd and /etc/group. The group
 * defaults to the user's primary group. Returns a problem to report instead when a name
 * is unknown.
 */
export async function resolveRunAs(user: string, group: string | undefined, files: AccountFiles = SYSTEM_FILES): Promise<RunAs | { problem: string }> {
  const passwd = await entries(files.passwd);
  const account = passwd.find((fields) => fields[0] === user || (/^\d+$/.test(user) && fields[2] === user));
  if (!account && !/^\d+$/.test(user)) return { problem: `expected a user that exists on this machine, got ${JSON.stringify(user)}` };
  const uid = Number(account?.[2] ?? user);
  let gid = Number(account?.[3] ?? Number.NaN);
  const groups = await entries(files.group);
  if (group !== undefined) {
    const found = groups.find((fields) => fields[0] === group || (/^\d+$/.test(group) && fields[2] === group));
    if (!found && !/^\d+$/.test(group)) return { problem: `expected a group that exists on this machine, got ${JSON.stringify(group)}` };
    gid = Number(found?.[2] ?? group);
  }
  if (!Number.isInteger(gid)) return { problem: `expected a group for user ${JSON.stringify(user)}; name one with run_as.group` };
  const name = account?.[0];
  // A user known by number alone is nobody's member: it has its group only.
  // A line without a numeric id (a broken file) names no group: never group 0 by accident.
  const memberOf = name === undefined ? [] : groups.filter((fields) => /^\d+$/.test(fields[2] ?? '') && (fields[3] ?? '').split(',').includes(name));
  const supplementary = memberOf.map((fields) => Number(fields[2])).filter((id) => id !== gid);
  return { user: name ?? user, uid, gid, groups: [gid, ...new Set(supplementary)], home: account?.[5] ?? '/' };
}
