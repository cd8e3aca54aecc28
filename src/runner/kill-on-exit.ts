import { signalGroupAndSession } from './kill-group.js';

const liveGroups = new Set<number>();
let listening = false;

function killLiveGroups(): void {
  for (const pgid of liveGroups) {
    try {
      signalGroupAndSession(pgid, 'SIGKILL');
    } catch {
      // Nothing more can be done while exiting.
    }
  }
}

/**
 * Makes sure a run's process group does not outlive the daemon: nothing stops a detached
 * subprocess, which every run is, when its parent exits, so this kills the whole group.
 * Only a synchronous SIGKILL is possible at exit: a graceful stop is the job of cancelling
 * runs before shutting down. Returns the function that forgets the group.
 */
export function killGroupOnExit(pgid: number): () => void {
  if (!listening) {
    process.on('exit', killLiveGroups);
    listening = true;
  }
  liveGroups.add(pgid);
  return () => {
    liveGroups.delete(pgid);
  };
}
