import { closeSync, constants, fstatSync, lstatSync, opendirSync, openSync, readFileSync, readdirSync, readlinkSync } from 'node:fs';
import { readPlainFileStart } from './plain-file.js';

/**
 * The most files a checkout's index may name for its work tree to be checked here. The check
 * runs on the daemon's event loop once a run, after `checkout`: for 341 files in 59 folders
 * about 4 ms once its code is warm and 16–22 ms the first time, where `git clean` took 7.5 ms in a
 * process of its own. A larger tree is cleaned by `git clean` every time.
 */
export const MAX_INDEXED_FILES = 500;
/** The largest index read: well above what MAX_INDEXED_FILES entries take. */
const MAX_INDEX_BYTES = 2 * 1024 * 1024;

/** A file's type as the index and the work tree are compared: a regular file or a link. */
type Kind = 'f' | 'l';

/**
 * Whether the checkout's work tree holds exactly what git's index names and nothing else: every
 * entry below the top folder (the top's `.git` left out) a file or link the index names, of the
 * same kind, or a folder on the way to one, and every file the index names there. Then `git
 * clean -ffdx` would find nothing to remove, and is not needed. Names are compared as bytes,
 * never as text. False on any doubt, so that the caller cleans as usual: an index git did not
 * write as expected (a version other than 2 to 4, a split or sparse index, an entry in
 * conflict, skipped in the work tree or added with intent), a submodule, more than
 * MAX_INDEXED_FILES files, an unreadable folder, or a file system mounted below the checkout
 * (reading a FUSE mount could hold the event loop). Links are never followed, not even one put
 * in a folder's place while the check runs: each folder is opened through the one above it (see
 * inFolder), and without `/proc` the answer is no. A folder holding an entry the index does not
 * name is not read further.
 */
export function holdsOnlyIndexed(checkout: string): boolean {
  let top: number | undefined;
  try {
    // The checkout's own path is the config's, and may be a link; nothing below it is followed.
    // Opened first, and every later look is at that very folder (its mounts included), never
    // at the path again.
    top = openSync(checkout, constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NONBLOCK);
    if (holdsMounts(readlinkSync(byDescriptor(top), { encoding: 'latin1' }))) return false;
    const indexed = readIndex(top);
    if (indexed === undefined) return false;
    // Every folder on the way to an indexed file, by its path with a trailing slash ('' is the top).
    const folders = new Set<string>(['']);
    for (const path of indexed.keys()) for (let slash = path.indexOf('/'); slash !== -1; slash = path.indexOf('/', slash + 1)) folders.add(path.slice(0, slash + 1));
    const walk: Walk = { indexed, folders, device: fstatSync(top).dev, files: 0 };
    return holdsOnlyIndexedBelow(top, '', walk) && walk.files === indexed.size;
  } catch {
    return false;
  } finally {
    if (top !== undefined) closeSync(top);
  }
}

/** A folder opened for reading its entries, never through a link (the last part of its path), and without waiting on a device. */
const FOLDER_FLAGS = constants.O_RDONLY | constants.O_DIRECTORY | constants.O_NOFOLLOW | constants.O_NONBLOCK;

/**
 * The path that names the folder (or file) open as `fd` by its descriptor, not by the path it
 * was reached by: the kernel takes `/proc/self/fd/N` to the very folder, so a folder on the way
 * that was swapped for a link since it was listed leads nowhere else.
 */
function byDescriptor(fd: number): string {
  return `/proc/self/fd/${fd}`;
}

