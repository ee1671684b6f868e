// The portal shell in a real browser (Debian's Chromium): the landing page in Thai and English,
// on a phone and a desktop, with JavaScript off, scanned by axe-core for WCAG 2.2 A/AA problems.
// Screenshots go to $SAPHAN_ARTIFACTS (default ../../ci-artifacts/browser).
//
// Needs BASE_URL: a running Saphan (`cargo xtask test` starts one).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { ARTIFACTS, BASE_URL, PHONE, DESKTOP, launchChromium, seriousViolations } from './lib/chromium.mjs';

let browser;

before(async () => {
  browser = await launchChromium();
});

after(async () => {
  await browser?.close();
});

/** Loads `path` in a fresh context; axe needs script injection, which our CSP forbids. */
async function open(path, { viewport = PHONE, javaScriptEnabled = true, locale = 'th-TH' } = {}) {
  const context = await browser.newContext({ viewport, javaScriptEnabled, locale, bypassCSP: true });
  const page = await context.newPage();
  const response = await page.goto(BASE_URL + path, { waitUntil: 'load' });
  return { context, page, response };
}

for (const [lang, heading] of [['th', 'ติดต่อราชการ'], ['en', 'Deal with government']]) {
  test(`landing page in ${lang}: renders, screenshots, no serious axe violations`, async () => {
    for (const [name, viewport] of [['phone', PHONE], ['desktop', DESKTOP]]) {
      const { context, page, response } = await open(`/?lang=${lang}`, { viewport });
      assert.equal(response.status(), 200);
      assert.equal(await page.getAttribute('html', 'lang'), lang);
      assert.match(await page.textContent('h1'), new RegExp(heading));
      // The bundled Sarabun face is what renders, not a fallback.
      await page.evaluate(() => document.fonts.ready);
      const sarabun = await page.evaluate(() => [...document.fonts].some((f) => f.family.replace(/"/g, '') === 'Sarabun' && f.status === 'loaded'));
      assert.ok(sarabun, 'the Sarabun font loaded');
      await page.screenshot({ path: `${ARTIFACTS}/landing-${lang}-${name}.png`, fullPage: true });
      assert.deepEqual(await seriousViolations(page), []);
      await context.close();
    }
  });
}

test('works without JavaScript: the language switch is a plain link', async () => {
  const { context, page } = await open('/', { javaScriptEnabled: false });
  assert.equal(await page.getAttribute('html', 'lang'), 'th');
  await page.click('a[hreflang="en"]');
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  // The choice is remembered.
  await page.goto(BASE_URL + '/');
  assert.equal(await page.getAttribute('html', 'lang'), 'en');
  await context.close();
});

for (const path of [
  '/api-docs?lang=en', '/admin?lang=th', '/no-such-page?lang=en', '/recover?lang=th', '/signin?lang=en',
  '/services?lang=th', '/services?lang=en&q=restaurant', '/services/open-a-restaurant?lang=th',
  '/services/food-business-permit?lang=th', '/services/tm47-90-day-report?lang=en', '/services?audience=foreigner&lang=en',
]) {
  test(`page ${path} has no serious axe violations`, async () => {
    const { context, page } = await open(path);
    const name = path.replace(/[^a-z0-9]+/g, '-').replace(/^-|-$/g, '');
    await page.screenshot({ path: `${ARTIFACTS}/${name}.png`, fullPage: true });
    assert.deepEqual(await seriousViolations(page), []);
    await context.close();
  });
}
