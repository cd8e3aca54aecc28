import { describe, expect, it } from 'vitest';
import { formatTable, printable } from '../../src/client/table.js';

describe('the CLI tables', () => {
  it('show control characters from a record (a ref name may hold C1 controls) as escapes, never raw', () => {
    // U+009B is CSI as one character: a terminal that takes 8-bit controls would obey what follows.
    const ref = 'feature/\u009b2J\u001b]0;pwned\u0007';
    expect(printable(ref)).toBe('feature/\\u009b2J\\u001b]0;pwned\\u0007');
    const table = formatTable(['RUN', 'REF'], [['01jd6v8m1c9k4q7w2x5y8z0abc', ref]]);
    expect(table.split('\n')).toEqual(['RUN                         REF', '01jd6v8m1c9k4q7w2x5y8z0abc  feature/\\u009b2J\\u001b]0;pwned\\u0007']);
    // eslint-disable-next-line no-control-regex
    expect(table).not.toMatch(/[\u0000-\u0009\u000b-\u001f\u007f-\u009f]/);
    expect(printable('héllo, wörld — ✓')).toBe('héllo, wörld — ✓');
  });
});
