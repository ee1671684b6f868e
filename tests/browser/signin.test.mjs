// The digital ID's sign-in pages in a real browser (Debian's Chromium): password + TOTP through a
// real authorization request, passkeys with Chromium's virtual WebAuthn authenticator, the
// account page, and the brute-force lock. Every page is screenshotted to $SAPHAN_ARTIFACTS and
// scanned by axe-core. The pages run under their real Content-Security-Policy.
//
// Needs BASE_URL (a running Saphan) and SAPHAN_DATA_DIR (its data directory: demo-logins.json,
// admin-token). The brute-force test runs last: it locks the second demo user for about 30 s for
// browsers that never signed in to that account.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { PHONE, DESKTOP, launchChromium, screenshot, seriousViolations } from './lib/chromium.mjs';
import {
  CALLBACK_ORIGIN, assertCallback, authorizationRequest, demoUsers, discovery, freshTotpCode, registerClient,
} from './lib/saphan.mjs';

const TIMEOUT = 120_000;
/** A page or a step that takes longer than this is a hang, not a slow page. */
const STEP_TIMEOUT = 20_000;

let browser;
let metadata;
/** The platform's public origin (the issuer), where the browser goes: see lib/saphan.mjs. */
let ORIGIN;
let users;

before(async () => {
  browser = await launchChromium();
  metadata = await discovery();
  ORIGIN = new URL(metadata.issuer).origin;
  users = demoUsers();
});

after(async () => {
  await browser?.close();
});

const byKind = (kind) => {
  const user = users.find((u) => u.kind === kind && u.totp_secret);
  assert.ok(user, `demo-logins.json has a ${kind} with TOTP`);
  return user;
};

const CALLBACK_PAGE = Buffer.from('<!DOCTYPE html><html lang="en"><title>Relying party</title><main><h1>Back at the relying party</h1></main></html>').toString('base64');

/**
 * A fresh browser (no cookies) on one page, with a DevTools session. The relying party's callback
 * is answered here, through the DevTools Fetch domain: it reaches the browser as a redirect, and
 * Playwright's page.route never sees redirected requests.
 */
async function newBrowser({ viewport = PHONE, locale = 'th-TH' } = {}) {
  const context = await browser.newContext({ viewport, locale });
  context.setDefaultTimeout(STEP_TIMEOUT);
  context.setDefaultNavigationTimeout(STEP_TIMEOUT);
  const page = await context.newPage();
  const cdp = await context.newCDPSession(page);
  cdp.on('Fetch.requestPaused', (event) => {
    cdp.send('Fetch.fulfillRequest', {
      requestId: event.requestId,
      responseCode: 200,
      responseHeaders: [{ name: 'Content-Type', value: 'text/html; charset=utf-8' }],
      body: CALLBACK_PAGE,
    }).catch(() => {});
  });
  await cdp.send('Fetch.enable', { patterns: [{ urlPattern: `${CALLBACK_ORIGIN}/*`, requestStage: 'Request' }] });
  return { context, page, cdp };
}

const pathIs = (path) => (url) => url.origin === ORIGIN && url.pathname === path;
const atCallback = (url) => url.origin === CALLBACK_ORIGIN;

async function visibleAlerts(page) {
  return (await page.locator('[role=alert]:visible').allTextContents().catch(() => []))
    .map((t) => t.replace(/\s+/g, ' ').trim()).filter(Boolean);
}

/** Does `action` and waits until the browser is at a URL matching `where`; says where it got stuck. */
async function step(page, what, action, where) {
  try {
    await Promise.all([page.waitForURL(where), action()]);
  } catch (err) {
    const alerts = await visibleAlerts(page);
    throw new Error(`${what}: stuck at ${page.url()}${alerts.length ? ` showing "${alerts.join(' | ')}"` : ''} (${err.message.split('\n')[0]})`);
  }
}

