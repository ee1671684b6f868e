// The running demo platform as the sign-in tests see it: its demo users and admin token (from
// $SAPHAN_DATA_DIR), its public origin (from discovery), client registration, authorization URLs,
// and TOTP codes for the demo users.

import assert from 'node:assert/strict';
import { createHash, randomBytes, randomUUID } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as OTPAuth from 'otpauth';
import { BASE_URL } from './chromium.mjs';

/** Where the relying party's browser is sent back to. Nothing listens there: tests intercept it. */
export const REDIRECT_URI = 'http://127.0.0.1:9/callback';
export const CALLBACK_ORIGIN = new URL(REDIRECT_URI).origin;

function dataFile(name) {
  const dir = process.env.SAPHAN_DATA_DIR;
  assert.ok(dir, 'set SAPHAN_DATA_DIR to the running demo\'s data directory (demo-logins.json, admin-token)');
  try {
    return readFileSync(join(dir, name), 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${join(dir, name)} (is SAPHAN_DATA_DIR the running demo's data directory?): ${err.message}`);
  }
}

/** The demo users of demo-logins.json. */
export function demoUsers() {
  const list = JSON.parse(dataFile('demo-logins.json'));
  assert.ok(Array.isArray(list) && list.length >= 2, 'demo-logins.json lists at least two users');
  return list;
}

export function adminToken() {
  const token = dataFile('admin-token').trim();
  assert.ok(token, 'admin-token is empty');
  return token;
}

async function fetchJson(url, init = {}) {
  const response = await fetch(url, { ...init, signal: AbortSignal.timeout(15_000) });
  const text = await response.text();
  let body;
  try {
    body = JSON.parse(text);
  } catch {
    body = undefined;
  }
  return { response, text, body };
}

/**
 * The provider's metadata. Browsers go to its `issuer`, the platform's public origin, rather than
 * to BASE_URL: WebAuthn binds passkeys to that host (the demo's is `localhost`, since browsers
 * refuse IP addresses as relying parties), and cookies are per host.
 */
export async function discovery() {
  const { response, text, body } = await fetchJson(`${BASE_URL}/.well-known/openid-configuration`);
  assert.equal(response.status, 200, `discovery answered ${response.status}: ${text.slice(0, 300)}`);
  return body;
}

/** Registers a fresh client (a random name, so tests never share one); the 201 answer. */
export async function registerClient() {
  const tag = randomUUID().slice(0, 8);
  const { response, text, body } = await fetchJson(`${BASE_URL}/api/v1/identity/clients`, {
    method: 'POST',
    headers: { authorization: `Bearer ${adminToken()}`, 'content-type': 'application/json', accept: 'application/json' },
    body: JSON.stringify({
      name: { th: `ทดสอบเบราว์เซอร์ ${tag}`, en: `Browser test ${tag}` },
      agency: 'dga',
      redirect_uris: [REDIRECT_URI],
      scopes: ['openid', 'profile'],
      token_endpoint_auth_method: 'client_secret_basic',
      id_token_signed_response_alg: 'RS256',
    }),
  });
  assert.equal(response.status, 201, `client registration answered ${response.status}: ${text.slice(0, 500)}`);
  assert.equal(typeof body.client_id, 'string');
  assert.equal(typeof body.client_secret, 'string');
  return body;
}

const b64url = (bytes) => Buffer.from(bytes).toString('base64url');

/** A fresh authorization request (PKCE S256) for `client`: its URL and what the RP keeps. */
export function authorizationRequest(metadata, client) {
  const verifier = b64url(randomBytes(32));
  const state = b64url(randomBytes(16));
  const nonce = b64url(randomBytes(16));
  const url = new URL(metadata.authorization_endpoint);
  url.search = new URLSearchParams({
    response_type: 'code',
    client_id: client.client_id,
    redirect_uri: REDIRECT_URI,
    scope: 'openid profile',
    state,
    nonce,
    code_challenge: b64url(createHash('sha256').update(verifier).digest()),
    code_challenge_method: 'S256',
  }).toString();
  return { url: url.href, state, nonce, verifier };
}

/** Checks the callback URL the browser was sent to, and redeems its code at the token endpoint. */
export async function assertCallback(metadata, client, request, callbackUrl) {
  const url = new URL(callbackUrl);
  assert.equal(url.origin + url.pathname, REDIRECT_URI, `sent to ${callbackUrl}`);
  const params = url.searchParams;
  assert.equal(params.get('error'), null, `the provider answered with an error: ${callbackUrl}`);
  assert.ok(params.get('code'), `the callback has no code: ${callbackUrl}`);
  assert.equal(params.get('state'), request.state, 'the callback carries the request\'s state');
  assert.equal(params.get('iss'), metadata.issuer, 'the callback carries the issuer (RFC 9207)');
  // The code works (the demo's codes live a few seconds: redeem it at once).
  const { response, text, body } = await fetchJson(metadata.token_endpoint, {
    method: 'POST',
    headers: {
      authorization: `Basic ${Buffer.from(`${encodeURIComponent(client.client_id)}:${encodeURIComponent(client.client_secret)}`).toString('base64')}`,
      'content-type': 'application/x-www-form-urlencoded',
      accept: 'application/json',
    },
    body: new URLSearchParams({
      grant_type: 'authorization_code',
      code: params.get('code'),
      redirect_uri: REDIRECT_URI,
      code_verifier: request.verifier,
    }).toString(),
  });
  assert.equal(response.status, 200, `the token endpoint refused the code: ${response.status} ${text.slice(0, 300)}`);
  assert.equal(typeof body.id_token, 'string', 'the token response has an ID token');
  const claims = JSON.parse(Buffer.from(body.id_token.split('.')[1], 'base64url').toString('utf8'));
  assert.equal(claims.nonce, request.nonce, 'the ID token carries the request\'s nonce');
  return claims;
}

// ---- TOTP -------------------------------------------------------------------------------------
// A code is accepted once per 30-second step per user (RFC 6238 §5.2). Each step is "claimed" with
// an O_EXCL marker file, in the same directory and with the same key as tests/oidc/lib/totp.mjs,
// so that runs of either suite against one platform never reuse a step; a sign-in whose step is
// taken waits for the next one.

const PERIOD_MS = 30_000;
// A code typed in the last seconds of its step may arrive after the step turned.
const MIN_MS_LEFT_IN_STEP = 4_000;

function claim(user, step) {
  const key = createHash('sha256').update(`${BASE_URL}\0${user.identifier}`).digest('hex').slice(0, 24);
  const dir = join(tmpdir(), 'saphan-oidc-totp', key);
  mkdirSync(dir, { recursive: true });
  for (const name of readdirSync(dir)) {
    if (Number(name) < step - 4) rmSync(join(dir, name), { force: true });
  }
  try {
    writeFileSync(join(dir, String(step)), '', { flag: 'wx' });
    return true;
  } catch (err) {
    if (err.code === 'EEXIST') return false;
    throw err;
  }
}

/** A TOTP code for `user` that no earlier sign-in used, waiting for the next step if need be. */
export async function freshTotpCode(user) {
  assert.ok(user.totp_secret, `demo user ${user.label} has no TOTP secret`);
  const totp = new OTPAuth.TOTP({
    secret: OTPAuth.Secret.fromBase32(user.totp_secret.replace(/\s+/g, '').toUpperCase()),
    algorithm: 'SHA1',
    digits: 6,
    period: PERIOD_MS / 1000,
  });
  for (;;) {
    const now = Date.now();
    const step = Math.floor(now / PERIOD_MS);
    const msLeft = (step + 1) * PERIOD_MS - now;
    if (msLeft >= MIN_MS_LEFT_IN_STEP && claim(user, step)) return totp.generate({ timestamp: now });
    // Until just past the next 30-second boundary.
    await sleep(msLeft + 250);
  }
}
