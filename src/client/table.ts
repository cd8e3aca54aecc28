import { formatAge } from '../config/duration.js';

/**
 * Text from a record, safe to print: control characters (C0, DEL and C1, which a ref name may
 * hold) as `\u00XX`, so none reaches the terminal as a command.
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex
  return text.replace(/[\u0000-\u001f\u007f-\u009f]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/** Rows as aligned columns, the header first; the last column is not padded. Cells are made printable. */
export function formatTable(header: readonly string[], cellsOf: ReadonlyArray<readonly string[]>): string {
  const rows = cellsOf.map((row) => row.map(printable));
  const widths = header.map((title, column) => Math.max(title.length, ...rows.map((row) => (row[column] ?? '').length)));
  const line = (cells: readonly string[]) => cells.map((cell, column) => (column === cells.length - 1 ? cell : cell.padEnd(widths[column] ?? 0))).join('  ').trimEnd();
  return [line(header), ...rows.map(line)].join('\n');
}

/** `5m ago` style age of an ISO time, relative to `now`; `-` when there is none. */
export function age(iso: string | null | undefined, now = Date.now()): string {
  return formatAge(iso, now) || '-';
}

export function short(sha: string | null | undefined): string {
  return sha ? sha.slice(0, 8) : '-';
}