/** Clicks a passkey button and waits for the page to go where it should, or for its error text. */
async function passkeyStep(page, what, button, where) {
  const navigated = page.waitForURL(where).then(() => null, (err) => `no navigation: ${err.message.split('\n')[0]}`);
  const failed = page.locator('#passkey-error').waitFor({ state: 'visible' })
    .then(async () => `the page says "${(await page.textContent('#passkey-error').catch(() => ''))?.trim()}"`, () => new Promise(() => {}));
  await page.click(button);
  const problem = await Promise.race([navigated, failed]);
  if (problem) throw new Error(`${what}: ${problem} (at ${page.url()})`);
}

async function fillSignIn(page, user, password = user.password) {
  await page.fill('#identifier', user.identifier);
  await page.fill('#nationality', user.nationality ?? '');
  await page.fill('#password', password);
}

/** Password, then the TOTP code; ends where `where` says (consent, or the account page). */
async function signInWithTotp(page, user, where, { shot } = {}) {
  await fillSignIn(page, user);
  await step(page, `password for ${user.label}`, () => page.click('button[type=submit]'), pathIs('/signin/totp'));
  if (shot) {
    assert.equal(await page.getAttribute('html', 'lang'), 'th');
    await screenshot(page, shot);
    assert.deepEqual(await seriousViolations(page), [], `axe on ${page.url()}`);
  }
  await page.fill('#code', await freshTotpCode(user));
  await step(page, `TOTP code for ${user.label}`, () => page.click('button[type=submit]'), where);
}

/** The account page's summary table, as [heading, value] pairs. */
async function accountSummary(page) {
  return page.locator('table.summary tr').evaluateAll((rows) =>
    rows.map((r) => [r.querySelector('th')?.textContent.trim(), r.querySelector('td')?.textContent.replace(/\s+/g, ' ').trim()]));
}

/** Ends this browser's session from "My sessions" (the row marked "this device"); lands on `/`. */
async function endThisSession(page) {
  await page.goto(`${ORIGIN}/account`);
  assert.ok(pathIs('/account')(new URL(page.url())), `signed in: ${page.url()}`);
  const row = page.locator('table.data tbody tr', { has: page.locator('strong', { hasText: /อุปกรณ์นี้|this device/ }) });
  assert.equal(await row.count(), 1, 'one session is marked "this device"');
  await step(page, 'end this session', () => row.locator('button[type=submit]').click(), pathIs('/'));
  // Signed out: the account page sends the browser to sign in.
  await page.goto(`${ORIGIN}/account`);
  assert.ok(pathIs('/signin')(new URL(page.url())), `after ending the session, /account went to ${page.url()}`);
}

test('password + TOTP through an authorization request, on a phone, in Thai; the sign-in page in English', { timeout: TIMEOUT }, async () => {
  const user = users[0];
  assert.ok(user.totp_secret, 'the first demo user has TOTP');
  const client = await registerClient();
  const request = authorizationRequest(metadata, client);
  const { context, page } = await newBrowser();
  try {
    const response = await page.goto(request.url);
    assert.ok(pathIs('/signin')(new URL(page.url())), `the authorization request went to ${page.url()}`);
    assert.ok(new URL(page.url()).searchParams.get('request'), 'the sign-in page names the pending request');
    assert.equal(response.status(), 200);
    assert.equal(await page.getAttribute('html', 'lang'), 'th');
    assert.match(await page.textContent('main'), new RegExp(client.name.th), 'the sign-in page names the service');
    await screenshot(page, 'signin-th-phone');
    assert.deepEqual(await seriousViolations(page), [], `axe on ${page.url()}`);

    await signInWithTotp(page, user, pathIs('/consent'), { shot: 'signin-totp-th-phone' });
    assert.match(await page.textContent('main'), new RegExp(client.name.th), 'the consent page names the service');
    await screenshot(page, 'consent-th-phone');
    assert.deepEqual(await seriousViolations(page), [], `axe on ${page.url()}`);

    await step(page, 'allow', () => page.click('button[name=decision][value=allow]'), atCallback);
    await assertCallback(metadata, client, request, page.url());
  } finally {
    await context.close();
  }

  // The same sign-in page in English (its own browser, so the language cookie stays there).
  const english = await newBrowser();
  try {
    await english.page.goto(authorizationRequest(metadata, client).url);
    const signin = new URL(english.page.url());
    assert.ok(pathIs('/signin')(signin), `the authorization request went to ${signin}`);
    signin.searchParams.set('lang', 'en');
    await english.page.goto(signin.href);
    assert.equal(await english.page.getAttribute('html', 'lang'), 'en');
    assert.match(await english.page.textContent('main'), new RegExp(`To use\\s+${client.name.en}`));
    assert.equal((await english.page.textContent('button[type=submit]')).trim(), 'Sign in');
    await screenshot(english.page, 'signin-en-phone');
    assert.deepEqual(await seriousViolations(english.page), [], `axe on ${english.page.url()}`);
  } finally {
    await english.context.close();
  }
});

