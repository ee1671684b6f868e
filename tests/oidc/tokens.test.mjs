// The token endpoint's defences and token lifecycle: PKCE verification,
// single-use and short-lived codes, refresh-token rotation with reuse
// detection, revocation and introspection.

import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { setTimeout as sleep } from 'node:timers/promises';
import { CODE_TTL_SECS, anyUser, assertProviderReachable } from './lib/env.mjs';
import { signIn } from './lib/browser.mjs';
import {
  assertGrantError,
  client,
  exchange,
  newRelyingParty,
  signInAndExchange,
  startAuthorization,
  userInfoStatus,
} from './lib/rp.mjs';

const TIMEOUT = 180_000;

before(assertProviderReachable);

/** A fresh client and a callback URL holding a code not yet exchanged. */
async function codeInHand() {
  const rp = await newRelyingParty();
  const flow = await startAuthorization(rp);
  const callback = await signIn({ authorizationUrl: flow.url, user: anyUser() });
  assert.ok(callback.searchParams.get('code'), `expected a code, got ${callback.search}`);
  return { rp, flow, callback };
}

test('5. a wrong PKCE code_verifier → invalid_grant', { timeout: TIMEOUT }, async () => {
  const { rp, flow, callback } = await codeInHand();
  await assertGrantError(
    exchange(rp, flow, callback, { verifier: client.randomPKCECodeVerifier() }),
    'invalid_grant',
    'code exchange with a code_verifier that does not match the code_challenge',
  );
});

test('6. a replayed code → invalid_grant, and the first exchange\'s access token dies', { timeout: TIMEOUT }, async () => {
  const rp = await newRelyingParty();
  const { flow, callback, tokens } = await signInAndExchange(rp, anyUser());
  assert.equal(await userInfoStatus(rp, tokens.access_token), 200, 'the access token should work before the replay');

  await assertGrantError(exchange(rp, flow, callback), 'invalid_grant', 'second exchange of the same code');

  // RFC 6749 §4.1.2: tokens issued from a code that is used twice should be revoked.
  assert.equal(await userInfoStatus(rp, tokens.access_token), 401, 'UserInfo still accepts the access token after the code replay');
  const introspection = await client.tokenIntrospection(rp.config, tokens.access_token);
  assert.equal(introspection.active, false, 'introspection still calls the access token active after the code replay');
});

test(`7. an expired code (older than CODE_TTL_SECS=${CODE_TTL_SECS}) → invalid_grant`, { timeout: TIMEOUT }, async () => {
  const { rp, flow, callback } = await codeInHand();
  await sleep((CODE_TTL_SECS + 1.5) * 1000);
  await assertGrantError(exchange(rp, flow, callback), 'invalid_grant', `exchange ${CODE_TTL_SECS + 1.5} s after the code was issued`);
});

test('8. a reused refresh token → invalid_grant, and its whole family is revoked', { timeout: TIMEOUT }, async () => {
  const rp = await newRelyingParty();
  const { tokens } = await signInAndExchange(rp, anyUser());
  const r1 = tokens.refresh_token;
  assert.ok(r1, 'the token response has no refresh_token');

  const second = await client.refreshTokenGrant(rp.config, r1);
  const r2 = second.refresh_token;
  assert.ok(r2 && r2 !== r1, 'refresh must rotate the refresh token');

  await assertGrantError(client.refreshTokenGrant(rp.config, r1), 'invalid_grant', 'refresh with the already-used R1');
  // The reuse suggests R1 was stolen: R2, possibly the thief's, must go too.
  await assertGrantError(client.refreshTokenGrant(rp.config, r2), 'invalid_grant', 'refresh with R2 after R1 was reused');
  const introspection = await client.tokenIntrospection(rp.config, second.access_token);
  assert.equal(introspection.active, false, 'the latest access token of a revoked family is still active');
});

test('12. revocation (RFC 7009) and introspection (RFC 7662)', { timeout: TIMEOUT }, async () => {
  const rp = await newRelyingParty();
  const { tokens, claims } = await signInAndExchange(rp, anyUser());

  const live = await client.tokenIntrospection(rp.config, tokens.access_token);
  assert.equal(live.active, true, `a fresh access token is not active: ${JSON.stringify(live)}`);
  assert.equal(live.client_id, rp.registration.client_id);
  assert.equal(live.sub, claims.sub, 'introspection sub should be the sub this client knows');
  const scopes = String(live.scope ?? '').split(' ');
  for (const s of ['openid', 'profile']) assert.ok(scopes.includes(s), `introspection scope "${live.scope}" lacks ${s}`);

  await client.tokenRevocation(rp.config, tokens.access_token, { token_type_hint: 'access_token' });

  const dead = await client.tokenIntrospection(rp.config, tokens.access_token);
  assert.equal(dead.active, false, 'a revoked access token is still active');
  assert.equal(await userInfoStatus(rp, tokens.access_token), 401, 'UserInfo still accepts a revoked access token');
});
