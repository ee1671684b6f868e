"""Signing the demo's people in from outside, as a browser does: the sign-in form, then the
authenticator-app step (RFC 6238 codes computed here) for those with TOTP. The session cookie
and the CSRF cookie then carry the person's API calls."""

import base64
import hashlib
import hmac
import json
import re
import struct
import time
from pathlib import Path

import requests


def totp(secret: str, at: float | None = None) -> str:
    key = base64.b32decode(secret.upper() + "=" * (-len(secret) % 8))
    counter = int((at or time.time()) // 30)
    digest = hmac.new(key, struct.pack(">Q", counter), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = (struct.unpack(">I", digest[offset:offset + 4])[0] & 0x7FFFFFFF) % 1_000_000
    return f"{code:06d}"


def logins(data_dir: str) -> list:
    return json.loads((Path(data_dir) / "demo-logins.json").read_text())


def login_labelled(data_dir: str, label: str) -> dict:
    return next(l for l in logins(data_dir) if l["label"] == label)


class Person:
    """A signed-in person; `req` adds the CSRF header to changes."""

    def __init__(self, base: str, login: dict):
        self.base = base
        self.http = requests.Session()
        page = self.http.get(f"{base}/account", timeout=30)
        assert "/signin" in page.url, page.url
        csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
        request = re.search(r'name="request" value="([^"]*)"', page.text)
        r = self.http.post(
            f"{base}/signin?lang=en",
            data={"request": request.group(1) if request else "", "csrf": csrf,
                  "identifier": login["identifier"], "nationality": login.get("nationality") or "",
                  "password": login["password"]},
            timeout=30,
        )
        if login.get("totp_secret"):
            assert "/signin/totp" in r.url or 'name="code"' in r.text, r.url
            page = r
            for attempt in range(2):
                csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
                request = re.search(r'name="request" value="([^"]*)"', page.text)
                r = self.http.post(
                    f"{base}/signin/totp?lang=en",
                    data={"request": request.group(1) if request else "", "csrf": csrf,
                          "code": totp(login["totp_secret"])},
                    timeout=30,
                )
                if self.http.cookies.get("saphan_session") or attempt:
                    break
                # A code works once: this person signed in during this 30-second step already
                # (an earlier run). Wait for the next step and use the page the refusal shows.
                time.sleep(30 - time.time() % 30 + 1)
                page = r
        assert self.http.cookies.get("saphan_session"), f"{login['label']}: not signed in ({r.status_code} {r.url})"

    def req(self, method: str, path: str, **kw) -> requests.Response:
        headers = kw.pop("headers", {})
        # GovStack clients name their system; an app of the citizen's is the portal's member here.
        headers.setdefault("Information-Mediator-Client", "TH/GOV/DGA/PORTAL")
        if method != "GET":
            headers["X-CSRF-Token"] = self.http.cookies.get("saphan_csrf")
        return self.http.request(method, self.base + path, headers=headers, timeout=30, **kw)
