import type { EventSpec, EventValue } from '../config/types.js';

/**
 * The value at a dotted path of parsed JSON: `commonLabels.severity`, `alerts.0.status`
 * (numeric segments index arrays). Only own properties are followed, never a prototype;
 * undefined when the path leads nowhere.
 */
export function valueAt(payload: unknown, path: string): unknown {
  let current = payload;
  for (const segment of path.split('.')) {
    if (Array.isArray(current)) {
      if (!/^\d+$/.test(segment)) return undefined;
      current = current[Number(segment)];
    } else if (current !== null && typeof current === 'object' && Object.hasOwn(current, segment)) {
      current = (current as Record<string, unknown>)[segment];
    } else {
      return undefined;
    }
  }
  return current;
}

/** Payload text quoted in a reply or a log: JSON, so control characters are escaped, and short. */
function quote(value: unknown): string {
  const text = JSON.stringify(value) ?? 'undefined';
  return text.length > 60 ? `${text.slice(0, 57)}...` : text;
}

function describe(values: readonly EventValue[]): string {
  const quoted = values.map((value) => JSON.stringify(value));
  return quoted.length === 1 ? (quoted[0] ?? '') : `one of ${quoted.join(', ')}`;
}

/**
 * Why the event does not run the job, or undefined when every `when` condition holds. A
 * condition holds when the value at its path equals one of its values, with the same type.
 */
export function unmetCondition(spec: EventSpec, payload: unknown): string | undefined {
  for (const { path, values } of spec.when) {
    const found = valueAt(payload, path);
    if (values.some((value) => value === found)) continue;
    return `${path} is ${found === undefined ? 'missing' : quote(found)}, expected ${describe(values)}`;
  }
  return undefined;
}
