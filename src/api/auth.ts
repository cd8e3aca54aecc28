import type { RequestHandler } from 'express';
import { MAX_API_TOKEN_BYTES } from '../config/api-token.js';
import { secretsEqual } from '../providers/constant-time.js';

const BEARER_TOKEN = new RegExp(`^Bearer (\\S{1,${MAX_API_TOKEN_BYTES}})$`);

export type Access = 'operator' | 'read-only';

/**
 * The token a request carries: `Authorization: Bearer <token>`, or, for reads only, Basic with
 * the token as password (browsers). A browser resends cached Basic credentials on requests
 * other sites make it send, so Basic never authorises a change (no cross-site deploys).
 */
function presentedToken(header: string | undefined, reading: boolean): string | undefined {
  if (header === undefined) return undefined;
  const bearer = BEARER_TOKEN.exec(header);
  if (bearer?.[1]) return bearer[1];
  if (!reading) return undefined;
  const basic = /^Basic ([A-Za-z0-9+/=]{1,2048})$/.exec(header);
  if (!basic?.[1]) return undefined;
  const decoded = Buffer.from(basic[1], 'base64').toString('utf8');
  const colon = decoded.indexOf(':');
  return colon === -1 ? undefined : decoded.slice(colon + 1);
}

const BASIC = 'Basic realm="deployhook", charset="UTF-8"';
const BEARER = 'Bearer realm="deployhook"';

/**
 * The schemes a 401 offers: those that could authorise the request. A read of the API offers
 * Basic too, for the status page: a browser sends the credentials it was given for a page only
 * to that page's folder (a run's page is under `/runs/`), so the page's own requests to
 * `/api/` get them only when asked, and a browser can answer nothing but Basic.
 */
function challenge(browser: boolean, reading: boolean): string[] {
  if (browser) return [BASIC];
  // One challenge per header line, Basic first: browsers read only the first challenge of a
  // line, and a proxy may join the lines into one (node's http does).
  return reading ? [BASIC, BEARER] : [BEARER];
}

/**
 * Every API call, the metrics and the status page need a token, compared in constant time.
 * The operator token may do anything; the read-only `ui` token only reads. Without a
 * configured token the whole surface answers 404: off, never open.
 */
export function requireToken(tokens: () => { token: string; uiToken?: string } | undefined, options: { browser: boolean }): RequestHandler {
  return (req, res, next) => {
    const configured = tokens();
    if (!configured) {
      res.status(404).json({ error: 'the operator API is off: configure api.token_env or api.token_file' });
      return;
    }
    const reading = req.method === 'GET' || req.method === 'HEAD';
    const token = presentedToken(req.headers.authorization, reading);
    // Both comparisons always run, so timing does not tell which token was close.
    const operator = token !== undefined && secretsEqual(configured.token, token);
    const reader = token !== undefined && configured.uiToken !== undefined && secretsEqual(configured.uiToken, token);
    if (!operator && !reader) {
      res.setHeader('www-authenticate', challenge(options.browser, reading));
      res.status(401).json({ error: 'expected a valid token: Authorization: Bearer <token>' });
      return;
    }
    if (!operator && req.method !== 'GET' && req.method !== 'HEAD') {
      res.status(403).json({ error: 'the read-only token cannot change anything' });
      return;
    }
    res.locals.access = (operator ? 'operator' : 'read-only') satisfies Access;
    next();
  };
}
