// Federation: an upstream OpenID provider (standing in for ThaID) as a way to
// sign in to Saphan. The upstream is panva's oidc-provider, started here
// (lib/upstream.mjs); Saphan is its relying party, and Saphan's own relying
// party (openid-client, as in the other files) must not be able to tell a
// federated sign-in from any other, except by `acr`/`amr`.
//
// Run with the provider configured for an upstream named `thaid` at
// http://localhost:${UPSTREAM_PORT} whose client secret is in
// ${SAPHAN_DATA_DIR}/upstream-secret:
//
//   BASE_URL=… SAPHAN_DATA_DIR=… UPSTREAM_PORT=… node --test federation.test.mjs

import { after, before, test } from 'node:test';
import assert from 'node:assert/strict';
import { randomInt } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { BASE_URL, DATA_DIR, PROVIDER_ORIGIN, assertProviderReachable, users } from './lib/env.mjs';
import { Browser, parseForm, signInWithUpstream, unescapeHtml, upstreamLink, visit } from './lib/browser.mjs';
import { client, exchange, newRelyingParty, signInAndExchange, startAuthorization } from './lib/rp.mjs';

if (!process.env.UPSTREAM_PORT) {
  console.error(
    'saphan-oidc: UPSTREAM_PORT is not set. federation.test.mjs starts the upstream OpenID provider\n' +
      'on that port, and Saphan must be configured for it (upstream `thaid`, issuer http://localhost:$UPSTREAM_PORT,\n' +
      'client secret in $SAPHAN_DATA_DIR/upstream-secret). Run e.g.\n' +
      '  BASE_URL=http://localhost:41234 SAPHAN_DATA_DIR=/path/to/data UPSTREAM_PORT=41235 node --test federation.test.mjs',
  );
  process.exit(1);
}
const UPSTREAM_PORT = Number(process.env.UPSTREAM_PORT);
if (!Number.isInteger(UPSTREAM_PORT) || UPSTREAM_PORT <= 0 || UPSTREAM_PORT > 65535) {
  console.error(`saphan-oidc: UPSTREAM_PORT must be a port number, got ${JSON.stringify(process.env.UPSTREAM_PORT)}`);
  process.exit(1);
}

/** The upstream's name in Saphan's configuration and URLs. */
const UPSTREAM = 'thaid';
const CALLBACK_PATH = `/signin/upstream/${UPSTREAM}/callback`;
const CALLBACK_URL = `${BASE_URL}${CALLBACK_PATH}`;
/** What Saphan's configuration (default IAL 2.3, AAL 2) makes of a sign-in at this upstream. */
const FEDERATED_ACR = 'urn:saphan:ial-2.3:aal-2';
/** The client's scopes, and what every authorization here asks for. */
const SCOPE = 'openid profile pid';

// No TOTP anywhere in this file, so no waiting for a fresh time step.
const TIMEOUT = 120_000;

// ---- national ids -------------------------------------------------------------------

/** The check digit of a 13-digit id: (11 − Σ_{i=1..12} d_i·(14−i) mod 11) mod 10. */
function checkDigit(firstTwelve) {
  const sum = [...firstTwelve].reduce((acc, d, i) => acc + Number(d) * (13 - i), 0);
  return (11 - (sum % 11)) % 10;
}

/** A valid synthetic national id (first digit 1–8) that is none of `taken`. */
function syntheticNationalId(taken) {
  for (;;) {
    let twelve = String(1 + randomInt(8));
    for (let i = 0; i < 11; i++) twelve += String(randomInt(10));
    const id = `${twelve}${checkDigit(twelve)}`;
    if (!taken.has(id)) return id;
  }
}

// ---- the run's people and the upstream ------------------------------------------------

/** Login names at the upstream → who they are there. Filled in before(). */
const accounts = {};
/** The demo citizen without TOTP (demo-logins.json), who also signs in upstream as `known`. */
let knownCitizen;
let upstream;

