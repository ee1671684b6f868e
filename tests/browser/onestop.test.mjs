// The one-stop flow end to end in a real browser (Debian's Chromium), with JavaScript off as the
// portal's core flows must work without it: the business representative signs in, applies for the
// "open a restaurant" bundle for their company, consents to the registry reads on the plain-language
// page, and so uploads only the floor plan; the Demo City official asks for a missing item, the
// applicant gives it, and both agencies approve; "who accessed my data" shows the registry reads,
// each with the applicant's consent. Every page is screenshotted to $SAPHAN_ARTIFACTS (onestop-*)
// and scanned by axe-core.
//
// Needs BASE_URL (a running Saphan) and SAPHAN_DATA_DIR (its data directory: demo-logins.json).

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { PHONE, DESKTOP, launchChromium, screenshot, seriousViolations } from './lib/chromium.mjs';
import { demoUsers, discovery, freshTotpCode } from './lib/saphan.mjs';

const TIMEOUT = 300_000;
const STEP_TIMEOUT = 20_000;
const PDF = Buffer.from('%PDF-1.4\n1 0 obj<</Type/Catalog/Pages 2 0 R>>endobj\n2 0 obj<</Type/Pages/Count 0/Kids[]>>endobj\ntrailer<</Root 1 0 R>>\n%%EOF\n');

let browser;
let ORIGIN;
let users;

before(async () => {
  browser = await launchChromium();
  ORIGIN = new URL((await discovery()).issuer).origin;
  users = demoUsers();
});

after(async () => {
  await browser?.close();
});

const user = (label) => {
  const found = users.find((u) => u.label === label);
  assert.ok(found, `demo-logins.json has "${label}"`);
  return found;
};

async function newPage({ viewport = PHONE } = {}) {
  // JavaScript off: every step here is a plain link or form. bypassCSP lets axe in.
  const context = await browser.newContext({ viewport, locale: 'th-TH', javaScriptEnabled: false, bypassCSP: true });
  context.setDefaultTimeout(STEP_TIMEOUT);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT);
  return { context, page: await context.newPage() };
}

/** Screenshot and axe: no serious or critical violation. */
async function checkPage(page, name) {
  await screenshot(page, `onestop-${name}`);
  // axe needs scripts; the page itself ran without them.
  const scan = await page.context().browser().newContext({ bypassCSP: true, viewport: page.viewportSize() });
  const copy = await scan.newPage();
  await copy.context().addCookies(await page.context().cookies());
  await copy.goto(page.url());
  assert.deepEqual(await seriousViolations(copy), [], `axe on ${name} (${page.url()})`);
  await scan.close();
}

async function alerts(page) {
  return (await page.locator('[role=alert]').allTextContents()).map((t) => t.replace(/\s+/g, ' ').trim());
}

async function submitAndWait(page, selector, what) {
  await Promise.all([page.waitForLoadState('load'), page.waitForNavigation(), page.click(selector)]).catch(async (err) => {
    throw new Error(`${what}: stuck at ${page.url()} ${JSON.stringify(await alerts(page))} (${err.message.split('\n')[0]})`);
  });
}

/** Password, then (if the person has one) a TOTP code; a code an earlier sign-in used is retried. */
async function signIn(page, person) {
  await page.goto(`${ORIGIN}/signin?lang=th`);
  await page.fill('#identifier', person.identifier);
  await page.fill('#nationality', person.nationality ?? '');
  await page.fill('#password', person.password);
  await submitAndWait(page, 'button[type=submit]', `password for ${person.label}`);
  for (let attempt = 0; person.totp_secret && new URL(page.url()).pathname === '/signin/totp'; attempt++) {
    assert.ok(attempt < 3, `${person.label}: TOTP refused three times`);
    await page.fill('#code', await freshTotpCode(person));
    await submitAndWait(page, 'button[type=submit]', `TOTP for ${person.label}`);
  }
  assert.equal(new URL(page.url()).pathname, '/account', `${person.label} is signed in`);
}

/** Fills what the page asks that no registry gave; returns false at the check page. */
async function answerPage(page, answers) {
  for (const [name, value] of Object.entries(answers)) {
    const input = page.locator(`[name="${name}"]`);
    if (await input.count() === 0) continue;
    const type = await input.first().getAttribute('type');
    if (type === 'file') await input.setInputFiles({ name: 'floor-plan.pdf', mimeType: 'application/pdf', buffer: PDF });
    else if (type === 'radio') await page.check(`[name="${name}"][value="${value}"]`);
    else await input.fill(String(value));
  }
  await submitAndWait(page, 'form[enctype] button[type=submit]', `saving ${page.url()}`);
}

/** Opens the office, and decides every task of `tracking` it lists with `decide`. */
async function decideAll(page, tracking, decide) {
  let decided = 0;
  for (;;) {
    await page.goto(`${ORIGIN}/office?lang=th`);
    const row = page.locator('tr', { hasText: tracking }).first();
    if (await row.count() === 0) return decided;
    await Promise.all([page.waitForNavigation(), row.locator('a').first().click()]);
    await decide(page);
    decided++;
  }
}

