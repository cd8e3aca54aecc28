import { existsSync } from 'node:fs';
import { chromium, type Browser } from 'playwright-core';

/** Debian's chromium (`apt-get install chromium`); playwright-core drives it, it downloads no browser. */
export const CHROMIUM = '/usr/bin/chromium';

/**
 * Why browser tests cannot run here, or undefined when they can. In CI a missing browser is
 * an error, so that the suite never passes there by skipping them.
 */
export function chromiumMissing(env: Readonly<Record<string, string | undefined>> = process.env, path = CHROMIUM): string | undefined {
  if (existsSync(path)) return undefined;
  const reason = `Expected a chromium at ${path} for the browser tests; install it with: apt-get install chromium`;
  if (env.CI) throw new Error(reason);
  return reason;
}

export function launchChromium(): Promise<Browser> {
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
  });
}
