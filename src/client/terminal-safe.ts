/**
 * Makes a run log safe to print on a terminal. A log holds what a pusher chose (commit
 * subjects in git's output, whatever the repository's scripts print), and escape sequences in
 * it would reach the operator's terminal: set its title, write its clipboard, redraw the
 * screen. Control characters other than tab, newline and carriage return become caret
 * notation (ESC is `^[`, DEL `^?`), C1 controls (U+0080–U+009F, two bytes in UTF-8) become
 * `\u0080`-style escapes, and a byte 0x80–0x9F that is no part of a well-formed UTF-8
 * character (some terminals take one for a C1 control: 0x9B is CSI) becomes `\x9b`. That is
 * for a UTF-8 terminal: one in an 8-bit mode, which reads every byte alone, would still take
 * the 0x9B inside U+201B for CSI. Stateful across chunks: a character cut by a chunk's end is
 * still read as one. A chunk of plain ASCII text is passed on as it is.
 */
export function createTerminalFilter(): (chunk: Uint8Array) => Uint8Array {
  // The previous chunk ended with 0xC2: the first byte of a C1 control, or of U+00A0–U+00BF.
  let carried = false;
  // Continuation bytes the character being read still needs (it may have begun in an earlier
  // chunk), and the range its next one must be in (narrower after some first bytes: UTF-8
  // allows no overlong form, surrogate or code point past U+10FFFF).
  let due = 0;
  let low = 0x80;
  let high = 0xbf;
  return (chunk) => {
    if (chunk.length === 0 || (!carried && due === 0 && chunk.findIndex((byte) => isControl(byte) || byte >= 0x80) === -1)) return chunk;
    const bytes = carried ? Uint8Array.from([0xc2, ...chunk]) : chunk;
    carried = false;
    const out: number[] = [];
    const escape = (text: string) => out.push(...Buffer.from(text, 'latin1'));
    for (let i = 0; i < bytes.length; i += 1) {
      const byte = bytes[i] as number;
      if (due > 0) {
        const next = byte >= low && byte <= high;
        [low, high] = [0x80, 0xbf];
        if (next) {
          out.push(byte);
          due -= 1;
          continue;
        }
        due = 0; // a broken character: this byte is read afresh
      }
      if (byte === 0xc2 && i + 1 === bytes.length) {
        carried = true;
      } else if (byte === 0xc2 && (bytes[i + 1] as number) >= 0x80 && (bytes[i + 1] as number) <= 0x9f) {
        escape(`\\u00${(bytes[i + 1] as number).toString(16)}`);
        i += 1;
      } else if (isControl(byte)) {
        out.push(0x5e, byte === 0x7f ? 0x3f : byte + 0x40); // ^@ .. ^_, ^?
      } else if (byte >= 0x80 && byte <= 0x9f) {
        escape(`\\x${byte.toString(16)}`);
      } else {
        out.push(byte);
        due = byte >= 0xc2 && byte <= 0xdf ? 1 : byte >= 0xe0 && byte <= 0xef ? 2 : byte >= 0xf0 && byte <= 0xf4 ? 3 : 0;
        if (byte === 0xe0) low = 0xa0;
        else if (byte === 0xed) high = 0x9f;
        else if (byte === 0xf0) low = 0x90;
        else if (byte === 0xf4) high = 0x8f;
      }
    }
    return Uint8Array.from(out);
  };
}

/** A C0 control other than tab, newline and carriage return, or DEL. */
function isControl(byte: number): boolean {
  return (byte < 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) || byte === 0x7f;
}
