import { SCRIPT } from './script.js';
import { STYLES } from './styles.js';

export interface Asset {
  contentType: string;
  body: string;
}

/** The status page's only static files; no inline script or style anywhere (see the CSP in routes.ts). */
export const ASSETS: ReadonlyMap<string, Asset> = new Map([
  ['/assets/deployhook.css', { contentType: 'text/css; charset=utf-8', body: STYLES }],
  ['/assets/deployhook.js', { contentType: 'text/javascript; charset=utf-8', body: SCRIPT }],
]);
