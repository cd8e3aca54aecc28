/**
 * Payload data in deployhook's own lines of a run log cannot forge lines: control characters
 * (C0, DEL and C1, whose CSI a terminal obeys) and Unicode's line and paragraph separators,
 * which some viewers break lines at, are replaced. git allows all of them in a branch name.
 */
export function printable(text: string): string {
  // eslint-disable-next-line no-control-regex -- control characters are exactly what is removed
  return text.replace(/[\u0000-\u001f\u007f-\u009f\u2028\u2029]/g, '?');
}
