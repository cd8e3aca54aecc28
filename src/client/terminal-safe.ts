/**
 * Makes a run log safe to print on a terminal. A log holds what a pusher chose (commit
 * subjects in git's output, whatever the repository's scripts print), and escape sequences in
 * it would reach the operator's terminal: set its title, write its clipboard, redraw the
 * screen. Control characters other than tab, newline and carriage return become caret
 * notation (ESC is `^[`, DEL `^?`), and C1 controls (U+0080–U+009F, two bytes in UTF-8) become
 * `\u0080`-style escapes. Stateful across chunks: a C1 control cut by a chunk's end is still
 * caught. A chunk with nothing to change is passed on as it is.
 */
export function createTerminalFilter(): (chunk: Uint8Array) => Uint8Array {
  let carried = false; // the previous chunk ended with 0xC2, the first byte of a C1 control or of U+00A0–U+00BF
  return (chunk) => {
    if (chunk.length === 0 || (!carried && chunk.findIndex(needsEscape) === -1)) return chunk;
    const out: number[] = [];
    let i = 0;
    if (carried) {
      carried = false;
      const next = chunk[0];
      if (next !== undefined && next >= 0x80 && next <= 0x9f) {
        out.push(...escapeC1(next));
        i = 1;
      } else {
        out.push(0xc2);
      }
    }
    for (; i < chunk.length; i += 1) {
      const byte = chunk[i] as number;
      if (byte === 0xc2) {
        if (i + 1 === chunk.length) {
          carried = true;
          break;
        }
        const next = chunk[i + 1] as number;
        if (next >= 0x80 && next <= 0x9f) {
          out.push(...escapeC1(next));
          i += 1;
          continue;
        }
        out.push(byte);
      } else if ((byte < 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) || byte === 0x7f) {
        out.push(0x5e, byte === 0x7f ? 0x3f : byte + 0x40); // ^@ .. ^_, ^?
      } else {
        out.push(byte);
      }
    }
    return Uint8Array.from(out);
  };
}

function escapeC1(second: number): number[] {
  return [...Buffer.from(`\\u00${second.toString(16)}`, 'latin1')];
}

function needsEscape(byte: number): boolean {
  return (byte < 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) || byte === 0x7f || byte === 0xc2;
}
