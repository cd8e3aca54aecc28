/** Quotes one argument for POSIX `sh`: `it's` becomes `'it'\''s'`; plain words stay as they are. */
export function shellQuote(value: string): string {
  if (/^[\w@%+=:,./-]+$/.test(value)) return value;
  return `'${value.replaceAll("'", `'\\''`)}'`;
}