test('the language switch keeps the pending authorization request (sign-in and consent pages)', { timeout: TIMEOUT }, async () => {
  const user = users[1];
  const client = await registerClient();
  const request = authorizationRequest(metadata, client);
  const { context, page } = await newBrowser();
  const problems = [];
  /** Clicks the English link and checks that the page is still about the same request. */
  const switchToEnglish = async (where, id, heading) => {
    await step(page, `switch to English on ${where}`, () => page.click('a[hreflang="en"]'), (url) => url.searchParams.get('lang') === 'en');
    const url = new URL(page.url());
    const h1 = (await page.textContent('h1').catch(() => ''))?.trim();
    const names = (await page.textContent('main').catch(() => '')).includes(client.name.en);
    const wrong = [
      url.searchParams.get('request') !== id && 'has no request parameter',
      h1 !== heading && `shows "${h1}" instead of "${heading}"`,
      !names && `does not name the service (${client.name.en})`,
    ].filter(Boolean);
    if (wrong.length) problems.push(`the "English" link on ${where} went to ${url.pathname}${url.search}, which ${wrong.join(', ')}`);
  };
  try {
    await page.goto(request.url);
    const id = new URL(page.url()).searchParams.get('request');
    assert.ok(pathIs('/signin')(new URL(page.url())) && id, `the authorization request went to ${page.url()}`);
    await switchToEnglish(`/signin?request=${id}`, id, 'Sign in with your digital ID');

    // Back to the request in Thai; signed in (password only), the consent page.
    await page.goto(`${ORIGIN}/signin?request=${id}&lang=th`);
    await fillSignIn(page, user);
    await step(page, `password for ${user.label}`, () => page.click('button[type=submit]'), pathIs('/consent'));
    await switchToEnglish(`/consent?request=${id}`, id, 'Allow sharing your data');
    assert.deepEqual(problems, [], 'switching language mid-sign-in loses the service the person is signing in to');
  } finally {
    await context.close();
  }
});

