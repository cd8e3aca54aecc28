/**
 * Group commit for one expensive operation, such as an fsync: everyone who asks while a run
 * of `task` is in progress is served together by the next run, which starts when that one
 * ends. A request is only ever answered by a run that started after it was made, so what
 * the requester wrote before asking is covered.
 */
export class SyncCoalescer {
  readonly #task: () => Promise<void>;
  /** The run in progress, or the last one. */
  #running: Promise<void> = Promise.resolve();
  /** The run that will serve requests made now; cleared the moment it starts. */
  #next: Promise<void> | undefined;
  #inProgress = false;

  constructor(task: () => Promise<void>) {
    this.#task = task;
  }

  /** False when nothing runs and nothing waits to run. */
  get busy(): boolean {
    return this.#inProgress || this.#next !== undefined;
  }

  /** Resolves once a run of the task that started after this call has succeeded; rejects if it failed. */
  request(): Promise<void> {
    if (this.#next) return this.#next;
    const next = this.#running
      .catch(() => undefined)
      .then(async () => {
        this.#next = undefined;
        this.#running = next;
        this.#inProgress = true;
        try {
          await this.#task();
        } finally {
          this.#inProgress = false;
        }
      });
    this.#next = next;
    return next;
  }
}
