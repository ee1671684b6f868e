// The user's browser, by hand: the only part of the flow openid-client does
// not do. Redirects are never followed automatically, so every hop is seen
// (and a redirect to the RP is caught before anything would fetch it), and
// cookies are kept in a small jar so that a session can be reused or ended.
//
// The jar is keyed by host name, as a browser's is: host-only cookies are not
// port-specific (RFC 6265 §8.5), so Saphan at localhost:A and an upstream
// provider at localhost:B see each other's cookies, just as in a browser.
// The Domain attribute is ignored (every cookie is host-only) and so is Secure
// (the tests run on plain HTTP); neither matters to the pages driven here.

import { freshTotpCode } from './totp.mjs';
import { PROVIDER_ORIGIN } from './env.mjs';

/** Most HTTP requests one sign-in may take before it is declared stuck. */
const MAX_STEPS = 10;
/**
 * The same for a sign-in at an upstream provider, which takes more hops:
 * Saphan's sign-in page, the upstream's login and consent pages and their
 * redirects, Saphan's callback and consent page (about 14 requests).
 */
const MAX_FEDERATED_STEPS = 25;
/** A page that takes longer than this is a hang, not a slow page. */
const REQUEST_TIMEOUT_MS = 15_000;

const isRedirect = (status) => status >= 300 && status < 400;

