// A stand-in for an upstream OpenID provider such as ThaID: panva's
// oidc-provider (an implementation that is not Saphan's), on plain HTTP on
// the loopback interface, with one static client ("saphan") and a fixed set
// of accounts. People sign in on oidc-provider's built-in development pages
// ("devInteractions"): a login form that accepts a login name and any
// password, then a consent form.
//
// The ID token carries the scope `pid`'s claims (`pid`, `name`) itself,
// because `conformIdTokenClaims: false`: with the default (true), claims
// asked for by scope go to UserInfo only whenever an access token is issued,
// and Saphan reads the national id from the ID token.

import { generateKeyPairSync, randomBytes, randomUUID } from 'node:crypto';
import { createServer } from 'node:http';
import Provider from 'oidc-provider';

/** How the development login page names its controls (oidc-provider 9, lib/views/login.js). */
export const DEV_LOGIN_FIELDS = { login: 'login', password: 'password' };

/**
 * Starts the upstream provider at `http://localhost:${port}` (the issuer,
 * exactly, with no trailing slash) and resolves once it listens.
 *
 * - clientSecret: the secret of client `saphan` (client_secret_basic)
 * - redirectUri:  its only redirect URI (Saphan's callback)
 * - accounts:     login name → { pid, name }; any other login name has no account
 *
 * Returns { issuer, origin, close() }.
 */
export async function startUpstream({ port, clientSecret, redirectUri, accounts }) {
  if (!Number.isInteger(port) || port <= 0 || port > 65535) throw new Error(`upstream port must be 1..65535, got ${port}`);
  if (!clientSecret) throw new Error('the upstream client secret is empty');
  const issuer = `http://localhost:${port}`;

  // A signing key of our own: without `jwks`, oidc-provider signs with a
  // published development key and warns about it.
  const { privateKey } = generateKeyPairSync('rsa', { modulusLength: 2048 });
  const signingKey = { ...privateKey.export({ format: 'jwk' }), kid: randomUUID(), alg: 'RS256', use: 'sig' };

  const provider = new Provider(issuer, {
    clients: [
      {
        client_id: 'saphan',
        client_secret: clientSecret,
        redirect_uris: [redirectUri],
        token_endpoint_auth_method: 'client_secret_basic',
        grant_types: ['authorization_code'],
        response_types: ['code'],
      },
    ],
    responseTypes: ['code'],
    // oidc-provider 9 supports only S256; by default it requires PKCE of
    // public clients only, here of every client.
    pkce: { required: () => true },
    scopes: ['openid', 'pid'],
    claims: { openid: ['sub'], pid: ['pid', 'name'] },
    conformIdTokenClaims: false,
    features: {
      devInteractions: { enabled: true },
      // Nothing but the code flow is needed (registration, revocation and
      // introspection are off by default already).
      rpInitiatedLogout: { enabled: false },
    },
    findAccount(ctx, accountId) {
      const account = Object.hasOwn(accounts, accountId) ? accounts[accountId] : undefined;
      // undefined: no such account (any other login name the dev page accepts).
      if (!account) return undefined;
      return {
        accountId,
        // oidc-provider keeps only the claims the granted scopes allow.
        async claims() {
          return { sub: accountId, pid: account.pid, name: account.name };
        },
      };
    },
    jwks: { keys: [signingKey] },
    // Lifetimes in seconds, short but ample for a test; set explicitly, since
    // oidc-provider prints a notice each time a default ttl is used.
    ttl: { Interaction: 600, Session: 600, Grant: 600, AuthorizationCode: 60, AccessToken: 300, IdToken: 300 },
    // Signs the cookies (name.sig); random per run, so nothing outlives it.
    cookies: { keys: [randomBytes(32).toString('base64url')] },
    // Plain-text errors are easier to read in a failure message than the default page.
    async renderError(ctx, out) {
      ctx.type = 'text/plain; charset=utf-8';
      ctx.body = `upstream error: ${out.error}${out.error_description ? ` (${out.error_description})` : ''}`;
    },
  });

  // Koa's request handler; the provider's URLs come from the issuer, not
  // from the Host header, and ctx.secure is false, so its cookies are not
  // marked Secure and plain HTTP works without `proxy` settings.
  const handler = provider.callback();

  // `localhost` may resolve to 127.0.0.1 or ::1 depending on the client
  // (Node prefers the resolver's order, Rust tries each address in turn):
  // listen on both loopback addresses, and on ::1 only where IPv6 exists.
  const servers = [];
  const listen = (host) =>
    new Promise((resolve, reject) => {
      const server = createServer(handler);
      server.once('error', reject);
      server.listen({ port, host, exclusive: true }, () => {
        server.off('error', reject);
        servers.push(server);
        resolve();
      });
    });
  await listen('127.0.0.1');
  try {
    await listen('::1');
  } catch (err) {
    if (err.code !== 'EADDRNOTAVAIL' && err.code !== 'EAFNOSUPPORT') {
      await Promise.all(servers.map((s) => new Promise((r) => s.close(r))));
      throw new Error(`the upstream provider cannot listen on [::1]:${port}: ${err.message}`);
    }
  }

  return {
    issuer,
    origin: new URL(issuer).origin,
    /** Stops listening and drops open (keep-alive) connections. */
    close() {
      return Promise.all(
        servers.map(
          (s) =>
            new Promise((resolve) => {
              s.close(() => resolve());
              s.closeAllConnections();
            }),
        ),
      );
    },
  };
}
