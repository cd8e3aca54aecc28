import { describe, expect, it } from 'vitest';
import { createTerminalFilter } from '../../src/client/terminal-safe.js';

const shown = (chunks: string[]) => {
  const filter = createTerminalFilter();
  return chunks.map((chunk) => Buffer.from(filter(Buffer.from(chunk, 'utf8'))).toString('utf8')).join('');
};

describe('a run log printed on a terminal', () => {
  it('shows escape sequences from a commit subject instead of sending them to the terminal', () => {
    // A title change and an OSC 52 clipboard write, as a pusher could put them in a commit subject.
    const subject = 'HEAD is now at 1a2b3c4 \u001b]0;pwned\u0007 \u001b]52;c;ZWNobyBoaQ==\u0007fix\n';
    expect(shown([subject])).toBe('HEAD is now at 1a2b3c4 ^[]0;pwned^G ^[]52;c;ZWNobyBoaQ==^Gfix\n');
  });

  it('keeps tabs, newlines, carriage returns and text in any script as they are', () => {
    const text = 'Receiving objects:  50%\rReceiving objects: 100%\n\tdéployé ✓ 日本\u00a0end\n';
    expect(shown([text])).toBe(text);
  });

  it('escapes C1 controls, also one cut in two by the end of a chunk, and DEL', () => {
    const csi = Buffer.from('\u009b31m', 'utf8');
    expect(shown(['a\u009b31mb\u007f'])).toBe('a\\u009b31mb^?');
    const filter = createTerminalFilter();
    const first = filter(Uint8Array.from([0x61, csi[0] as number]));
    const second = filter(Uint8Array.from([...csi.subarray(1), 0x62]));
    expect(Buffer.concat([first, second]).toString('utf8')).toBe('a\\u009b31mb');
    // Also with an empty chunk in between.
    const gap = createTerminalFilter();
    const parts = [gap(Uint8Array.from([0x61, csi[0] as number])), gap(new Uint8Array(0)), gap(Uint8Array.from([...csi.subarray(1), 0x62]))];
    expect(Buffer.concat(parts).toString('utf8')).toBe('a\\u009b31mb');
    // A 0xC2 that starts an ordinary character (U+00A0) at a chunk's end is kept.
    const nbsp = Buffer.from('\u00a0', 'utf8');
    const kept = createTerminalFilter();
    expect(Buffer.concat([kept(Uint8Array.from([nbsp[0] as number])), kept(Uint8Array.from([nbsp[1] as number]))]).toString('utf8')).toBe('\u00a0');
  });

  it('escapes a lone byte 0x80-0x9F, which a terminal in 8-bit mode takes for a C1 control, and keeps characters whose bytes include one', () => {
    const filter = createTerminalFilter();
    // 0x9B is CSI in 8-bit mode: "A", CSI "2J" (clear the screen), then ESC [.
    expect(Buffer.from(filter(Uint8Array.from([0x41, 0x9b, 0x32, 0x4a, 0x85, 0x1b, 0x5b]))).toString('latin1')).toBe('A\\x9b2J\\x85^[[');
    // Û is C3 9B and 𝄞 is F0 9D 84 9E in UTF-8: kept, also when cut by a chunk's end.
    expect(Buffer.from(filter(Buffer.from('Û 𝄞', 'utf8'))).toString('utf8')).toBe('Û 𝄞');
    const cut = createTerminalFilter();
    const clef = Buffer.from('𝄞', 'utf8');
    const parts = [cut(Uint8Array.from([0x41, 0xc3])), cut(Uint8Array.from([0x9b, clef[0] as number, clef[1] as number])), cut(Uint8Array.from([clef[2] as number, clef[3] as number, 0x9b]))];
    expect(Buffer.concat(parts).toString('utf8')).toBe('AÛ𝄞\\x9b');
    // An overlong form (E0 80 9B) and a surrogate's bytes (ED A0 9B) are no characters: the 0x9B in them is escaped.
    const strict = createTerminalFilter();
    expect(Buffer.from(strict(Uint8Array.from([0xe0, 0x80, 0x9b, 0x41, 0xed, 0xa0, 0x9b]))).toString('latin1')).toBe('\xe0\\x80\\x9bA\xed\xa0\\x9b');
    // A character that breaks off after a byte 0x80–0x9F, also at a chunk's end: that byte is escaped, not sent.
    expect(Buffer.from(strict(Uint8Array.from([0xe1, 0x9b, 0x41, 0xf1, 0x9b, 0x9b, 0x42]))).toString('latin1')).toBe('\xe1\\x9bA\xf1\\x9b\\x9bB');
    const held = createTerminalFilter();
    expect(Buffer.concat([held(Uint8Array.from([0x41, 0xe1, 0x9b])), held(Uint8Array.from([0x41]))]).toString('latin1')).toBe('A\xe1\\x9bA');
    // At the end of the output (a run still writing), what was held back comes out, escaped as strays are.
    const ending = createTerminalFilter();
    expect(Buffer.concat([ending(Uint8Array.from([0x41, 0xe2, 0x82])), ending.flush()]).toString('latin1')).toBe('A\xe2\\x82');
    expect(ending.flush()).toHaveLength(0);
  });
});
