// TOTP codes for the demo users, computed independently of the provider with
// otpauth (RFC 6238: HMAC-SHA1, 6 digits, 30-second steps).
//
// RFC 6238 §5.2 says a verifier must not accept the same code twice, so a
// second sign-in of the same user inside one 30-second step would be refused
// by a well-behaved provider. Each code is therefore "claimed" by creating a
// marker file named after its time step with O_EXCL: the claim is atomic even
// when node --test runs several test files in parallel processes, and a
// sign-in whose step is already taken waits for the next one.

import { createHash } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import * as OTPAuth from 'otpauth';
import { BASE_URL } from './env.mjs';

const PERIOD_MS = 30_000;
// A code typed in the last seconds of its step may reach the provider after
// the step has turned; a provider with no clock-drift window would then
// refuse it, so such a step is skipped rather than raced.
const MIN_MS_LEFT_IN_STEP = 4_000;

function claimDir(user) {
  const key = createHash('sha256').update(`${BASE_URL}\0${user.identifier}`).digest('hex').slice(0, 24);
  const dir = join(tmpdir(), 'saphan-oidc-totp', key);
  mkdirSync(dir, { recursive: true });
  return dir;
}

function claim(user, step) {
  const dir = claimDir(user);
  // Old markers are of no further use: a step never comes back.
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

/**
 * A TOTP code for `user` that no other sign-in of this test run has used,
 * waiting for the next time step when needed (at most ~35 s per wait).
 */
export async function freshTotpCode(user) {
  if (!user.totp_secret) {
    throw new Error(`the provider asked for a TOTP code, but demo user ${user.label ?? user.identifier} has no totp_secret`);
  }
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
    if (msLeft >= MIN_MS_LEFT_IN_STEP && claim(user, step)) {
      return totp.generate({ timestamp: now });
    }
    await sleep(msLeft + 250);
  }
}
