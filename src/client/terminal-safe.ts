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
 * still read as one (and held back until it is whole). A chunk of plain ASCII text is passed on
 * as it is.
 */
export interface TerminalFilter {
  (chunk: Uint8Array): Uint8Array;
  /** The end of the output: what a character that never came whole held back, escaped as strays are. */
  flush(): Uint8Array;
}

export function createTerminalFilter(): TerminalFilter {
  // The bytes of a character not complete yet (it may go on in the next chunk), how many more
  // it needs, and the range the next one must be in (narrower after some first bytes: UTF-8
  // allows no overlong form, surrogate or code point past U+10FFFF). Held back until the
  // character is whole, so that a byte of a character that breaks off is escaped, not sent.
  let pending: number[] = [];
  let due = 0;
  let low = 0x80;
  let high = 0xbf;
  const strays = (bytes: readonly number[]): number[] => bytes.flatMap((byte) => (byte >= 0x80 && byte <= 0x9f ? [...Buffer.from(`\\x${byte.toString(16)}`, 'latin1')] : [byte]));
  const filter = (chunk: Uint8Array): Uint8Array => {
    if (chunk.length === 0 || (due === 0 && chunk.findIndex((byte) => isControl(byte) || byte >= 0x80) === -1)) return chunk;
    const out: number[] = [];
    const escape = (text: string) => out.push(...Buffer.from(text, 'latin1'));
    // A byte that is no part of a character: one a terminal could take for a C1 control is escaped.
    const stray = (byte: number) => out.push(...strays([byte]));
    for (const byte of chunk) {
      if (due > 0) {
        if (byte >= low && byte <= high) {
          pending.push(byte);
          due -= 1;
          [low, high] = [0x80, 0xbf];
          if (due > 0) continue;
          // U+0080–U+009F, the C1 controls, are 0xC2 and 0x80–0x9F.
          const [first, second = 0] = pending;
          if (first === 0xc2 && second <= 0x9f) escape(`\\u00${second.toString(16)}`);
          else out.push(...pending);
          pending = [];
          continue;
        }
        // A broken character: its bytes are strays, and this byte is read afresh.
        pending.forEach(stray);
        pending = [];
        due = 0;
        [low, high] = [0x80, 0xbf];
      }
      if (isControl(byte)) {
        out.push(0x5e, byte === 0x7f ? 0x3f : byte + 0x40); // ^@ .. ^_, ^?
      } else if (byte < 0x80) {
        out.push(byte);
      } else if (byte >= 0xc2 && byte <= 0xf4) {
        pending = [byte];
        due = byte <= 0xdf ? 1 : byte <= 0xef ? 2 : 3;
        if (byte === 0xe0) low = 0xa0;
        else if (byte === 0xed) high = 0x9f;
        else if (byte === 0xf0) low = 0x90;
        else if (byte === 0xf4) high = 0x8f;
      } else {
        stray(byte);
      }
    }
    return Uint8Array.from(out);
  };
  return Object.assign(filter, {
    flush(): Uint8Array {
      const held = Uint8Array.from(strays(pending));
      pending = [];
      due = 0;
      [low, high] = [0x80, 0xbf];
      return held;
    },
  });
}

/** A C0 control other than tab, newline and carriage return, or DEL. */
function isControl(byte: number): boolean {
  return (byte < 0x20 && byte !== 0x09 && byte !== 0x0a && byte !== 0x0d) || byte === 0x7f;
}
