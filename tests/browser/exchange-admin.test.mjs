// The data exchange's admin page in a real browser: the operator signs in at the admin console,
// the page renders in Thai and English with no serious axe violations, and a form on it makes a
// change (a consumer group) that the page then confirms.
//
// Needs BASE_URL and SAPHAN_DATA_DIR (the running demo's admin token).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { ARTIFACTS, BASE_URL, DESKTOP, launchChromium, seriousViolations } from './lib/chromium.mjs';
import { adminToken } from './lib/saphan.mjs';

let browser;

before(async () => {
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
});

test('the operator runs the exchange from /admin/exchange', async () => {
  // axe needs script injection, which the platform's CSP forbids.
  const context = await browser.newContext({ viewport: DESKTOP, bypassCSP: true });
  const page = await context.newPage();
  await page.goto(`${BASE_URL}/admin?lang=en`);
  await page.fill('#token', adminToken());
  await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);

  for (const lang of ['th', 'en']) {
    const response = await page.goto(`${BASE_URL}/admin/exchange?lang=${lang}`);
    assert.equal(response.status(), 200);
    assert.equal(await page.getAttribute('html', 'lang'), lang);
    await page.screenshot({ path: `${ARTIFACTS}/admin-exchange-${lang}.png`, fullPage: true });
    assert.deepEqual(await seriousViolations(page), []);
  }
  // The demo's provider and its service are listed.
  assert.match(await page.textContent('main'), /TH\/GOV\/DOPA\/CIVREG/);

  const code = `BROWSER${randomUUID().slice(0, 8).toUpperCase()}`;
  await page.fill('#gr-code', code);
  await page.fill('#gr-desc', 'Made by the browser test');
  await Promise.all([page.waitForNavigation(), page.click('form:has(#gr-code) button[type=submit]')]);
  const status = await page.textContent('[role=status]');
  assert.match(status, /Group created/);
  assert.match(status, new RegExp(code));

  // A refused change explains itself on the same page.
  await page.fill('#gr-code', code);
  await page.fill('#gr-desc', 'again');
  await Promise.all([page.waitForNavigation(), page.click('form:has(#gr-code) button[type=submit]')]);
  assert.match(await page.textContent('[role=alert]'), /already exists/i);
  assert.deepEqual(await seriousViolations(page), []);
  await context.close();
});