before(async () => {
  await assertProviderReachable();

  // Checked against numbers Saphan's own tests accept, so that a wrong
  // newcomer id fails here rather than as a puzzling refusal later.
  assert.equal(checkDigit('123456789012'), 1, 'the check-digit formula is wrong');
  assert.equal(checkDigit('110170000000'), 1, 'the check-digit formula is wrong');

  const secretPath = join(DATA_DIR, 'upstream-secret');
  let clientSecret;
  try {
    clientSecret = readFileSync(secretPath, 'utf8').trim();
  } catch (err) {
    throw new Error(`cannot read ${secretPath}, the secret Saphan uses at the upstream provider: ${err.message}`);
  }
  assert.ok(clientSecret, `${secretPath} is empty`);

  const demo = users();
  knownCitizen = demo.find((u) => u.kind === 'citizen' && !u.totp_secret);
  assert.ok(
    knownCitizen,
    `demo-logins.json has no citizen without TOTP to sign in upstream as "known"; users: ${demo.map((u) => `${u.label ?? u.identifier} (${u.kind})`).join(', ')}`,
  );
  assert.match(knownCitizen.identifier, /^\d{13}$/, `the demo citizen ${knownCitizen.label}'s identifier is not a 13-digit national id`);

  accounts.newcomer = { pid: syntheticNationalId(new Set(demo.map((u) => u.identifier))), name: 'Federated Newcomer' };
  accounts.known = { pid: knownCitizen.identifier, name: 'Known Citizen' };

  // Imported here, not at the top, so that a run without UPSTREAM_PORT stops
  // with the message above alone, before oidc-provider prints its warnings.
  const { startUpstream } = await import('./lib/upstream.mjs');
  try {
    upstream = await startUpstream({ port: UPSTREAM_PORT, clientSecret, redirectUri: CALLBACK_URL, accounts });
  } catch (err) {
    throw new Error(`cannot start the upstream provider on port ${UPSTREAM_PORT}: ${err.message}`);
  }
});

after(() => upstream?.close());

// ---- helpers ------------------------------------------------------------------------

/**
 * A whole federated authorization for `rp`: sign-in at the upstream as
 * `login`, then the code exchange (openid-client checks the ID token).
 */
async function federatedSignIn(rp, login, { browser = new Browser(), beforeRequest } = {}) {
  const flow = await startAuthorization(rp, { scope: SCOPE });
  const { location, visited } = await signInWithUpstream({
    authorizationUrl: flow.url,
    upstream: { name: UPSTREAM, origin: upstream.origin, login },
    browser,
    beforeRequest,
  });
  assert.ok(
    location.searchParams.get('code'),
    `expected a code at the client's callback, got error=${location.searchParams.get('error')} ` +
      `(${location.searchParams.get('error_description') ?? 'no description'})`,
  );
  // The way there: really through the upstream's pages and Saphan's callback.
  assert.ok(browser.filled.includes('upstream:login'), `the upstream's login page was never filled: ${browser.filled}`);
  assert.ok(
    visited.some((u) => u.origin === PROVIDER_ORIGIN && u.pathname === CALLBACK_PATH),
    'the sign-in never went through Saphan\'s upstream callback',
  );
  const tokens = await exchange(rp, flow, location);
  return { flow, location, visited, tokens, claims: tokens.claims(), browser };
}

/** Checks the claims of a federated sign-in that openid-client leaves to the RP. */
function assertFederatedClaims(claims, pid) {
  assert.ok(Array.isArray(claims.amr), `amr must be an array, got ${JSON.stringify(claims.amr)}`);
  assert.ok(claims.amr.includes('fed'), `a federated sign-in must say so: amr ${JSON.stringify(claims.amr)} lacks "fed"`);
  assert.equal(claims.pid, pid, 'the ID token must carry the national id the upstream asserted as pid');
  const now = Math.floor(Date.now() / 1000);
  assert.equal(typeof claims.auth_time, 'number', `auth_time must be a number, got ${JSON.stringify(claims.auth_time)}`);
  assert.ok(claims.auth_time >= now - 600 && claims.auth_time <= now + 5, `auth_time ${claims.auth_time} is not the sign-in just made (now ${now})`);
  assert.equal(typeof claims.sub, 'string');
  assert.ok(!claims.sub.includes(pid), `sub ${claims.sub} reveals the national id`);
}

/**
 * Asserts that `browser` holds no session that works: a fresh authorization
 * request for `rp` must show Saphan's sign-in form, not go on to consent or
 * back to the client.
 */
async function assertNotSignedIn(browser, rp, who) {
  const flow = await startAuthorization(rp, { scope: SCOPE });
  const landing = await visit(browser, flow.url);
  assert.equal(
    landing.kind,
    'page',
    `${who}: the next authorization request went straight to ${landing.location?.href}: someone is signed in`,
  );
  assert.equal(landing.response.status, 200, `${who}: the next authorization request answered HTTP ${landing.response.status}`);
  const names = parseForm(landing.html).visible.map((f) => f.name);
  assert.ok(
    names.includes('identifier') || names.includes('password'),
    `${who}: the next authorization request should show the sign-in form, but the page at ${landing.url.pathname} ` +
      `asks for [${names.join(', ')}]: someone is signed in`,
  );
}

