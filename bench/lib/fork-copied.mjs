// The part of a process's memory a fork copies the page tables of: its private (anonymous)
// pages outside mappings marked MADV_DONTFORK (`dc` in VmFlags), in MB. V8's heap is so
// marked; malloc's memory (Buffers, node's and V8's own allocations) is not.
import { readFileSync } from 'node:fs';

/** `pid` defaults to this process. */
export function forkCopiedMb(pid = 'self') {
  let anonKb = 0;
  let copiedKb = 0;
  for (const line of readFileSync(`/proc/${pid}/smaps`, 'utf8').split('\n')) {
    if (line.startsWith('Anonymous:')) anonKb = Number(line.split(/\s+/)[1]);
    else if (line.startsWith('VmFlags:')) {
      if (!line.split(/\s+/).includes('dc')) copiedKb += anonKb;
      anonKb = 0;
    }
  }
  return copiedKb / 1024;
}
