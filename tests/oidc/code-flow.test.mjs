// The authorization code flow end to end, as a relying party sees it: both
// client authentication methods and ID token algorithms, pairwise subjects,
// and RP-initiated logout.

import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { decodeProtectedHeader } from 'jose';
import { BASE_URL, PROVIDER_ORIGIN, anyUser, assertProviderReachable, totpCitizen } from './lib/env.mjs';
import { Browser, parseForm, visit } from './lib/browser.mjs';
import {
  assertClientAuthRefused,
  assertIdTokenClaims,
  client,
  impostorOf,
  newRelyingParty,
  parseAcr,
  signInAndExchange,
  startAuthorization,
  userInfoStatus,
} from './lib/rp.mjs';

// TOTP sign-ins may wait up to ~35 s for a fresh time step.
const TIMEOUT = 180_000;

before(assertProviderReachable);

/** The discovery fields this suite relies on, as the contract states them. */
function assertDiscovery(as) {
  assert.equal(as.issuer, BASE_URL, 'issuer must be BASE_URL exactly');
  for (const endpoint of [
    'authorization_endpoint',
    'token_endpoint',
    'userinfo_endpoint',
    'jwks_uri',
    'revocation_endpoint',
    'introspection_endpoint',
    'end_session_endpoint',
  ]) {
    assert.equal(typeof as[endpoint], 'string', `discovery lacks ${endpoint}`);
  }
  // The browser's cookie jar is scoped to the provider's origin.
  for (const endpoint of ['authorization_endpoint', 'end_session_endpoint']) {
    assert.equal(new URL(as[endpoint]).origin, PROVIDER_ORIGIN, `${endpoint} is not on the issuer's origin`);
  }
  assert.ok(as.response_types_supported?.includes('code'), 'response_types_supported lacks "code"');
  assert.ok(as.subject_types_supported?.includes('pairwise'), 'subject_types_supported lacks "pairwise"');
  assert.deepEqual(as.code_challenge_methods_supported, ['S256']);
  for (const method of ['client_secret_basic', 'private_key_jwt']) {
    assert.ok(as.token_endpoint_auth_methods_supported?.includes(method), `token_endpoint_auth_methods_supported lacks ${method}`);
  }
  for (const alg of ['RS256', 'ES256']) {
    assert.ok(as.id_token_signing_alg_values_supported?.includes(alg), `id_token_signing_alg_values_supported lacks ${alg}`);
  }
  assert.ok(Array.isArray(as.acr_values_supported) && as.acr_values_supported.length > 0, 'acr_values_supported is empty');
  as.acr_values_supported.forEach(parseAcr);
}

/**
 * Sign-in with the TOTP citizen asking for pid, then the ID token, UserInfo
 * and a refresh, for one client authentication method and ID token alg.
 */
async function happyPath({ authMethod, alg }) {
  const user = totpCitizen();
  const rp = await newRelyingParty({ authMethod, alg });
  assertDiscovery(rp.config.serverMetadata());

  const browser = new Browser();
  const { callback, tokens, claims } = await signInAndExchange(rp, user, {
    params: { scope: 'openid profile pid' },
    browser,
  });
  // openid-client has by now checked the ID token's signature against the
  // JWKS, iss, aud, exp, iat and nonce; the rest is the RP's to check.
  assert.equal(callback.searchParams.get('iss'), BASE_URL, 'the authorization response must carry iss (RFC 9207)');
  assert.equal(decodeProtectedHeader(tokens.id_token).alg, alg, `the client registered ${alg} ID tokens`);
  assertIdTokenClaims(claims, user, { secondFactor: browser.filled.includes('code') });
  assert.equal(claims.pid, user.identifier, 'the ID token must carry the national id as pid for a pid client');

  const info = await client.fetchUserInfo(rp.config, tokens.access_token, claims.sub);
  assert.match(String(info.pid), /^\d{13}$/, `UserInfo pid must be 13 digits, got ${JSON.stringify(info.pid)}`);
  assert.equal(info.pid, user.identifier);

  assert.ok(tokens.refresh_token, 'the token response has no refresh_token');
  const refreshed = await client.refreshTokenGrant(rp.config, tokens.refresh_token);
  assert.ok(refreshed.refresh_token, 'the refresh response has no new refresh_token (rotation)');
  assert.notEqual(refreshed.refresh_token, tokens.refresh_token, 'the refresh token must rotate');
  assert.ok(refreshed.access_token);
  assert.notEqual(refreshed.access_token, tokens.access_token, 'refresh must issue a new access token');
  const infoAfter = await client.fetchUserInfo(rp.config, refreshed.access_token, claims.sub);
  assert.equal(infoAfter.sub, claims.sub);

  // The same client_id with credentials the provider never issued must not
  // get tokens, or the authentication method above proved nothing.
  await assertClientAuthRefused(
    client.refreshTokenGrant(await impostorOf(rp), refreshed.refresh_token),
    `refresh with ${authMethod === 'private_key_jwt' ? 'an assertion signed by an unregistered key' : 'a wrong client secret'}`,
  );
}

