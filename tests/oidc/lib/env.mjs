// The test run's environment: where the provider is, where its demo data is,
// and the demo users. Imported first by every test file, so a missing
// variable stops the run before any test starts, with one readable line
// instead of a stack trace or a cascade of connection errors.

import { readFileSync } from 'node:fs';
import { join } from 'node:path';

function die(message) {
  console.error(`saphan-oidc: ${message}`);
  process.exit(1);
}

if (!process.env.BASE_URL) {
  die(
    'BASE_URL is not set. Start Saphan, then run e.g.\n' +
      '  BASE_URL=http://127.0.0.1:41234 SAPHAN_DATA_DIR=/path/to/data npm test\n' +
      'BASE_URL is the provider\'s issuer (scheme, host and port, no trailing slash).',
  );
}
if (!process.env.SAPHAN_DATA_DIR) {
  die('SAPHAN_DATA_DIR is not set: it must name the demo\'s data directory (admin-token, demo-logins.json).');
}

let baseUrl;
try {
  baseUrl = new URL(process.env.BASE_URL);
} catch {
  die(`BASE_URL is not a URL: ${JSON.stringify(process.env.BASE_URL)}`);
}
if (baseUrl.protocol !== 'http:' && baseUrl.protocol !== 'https:') {
  die(`BASE_URL must be http(s): ${process.env.BASE_URL}`);
}

/** The issuer, exactly as the provider must publish it (no trailing slash). */
export const BASE_URL = process.env.BASE_URL.replace(/\/+$/, '');
export const PROVIDER_ORIGIN = baseUrl.origin;
export const DATA_DIR = process.env.SAPHAN_DATA_DIR;

const ttl = Number(process.env.CODE_TTL_SECS ?? '5');
if (!Number.isFinite(ttl) || ttl <= 0) die(`CODE_TTL_SECS must be a positive number, got ${process.env.CODE_TTL_SECS}`);
/** The provider's authorization-code lifetime in this run, in seconds. */
export const CODE_TTL_SECS = ttl;

// The RP's endpoints. Nothing listens on port 9 (discard): the tests read the
// code off the Location header and never follow the redirect, and a provider
// that wrongly fetched these URIs would reach nothing.
export const REDIRECT_URI = 'http://127.0.0.1:9/callback';
export const POST_LOGOUT_REDIRECT_URI = 'http://127.0.0.1:9/signed-out';

function readDataFile(name) {
  const path = join(DATA_DIR, name);
  try {
    return readFileSync(path, 'utf8');
  } catch (err) {
    throw new Error(`cannot read ${path} (is SAPHAN_DATA_DIR the running demo's data directory?): ${err.message}`);
  }
}

/** The admin bearer token that may register clients. */
export function adminToken() {
  const token = readDataFile('admin-token').trim();
  if (!token) throw new Error(`${join(DATA_DIR, 'admin-token')} is empty`);
  return token;
}

let demoUsers;
/** The demo users from demo-logins.json, checked for the fields the tests rely on. */
export function users() {
  if (demoUsers) return demoUsers;
  const text = readDataFile('demo-logins.json');
  let list;
  try {
    list = JSON.parse(text);
  } catch (err) {
    throw new Error(`demo-logins.json is not JSON: ${err.message}`);
  }
  if (!Array.isArray(list) || list.length === 0) throw new Error('demo-logins.json must be a non-empty array');
  for (const [i, u] of list.entries()) {
    for (const field of ['kind', 'identifier', 'password']) {
      if (typeof u[field] !== 'string' || !u[field]) {
        throw new Error(`demo-logins.json[${i}] (${u.label ?? '?'}) has no string "${field}"`);
      }
    }
  }
  demoUsers = list;
  return list;
}

function describeUsers() {
  return users()
    .map((u) => `${u.label ?? u.identifier} (kind=${u.kind}, totp=${u.totp_secret ? 'yes' : 'no'}, ial=${u.ial}, aal=${u.aal})`)
    .join('; ');
}

/**
 * A citizen who can reach AAL 2 with a TOTP code: the user for everything
 * that needs a national id (`pid`) or a second factor.
 */
export function totpCitizen() {
  const u = users().find((x) => x.kind === 'citizen' && x.totp_secret && Number(x.aal) >= 2);
  if (!u) {
    throw new Error(`demo-logins.json has no citizen with a totp_secret and aal >= 2; users: ${describeUsers()}`);
  }
  return u;
}

/**
 * A user for tests where who signs in does not matter. One without TOTP is
 * preferred: providers rightly refuse a TOTP code used twice in the same
 * 30-second step, so every TOTP sign-in of the same user may have to wait for
 * the next step, and sparing the TOTP citizen keeps the run short.
 */
export function anyUser() {
  return users().find((x) => !x.totp_secret) ?? totpCitizen();
}

/** Fails fast, once, if nothing answers at BASE_URL (used in before() hooks). */
export async function assertProviderReachable() {
  const url = `${BASE_URL}/.well-known/openid-configuration`;
  let res;
  try {
    res = await fetch(url, { redirect: 'manual' });
  } catch (err) {
    throw new Error(`Saphan is not reachable at ${url}: ${err.cause?.code ?? err.cause?.message ?? err.message}`);
  }
  if (res.status !== 200) {
    throw new Error(`${url} answered ${res.status}, not 200: ${(await res.text()).slice(0, 300)}`);
  }
}
