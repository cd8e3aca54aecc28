import { timerDelay } from '../config/duration.js';
/** The outcome of one relay attempt. */
export type AttemptResult =
  | { ok: true; status: number }
  | { ok: false; retry: boolean; status?: number; error: string; retryAfterMs?: number };

/** Statuses that say "not now" rather than "never": worth another attempt (and every 5xx but 501). */
const RETRIED_STATUSES = new Set([408, 425, 429]);
const retried = (status: number) => RETRIED_STATUSES.has(status) || (status >= 500 && status <= 599 && status !== 501);

/** `Retry-After` in seconds (dates are not worth the parsing here), at most an hour. */
function retryAfterMs(header: string | null): number | undefined {
  if (header === null || !/^\d{1,5}$/.test(header.trim())) return undefined;
  return Math.min(Number(header.trim()), 3_600) * 1_000;
}

/**
 * POSTs the body once. Redirects are not followed: a relay goes where the config says, and a
 * redirect is reported as a failure. The answer's body is read and dropped.
 */
export async function sendOnce(url: string, body: Buffer, headers: Record<string, string>, timeoutMs: number, stop: AbortSignal, shown = url): Promise<AttemptResult> {
  // One controller per attempt, tied to the daemon's stop by a listener removed afterwards:
  // AbortSignal.any on the long-lived stop signal keeps an entry per attempt on node 20.
  const attempt = new AbortController();
  const abort = () => attempt.abort(stop.reason);
  stop.addEventListener('abort', abort, { once: true });
  const timer = setTimeout(() => attempt.abort(new DOMException('timed out', 'TimeoutError')), timerDelay(timeoutMs));
  let response: Response;
  try {
    if (stop.aborted) abort();
    response = await fetch(url, { method: 'POST', body, headers, redirect: 'manual', signal: attempt.signal });
    await response.arrayBuffer().catch(() => undefined);
  } catch (error) {
    const cause = (error as Error & { cause?: { code?: string; message?: string } }).cause;
    // A TypeError with no cause is fetch refusing the request before sending it; its text can
    // quote a header's value, which may be the secret: not passed on.
    const refused = error instanceof TypeError && cause === undefined;
    const reason = (error as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs} ms` : refused ? 'the request could not be made (a header value or the URL is invalid)' : String(cause?.code ?? cause?.message ?? (error as Error).message ?? error);
    // What fetch says may quote the URL, query string and all: it is shown as `shown` instead.
    return { ok: false, retry: true, error: `could not deliver: ${reason.replace(/\bhttps?:\/\/\S*/gi, () => shown)}` };
  } finally {
    clearTimeout(timer);
    stop.removeEventListener('abort', abort);
  }
  if (response.status >= 200 && response.status < 300) return { ok: true, status: response.status };
  const after = retryAfterMs(response.headers.get('retry-after'));
  if (response.status >= 300 && response.status < 400) return { ok: false, retry: false, status: response.status, error: `the destination answered ${response.status} (a redirect); relays do not follow redirects: fix the URL` };
  const retry = retried(response.status);
  return { ok: false, retry, status: response.status, error: `the destination answered ${response.status}${retry ? '' : '; not retried'}`, ...(after !== undefined ? { retryAfterMs: after } : {}) };
}
