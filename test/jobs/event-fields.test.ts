import { describe, expect, it } from 'vitest';
import { fieldValues, MAX_FIELD_BYTES } from '../../src/jobs/event-fields.js';
import { unmetCondition, valueAt } from '../../src/jobs/event-match.js';

const payload = JSON.parse('{"status":"firing","count":3,"silenced":false,"labels":{"severity":"page"},"alerts":[{"status":"firing"},{"status":"resolved"}],"__proto__":{"polluted":"yes"}}') as unknown;

describe('reading payload paths', () => {
  it('follows own keys and list indexes, never a prototype', () => {
    expect(valueAt(payload, 'labels.severity')).toBe('page');
    expect(valueAt(payload, 'alerts.1.status')).toBe('resolved');
    expect(valueAt(payload, 'alerts.2.status')).toBeUndefined();
    expect(valueAt(payload, 'alerts.length')).toBeUndefined();
    expect(valueAt(payload, 'status.length')).toBeUndefined();
    expect(valueAt(payload, 'labels.constructor')).toBeUndefined();
    expect(valueAt(payload, 'labels.toString')).toBeUndefined();
    // JSON.parse makes "__proto__" an ordinary own key: it is data, and nothing inherits from it.
    expect(valueAt(payload, '__proto__.polluted')).toBe('yes');
    expect(valueAt(payload, 'polluted')).toBeUndefined();
  });

  it('matches `when` values only with the same type, and says which condition failed', () => {
    const spec = (path: string, values: Array<string | number | boolean>) => ({ source: 's', fields: {}, when: [{ path, values }] });
    expect(unmetCondition(spec('count', [3]), payload)).toBeUndefined();
    expect(unmetCondition(spec('count', ['3']), payload)).toBe('count is 3, expected "3"');
    expect(unmetCondition(spec('silenced', [false]), payload)).toBeUndefined();
    expect(unmetCondition(spec('labels.team', ['ops', 'dev']), payload)).toBe('labels.team is missing, expected one of "ops", "dev"');
    expect(unmetCondition({ source: 's', fields: {}, when: [] }, payload)).toBeUndefined();
  });
});

describe('field values for the command', () => {
  it('gives strings as they are, numbers and booleans as text, objects and lists as JSON, and missing or null as empty', () => {
    const values = fieldValues({ STATUS: 'status', COUNT: 'count', SILENCED: 'silenced', LABELS: 'labels', ALERTS: 'alerts', NOTHING: 'runbook.url', NULL: 'gone' }, { ...(payload as object), gone: null });
    expect(values).toEqual({
      DEPLOYHOOK_FIELD_STATUS: 'firing',
      DEPLOYHOOK_FIELD_COUNT: '3',
      DEPLOYHOOK_FIELD_SILENCED: 'false',
      DEPLOYHOOK_FIELD_LABELS: '{"severity":"page"}',
      DEPLOYHOOK_FIELD_ALERTS: '[{"status":"firing"},{"status":"resolved"}]',
      DEPLOYHOOK_FIELD_NOTHING: '',
      DEPLOYHOOK_FIELD_NULL: '',
    });
  });

  it('removes NUL characters and cuts a long value at 32 KiB without splitting a character', () => {
    expect(fieldValues({ TEXT: 'text' }, { text: 'a\u0000b' })).toEqual({ DEPLOYHOOK_FIELD_TEXT: 'ab' });
    const long = fieldValues({ TEXT: 'text' }, { text: `x${'é'.repeat(MAX_FIELD_BYTES)}` }).DEPLOYHOOK_FIELD_TEXT ?? '';
    expect(Buffer.byteLength(long)).toBeLessThanOrEqual(MAX_FIELD_BYTES);
    expect(Buffer.byteLength(long)).toBeGreaterThan(MAX_FIELD_BYTES - 2);
    expect(long.endsWith('é')).toBe(true);
  });
});
