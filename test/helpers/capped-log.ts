/** The line a capped log has where output was dropped. */
export function droppedMarker(droppedBytes: number, maxBytes: number): string {
  return `[deployhook] ... ${droppedBytes} bytes of output dropped here (max_log_bytes is ${maxBytes}); the last ${maxBytes - Math.floor(maxBytes / 2)} bytes follow ...\n`;
}

/** What a log capped at `maxBytes` should hold of `output`, computed in memory: the reference the streaming versions must match. */
export function expectedLog(output: Buffer, maxBytes: number): Buffer {
  if (output.length <= maxBytes) return output;
  const head = output.subarray(0, Math.floor(maxBytes / 2));
  const newline = head.length > 0 && head[head.length - 1] !== 0x0a ? '\n' : '';
  const tail = output.subarray(output.length - (maxBytes - head.length));
  return Buffer.concat([head, Buffer.from(newline + droppedMarker(output.length - maxBytes, maxBytes)), tail]);
}