test('1. client_secret_basic + RS256: discovery, PKCE, ID token, UserInfo with pid, refresh', { timeout: TIMEOUT }, () =>
  happyPath({ authMethod: 'client_secret_basic', alg: 'RS256' }),
);

test('2. private_key_jwt + ES256: discovery, PKCE, ID token, UserInfo with pid, refresh', { timeout: TIMEOUT }, () =>
  happyPath({ authMethod: 'private_key_jwt', alg: 'ES256' }),
);

test('10. sub is pairwise: differs between clients, stable for one client', { timeout: TIMEOUT }, async () => {
  const user = anyUser();
  const a = await newRelyingParty();
  const b = await newRelyingParty();

  // b rides a's session (same user for sure); the second sign-in at a is a
  // fresh browser, so "stable" does not just mean "cached in the session".
  const browser = new Browser();
  const atA = await signInAndExchange(a, user, { browser });
  const atB = await signInAndExchange(b, user, { browser });
  const atAAgain = await signInAndExchange(a, user);

  assert.notEqual(atA.claims.sub, atB.claims.sub, 'two clients got the same sub for one user');
  assert.equal(atAAgain.claims.sub, atA.claims.sub, 'one client got two different subs for one user');
  // UserInfo must agree with the ID token for each client (openid-client checks).
  await client.fetchUserInfo(a.config, atAAgain.tokens.access_token, atA.claims.sub);
  await client.fetchUserInfo(b.config, atB.tokens.access_token, atB.claims.sub);
});

test('13. RP-initiated logout ends the session and returns to post_logout_redirect_uri', { timeout: TIMEOUT }, async () => {
  const user = anyUser();
  const rp = await newRelyingParty();
  const browser = new Browser();
  const { tokens } = await signInAndExchange(rp, user, { browser });
  assert.ok(browser.cookieCount > 0, 'after sign-in the browser holds no cookie: there is no session to end');
  assert.equal(await userInfoStatus(rp, tokens.access_token), 200);

  // A copy of the session cookie as it was: a provider that only told the
  // browser to drop it, but kept the session, would still honour it.
  const beforeLogout = browser.clone();

  const state = client.randomState();
  const endSessionUrl = client.buildEndSessionUrl(rp.config, {
    id_token_hint: tokens.id_token,
    post_logout_redirect_uri: rp.postLogoutRedirectUri,
    state,
  });
  const res = await browser.request(endSessionUrl);
  assert.equal(res.status, 303, `end_session answered ${res.status}: ${(await res.text()).slice(0, 300)}`);
  const location = new URL(res.headers.get('location') ?? '', endSessionUrl);
  assert.equal(`${location.origin}${location.pathname}`, rp.postLogoutRedirectUri, `logout went to ${location.href}`);
  assert.equal(location.searchParams.get('state'), state, 'logout must echo state');

  // The next authorization must ask who the user is again.
  for (const [who, b] of [
    ['the same browser', browser],
    ['the pre-logout session cookie, replayed', beforeLogout],
  ]) {
    const flow = await startAuthorization(rp);
    const landing = await visit(b, flow.url);
    assert.equal(
      landing.kind,
      'page',
      `after logout, with ${who}, the authorization request went straight to ${landing.location?.href}: the session survived`,
    );
    assert.equal(landing.response.status, 200, `after logout, with ${who}: HTTP ${landing.response.status}`);
    const names = parseForm(landing.html).visible.map((f) => f.name);
    assert.ok(
      names.includes('identifier') || names.includes('password'),
      `after logout, with ${who}, the first page should be the sign-in form, but its fields are ` +
        `[${names.join(', ')}]: the session survived`,
    );
  }
});