test('open a restaurant: applied for in the browser, prefilled with consent, sent back once, approved by two agencies', { timeout: TIMEOUT }, async () => {
  const owner = await newPage();
  await signIn(owner.page, user('business representative'));
  const page = owner.page;

  await page.goto(`${ORIGIN}/services/open-a-restaurant?lang=th`);
  await checkPage(page, '1-bundle-manual');
  await Promise.all([page.waitForNavigation(), page.click('a[href^="/services/open-a-restaurant/apply"]')]);
  assert.match(await page.textContent('main'), /กรมการปกครอง/);
  assert.match(await page.textContent('main'), /กรมพัฒนาธุรกิจการค้า/);
  await checkPage(page, '2-consent');
  await submitAndWait(page, 'button[name=consent][value=yes]', 'consent');
  assert.match(page.url(), /\/pages\/0\?.*read=done/, `the reads were made (${page.url()})`);
  await checkPage(page, '3-prefilled-page');
  // The registry's values are shown verified, with no input to change them.
  assert.ok(await page.locator('.tag').count() >= 2, 'verified values are marked');
  assert.equal(await page.locator('input[name=firstName]').count(), 0, 'a verified value has no input');

  const answers = {
    shopName: 'ครัวสะพาน', premisesAddress: '99 ถนนสาธิต แขวงบางรัก', areaSqm: 250, seats: 60,
    floorPlan: 'file', signText: 'ครัวสะพาน', widthM: 3, heightM: 1, mounting: 'wall', phone: '0812345678',
  };
  let pages = 0;
  while (!new URL(page.url()).pathname.endsWith('/check')) {
    assert.ok(pages++ < 12, `too many pages (at ${page.url()})`);
    if (pages === 4) await checkPage(page, '4-typed-page');
    await answerPage(page, answers);
    assert.deepEqual((await alerts(page)).filter((a) => a.includes('โปรดแก้ไข')), [], `page problems at ${page.url()}`);
  }
  await checkPage(page, '5-check-answers');
  await submitAndWait(page, 'form[action$="/submit?lang=th"] button', 'apply');
  const applicationUrl = page.url().split('?')[0];
  const tracking = (await page.textContent('td.mono')).trim();
  assert.match(tracking, /^SP-[0-9A-Z]{5}-[0-9A-Z]{5}$/);
  await checkPage(page, '6-submitted');

  // The Demo City's official sees the values verified, and asks for a missing item.
  const city = await newPage({ viewport: DESKTOP });
  await signIn(city.page, user('official: Demo City reviewer and approver'));
  await city.page.goto(`${ORIGIN}/office?lang=th`);
  await checkPage(city.page, '7-office-inbox');
  const asked = await decideAll(city.page, tracking, async (p) => {
    await checkPage(p, '8-office-task');
    assert.match(await p.textContent('main'), /TH\/GOV\/DOPA\/CIVREG\/house-v1/, 'the address is marked with its registry');
    assert.ok(await p.locator('a[href*="/documents/"]').count() === 1, 'the floor plan opens from the task');
    await p.check('#d-missing');
    await p.fill('#items', 'จำนวนที่นั่งตามแบบแปลน');
    await submitAndWait(p, 'form[action^="/office/tasks"] button', 'request missing');
  });
  assert.equal(asked, 1);

  // The applicant sees what is missing, gives it, and resends.
  await page.goto(`${applicationUrl}?lang=th`);
  assert.match(await page.textContent('main'), /จำนวนที่นั่งตามแบบแปลน/);
  await checkPage(page, '9-sent-back');
  await Promise.all([page.waitForNavigation(), page.click('a.button[href*="/pages/0"]')]);
  pages = 0;
  while (!new URL(page.url()).pathname.endsWith('/check')) {
    assert.ok(pages++ < 12);
    await answerPage(page, { seats: 48 });
  }
  await submitAndWait(page, 'form[action$="/submit?lang=th"] button', 'resend');

  // Both agencies approve: the city (review, then approval) and the DPT.
  const approve = async (p) => {
    await p.check('#d-approve');
    await submitAndWait(p, 'form[action^="/office/tasks"] button', 'approve');
  };
  const dpt = await newPage({ viewport: DESKTOP });
  await signIn(dpt.page, user('official: DPT reviewer and approver'));
  for (let round = 0; round < 4; round++) {
    const done = (await decideAll(city.page, tracking, approve)) + (await decideAll(dpt.page, tracking, approve));
    if (done === 0) break;
  }
  await page.goto(`${applicationUrl}?lang=th`);
  assert.match(await page.textContent('main'), /อนุมัติ/);
  await checkPage(page, '10-approved');

  // The exchange log, as the applicant sees it: the registry reads, each with consent.
  await page.goto(`${ORIGIN}/data-access?lang=th`);
  await checkPage(page, '11-data-access');
  const withConsent = await page.locator('tr', { hasText: 'ด้วยความยินยอม' }).count();
  assert.ok(withConsent >= 3, `the three registry reads show with consent (${withConsent})`);
  await page.goto(`${ORIGIN}/consents?lang=en`);
  await checkPage(page, '12-consents');
  await page.goto(`${ORIGIN}/applications?lang=th`);
  await checkPage(page, '13-my-applications');
  for (const c of [owner, city, dpt]) await c.context.close();
});
