import { describe, expect, it } from 'vitest';
import { isSigningSecret, sign, verifyDelivery, type SignatureClock } from '../../src/providers/standard-webhooks.js';
import { newSigningSecret, standardSignature } from '../helpers/standard-webhooks.js';

// The test vector published with the Standard Webhooks specification.
const VECTOR = {
  secret: 'whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw',
  id: 'msg_p5jXN8AQM9LWM0D4loKWxJek',
  timestamp: 1614265330,
  body: '{"test": 2432232314}',
  signature: 'v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=',
};

const clockAt = (seconds: number, toleranceMs = 5 * 60_000): SignatureClock => ({ now: () => new Date(seconds * 1000), toleranceMs: () => toleranceMs });

const vectorHeaders = (signature = VECTOR.signature) => ({ 'webhook-id': VECTOR.id, 'webhook-timestamp': String(VECTOR.timestamp), 'webhook-signature': signature });

function verify(headers: Record<string, string>, body = VECTOR.body, secrets = [VECTOR.secret], clock = clockAt(VECTOR.timestamp)) {
  return verifyDelivery(headers, Buffer.from(body), secrets, clock);
}

describe('Standard Webhooks signatures', () => {
  it('signs the published test vector exactly as the specification does', () => {
    expect(sign(VECTOR.secret, VECTOR.id, VECTOR.timestamp, VECTOR.body)).toBe(VECTOR.signature);
  });

  it('verifies the published test vector with the clock at its timestamp', () => {
    expect(verify(vectorHeaders())).toEqual({ ok: true });
  });

  it('refuses the test vector when the clock is six minutes later, or six minutes earlier', () => {
    expect(verify(vectorHeaders(), VECTOR.body, [VECTOR.secret], clockAt(VECTOR.timestamp + 6 * 60))).toMatchObject({ ok: false, reason: expect.stringMatching(/outside the accepted window/) });
    expect(verify(vectorHeaders(), VECTOR.body, [VECTOR.secret], clockAt(VECTOR.timestamp - 6 * 60))).toMatchObject({ ok: false });
  });

  it('accepts a timestamp within a configured tolerance and refuses it beyond', () => {
    expect(verify(vectorHeaders(), VECTOR.body, [VECTOR.secret], clockAt(VECTOR.timestamp + 50, 60_000))).toEqual({ ok: true });
    expect(verify(vectorHeaders(), VECTOR.body, [VECTOR.secret], clockAt(VECTOR.timestamp + 70, 60_000))).toMatchObject({ ok: false });
  });

  it('refuses a body changed after signing, even by one space', () => {
    expect(verify(vectorHeaders(), '{"test":2432232314}')).toEqual({ ok: false, reason: 'no signature matches' });
  });

  it('refuses a signature made with another secret', () => {
    expect(verify(vectorHeaders(), VECTOR.body, [newSigningSecret()])).toEqual({ ok: false, reason: 'no signature matches' });
  });

  it('accepts a list of signatures when one of them is valid, and any of several secrets while rotating', () => {
    const other = standardSignature(newSigningSecret(), VECTOR.body, { id: VECTOR.id, at: new Date(VECTOR.timestamp * 1000) })['webhook-signature'] ?? '';
    expect(verify(vectorHeaders(`${other} ${VECTOR.signature}`))).toEqual({ ok: true });
    expect(verify(vectorHeaders(), VECTOR.body, [newSigningSecret(), VECTOR.secret])).toEqual({ ok: true });
  });

  it('ignores signatures of other versions such as v1a, even when they hold the right digest', () => {
    const digest = VECTOR.signature.slice('v1,'.length);
    expect(verify(vectorHeaders(`v1a,${digest}`))).toMatchObject({ ok: false, reason: 'no v1 signature in webhook-signature header' });
    expect(verify(vectorHeaders(`v1a,${digest} ${VECTOR.signature}`))).toEqual({ ok: true });
  });

  it.each([
    { name: 'no signature header', headers: { 'webhook-id': VECTOR.id, 'webhook-timestamp': String(VECTOR.timestamp) } },
    { name: 'an empty signature header', headers: vectorHeaders('') },
    { name: 'a GitHub-style signature', headers: vectorHeaders(`sha256=${'a'.repeat(64)}`) },
    { name: 'a signature that is not base64 of 32 bytes', headers: vectorHeaders('v1,c2hvcnQ=') },
    { name: 'no webhook-id', headers: { 'webhook-timestamp': String(VECTOR.timestamp), 'webhook-signature': VECTOR.signature } },
    { name: 'a webhook-id longer than 256 characters', headers: { ...vectorHeaders(), 'webhook-id': 'm'.repeat(257) } },
    { name: 'a webhook-id with a control character', headers: { ...vectorHeaders(), 'webhook-id': 'msg\u0001x' } },
    { name: 'a timestamp in milliseconds', headers: { ...vectorHeaders(), 'webhook-timestamp': `${VECTOR.timestamp}000` } },
    { name: 'a timestamp that is not a number', headers: { ...vectorHeaders(), 'webhook-timestamp': '2021-02-21T13:42:10Z' } },
  ])('refuses $name', ({ headers }) => {
    expect(verify(headers as Record<string, string>)).toMatchObject({ ok: false });
  });

  it('takes as signing secrets only whsec_ and the canonical base64 of at least 24 bytes', () => {
    expect(isSigningSecret(VECTOR.secret)).toBe(true);
    expect(isSigningSecret(newSigningSecret())).toBe(true);
    expect(isSigningSecret('MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw')).toBe(false);
    expect(isSigningSecret(`whsec_${Buffer.alloc(16, 1).toString('base64')}`)).toBe(false);
    expect(isSigningSecret('whsec_not base64 at all, just a password')).toBe(false);
  });
});