export function unescapeHtml(s) {
  return s
    .replace(/&quot;/g, '"')
    .replace(/&#0*39;|&#x0*27;|&apos;/gi, "'")
    .replace(/&lt;/g, '<')
    .replace(/&gt;/g, '>')
    .replace(/&#(\d+);/g, (_, d) => String.fromCodePoint(Number(d)))
    .replace(/&#x([0-9a-f]+);/gi, (_, h) => String.fromCodePoint(parseInt(h, 16)))
    // Last, so that "&amp;lt;" stays the text "&lt;".
    .replace(/&amp;/g, '&');
}

function parseAttributes(text) {
  const attrs = {};
  const re = /([^\s"'<>\/=]+)(?:\s*=\s*(?:"([^"]*)"|'([^']*)'|([^\s"'=<>`]+)))?/g;
  for (const m of text.matchAll(re)) {
    attrs[m[1].toLowerCase()] = unescapeHtml(m[2] ?? m[3] ?? m[4] ?? '');
  }
  return attrs;
}

function textOf(html) {
  return unescapeHtml(html.replace(/<[^>]*>/g, ' ')).replace(/\s+/g, ' ').trim();
}

/** The text of the page's role="alert" elements: why the provider refused a step. */
export function alertText(html) {
  const texts = [];
  const re = /<([a-z][a-z0-9]*)\b[^>]*\brole\s*=\s*["']?alert["']?[^>]*>([\s\S]*?)<\/\1\s*>/gi;
  for (const m of html.matchAll(re)) texts.push(textOf(m[2]));
  return texts.filter(Boolean).join(' | ');
}

/**
 * The page's single POST form: its action and its controls. The contract
 * says every interactive page has exactly one; anything else is a finding.
 */
export function parseForm(html) {
  const forms = [...html.matchAll(/<form\b([^>]*)>([\s\S]*?)<\/form\s*>/gi)].filter(
    (m) => (parseAttributes(m[1]).method ?? 'get').toLowerCase() === 'post',
  );
  if (forms.length !== 1) {
    throw new Error(`expected exactly one <form method="post">, found ${forms.length}`);
  }
  const [, formAttrs, body] = forms[0];
  const action = parseAttributes(formAttrs).action;
  if (action === undefined) throw new Error('the POST form has no action');

  const hidden = [];
  const visible = [];
  const buttons = [];
  for (const m of body.matchAll(/<(input|select|textarea|button)\b([^>]*)>/gi)) {
    const tag = m[1].toLowerCase();
    const a = parseAttributes(m[2]);
    const type = (a.type ?? (tag === 'button' ? 'submit' : 'text')).toLowerCase();
    if (a.name === undefined) continue;
    if (tag === 'button' || type === 'submit' || type === 'image') {
      if (type === 'submit' || type === 'image') buttons.push({ name: a.name, value: a.value ?? '' });
    } else if (type === 'hidden') {
      hidden.push({ name: a.name, value: a.value ?? '' });
    } else if (type === 'checkbox' || type === 'radio') {
      // A browser sends only the checked ones, as they are.
      if ('checked' in a) hidden.push({ name: a.name, value: a.value ?? 'on' });
    } else {
      visible.push({ name: a.name, tag, type });
    }
  }
  return { action, hidden, visible, buttons };
}

/** A cookie jar (per host name) plus manual-redirect fetch. */
export class Browser {
  /** host + name + path → { host, name, value, path } */
  #cookies = new Map();
  /** Every visible field and decision this browser has filled, in order: lets a test tell which pages it went through. */
  filled = [];

  get cookieCount() {
    return this.#cookies.size;
  }

  /** A second browser holding a copy of this one's cookies (not its history). */
  clone() {
    const copy = new Browser();
    for (const [key, cookie] of this.#cookies) copy.#cookies.set(key, { ...cookie });
    return copy;
  }

  #cookieHeader(url) {
    return [...this.#cookies.values()]
      .filter((c) => c.host === url.hostname)
      .filter((c) => url.pathname === c.path || url.pathname.startsWith(c.path.endsWith('/') ? c.path : `${c.path}/`))
      .map((c) => `${c.name}=${c.value}`)
      .join('; ');
  }

  #store(url, response) {
    for (const line of response.headers.getSetCookie()) {
      const [pair, ...attrParts] = line.split(';');
      const eq = pair.indexOf('=');
      if (eq <= 0) continue;
      const name = pair.slice(0, eq).trim();
      const value = pair.slice(eq + 1).trim();
      const attrs = {};
      for (const part of attrParts) {
        const i = part.indexOf('=');
        const k = (i < 0 ? part : part.slice(0, i)).trim().toLowerCase();
        attrs[k] = i < 0 ? '' : part.slice(i + 1).trim();
      }
      // RFC 6265 §5.1.4: without a Path, the default is the request's "directory".
      let path = attrs.path?.startsWith('/') ? attrs.path : url.pathname.replace(/\/[^/]*$/, '') || '/';
      const host = url.hostname;
      const key = `${host}\0${name}\0${path}`;
      const expired =
        ('max-age' in attrs && Number(attrs['max-age']) <= 0) ||
        ('expires' in attrs && Date.parse(attrs.expires) <= Date.now());
      if (expired) this.#cookies.delete(key);
      else this.#cookies.set(key, { host, name, value, path });
    }
  }

  /** One request, no redirect following; a form body is sent urlencoded. */
  async request(url, { method = 'GET', form } = {}) {
    url = new URL(url);
    const headers = new Headers({ accept: 'text/html,application/xhtml+xml,application/json;q=0.9,*/*;q=0.8' });
    const cookie = this.#cookieHeader(url);
    if (cookie) headers.set('cookie', cookie);
    let body;
    if (form) {
      headers.set('content-type', 'application/x-www-form-urlencoded');
      body = new URLSearchParams(form).toString();
    }
    const response = await fetch(url, { method, headers, body, redirect: 'manual', signal: AbortSignal.timeout(REQUEST_TIMEOUT_MS) });
    this.#store(url, response);
    return response;
  }
}

function sameEndpoint(url, endpoint) {
  const e = new URL(endpoint);
  return url.origin === e.origin && url.pathname === e.pathname;
}

function describe(url) {
  // Long authorization URLs make the failure message unreadable; the path is enough.
  return `${url.origin}${url.pathname}`;
}

/**
 * Follows the provider's redirects from `startUrl` until it shows a page or
 * redirects off the provider. Returns { kind: 'page', url, response, html }
 * or { kind: 'redirect', url, location }. `origins` lists the origins whose
 * redirects are followed (default: the provider's only).
 */
export async function visit(browser, startUrl, { maxSteps = MAX_STEPS, origins = [PROVIDER_ORIGIN] } = {}) {
  let url = new URL(startUrl);
  for (let step = 0; step < maxSteps; step++) {
    const response = await browser.request(url);
    if (!isRedirect(response.status)) {
      return { kind: 'page', url, response, html: await response.text() };
    }
    const raw = response.headers.get('location');
    if (!raw) throw new Error(`${response.status} from ${describe(url)} has no Location header`);
    const location = new URL(raw, url);
    if (!origins.includes(location.origin)) return { kind: 'redirect', url, location, status: response.status };
    url = location;
  }
  throw new Error(`more than ${maxSteps} redirects from ${describe(new URL(startUrl))}`);
}

function fillForm(form, { user, decision, browser, code }) {
  const fields = new URLSearchParams();
  for (const { name, value } of form.hidden) fields.append(name, value);
  for (const { name } of form.visible) {
    switch (name) {
      case 'identifier':
        fields.append(name, user.identifier);
        break;
      case 'nationality':
        fields.append(name, user.nationality ?? '');
        break;
      case 'password':
        fields.append(name, user.password);
        break;
      case 'code':
        fields.append(name, code);
        break;
      default:
        throw new Error(`the sign-in page has a field "${name}" that the contract does not describe`);
    }
    browser.filled.push(name);
  }
  const decisionButtons = form.buttons.filter((b) => b.name === 'decision');
  if (decisionButtons.length) {
    if (!decisionButtons.some((b) => b.value === decision)) {
      throw new Error(
        `the consent page offers decision=${decisionButtons.map((b) => b.value).join('/')}, not "${decision}"`,
      );
    }
    fields.append('decision', decision);
    browser.filled.push(`decision=${decision}`);
  } else if (form.buttons.length) {
    // A browser sends the name/value of the button that was clicked.
    fields.append(form.buttons[0].name, form.buttons[0].value);
  }
  return fields;
}

/**
 * Drives the provider's pages for `user` from the authorization URL until the
 * provider redirects to the client's redirect_uri, and returns that URL (with
 * its code/state/iss or error parameters). Fails with the page's alert text if
 * a step is refused, and after MAX_STEPS requests if it goes nowhere.
 */
export async function signIn({ authorizationUrl, user, decision = 'allow', browser = new Browser() }) {
  const redirectUri = new URL(authorizationUrl).searchParams.get('redirect_uri');
  if (!redirectUri) throw new Error('the authorization URL has no redirect_uri');

  const trail = [];
  let url = new URL(authorizationUrl);
  let response = await browser.request(url);
  let posted = false;
  for (let step = 1; ; step++) {
    trail.push(`${posted ? 'POST' : 'GET'} ${describe(url)} ${response.status}`);
    if (step > MAX_STEPS) {
      throw new Error(`sign-in stuck after ${MAX_STEPS} requests: ${trail.join(' → ')}`);
    }

    if (isRedirect(response.status)) {
      const raw = response.headers.get('location');
      if (!raw) throw new Error(`${response.status} from ${describe(url)} has no Location header`);
      const location = new URL(raw, url);
      if (sameEndpoint(location, redirectUri)) return location;
      if (location.origin !== PROVIDER_ORIGIN) {
        throw new Error(`the provider redirected to ${location.href}, neither itself nor the redirect_uri`);
      }
      url = location;
      response = await browser.request(url);
      posted = false;
      continue;
    }

    const html = await response.text();
    // After a POST the contract expects a 303; a page instead means the
    // submission was refused and the form re-rendered.
    if (posted || response.status !== 200) {
      const alert = alertText(html);
      throw new Error(
        `sign-in of ${user.label ?? user.identifier} refused at ${describe(url)} (HTTP ${response.status}): ` +
          (alert ? `alert: ${alert}` : `no role="alert" on the page; page text: ${textOf(html).slice(0, 300)}`) +
          `; trail: ${trail.join(' → ')}`,
      );
    }

    let form;
    try {
      form = parseForm(html);
    } catch (err) {
      throw new Error(`${describe(url)}: ${err.message}; page text: ${textOf(html).slice(0, 300)}`);
    }
    const needsCode = form.visible.some((f) => f.name === 'code');
    const code = needsCode ? await freshTotpCode(user) : undefined;
    const fields = fillForm(form, { user, decision, browser, code });
    url = new URL(form.action, url);
    response = await browser.request(url, { method: 'POST', form: fields });
    posted = true;
  }
}

// ---- federation: signing in at an upstream OpenID provider ------------------

/**
 * The href of the sign-in page's link to upstream provider `name`
 * (`<a data-upstream="name" href="…">`), resolved against `pageUrl`.
 * Throws, with the links the page does offer, unless there is exactly one.
 */
export function upstreamLink(html, name, pageUrl) {
  const anchors = [...html.matchAll(/<a\b([^>]*)>/gi)].map((m) => parseAttributes(m[1]));
  const offered = anchors.filter((a) => 'data-upstream' in a);
  const matching = offered.filter((a) => a['data-upstream'] === name);
  if (matching.length !== 1 || !matching[0].href) {
    throw new Error(
      `expected one <a data-upstream="${name}" href="…"> on ${describe(new URL(pageUrl))}, found ${matching.length}` +
        ` (data-upstream links offered: [${offered.map((a) => a['data-upstream']).join(', ')}])`,
    );
  }
  return new URL(matching[0].href, pageUrl);
}

/** Fills one of the upstream provider's pages: its login form, or its consent form (hidden fields only). */
function fillUpstreamForm(form, upstream, browser) {
  const fields = new URLSearchParams();
  for (const { name, value } of form.hidden) fields.append(name, value);
  for (const { name } of form.visible) {
    switch (name) {
      case 'login':
        fields.append(name, upstream.login);
        break;
      case 'password':
        fields.append(name, upstream.password ?? 'any password will do');
        break;
      default:
        throw new Error(`the upstream provider's page has a field "${name}" this browser cannot fill`);
    }
  }
  if (form.buttons.length) fields.append(form.buttons[0].name, form.buttons[0].value);
  // "upstream:login" or "upstream:consent" (oidc-provider's hidden `prompt`), for the test's record.
  const prompt = form.hidden.find((f) => f.name === 'prompt')?.value ?? form.visible.map((f) => f.name).join('+');
  browser.filled.push(`upstream:${prompt}`);
  return fields;
}

/**
 * A federated sign-in, driven as a person would: from the authorization URL
 * to Saphan's sign-in page, along its `data-upstream` link to the upstream
 * provider, through the upstream's login and consent pages (login name
 * `upstream.login`, any password), back to Saphan's callback, through
 * Saphan's consent page (`decision`) if it is shown, until Saphan redirects
 * to the client's redirect_uri.
 *
 * `upstream`: { name, origin, login, password? }. `beforeRequest(url, browser)`,
 * if given, is called before every request (to snapshot the browser, say).
 *
 * Returns { location, visited, trail }: the redirect to the client (with its
 * code/state/iss or error parameters), every URL requested, and the steps as
 * text. Fails with the page's text if a step is refused, if Saphan asks for
 * a password after the upstream sign-in, or after MAX_FEDERATED_STEPS requests.
 */
export async function signInWithUpstream({ authorizationUrl, upstream, decision = 'allow', browser = new Browser(), beforeRequest }) {
  const redirectUri = new URL(authorizationUrl).searchParams.get('redirect_uri');
  if (!redirectUri) throw new Error('the authorization URL has no redirect_uri');
  const upstreamOrigin = new URL(upstream.origin).origin;
  const origins = [PROVIDER_ORIGIN, upstreamOrigin];

  const visited = [];
  const trail = [];
  const go = async (target, init) => {
    visited.push(target);
    if (beforeRequest) await beforeRequest(target, browser);
    return browser.request(target, init);
  };
  const stuck = (what) => new Error(`federated sign-in as ${upstream.login}: ${what}; trail: ${trail.join(' → ')}`);

  let url = new URL(authorizationUrl);
  let response = await go(url);
  let posted = false;
  // Whether the upstream link on Saphan's sign-in page has been followed.
  let leftForUpstream = false;
  for (let step = 1; ; step++) {
    trail.push(`${posted ? 'POST' : 'GET'} ${describe(url)} ${response.status}`);
    if (step > MAX_FEDERATED_STEPS) throw stuck(`no end after ${MAX_FEDERATED_STEPS} requests`);

    if (isRedirect(response.status)) {
      const raw = response.headers.get('location');
      if (!raw) throw stuck(`${response.status} from ${describe(url)} has no Location header`);
      const location = new URL(raw, url);
      if (sameEndpoint(location, redirectUri)) return { location, visited, trail };
      if (!origins.includes(location.origin)) {
        throw stuck(`redirected to ${location.href}: neither Saphan, the upstream provider nor the redirect_uri`);
      }
      url = location;
      response = await go(url);
      posted = false;
      continue;
    }

    const html = await response.text();
    const atUpstream = url.origin === upstreamOrigin;
    // After a POST a redirect is expected; a page instead means the
    // submission was refused and the form shown again.
    if (posted || response.status !== 200) {
      const alert = atUpstream ? '' : alertText(html);
      throw stuck(
        `refused at ${describe(url)} (HTTP ${response.status}): ` +
          (alert ? `alert: ${alert}` : `page text: ${textOf(html).slice(0, 300)}`),
      );
    }

    if (!atUpstream && !leftForUpstream) {
      // Saphan's sign-in page: take the upstream link instead of the password form.
      url = upstreamLink(html, upstream.name, url);
      leftForUpstream = true;
      response = await go(url);
      posted = false;
      continue;
    }

    let form;
    try {
      form = parseForm(html);
    } catch (err) {
      throw stuck(`${describe(url)}: ${err.message}; page text: ${textOf(html).slice(0, 300)}`);
    }
    let fields;
    if (atUpstream) {
      fields = fillUpstreamForm(form, upstream, browser);
    } else {
      // Back at Saphan after the upstream sign-in: the only page expected is
      // consent, which has no field to type into. Anything else (a password
      // or TOTP form) means the federated sign-in did not sign anyone in.
      if (form.visible.length) {
        throw stuck(
          `after the upstream sign-in Saphan shows ${describe(url)} asking for ` +
            `[${form.visible.map((f) => f.name).join(', ')}]: the federated sign-in did not start a session`,
        );
      }
      fields = fillForm(form, { user: {}, decision, browser });
    }
    url = new URL(form.action, url);
    response = await go(url, { method: 'POST', form: fields });
    posted = true;
  }
}
