import { readFile } from 'node:fs/promises';

export interface RunAs {
  user: string;
  uid: number;
  gid: number;
  /**
   * The groups the user's processes have, as systemd's `User=` and `Group=` give them
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

const NUMBER = /^\d+$/;

/** A numeric id field; undefined for anything else, an empty field included (never id 0 by accident). */
function idOf(field: string | undefined): number | undefined {
  return field !== undefined && NUMBER.test(field) ? Number(field) : undefined;
}

/**
 * Resolves `run_as` (names or numeric ids) from /etc/passwd and /etc/group. The group
 * defaults to the user's primary group. Returns a problem to report instead when a name
 * is unknown or its line has no numeric id.
 */
export async function resolveRunAs(user: string, group: string | undefined, files: AccountFiles = SYSTEM_FILES): Promise<RunAs | { problem: string }> {
  const passwd = await entries(files.passwd);
  const account = passwd.find((fields) => fields[0] === user || (NUMBER.test(user) && fields[2] === user));
  if (!account && !NUMBER.test(user)) return { problem: `expected a user that exists on this machine, got ${JSON.stringify(user)}` };
  const uid = account ? idOf(account[2]) : Number(user);
  if (uid === undefined) return { problem: `expected a numeric user id for ${JSON.stringify(user)} in ${files.passwd}, got ${JSON.stringify(account?.[2] ?? '')}` };
  let gid = account ? idOf(account[3]) : undefined;
  const groups = await entries(files.group);
  if (group !== undefined) {
    const found = groups.find((fields) => fields[0] === group || (NUMBER.test(group) && fields[2] === group));
    if (!found && !NUMBER.test(group)) return { problem: `expected a group that exists on this machine, got ${JSON.stringify(group)}` };
    gid = found ? idOf(found[2]) : Number(group);
    if (gid === undefined) return { problem: `expected a numeric group id for ${JSON.stringify(group)} in ${files.group}, got ${JSON.stringify(found?.[2] ?? '')}` };
  }
  if (gid === undefined) return { problem: `expected a group for user ${JSON.stringify(user)}; name one with run_as.group` };
  const name = account?.[0];
  // A user known by number alone is nobody's member: it has its group only.
  const memberOf = name === undefined ? [] : groups.filter((fields) => (fields[3] ?? '').split(',').includes(name));
  const supplementary = memberOf.map((fields) => idOf(fields[2])).filter((id): id is number => id !== undefined && id !== gid);
  return { user: name ?? user, uid, gid, groups: [gid, ...new Set(supplementary)], home: account?.[5] ?? '/' };
}
