import { getEventListeners } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { sendOnce } from '../../src/forward/send-once.js';

let server: Server | undefined;

afterEach(async () => {
  server?.closeAllConnections();
  await new Promise((resolve) => server?.close(resolve) ?? resolve(undefined));
  server = undefined;
});

/** A destination that reads each request and never answers it. */
async function silentDestination(): Promise<string> {
  server = createServer((req) => req.resume());
  await new Promise<void>((resolve) => server?.listen(0, '127.0.0.1', resolve));
  return `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`;
}

describe('one relay attempt', () => {
  it('gives up after its timeout, to be retried, and leaves nothing on the daemon-wide stop signal', async () => {
    const url = await silentDestination();
    const stop = new AbortController();
    // AbortSignal.any keeps an entry per attempt on the daemon-wide signal (node 20) that no listener count shows.
    const any = vi.spyOn(AbortSignal, 'any');
    for (let i = 0; i < 3; i += 1) {
      expect(await sendOnce(url, Buffer.from('{}'), { 'content-type': 'application/json' }, 100, stop.signal)).toEqual({ ok: false, retry: true, error: 'could not deliver: no answer within 100 ms' });
    }
    expect(getEventListeners(stop.signal, 'abort')).toEqual([]);
    expect(any).not.toHaveBeenCalled();
    any.mockRestore();
  });

  it("ends at once when the daemon stops, whatever the attempt's timeout", async () => {
    const url = await silentDestination();
    const stop = new AbortController();
    const attempt = sendOnce(url, Buffer.from('{}'), { 'content-type': 'application/json' }, 60_000, stop.signal);
    setTimeout(() => stop.abort(new Error('stopping')), 50);
    expect(await attempt).toMatchObject({ ok: false, retry: true });
    expect(getEventListeners(stop.signal, 'abort')).toEqual([]);
  });

  it("never passes on fetch's refusal of a header, whose text quotes the header's value", async () => {
    const url = await silentDestination();
    const headers = { 'content-type': 'application/json', 'x-gitlab-token': 'old-token-AAAA\nnew-token-BBBB' };

    const result = await sendOnce(url, Buffer.from('{}'), headers, 5_000, new AbortController().signal);

    expect(result).toEqual({ ok: false, retry: true, error: 'could not deliver: the request could not be made (a header value or the URL is invalid)' });
  });
});
