// The relying party: client registration through Saphan's admin API, then
// everything protocol-related through openid-client, so that discovery,
// the code exchange and ID token validation (signature against the published
// JWKS, iss, aud, exp, nonce) are done by an implementation that is not ours.

import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import * as client from 'openid-client';
import * as jose from 'jose';
import { BASE_URL, REDIRECT_URI, POST_LOGOUT_REDIRECT_URI, adminToken } from './env.mjs';
import { Browser, signIn } from './browser.mjs';

export { client };

/**
 * Registers a fresh client (random name, so tests never share one) and
 * returns the provider's 201 answer.
 */
export async function registerClient({ authMethod, alg, scopes, jwks }) {
  const tag = randomUUID().slice(0, 8);
  const body = {
    name: { th: `ทดสอบความสอดคล้อง ${tag}`, en: `Conformance test ${tag}` },
    agency: 'dga',
    redirect_uris: [REDIRECT_URI],
    post_logout_redirect_uris: [POST_LOGOUT_REDIRECT_URI],
    scopes,
    token_endpoint_auth_method: authMethod,
    id_token_signed_response_alg: alg,
    ...(jwks ? { jwks } : {}),
  };
  const res = await fetch(`${BASE_URL}/api/v1/identity/clients`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken()}`, 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(15_000),
  });
  const text = await res.text();
  assert.equal(res.status, 201, `client registration answered ${res.status}: ${text.slice(0, 500)}`);
  const registration = JSON.parse(text);
  assert.equal(typeof registration.client_id, 'string', `registration has no client_id: ${text}`);
  if (authMethod === 'client_secret_basic') {
    assert.equal(typeof registration.client_secret, 'string', `client_secret_basic registration has no client_secret: ${text}`);
  }
  return registration;
}

/**
 * A registered client and its openid-client Configuration.
 * `authMethod` client_secret_basic pairs with an RS256 ID token by default,
 * private_key_jwt with a fresh ES256 key whose public JWK is registered.
 */
export async function newRelyingParty({
  authMethod = 'client_secret_basic',
  alg = 'RS256',
  scopes = ['openid', 'profile', 'pid'],
} = {}) {
  let jwks;
  let clientAuth;
  let kid;
  if (authMethod === 'private_key_jwt') {
    const { publicKey, privateKey } = await jose.generateKeyPair('ES256');
    kid = randomUUID();
    const jwk = { ...(await jose.exportJWK(publicKey)), kid, alg: 'ES256', use: 'sig' };
    jwks = { keys: [jwk] };
    clientAuth = client.PrivateKeyJwt({ key: privateKey, kid });
  }
  const registration = await registerClient({ authMethod, alg, scopes, jwks });
  if (authMethod === 'client_secret_basic') clientAuth = client.ClientSecretBasic(registration.client_secret);

  // id_token_signed_response_alg makes openid-client refuse an ID token
  // signed with any other algorithm than the one registered.
  const config = await client.discovery(
    new URL(BASE_URL),
    registration.client_id,
    { id_token_signed_response_alg: alg },
    clientAuth,
    { execute: [client.allowInsecureRequests] },
  );
  return { config, registration, authMethod, alg, kid, redirectUri: REDIRECT_URI, postLogoutRedirectUri: POST_LOGOUT_REDIRECT_URI };
}

/**
 * The same client with different credentials (a wrong secret, or a key the
 * provider has never seen), to check that the token endpoint authenticates.
 */
export async function impostorOf(rp) {
  let auth;
  if (rp.authMethod === 'private_key_jwt') {
    const { privateKey } = await jose.generateKeyPair('ES256');
    // The registered kid, so the provider finds the registered key and must
    // reject the signature rather than merely an unknown kid.
    auth = client.PrivateKeyJwt({ key: privateKey, kid: rp.kid });
  } else {
    auth = client.ClientSecretBasic(`${rp.registration.client_secret}-not`);
  }
  return client.discovery(new URL(BASE_URL), rp.registration.client_id, { id_token_signed_response_alg: rp.alg }, auth, {
    execute: [client.allowInsecureRequests],
  });
}

/**
 * A fresh authorization request: PKCE S256, state and nonce. Parameters in
 * `overrides` replace the defaults; an `undefined` override removes one.
 */
export async function startAuthorization(rp, overrides = {}) {
  const verifier = client.randomPKCECodeVerifier();
  const state = client.randomState();
  const nonce = client.randomNonce();
  const params = {
    redirect_uri: rp.redirectUri,
    scope: 'openid profile',
    code_challenge: await client.calculatePKCECodeChallenge(verifier),
    code_challenge_method: 'S256',
    state,
    nonce,
    ...overrides,
  };
  for (const [k, v] of Object.entries(params)) if (v === undefined) delete params[k];
  return { url: client.buildAuthorizationUrl(rp.config, params), verifier, state, nonce };
}

/** The code exchange, with openid-client checking state, iss, the ID token and its nonce. */
export function exchange(rp, flow, callbackUrl, { verifier = flow.verifier } = {}) {
  return client.authorizationCodeGrant(rp.config, callbackUrl, {
    pkceCodeVerifier: verifier,
    expectedState: flow.state,
    expectedNonce: flow.nonce,
  });
}

/**
 * A whole successful authorization: sign-in in `browser` (a fresh one unless
 * given), then the code exchange. Fails clearly if the callback has no code.
 */
export async function signInAndExchange(rp, user, { params, browser = new Browser() } = {}) {
  const flow = await startAuthorization(rp, params);
  const callback = await signIn({ authorizationUrl: flow.url, user, browser });
  assert.ok(
    callback.searchParams.get('code'),
    `expected a code at the callback, got error=${callback.searchParams.get('error')} ` +
      `(${callback.searchParams.get('error_description') ?? 'no description'})`,
  );
  const tokens = await exchange(rp, flow, callback);
  return { flow, callback, tokens, claims: tokens.claims(), browser };
}

/**
 * Asserts that the authorization ended in an error redirect with `error`,
 * then lets openid-client check that the error response itself is well
 * formed (our state echoed, iss = the issuer when present).
 */
export async function assertAuthorizationError(rp, flow, callbackUrl, error) {
  assert.equal(
    callbackUrl.searchParams.get('error'),
    error,
    `expected the callback to carry error=${error}, got ${callbackUrl.search || '(no parameters)'}`,
  );
  await assert.rejects(exchange(rp, flow, callbackUrl), (err) => {
    assert.ok(err instanceof client.AuthorizationResponseError, `openid-client refused the error response: ${err}`);
    assert.equal(err.error, error);
    return true;
  });
}

/**
 * Asserts that a token-endpoint call fails with the OAuth error `error`
 * (e.g. invalid_grant); `what` names the attempt in the failure message.
 */
export async function assertGrantError(promise, error, what) {
  let tokens;
  try {
    tokens = await promise;
  } catch (err) {
    assert.ok(
      err instanceof client.ResponseBodyError,
      `${what}: expected a token endpoint error response with error=${error}, got ${err?.name}: ${err?.message}`,
    );
    assert.equal(err.error, error, `${what}: token endpoint error ${err.error} (${err.error_description ?? 'no description'})`);
    return;
  }
  assert.fail(`${what}: expected error=${error}, but the token endpoint issued tokens (${Object.keys(tokens).join(', ')})`);
}

/**
 * Asserts that the token endpoint refuses the client's credentials. RFC 6749
 * §5.2 allows 400 or 401 (with WWW-Authenticate, which openid-client reports
 * as a challenge error rather than a body error).
 */
export async function assertClientAuthRefused(promise, what) {
  try {
    await promise;
  } catch (err) {
    if (err instanceof client.ResponseBodyError) {
      assert.equal(err.error, 'invalid_client', `${what}: token endpoint error ${err.error} (${err.error_description ?? ''})`);
      return;
    }
    if (err instanceof client.WWWAuthenticateChallengeError) {
      assert.equal(err.status, 401, `${what}: a challenge with HTTP ${err.status}`);
      return;
    }
    assert.fail(`${what}: expected invalid_client, got ${err?.name}: ${err?.message}`);
  }
  assert.fail(`${what}: the token endpoint accepted credentials it never issued`);
}

/** The UserInfo endpoint's HTTP status for `accessToken` (200 when openid-client accepts the answer). */
export async function userInfoStatus(rp, accessToken) {
  try {
    await client.fetchUserInfo(rp.config, accessToken, client.skipSubjectCheck);
    return 200;
  } catch (err) {
    // 401 with WWW-Authenticate: a challenge error; without: a ClientError whose cause is the Response.
    const status = err.status ?? (err.cause instanceof Response ? err.cause.status : undefined);
    if (status === undefined) throw err;
    return status;
  }
}

const IAL_LEVELS = ['1', '2.1', '2.2', '2.3', '3'];
const AAL_LEVELS = ['1', '2', '3'];

/** `urn:saphan:ial-2.3:aal-2` → { ial: 2.3, aal: 2 }; throws on anything else. */
export function parseAcr(acr) {
  const m = /^urn:saphan:ial-([0-9.]+):aal-([0-9]+)$/.exec(acr ?? '');
  assert.ok(m && IAL_LEVELS.includes(m[1]) && AAL_LEVELS.includes(m[2]), `acr ${JSON.stringify(acr)} is not urn:saphan:ial-<1|2.1|2.2|2.3|3>:aal-<1|2|3>`);
  // The levels are ordered as their decimal values (1 < 2.1 < 2.2 < 2.3 < 3).
  return { ial: Number(m[1]), aal: Number(m[2]) };
}

/**
 * Checks the ID token claims openid-client leaves to the RP: acr, amr,
 * auth_time and sub, against what `user` can reach. Returns the parsed acr.
 */
export function assertIdTokenClaims(claims, user, { secondFactor } = {}) {
  const acr = parseAcr(claims.acr);
  assert.ok(acr.ial <= Number(user.ial), `acr ${claims.acr} claims more identity assurance than the user's ial ${user.ial}`);
  assert.ok(acr.aal <= Number(user.aal), `acr ${claims.acr} claims more than the user's aal ${user.aal}`);

  assert.ok(Array.isArray(claims.amr) && claims.amr.length > 0, `amr must be a non-empty array, got ${JSON.stringify(claims.amr)}`);
  assert.ok(claims.amr.every((v) => typeof v === 'string'), `amr values must be strings: ${JSON.stringify(claims.amr)}`);
  assert.ok(claims.amr.includes('pwd'), `the user typed a password, amr ${JSON.stringify(claims.amr)} lacks "pwd"`);
  // secondFactor: true/false when this flow's pages are known, undefined
  // when a reused session hides them.
  if (secondFactor === true) {
    assert.ok(claims.amr.includes('otp'), `the user typed a TOTP code, amr ${JSON.stringify(claims.amr)} lacks "otp"`);
    assert.ok(acr.aal >= 2, `password + TOTP is AAL 2, acr says ${claims.acr}`);
  } else if (secondFactor === false) {
    assert.ok(!claims.amr.includes('otp'), `no TOTP code was typed, yet amr is ${JSON.stringify(claims.amr)}`);
  }

  const now = Math.floor(Date.now() / 1000);
  assert.equal(typeof claims.auth_time, 'number', `auth_time must be a number, got ${JSON.stringify(claims.auth_time)}`);
  assert.ok(claims.auth_time <= now + 5 && claims.auth_time >= now - 600, `auth_time ${claims.auth_time} is not the sign-in just made (now ${now})`);
  assert.ok(claims.auth_time <= claims.iat + 5, `auth_time ${claims.auth_time} is after iat ${claims.iat}`);

  assert.equal(typeof claims.sub, 'string');
  assert.ok(claims.sub.length > 0 && claims.sub.length <= 255, 'sub must be 1..255 characters (OIDC Core §2)');
  // A pairwise sub must not be the national id or passport number itself.
  assert.ok(!claims.sub.includes(user.identifier), `sub ${claims.sub} reveals the user's identifier`);
  return acr;
}