test('passkeys: added from the account page with a virtual authenticator, then sign in with it alone', { timeout: TIMEOUT }, async () => {
  const user = byKind('foreigner');
  const { context, page, cdp } = await newBrowser();
  try {
    await cdp.send('WebAuthn.enable');
    const { authenticatorId } = await cdp.send('WebAuthn.addVirtualAuthenticator', {
      options: {
        protocol: 'ctap2', transport: 'internal', hasResidentKey: true,
        hasUserVerification: true, isUserVerified: true, automaticPresenceSimulation: true,
      },
    });

    // Password + TOTP with no authorization request: the account page.
    await page.goto(`${ORIGIN}/signin`);
    await signInWithTotp(page, user, pathIs('/account'));
    const first = await accountSummary(page);
    const name = first[0]?.[1];
    assert.ok(name, 'the account page shows a name');
    assert.ok(first.some(([, v]) => v === `IAL ${user.ial}`), `IAL ${user.ial}: ${JSON.stringify(first)}`);
    assert.ok(first.some(([, v]) => v === 'AAL 2'), `password + TOTP is AAL 2: ${JSON.stringify(first)}`);

    // Add a passkey.
    const listed = page.locator('main li', { hasText: 'test-passkey' });
    const already = await listed.count();
    await page.fill('#passkey-name', 'test-passkey');
    const register = page.locator('[data-passkey-register]');
    assert.ok(await register.isVisible(), 'the "Add a passkey" button is shown (JavaScript and WebAuthn are on)');
    await Promise.all([
      Promise.race([
        page.waitForEvent('load'),
        page.locator('#passkey-error').waitFor({ state: 'visible' }).then(async () => {
          throw new Error(`adding the passkey failed: the page says "${(await page.textContent('#passkey-error')).trim()}"`);
        }, () => new Promise(() => {})),
      ]),
      register.click(),
    ]);
    await listed.nth(already).waitFor();
    assert.equal(await listed.count(), already + 1, 'the new passkey is listed');
    await screenshot(page, 'account-passkey-th-phone');
    const { credentials } = await cdp.send('WebAuthn.getCredentials', { authenticatorId });
    assert.equal(credentials.length, 1, 'the authenticator holds one credential');
    assert.equal(credentials[0].rpId, new URL(ORIGIN).hostname);
    // "Sign in with a passkey" asks for any credential (no allowCredentials): only a discoverable
    // one can answer.
    if (!credentials[0].isResidentCredential) {
      // What registration asks authenticators for (a fresh ceremony, left to expire).
      const selection = await page.evaluate(async () => {
        const csrf = document.querySelector('[data-passkey-register]').dataset.csrf;
        const r = await fetch('/account/passkeys/begin', { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify({ csrf }) });
        return (await r.json()).options?.publicKey?.authenticatorSelection;
      }).catch((err) => `unknown (${err.message})`);
      assert.fail(`the new passkey is not discoverable (resident), so "Sign in with a passkey" cannot use it: registration asks for authenticatorSelection ${JSON.stringify(selection)}`);
    }
    assert.deepEqual(await seriousViolations(page), [], `axe on ${page.url()}`);

    // Signed out, then in again with the passkey alone.
    await endThisSession(page);
    await page.goto(`${ORIGIN}/signin`);
    await passkeyStep(page, 'passkey sign-in', '[data-passkey-signin]', pathIs('/account'));
    const summary = await accountSummary(page);
    assert.equal(summary[0][1], name, 'signed in as the same person');
    assert.ok(summary.some(([, v]) => v === 'AAL 2'), `a passkey sign-in is AAL 2: ${JSON.stringify(summary)}`);

    // Signed out again: an authorization request, signed in with the passkey, through consent.
    await endThisSession(page);
    const client = await registerClient();
    const request = authorizationRequest(metadata, client);
    await page.goto(request.url);
    assert.ok(pathIs('/signin')(new URL(page.url())), `the authorization request went to ${page.url()}`);
    await passkeyStep(page, 'passkey sign-in for a service', '[data-passkey-signin]', pathIs('/consent'));
    await step(page, 'allow', () => page.click('button[name=decision][value=allow]'), atCallback);
    const claims = await assertCallback(metadata, client, request, page.url());
    assert.ok(claims.sub, 'the ID token names a subject');
  } finally {
    await context.close();
  }
});

