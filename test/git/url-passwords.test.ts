import { describe, expect, it } from 'vitest';
import { withoutUrlPasswords } from '../../src/git/git-runner.js';

describe('withoutUrlPasswords', () => {
  it('hides the password of every URL in a message, and keeps the rest', () => {
    const text = 'Expected commit abc on the remote https://deploy:hunter2@git.example.com/app.git, but it was not found; mirror ssh://git:pw@host:2222/app.git';
    expect(withoutUrlPasswords(text)).toBe('Expected commit abc on the remote https://deploy:***@git.example.com/app.git, but it was not found; mirror ssh://git:***@host:2222/app.git');
  });

  it('leaves URLs without a password, scp-like remotes and paths alone', () => {
    const text = 'https://git.example.com/app.git https://token@git.example.com/x.git git@github.com:acme/app.git /srv/git/app.git host:2222';
    expect(withoutUrlPasswords(text)).toBe(text);
  });
});