/** Asserts a 400 answer (an error page, not a redirect) and returns the body. */
async function assert400(response, what) {
  const body = await response.text();
  assert.equal(
    response.status,
    400,
    `${what}: expected 400, got ${response.status}` +
      (response.headers.get('location') ? ` → ${response.headers.get('location')}` : '') +
      `: ${body.slice(0, 200)}`,
  );
  return body;
}

/**
 * From an authorization request for `rp` to the upstream's authorization
 * URL: Saphan's sign-in page, its `data-upstream` link, and the 303 that
 * link answers. Returns { flow, link, upstreamAuthorization }.
 */
async function startUpstreamSignIn(rp, browser) {
  const flow = await startAuthorization(rp, { scope: SCOPE });
  const page = await visit(browser, flow.url);
  assert.equal(page.kind, 'page', `the authorization request did not show the sign-in page: it went to ${page.location?.href}`);
  const link = upstreamLink(page.html, UPSTREAM, page.url);
  const begin = await browser.request(link);
  assert.equal(begin.status, 303, `GET ${link.pathname} answered ${begin.status}, not 303: ${(await begin.text()).slice(0, 200)}`);
  const upstreamAuthorization = new URL(begin.headers.get('location') ?? '', link);
  return { flow, page, link, upstreamAuthorization };
}

// ---- tests --------------------------------------------------------------------------

test('F1. a newcomer signs in at the upstream: new identity, acr/amr of the federation, pid', { timeout: TIMEOUT }, async () => {
  const rp = await newRelyingParty({ scopes: ['openid', 'profile', 'pid'] });
  const newcomer = accounts.newcomer;

  const first = await federatedSignIn(rp, 'newcomer');
  // A fresh client has no consent yet: Saphan must have asked for it.
  assert.ok(first.browser.filled.includes('decision=allow'), `Saphan's consent page was not shown: ${first.browser.filled}`);
  assert.equal(first.location.searchParams.get('iss'), BASE_URL, 'the authorization response must carry iss (RFC 9207)');
  assert.equal(first.claims.acr, FEDERATED_ACR, `acr of a sign-in at ${UPSTREAM} (default IAL 2.3, AAL 2)`);
  assertFederatedClaims(first.claims, newcomer.pid);

  const info = await client.fetchUserInfo(rp.config, first.tokens.access_token, first.claims.sub);
  assert.equal(info.pid, newcomer.pid, 'UserInfo pid must be the national id the upstream asserted');

  // The identity made on the first sign-in is the one found on the next: a
  // fresh browser (no session at Saphan or upstream) gets the same sub.
  const again = await federatedSignIn(rp, 'newcomer');
  assert.equal(again.claims.sub, first.claims.sub, 'a second federated sign-in of the newcomer is a different person at Saphan');
});

test('F2. a known national id signs in as the existing citizen (same sub as with a password)', { timeout: TIMEOUT }, async () => {
  const rp = await newRelyingParty({ scopes: ['openid', 'profile', 'pid'] });

  const federated = await federatedSignIn(rp, 'known');
  assertFederatedClaims(federated.claims, knownCitizen.identifier);

  // The same client, the same citizen, with a password in a fresh browser.
  const withPassword = await signInAndExchange(rp, knownCitizen, { params: { scope: SCOPE } });
  assert.ok(withPassword.claims.amr?.includes('pwd'), `the password sign-in's amr is ${JSON.stringify(withPassword.claims.amr)}`);
  assert.equal(
    federated.claims.sub,
    withPassword.claims.sub,
    `signing in upstream with ${knownCitizen.label}'s national id did not sign in as ${knownCitizen.label}`,
  );
});