test('the account page has no serious axe violations, in Thai and in English', { timeout: TIMEOUT }, async () => {
  const user = byKind('business');
  const { context, page } = await newBrowser({ viewport: DESKTOP });
  try {
    await page.goto(`${ORIGIN}/signin`);
    await signInWithTotp(page, user, pathIs('/account'));
    for (const [lang, heading] of [['th', 'บัญชีของฉัน'], ['en', 'My account']]) {
      const response = await page.goto(`${ORIGIN}/account?lang=${lang}`);
      assert.equal(response.status(), 200);
      assert.equal(await page.getAttribute('html', 'lang'), lang);
      assert.equal((await page.textContent('h1')).trim(), heading);
      await screenshot(page, `account-${lang}-desktop`);
      assert.deepEqual(await seriousViolations(page), [], `axe on ${page.url()}`);
    }
  } finally {
    await context.close();
  }
});

/** Submits the sign-in form and waits for the page it renders; returns that page's response. */
async function submitSignIn(page, user, password) {
  await fillSignIn(page, user, password);
  const [response] = await Promise.all([
    page.waitForResponse((r) => r.request().method() === 'POST' && new URL(r.url()).pathname === '/signin'),
    page.waitForEvent('load'),
    page.click('button[type=submit]'),
  ]);
  return response;
}

/**
 * Signs `user` (password only) in from `page` and expects the account page. With `waitOutLock`, a
 * lock left by an earlier run is waited out (its Retry-After, at most two minutes).
 */
async function signInPasswordOnly(page, user, { waitOutLock = false } = {}) {
  for (let attempt = 0; ; attempt++) {
    await page.goto(`${ORIGIN}/signin`);
    const response = await submitSignIn(page, user, user.password);
    if (pathIs('/account')(new URL(page.url()))) return;
    const retry = Number(response.headers()['retry-after']);
    const alerts = await visibleAlerts(page);
    assert.ok(waitOutLock && response.status() === 429 && attempt === 0 && retry > 0 && retry <= 120,
      `signing in ${user.label} with the right password answered ${response.status()} at ${page.url()}: ${alerts.join(' | ')}`);
    await sleep(retry * 1000 + 500);
  }
}

test('brute force: five wrong passwords lock the account for new browsers, visibly and accessibly', { timeout: 240_000 }, async () => {
  const user = users[1];
  assert.equal(user.totp_secret, null, 'the second demo user has a password only');
  // Starts from no failures in a row: a right password (in another browser) clears the count.
  const owner = await newBrowser();
  const { context, page } = await newBrowser();
  try {
    await signInPasswordOnly(owner.page, user, { waitOutLock: true });

    await page.goto(`${ORIGIN}/signin`);
    for (let i = 1; i <= 5; i++) {
      const response = await submitSignIn(page, user, `not-the-password-${i}`);
      assert.equal(response.status(), 401, `wrong password ${i}`);
      const alerts = await visibleAlerts(page);
      assert.equal(alerts.length, 1, `wrong password ${i}: one alert`);
      assert.match(alerts[0], /รหัสผ่านไม่ถูกต้อง/, `wrong password ${i}: says so`);
      assert.equal(await page.inputValue('#identifier'), user.identifier, 'the identifier is kept');
    }
    // The sixth attempt is refused even with the right password.
    const response = await submitSignIn(page, user, user.password);
    assert.equal(response.status(), 429, 'the sixth attempt is refused with 429');
    assert.ok(Number(response.headers()['retry-after']) > 0, 'with a Retry-After');
    assert.ok(pathIs('/signin')(new URL(page.url())), `still on the sign-in page: ${page.url()}`);
    const alerts = await visibleAlerts(page);
    assert.equal(alerts.length, 1, 'one alert');
    assert.match(alerts[0], /ลองผิดหลายครั้งเกินไป/, 'the alert says the account is locked');
    assert.match(alerts[0], /\d+ วินาที/, 'and for how long');
    await screenshot(page, 'signin-locked-th-phone');
    assert.deepEqual(await seriousViolations(page), [], `axe on ${page.url()}`);

    // The person's own browser, which signed in before, is not locked out.
    await signInPasswordOnly(owner.page, user);
  } finally {
    await context.close();
    await owner.context.close();
  }
});
