import { formatAge } from '../config/duration.js';

/** Rows as aligned columns, the header first; the last column is not padded. */
export function formatTable(header: readonly string[], rows: ReadonlyArray<readonly string[]>): string {
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
