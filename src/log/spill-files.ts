/** The two spill segments a capped run log keeps beside itself; a crash during the run leaves them behind. */
export function spillFiles(logPath: string): readonly [string, string] {
  return [`${logPath}.tail-a`, `${logPath}.tail-b`];
}
