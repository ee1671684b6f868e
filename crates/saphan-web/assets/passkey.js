// Passkeys for Saphan's sign-in and account pages (WebAuthn). Progressive enhancement: the
// buttons stay hidden where the browser has no WebAuthn, and every page works without this file.
(function () {
  'use strict';
  if (!window.PublicKeyCredential || !navigator.credentials) return;

  const toBytes = (b64url) => {
    const b64 = b64url.replace(/-/g, '+').replace(/_/g, '/');
    const bin = atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4));
    return Uint8Array.from(bin, (c) => c.charCodeAt(0));
  };
  const toB64url = (buffer) => {
    const bytes = new Uint8Array(buffer);
    let bin = '';
    for (const b of bytes) bin += String.fromCharCode(b);
    return btoa(bin).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
  };
  const post = async (url, body) => {
    const response = await fetch(url, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', Accept: 'application/json' },
      credentials: 'same-origin',
      body: JSON.stringify(body),
    });
    const data = await response.json().catch(() => ({}));
    if (!response.ok) throw new Error(data.title_th && document.documentElement.lang === 'th' ? data.title_th : (data.title || response.statusText));
    return data;
  };
  const showError = (el, message) => {
    const box = document.getElementById(el.dataset.errorId);
    if (box) { box.textContent = message; box.hidden = false; box.focus(); }
  };

  const signIn = document.querySelector('[data-passkey-signin]');
  if (signIn) {
    signIn.hidden = false;
    signIn.addEventListener('click', async () => {
      try {
        const begun = await post('/signin/passkey/begin', { csrf: signIn.dataset.csrf });
        const options = begun.options.publicKey;
        options.challenge = toBytes(options.challenge);
        (options.allowCredentials || []).forEach((c) => { c.id = toBytes(c.id); });
        const credential = await navigator.credentials.get({ publicKey: options });
        const r = credential.response;
        const finished = await post('/signin/passkey/finish', {
          csrf: signIn.dataset.csrf,
          ceremony: begun.ceremony,
          request: signIn.dataset.request || '',
          credential: {
            id: credential.id, rawId: toB64url(credential.rawId), type: credential.type,
            extensions: credential.getClientExtensionResults(),
            response: {
              authenticatorData: toB64url(r.authenticatorData),
              clientDataJSON: toB64url(r.clientDataJSON),
              signature: toB64url(r.signature),
              userHandle: r.userHandle ? toB64url(r.userHandle) : null,
            },
          },
        });
        window.location.assign(finished.redirect);
      } catch (e) {
        showError(signIn, signIn.dataset.failed + ' (' + e.message + ')');
      }
    });
  }

  const register = document.querySelector('[data-passkey-register]');
  if (register) {
    register.hidden = false;
    const form = register.closest('form');
    if (form) form.hidden = false;
    register.addEventListener('click', async (event) => {
      event.preventDefault();
      try {
        const begun = await post('/account/passkeys/begin', { csrf: register.dataset.csrf });
        const options = begun.options.publicKey;
        options.challenge = toBytes(options.challenge);
        options.user.id = toBytes(options.user.id);
        (options.excludeCredentials || []).forEach((c) => { c.id = toBytes(c.id); });
        const credential = await navigator.credentials.create({ publicKey: options });
        const r = credential.response;
        const nameInput = document.getElementById('passkey-name');
        await post('/account/passkeys/finish', {
          csrf: register.dataset.csrf,
          ceremony: begun.ceremony,
          name: nameInput ? nameInput.value : '',
          credential: {
            id: credential.id, rawId: toB64url(credential.rawId), type: credential.type,
            extensions: credential.getClientExtensionResults(),
            response: {
              attestationObject: toB64url(r.attestationObject),
              clientDataJSON: toB64url(r.clientDataJSON),
              transports: r.getTransports ? r.getTransports() : [],
            },
          },
        });
        window.location.reload();
      } catch (e) {
        showError(register, register.dataset.failed + ' (' + e.message + ')');
      }
    });
  }
})();