/** The path of the entry `name` of the folder open as `fd`, by the folder's descriptor (see byDescriptor). */
function inFolder(fd: number, name: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${byDescriptor(fd)}/`), name]);
}

/** What one look compares the tree with, and how far it got. */
interface Walk {
  indexed: ReadonlyMap<string, Kind>;
  folders: ReadonlySet<string>;
  /** The checkout's file system: a folder on another is a mount made since the mounts were read. */
  device: number;
  /** Files and links seen so far that the index names. */
  files: number;
}

/**
 * holdsOnlyIndexed for the folder open as `fd`, whose entries' paths start with `prefix`, and the
 * folders below it, each opened through its parent (see inFolder) once the parent is listed:
 * a process that puts a link in a folder's place before the folder is opened (a service the
 * command left running, as the job's user) makes the open fail, and the check say no, instead
 * of leading the daemon, root with `run_as`, to read a folder elsewhere. A folder on another
 * file system (mounted since the mounts were read) also makes it say no, before it is read.
 */
function holdsOnlyIndexedBelow(fd: number, prefix: string, walk: Walk): boolean {
  const { indexed, folders } = walk;
  const below: string[] = [];
  // Read 128 entries at a time: a folder of millions of untracked files is left after its first.
  const dir = opendirSync(byDescriptor(fd), { encoding: 'latin1', bufferSize: 128 });
  try {
    for (let entry = dir.readSync(); entry !== null; entry = dir.readSync()) {
      if (prefix === '' && entry.name === '.git') continue;
      const path = `${prefix}${entry.name}`;
      if (entry.isDirectory()) {
        if (!folders.has(`${path}/`)) return false;
        below.push(entry.name);
        continue;
      }
      const kind = indexed.get(path);
      if (kind === undefined || kind !== (entry.isFile() ? 'f' : entry.isSymbolicLink() ? 'l' : undefined)) return false;
      walk.files += 1;
    }
  } finally {
    dir.closeSync();
  }
  for (const name of below) {
    const child = openSync(inFolder(fd, Buffer.from(name, 'latin1')), FOLDER_FLAGS);
    try {
      if (fstatSync(child).dev !== walk.device || !holdsOnlyIndexedBelow(child, `${prefix}${name}/`, walk)) return false;
    } finally {
      closeSync(child);
    }
  }
  return true;
}

/**
 * The entries of the folder at `path`, read through the folder itself once it is open, not by
 * its path again: `link` when a link is there (the last part of `path`), undefined when
 * anything else that is not a readable folder is (nothing, a file, a FIFO), or without `/proc`.
 */
export function folderEntries(path: string): string[] | 'link' | undefined {
  let fd: number;
  try {
    fd = openSync(path, FOLDER_FLAGS);
  } catch {
    // With O_DIRECTORY a link fails as ENOTDIR, as a file does: which of the two it was is only told.
    try {
      return lstatSync(path).isSymbolicLink() ? 'link' : undefined;
    } catch {
      return undefined;
    }
  }
  try {
    return readdirSync(byDescriptor(fd));
  } catch {
    return undefined;
  } finally {
    closeSync(fd);
  }
}

/** Whether a file system is mounted anywhere below `folder` (a real path, its bytes as latin1). */
function holdsMounts(folder: string): boolean {
  const prefix = `${folder}/`;
  // The fifth field is the mount point, with space, tab, newline and backslash as octal escapes.
  return readFileSync('/proc/self/mountinfo', 'latin1')
    .split('\n')
    .some((line) => {
      const point = (line.split(' ')[4] ?? '').replace(/\\([0-7]{3})/g, (_, octal: string) => String.fromCharCode(Number.parseInt(octal, 8)));
      return point.startsWith(prefix);
    });
}

/**
 * The files and links git's index in `.git` of the folder open as `top` names, by path (its bytes as latin1), or
 * undefined when the index is not one this reads with certainty (see holdsOnlyIndexed): git's
 * index format, versions 2 to 4 (Documentation/gitformat-index.txt), with SHA-1 or SHA-256
 * object ids, told apart by which of the two makes the file end exactly in its extensions and
 * checksum.
 */
function readIndex(top: number): Map<string, Kind> | undefined {
  const gitDir = openSync(inFolder(top, Buffer.from('.git')), FOLDER_FLAGS);
  let read: ReturnType<typeof readPlainFileStart>;
  try {
    if (readdirSync(byDescriptor(gitDir)).some((name) => name.startsWith('sharedindex.'))) return undefined;
    read = readPlainFileStart(inFolder(gitDir, Buffer.from('index')), MAX_INDEX_BYTES);
  } finally {
    closeSync(gitDir);
  }
  // Not a plain file, larger than MAX_INDEX_BYTES, or cut short while it was read: not read at all.
  if (typeof read !== 'object' || read.bytes.length !== read.size) return undefined;
  const index = read.bytes;
  if (index.length < 12 || index.toString('latin1', 0, 4) !== 'DIRC') return undefined;
  return parseEntries(index, 20) ?? parseEntries(index, 32);
}

const MODE_FILE = 0o100644;
const MODE_EXECUTABLE = 0o100755;
const MODE_LINK = 0o120000;
/** The flags' bits for an entry's merge stage, for extended flags following (version 3 and up), and the extended ones for skip-worktree and intent-to-add. */
const STAGE_MASK = 0x3000;
const EXTENDED = 0x4000;
const SKIP_WORKTREE_OR_INTENT = 0x4000 | 0x2000;

function parseEntries(index: Buffer, idLength: number): Map<string, Kind> | undefined {
  const version = index.readUInt32BE(4);
  const count = index.readUInt32BE(8);
  if (version < 2 || version > 4 || count > MAX_INDEXED_FILES) return undefined;
  const entries = new Map<string, Kind>();
  let offset = 12;
  let previous = '';
  for (let entry = 0; entry < count; entry += 1) {
    const start = offset;
    const flagsAt = start + 40 + idLength;
    if (flagsAt + 2 > index.length) return undefined;
    const mode = index.readUInt32BE(start + 24);
    const flags = index.readUInt16BE(flagsAt);
    offset = flagsAt + 2;
    if ((flags & EXTENDED) !== 0) {
      if (version < 3 || offset + 2 > index.length || (index.readUInt16BE(offset) & SKIP_WORKTREE_OR_INTENT) !== 0) return undefined;
      offset += 2;
    }
    let path: string;
    if (version === 4) {
      // The path is the previous one less its last `strip` bytes, then this entry's suffix.
      let byte = index[offset++] ?? 0;
      let strip = byte & 0x7f;
      while ((byte & 0x80) !== 0) {
        byte = index[offset++] ?? 0;
        strip = ((strip + 1) << 7) + (byte & 0x7f);
      }
      const end = index.indexOf(0, offset);
      if (end === -1 || strip > previous.length) return undefined;
      path = previous.slice(0, previous.length - strip) + index.toString('latin1', offset, end);
      offset = end + 1;
    } else {
      const end = index.indexOf(0, offset);
      if (end === -1) return undefined;
      path = index.toString('latin1', offset, end);
      // 1 to 8 NUL bytes end the entry at a multiple of 8 bytes from its start.
      offset = start + ((end - start + 8) & ~7);
      if (offset > index.length || index.subarray(end, offset).some((padding) => padding !== 0)) return undefined;
    }
    previous = path;
    if ((flags & STAGE_MASK) !== 0 || path === '' || entries.has(path)) return undefined;
    if (mode === MODE_FILE || mode === MODE_EXECUTABLE) entries.set(path, 'f');
    else if (mode === MODE_LINK) entries.set(path, 'l');
    // A submodule (0o160000), a sparse folder (0o040000) or anything else.
    else return undefined;
  }
  // Extensions (a four-byte signature, then its size), then the checksum, and nothing else.
  while (offset + 8 <= index.length - idLength) offset += 8 + index.readUInt32BE(offset + 4);
  return offset === index.length - idLength ? entries : undefined;
}
