// What every browser test file shares: Debian's Chromium driven by playwright-core, the viewports,
// where screenshots go, and the axe-core scan.
//
// Needs BASE_URL: a running Saphan (`cargo xtask test` starts one).

import assert from 'node:assert/strict';
import { readFileSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);

export const BASE_URL = process.env.BASE_URL?.replace(/\/+$/, '');
export const ARTIFACTS = process.env.SAPHAN_ARTIFACTS ?? new URL('../../../ci-artifacts/browser', import.meta.url).pathname;
export const CHROMIUM = process.env.CHROMIUM ?? '/usr/bin/chromium';
const AXE_SOURCE = readFileSync(require.resolve('axe-core/axe.min.js'), 'utf8');

export const PHONE = { width: 390, height: 844 };
export const DESKTOP = { width: 1280, height: 900 };

/** Starts headless Chromium; call from `before`, after checking the environment. */
export async function launchChromium() {
  assert.ok(BASE_URL, 'set BASE_URL to a running Saphan, e.g. http://127.0.0.1:8080');
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    args: ['--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync',
      // The test relying party's redirect URI is on port 9 (discard), which Chromium refuses to
      // load by default; the sign-in tests answer it with page.route, so nothing is ever sent.
      '--explicitly-allowed-ports=9'],
  });
}

/** A full-page screenshot in $SAPHAN_ARTIFACTS as `<name>.png`. */
export async function screenshot(page, name) {
  await page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: true });
}

/**
 * Runs axe-core with the WCAG 2.x A/AA rules; returns serious and critical violations.
 * Injected through the DevTools protocol, which the pages' CSP does not govern.
 */
export async function seriousViolations(page) {
  await page.evaluate(AXE_SOURCE);
  const results = await page.evaluate(() =>
    window.axe.run(document, { runOnly: { type: 'tag', values: ['wcag2a', 'wcag2aa', 'wcag21a', 'wcag21aa', 'wcag22aa', 'best-practice'] } }));
  return results.violations
    .filter((v) => v.impact === 'serious' || v.impact === 'critical')
    .map((v) => `${v.id} (${v.impact}): ${v.help} at ${v.nodes.map((n) => n.target.join(' ')).join(', ')}`);
}
