import { execFileSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { isValidRef } from '../../src/providers/validate.js';
import { mulberry32 } from '../helpers/random.js';

/** What `git check-ref-format` says of a full ref name; a missing git fails the test. */
function gitAccepts(ref: string): boolean {
  try {
    execFileSync('git', ['check-ref-format', ref], { stdio: 'ignore' });
    return true;
  } catch (error) {
    if ((error as { status?: number | null }).status === 1) return false;
    throw error;
  }
}

const ACCEPTED = [
  'refs/heads/main',
  'refs/heads/feature/deep/x',
  'refs/tags/v1.2.3',
  'refs/heads/release-2026.12',
  'refs/heads/ü-ñ-中',
  'refs/heads/a@b',
  'refs/heads/x.locky',
  'refs/heads/lock',
  'refs/heads/x/lock',
  'refs/heads/-x',
  // Hostile but legal: only ever used as data.
  'refs/heads/$(id)',
  'refs/heads/a;b|c&d',
  "refs/heads/it's",
  'refs/tags/@x',
];

const REFUSED = [
  'refs/heads/',
  'refs/heads//x',
  'refs/heads/x/',
  'refs/heads/x.',
  'refs/heads/a..b',
  'refs/heads/.x',
  'refs/heads/x/.y',
  'refs/heads/a.lock',
  'refs/heads/x.lock/y',
  'refs/heads/a@{b',
  'refs/heads/a b',
  'refs/heads/a\tb',
  'refs/heads/a\nb',
  'refs/heads/a~1',
  'refs/heads/a^',
  'refs/heads/a:b',
  'refs/heads/a?',
  'refs/heads/a*',
  'refs/heads/a[b',
  'refs/heads/a\\b',
  'refs/heads/a\u007f',
];

/** Names git allows that no push should carry: a part that is only `@`, refs outside heads and tags, very long names. */
const STRICTER_THAN_GIT = [
  'refs/heads/@',
  'refs/remotes/origin/main',
  'main',
  'HEAD',
  `refs/heads/${'x'.repeat(1014)}`,
];

describe('isValidRef', () => {
  it('accepts ordinary and hostile-but-legal branch and tag refs, each of which git accepts too', () => {
    for (const ref of ACCEPTED) {
      expect([ref, isValidRef(ref)]).toEqual([ref, true]);
      expect([ref, gitAccepts(ref)]).toEqual([ref, true]);
    }
  });

  it('refuses what git refuses, and a few names git allows that no push should carry', () => {
    for (const ref of [...REFUSED, ...STRICTER_THAN_GIT]) expect([ref, isValidRef(ref)]).toEqual([ref, false]);
    for (const ref of REFUSED) expect([ref, gitAccepts(ref)]).toEqual([ref, false]);
    expect(isValidRef(`refs/heads/${'x'.repeat(1013)}`)).toBe(true);
    expect(isValidRef('refs/heads/a\u0000b')).toBe(false);
    expect(isValidRef(undefined)).toBe(false);
    expect(isValidRef(42)).toBe(false);
  });

  it('never accepts a ref that git check-ref-format refuses (random names built from the characters that matter)', () => {
    const random = mulberry32(0x5eed);
    const pieces = ['a', 'b', 'lock', '.', '/', '@', '{', '}', ' ', '~', ':', '-', 'ü'];
    let accepted = 0;
    for (let i = 0; i < 300; i += 1) {
      const length = 1 + Math.floor(random() * 8);
      const name = Array.from({ length }, () => pieces[Math.floor(random() * pieces.length)]).join('');
      const ref = `${random() < 0.5 ? 'refs/heads/' : 'refs/tags/'}${name}`;
      if (!isValidRef(ref)) continue;
      accepted += 1;
      expect([ref, gitAccepts(ref)]).toEqual([ref, true]);
    }
    // The corpus exercises both answers.
    expect(accepted).toBeGreaterThan(30);
    expect(accepted).toBeLessThan(270);
  });
});
