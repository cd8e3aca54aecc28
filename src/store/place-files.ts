import { randomBytes } from 'node:crypto';
import { mkdirSync, renameSync, unlinkSync, writeFileSync } from 'node:fs';
import { basename, dirname, join } from 'node:path';
import { isNotFound } from './remove-file.js';

/**
 * One file to put in place: `put` replaces it atomically (a temporary file and a rename, so a
 * reader, and the file after a crash of the process, sees the old or the new content);
 * `delete` removes it (one already gone is fine). A folder that
 * is missing is made. Nothing is forced to disk: the journal covers that time.
 */
export interface Placement {
  file: string;
  op: 'put' | 'delete';
  data: string | Uint8Array;
}

/** What a failed placement reports back across the worker boundary. */
export interface PlacementFailure {
  code: string | undefined;
  message: string;
}

let tempPrefix: string | undefined;
let tempCount = 0;

/**
 * A temporary file beside `file`, named so that the stores remove it at start
 * (`.<name>.<random per thread>-<count>.tmp`): unique without asking for randomness each time.
 */
function tempName(file: string): string {
  tempPrefix ??= randomBytes(6).toString('hex');
  tempCount += 1;
  return join(dirname(file), `.${basename(file)}.${tempPrefix}-${tempCount.toString(36)}.tmp`);
}

function codeOf(error: unknown): string | undefined {
  return (error as NodeJS.ErrnoException | undefined)?.code;
}

function replaceSync(file: string, data: string | Uint8Array): void {
  const temp = tempName(file);
  try {
    writeFileSync(temp, data, { flag: 'wx', mode: 0o600 });
    renameSync(temp, file);
  } catch (error) {
    try {
      unlinkSync(temp);
    } catch {
      // never made, or already renamed
    }
    throw error;
  }
}

/**
 * Makes one placement, synchronously: meant for the placing thread (see FilePlacer), where a
 * blocking system call holds up nothing else. Throws what the file system said.
 */
export function placeSync(placement: Placement): void {
  if (placement.op === 'delete') {
    try {
      unlinkSync(placement.file);
    } catch (error) {
      if (!isNotFound(error)) throw error;
    }
    return;
  }
  try {
    replaceSync(placement.file, placement.data);
  } catch (error) {
    if (!isNotFound(error)) throw error;
    // The folder was removed meanwhile (or never made): make it, then try once more.
    mkdirSync(dirname(placement.file), { recursive: true });
    replaceSync(placement.file, placement.data);
  }
}

/** Each placement made in order; a failure is reported for its file and the others go on. */
export function placeAllSync(placements: readonly Placement[]): Array<PlacementFailure | undefined> {
  return placements.map((placement) => {
    try {
      placeSync(placement);
      return undefined;
    } catch (error) {
      return { code: codeOf(error), message: (error as Error).message };
    }
  });
}