test('F3. a forged or replayed upstream callback gets 400 and signs no one in', { timeout: TIMEOUT }, async () => {
  const rp = await newRelyingParty({ scopes: ['openid', 'profile', 'pid'] });
  const forgedUrl = `${CALLBACK_URL}?code=x&state=forged`;

  // Forged, in a browser with an upstream sign-in of its own under way (so
  // whatever Saphan keeps in cookies for it is there), and in a fresh one.
  const pending = new Browser();
  await startUpstreamSignIn(rp, pending);
  await assert400(await pending.request(forgedUrl), 'a forged callback, with a sign-in under way');
  await assertNotSignedIn(pending, rp, 'after a forged callback, with a sign-in under way');
  const fresh = new Browser();
  await assert400(await fresh.request(forgedUrl), 'a forged callback, in a fresh browser');
  await assertNotSignedIn(fresh, rp, 'after a forged callback, in a fresh browser');

  // Replayed: a real sign-in, with the browser copied just before it reached
  // Saphan's callback. The copy holds everything the real callback had;
  // only its code and state have been used since.
  let beforeCallback;
  let callbackUrl;
  await federatedSignIn(rp, 'newcomer', {
    beforeRequest(url, browser) {
      if (!callbackUrl && url.origin === PROVIDER_ORIGIN && url.pathname === CALLBACK_PATH) {
        callbackUrl = url;
        beforeCallback = browser.clone();
      }
    },
  });
  assert.ok(callbackUrl.searchParams.get('code') && callbackUrl.searchParams.get('state'), `the real callback ${callbackUrl.search} lacks code or state`);
  for (const [who, browser] of [
    ['the browser as it was before the callback', beforeCallback],
    ['a fresh browser', new Browser()],
  ]) {
    await assert400(await browser.request(callbackUrl), `the callback replayed with ${who}`);
    await assertNotSignedIn(browser, rp, `after the callback replayed with ${who}`);
  }
});

test('F4. an error from the upstream gets 400 and signs no one in', { timeout: TIMEOUT }, async () => {
  const rp = await newRelyingParty({ scopes: ['openid', 'profile', 'pid'] });
  const discovery = await (await fetch(`${upstream.issuer}/.well-known/openid-configuration`)).json();

  // The link's answer: a redirect to the upstream with Saphan's own state,
  // nonce and PKCE S256, for Saphan's client and callback.
  const browser = new Browser();
  const { flow, link, upstreamAuthorization: to } = await startUpstreamSignIn(rp, browser);
  assert.equal(link.pathname, `/signin/upstream/${UPSTREAM}`, 'the upstream link\'s path');
  assert.ok(link.searchParams.get('request'), 'the upstream link carries no request parameter');
  assert.equal(`${to.origin}${to.pathname}`, discovery.authorization_endpoint, 'the upstream link must lead to the upstream\'s authorization endpoint');
  const p = Object.fromEntries(to.searchParams);
  assert.equal(p.client_id, 'saphan');
  assert.equal(p.redirect_uri, CALLBACK_URL);
  assert.equal(p.response_type, 'code');
  assert.deepEqual(new Set(p.scope?.split(' ')), new Set(['openid', 'pid']), `scope ${p.scope}`);
  assert.equal(p.code_challenge_method, 'S256');
  assert.match(p.code_challenge ?? '', /^[A-Za-z0-9_-]{43}$/, 'code_challenge must be a base64url SHA-256');
  for (const name of ['state', 'nonce']) {
    assert.ok(p[name] && p[name].length >= 16, `the upstream request's ${name} ${JSON.stringify(p[name])} is missing or short`);
    assert.notEqual(p[name], flow[name], `Saphan passed the client's ${name} upstream instead of its own`);
  }

  // An error answer made up with the real state.
  const denied = `${CALLBACK_URL}?error=access_denied&state=${encodeURIComponent(p.state)}`;
  await assert400(await browser.request(denied), 'error=access_denied with the real state');
  await assertNotSignedIn(browser, rp, 'after error=access_denied');

  // And the upstream's own: the person cancels on its login page ("[ Cancel ]"),
  // and the upstream sends them back with error=access_denied, the state and iss.
  const person = new Browser();
  const { upstreamAuthorization } = await startUpstreamSignIn(rp, person);
  const login = await visit(person, upstreamAuthorization, { origins: [upstream.origin] });
  assert.equal(login.kind, 'page', `the upstream did not show its login page: ${login.location?.href}`);
  const cancel = [...login.html.matchAll(/<a\b[^>]*\bhref="([^"]*\/abort)"/gi)].map((m) => new URL(unescapeHtml(m[1]), login.url));
  assert.equal(cancel.length, 1, 'the upstream login page has no Cancel link');
  const back = await visit(person, cancel[0], { origins: [upstream.origin] });
  assert.equal(back.kind, 'redirect', 'cancelling at the upstream did not lead back');
  assert.equal(`${back.location.origin}${back.location.pathname}`, CALLBACK_URL, 'cancelling at the upstream did not lead to Saphan\'s callback');
  assert.equal(back.location.searchParams.get('error'), 'access_denied');
  await assert400(await person.request(back.location), 'the upstream\'s own error=access_denied');
  await assertNotSignedIn(person, rp, 'after cancelling at the upstream');
});
