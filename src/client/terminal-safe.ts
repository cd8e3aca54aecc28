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
  // The previous chunk ended with 0xC2: the first byte of a C1 control, or of U+00A0–U+00BF.
  let carried = false;
  return (chunk) => {
    if (chunk.length === 0 || (!carried && chunk.findIndex((byte) => isControl(byte) || byte === 0xc2) === -1)) return chunk;
    const bytes = carried ? Uint8Array.from([0xc2, ...chunk]) : chunk;
    carried = false;
    const out: number[] = [];
    for (let i = 0; i < bytes.length; i += 1) {
      const byte = bytes[i] as number;
      if (byte === 0xc2 && i + 1 === bytes.length) {
        carried = true;
      } else if (byte === 0xc2 && (bytes[i + 1] as number) >= 0x80 && (bytes[i + 1] as number) <= 0x9f) {
        out.push(...Buffer.from(`\\u00${(bytes[i + 1] as number).toString(16)}`, 'latin1'));
        i += 1;
      } else if (isControl(byte)) {
        out.push(0x5e, byte === 0x7f ? 0x3f : byte + 0x40); // ^@ .. ^_, ^?
      } else {
        out.push(byte);
      }
    }
    return Uint8Array.from(out);
  };
}

/** A C0 control other than tab, newline and carriage return, or DEL. */
function isControl(byte: number): boolean {
  return (byte < 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) || byte === 0x7f;
}
