/**
 * The environment of a helper program the daemon starts (perl, find, chgrp): PATH alone. The
 * daemon's own holds every job's secrets, and a program started as a job's user (`run_as`)
 * could have it read by any process of that user (`/proc/<pid>/environ`).
 */
export function pathOnlyEnvironment(): Record<string, string> {
  return { PATH: process.env.PATH ?? '/usr/bin:/bin' };
}
