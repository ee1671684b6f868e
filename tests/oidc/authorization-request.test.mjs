// How the authorization endpoint treats requests it must refuse or limit:
// unregistered redirect URIs, PKCE, acr_values, scopes, and the user's "no".

import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { REDIRECT_URI, anyUser, assertProviderReachable, totpCitizen } from './lib/env.mjs';
import { Browser, signIn } from './lib/browser.mjs';
import {
  assertAuthorizationError,
  assertIdTokenClaims,
  client,
  newRelyingParty,
  parseAcr,
  signInAndExchange,
  startAuthorization,
} from './lib/rp.mjs';

const TIMEOUT = 180_000;

before(assertProviderReachable);

test('3. an unregistered redirect_uri gets a 400 page, never a redirect to it', { timeout: TIMEOUT }, async () => {
  const rp = await newRelyingParty();
  // A foreign URI, and one that merely extends the registered one: OIDC
  // requires an exact match, so a prefix match is as wrong as none.
  for (const unknown of ['http://127.0.0.1:9/elsewhere', `${REDIRECT_URI}/extra`]) {
    const flow = await startAuthorization(rp, { redirect_uri: unknown });
    const res = await new Browser().request(flow.url);
    const location = res.headers.get('location');
    assert.ok(
      !location || !new URL(location, flow.url).href.startsWith(unknown),
      `the provider redirected to the unregistered ${unknown}: ${location}`,
    );
    const body = await res.text();
    assert.equal(res.status, 400, `redirect_uri ${unknown}: expected 400, got ${res.status}: ${body.slice(0, 200)}`);
    assert.match(
      res.headers.get('content-type') ?? '',
      /^(text\/html|application\/problem\+json)/,
      'the error should be an HTML page or problem+json',
    );
  }
});

test('4. PKCE is required, and only S256', { timeout: TIMEOUT }, async () => {
  const rp = await newRelyingParty();
  const user = anyUser();

  const withoutPkce = await startAuthorization(rp, { code_challenge: undefined, code_challenge_method: undefined });
  const callback1 = await signIn({ authorizationUrl: withoutPkce.url, user });
  await assertAuthorizationError(rp, withoutPkce, callback1, 'invalid_request');

  const verifier = client.randomPKCECodeVerifier();
  const plain = await startAuthorization(rp, { code_challenge: verifier, code_challenge_method: 'plain' });
  const callback2 = await signIn({ authorizationUrl: plain.url, user });
  await assertAuthorizationError(rp, plain, callback2, 'invalid_request');
});

test('9. acr_values: unreachable → unmet_authentication_requirements; reachable → satisfied', { timeout: TIMEOUT }, async () => {
  const user = totpCitizen();
  const rp = await newRelyingParty();
  const browser = new Browser();

  const unreachable = 'urn:saphan:ial-3:aal-3';
  assert.ok(
    !(Number(user.ial) >= 3 && Number(user.aal) >= 3),
    `precondition: ${user.label} (ial ${user.ial}, aal ${user.aal}) must not reach ${unreachable}`,
  );
  const high = await startAuthorization(rp, { acr_values: unreachable });
  const callback = await signIn({ authorizationUrl: high.url, user, browser });
  await assertAuthorizationError(rp, high, callback, 'unmet_authentication_requirements');

  const reachable = 'urn:saphan:ial-2.1:aal-2';
  assert.ok(
    Number(user.ial) >= 2.1 && Number(user.aal) >= 2,
    `precondition: ${user.label} (ial ${user.ial}, aal ${user.aal}) must reach ${reachable}`,
  );
  // Same browser: the provider may reuse the session from the first attempt
  // or ask again; either way the result must meet the request.
  const { claims } = await signInAndExchange(rp, user, { browser, params: { acr_values: reachable } });
  const acr = parseAcr(claims.acr);
  assert.ok(acr.ial >= 2.1 && acr.aal >= 2, `asked for ${reachable}, got acr ${claims.acr}`);
  assert.ok(browser.filled.includes('code'), `acr ${claims.acr} claims AAL 2, but no TOTP code was ever asked for`);
  assertIdTokenClaims(claims, user, { secondFactor: true });
});

test('11. scope pid is refused to a client not registered for it', { timeout: TIMEOUT }, async () => {
  const rp = await newRelyingParty({ scopes: ['openid', 'profile'] });
  const flow = await startAuthorization(rp, { scope: 'openid profile pid' });
  const callback = await signIn({ authorizationUrl: flow.url, user: anyUser() });
  await assertAuthorizationError(rp, flow, callback, 'invalid_scope');
});

test('14. the user denying consent → access_denied', { timeout: TIMEOUT }, async () => {
  const rp = await newRelyingParty();
  const flow = await startAuthorization(rp);
  const browser = new Browser();
  const callback = await signIn({ authorizationUrl: flow.url, user: anyUser(), decision: 'deny', browser });
  assert.ok(browser.filled.includes('decision=deny'), 'the flow never showed a consent page to deny');
  await assertAuthorizationError(rp, flow, callback, 'access_denied');
});
