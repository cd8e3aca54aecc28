import { describe, expect, it } from 'vitest';
import { expandCommit } from '../../src/jobs/manual-deploy.js';
import type { RunRecord } from '../../src/jobs/run-record.js';

const A = 'a1b2c3d4e5f60718293a4b5c6d7e8f9012345678';
const B = 'a1b2c3d4ffffffffffffffffffffffffffffffff';
const C = 'c0ffee00c0ffee00c0ffee00c0ffee00c0ffee00';
const runs = [{ sha: A, deployedSha: C }, { sha: B }] as RunRecord[];

describe('a commit named by its start for a manual deploy', () => {
  it("is the one commit of the job's runs it starts, asked for or deployed", () => {
    expect(expandCommit('a1b2c3d4e', 'app', runs)).toBe(A);
    expect(expandCommit('c0ffee0', 'app', runs)).toBe(C);
  });

  it('is left as given when whole, or not lowercase hex, for the commit check to judge', () => {
    expect(expandCommit(C.replace('c0', '00'), 'app', runs)).toBe(C.replace('c0', '00'));
    expect(expandCommit('A1B2C3D4', 'app', runs)).toBe('A1B2C3D4');
    expect(expandCommit('--upload-pack=x', 'app', runs)).toBe('--upload-pack=x');
  });

  it('asks for more when it starts two commits, none, or is shorter than 7', () => {
    expect(() => expandCommit('a1b2c3d4', 'app', runs)).toThrow(`a1b2c3d4 starts 2 commits of job app's runs (${A}, ${B}): give more of it`);
    expect(() => expandCommit('deadbee', 'app', runs)).toThrow('No run of job app that deployhook keeps has a commit starting with deadbee');
    expect(() => expandCommit('a1b2c3', 'app', runs)).toThrow('Expected a commit id of at least 7 characters');
  });
});
