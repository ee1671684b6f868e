"""Helpers for the data-exchange gateway tests: the admin API, consumer subsystems with their
credentials (mTLS certificate, OAuth private_key_jwt, GDX keys), provider backends in their own
processes, the signed-in citizen, and assertion checks with readable failure messages."""

import base64
import hashlib
import json
import os
import re
import secrets
import subprocess
import sys
import threading
import time
import uuid
from pathlib import Path
from urllib.parse import urlsplit

import jwt
import requests
from cryptography.hazmat.primitives.asymmetric import ec

HERE = Path(__file__).resolve().parent
BACKEND_SCRIPT = HERE / "backend.py"
TOKEN_PATH = "/api/v1/exchange/token"
USER_AGENT = "saphan-exchange-tests/1.0"

# ---- small helpers ---------------------------------------------------------------------------


def show(r: requests.Response) -> str:
    """A response, readably, for assertion messages."""
    req = r.request
    sent = {k: v for k, v in req.headers.items() if k.lower() != "authorization"}
    return (
        f"\n  request: {req.method} {req.url}\n  sent headers: {sent}"
        f"\n  -> {r.status_code} {r.reason}\n  headers: {dict(r.headers)}"
        f"\n  body: {r.text[:2000] if not r.raw or r._content_consumed else '(streamed)'}"
    )


def expect(r: requests.Response, status: int) -> requests.Response:
    assert r.status_code == status, f"expected {status}, got {r.status_code}{show(r)}"
    return r


def expect_xroad_error(r: requests.Response, status: int, kind: str) -> dict:
    """An error raised by the exchange itself: status, `X-Road-Error`, and the JSON body."""
    assert r.status_code == status, f"expected {status} {kind}, got {r.status_code}{show(r)}"
    assert r.headers.get("X-Road-Error") == kind, (
        f"expected X-Road-Error {kind}, got {r.headers.get('X-Road-Error')!r}{show(r)}"
    )
    try:
        body = r.json()
    except ValueError:
        raise AssertionError(f"the error body is not JSON{show(r)}")
    assert body.get("type") == kind, f"body type {body.get('type')!r} != {kind}{show(r)}"
    assert body.get("message"), f"no message in the error body{show(r)}"
    assert body.get("message_th"), f"no message_th in the error body{show(r)}"
    assert body.get("detail") and body["detail"] == r.headers.get("X-Road-Id"), (
        f"body detail should be the X-Road-Id {r.headers.get('X-Road-Id')!r}{show(r)}"
    )
    return body


def expect_ok(r: requests.Response, status: int = 200) -> requests.Response:
    """A call that reached the provider: its status and no exchange error."""
    assert r.status_code == status, f"expected {status}, got {r.status_code}{show(r)}"
    assert "X-Road-Error" not in r.headers, f"unexpected X-Road-Error{show(r)}"
    return r


def seen_headers(echo: dict) -> dict:
    """Headers the backend received, lower-cased names -> list of values."""
    out = {}
    for name, value in echo["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def path_of(identifier: str) -> str:
    """`TH/GOV/X/SUB[/SVC]` -> `GOV/X/SUB[/SVC]` for the admin API's URL templates."""
    return identifier.split("/", 1)[1] if identifier.startswith("TH/") else identifier


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise AssertionError(f"no VmRSS for pid {pid}")


class RssSampler:
    """Samples a process's resident set size in a thread; `peak` is the highest seen."""

    def __init__(self, pid: int, every: float = 0.02):
        self.pid, self.every = pid, every
        self.start_kib = rss_kib(pid)
        self.peak = self.start_kib
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _run(self):
        while not self._stop.is_set():
            try:
                self.peak = max(self.peak, rss_kib(self.pid))
            except (OSError, AssertionError):
                return
            time.sleep(self.every)

    def __enter__(self):
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()
        self.end_kib = rss_kib(self.pid)
        self.peak = max(self.peak, self.end_kib)


# ---- configuration ---------------------------------------------------------------------------


class Config:
    def __init__(self):
        self.base = os.environ["BASE_URL"].rstrip("/")
        self.tls = os.environ["TLS_URL"].rstrip("/")
        self.data_dir = Path(os.environ["SAPHAN_DATA_DIR"])
        self.admin_token = (self.data_dir / "admin-token").read_text().strip()
        pid = os.environ.get("SAPHAN_PID")
        self.pid = int(pid) if pid else None
        self.logins = json.loads((self.data_dir / "demo-logins.json").read_text())


# ---- the admin API ---------------------------------------------------------------------------


class Admin:
    def __init__(self, cfg: Config):
        self.cfg = cfg
        self.http = requests.Session()
        self.http.headers["Authorization"] = f"Bearer {cfg.admin_token}"

    def req(self, method, path, status=None, **kw) -> requests.Response:
        r = self.http.request(method, self.cfg.base + path, timeout=30, **kw)
        if status is not None:
            expect(r, status)
        return r

    def member(self, cls: str, code: str) -> str:
        self.req(
            "POST",
            "/api/v1/exchange/members",
            201,
            json={"class": cls, "code": code, "name_th": f"หน่วยทดสอบ {code}", "name_en": f"Test {code}"},
        )
        return f"{cls}/{code}"

    def subsystem(self, member: str, code: str) -> str:
        r = self.req(
            "POST", f"/api/v1/exchange/members/{member}/subsystems", 201, json={"code": code}
        )
        sid = r.json().get("id")
        assert sid == f"TH/{member}/{code}", f"unexpected subsystem id {sid!r}{show(r)}"
        return sid

    def set_subsystem_active(self, sub: str, active: bool):
        self.req(
            "PUT", f"/api/v1/exchange/subsystems/{path_of(sub)}/status", 204, json={"active": active}
        )

    def set_keys(self, sub: str, jwks: dict):
        self.req("PUT", f"/api/v1/exchange/subsystems/{path_of(sub)}/keys", 204, json=jwks)

    def certificate(self, sub: str, public_key_pem: str | None = None) -> dict:
        body = {} if public_key_pem is None else {"public_key_pem": public_key_pem}
        r = self.req(
            "POST", f"/api/v1/exchange/subsystems/{path_of(sub)}/certificates", 201, json=body
        )
        return r.json()

    def revoke_certificate(self, fingerprint: str):
        self.req("POST", f"/api/v1/exchange/certificates/{fingerprint}/revoke", 204)

    def gdx_keys(self, sub: str) -> dict:
        return self.req(
            "POST", f"/api/v1/exchange/subsystems/{path_of(sub)}/gdx-keys", 201
        ).json()

    def service(self, sub: str, code: str, backend_url: str, **spec) -> str:
        body = {
            "code": code,
            "title_th": f"บริการทดสอบ {code}",
            "title_en": f"Test service {code}",
            "backend_url": backend_url,
        }
        if "openapi" not in spec and "endpoints" not in spec:
            body["endpoints"] = [{"method": "*", "path": "*"}]
        body.update(spec)
        r = self.req("POST", f"/api/v1/exchange/subsystems/{path_of(sub)}/services", 201, json=body)
        return f"{sub}/{code}"

    def set_service_active(self, service: str, active: bool):
        self.req(
            "PUT", f"/api/v1/exchange/services/{path_of(service)}/status", 204, json={"active": active}
        )

    def grant(self, service: str, grantee: str, legal_basis="Test suite grant", **kw) -> dict:
        body = {"grantee": grantee, "legal_basis": legal_basis, **kw}
        r = self.req("POST", f"/api/v1/exchange/services/{path_of(service)}/rights", 201, json=body)
        right = r.json()
        assert right.get("id"), f"no right id{show(r)}"
        return right

    def revoke_right(self, right_id: str):
        self.req("DELETE", f"/api/v1/exchange/rights/{right_id}", 204)


# ---- consumers -------------------------------------------------------------------------------


class Client:
    """A consumer subsystem with all three kinds of credentials."""

    def __init__(self, cfg: Config, admin: Admin, sub: str, ca_file: str, tmp: Path):
        self.cfg, self.admin, self.id, self.ca_file = cfg, admin, sub, ca_file
        self.http = requests.Session()
        self.http.headers["User-Agent"] = USER_AGENT
        self.tls = requests.Session()
        self.tls.headers["User-Agent"] = USER_AGENT
        self.tls.verify = ca_file
        self.tls.trust_env = False
        self._token = None
        self._token_until = 0.0
        self.gdx = None
        self._gdx_token = None
        self.cert = None
        self.tmp = tmp

    # credentials ------------------------------------------------------------------------------

    def with_certificate(self):
        self.cert = self.admin.certificate(self.id)
        self.cert_file, self.key_file = self.write_cert(self.cert, self.cert["private_key_pem"])
        self.tls.cert = (self.cert_file, self.key_file)
        return self

    def write_cert(self, issued: dict, key_pem: str):
        name = secrets.token_hex(4)
        cert_file = self.tmp / f"{name}.crt"
        key_file = self.tmp / f"{name}.key"
        cert_file.write_text(issued["certificate_pem"])
        key_file.write_text(key_pem)
        return str(cert_file), str(key_file)

    def with_oauth_key(self):
        self.signing_key = ec.generate_private_key(ec.SECP256R1())
        self.kid = "test-" + secrets.token_hex(6)
        jwk = json.loads(jwt.algorithms.ECAlgorithm.to_jwk(self.signing_key.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": "ES256"})
        self.admin.set_keys(self.id, {"keys": [jwk]})
        return self

    def with_gdx(self):
        self.gdx = self.admin.gdx_keys(self.id)
        assert self.gdx.get("consumer_key") and self.gdx.get("consumer_secret"), self.gdx
        return self

    def assertion(self, jti: str | None = None, aud: str | None = None, **claims) -> str:
        now = int(time.time())
        payload = {
            "iss": self.id,
            "sub": self.id,
            "aud": aud or self.cfg.base + TOKEN_PATH,
            "iat": now,
            "exp": now + 300,
            "jti": jti or str(uuid.uuid4()),
            **claims,
        }
        return jwt.encode(payload, self.signing_key, algorithm="ES256", headers={"kid": self.kid})

    def token_request(self, assertion: str) -> requests.Response:
        return requests.post(
            self.cfg.base + TOKEN_PATH,
            data={
                "grant_type": "client_credentials",
                "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
                "client_assertion": assertion,
            },
            timeout=30,
        )

    def token(self) -> str:
        if self._token and time.time() < self._token_until - 60:
            return self._token
        r = expect(self.token_request(self.assertion()), 200)
        body = r.json()
        self._token = body["access_token"]
        self._token_until = time.time() + int(body.get("expires_in", 60))
        return self._token

    def gdx_token(self, agent="saphan-exchange-tests") -> str:
        r = requests.get(
            self.cfg.base + "/ws/auth/validate",
            params={"ConsumerSecret": self.gdx["consumer_secret"], "AgentID": agent},
            headers={"Consumer-Key": self.gdx["consumer_key"]},
            timeout=30,
        )
        expect(r, 200)
        result = r.json().get("Result")
        assert result, f"no Result{show(r)}"
        return result

    # calls --------------------------------------------------------------------------------

    def url(self, via: str, path: str) -> str:
        return (self.cfg.tls if via == "mtls" else self.cfg.base) + path

    def auth_headers(self, via: str) -> dict:
        if via == "token":
            return {"Authorization": f"Bearer {self.token()}"}
        if via == "gdx":
            if not self._gdx_token:
                self._gdx_token = self.gdx_token()
            return {"Consumer-Key": self.gdx["consumer_key"], "Token": self._gdx_token}
        return {}

    def call(
        self,
        method: str,
        service: str,
        path: str = "",
        via: str = "token",
        headers: dict | None = None,
        client_header: bool = True,
        timeout: float = 60,
        **kw,
    ) -> requests.Response:
        h = {}
        if client_header:
            h["X-Road-Client"] = self.id
        h.update(self.auth_headers(via))
        h.update(headers or {})
        session = self.tls if via == "mtls" else self.http
        if via == "mtls":
            # Per request: requests lets REQUESTS_CA_BUNDLE override a session's `verify`.
            kw.setdefault("verify", self.ca_file)
        return session.request(
            method,
            self.url(via, f"/r1/{service}{path}"),
            headers=h,
            timeout=timeout,
            allow_redirects=False,
            **kw,
        )

    def get(self, service, path="", **kw):
        return self.call("GET", service, path, **kw)


# ---- provider backends -----------------------------------------------------------------------


class Backend:
    """`backend.py` in its own process."""

    def __init__(self, port: int = 0):
        self.proc = subprocess.Popen(
            [sys.executable, str(BACKEND_SCRIPT), str(port)],
            stdout=subprocess.PIPE,
            stderr=subprocess.DEVNULL,
            text=True,
        )
        line = self.proc.stdout.readline()
        m = re.match(r"READY (\d+)", line or "")
        if not m:
            self.proc.kill()
            raise RuntimeError(f"the test backend did not start: {line!r}")
        self.port = int(m.group(1))
        self.url = f"http://127.0.0.1:{self.port}"

    def stop(self):
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)


# ---- the test world --------------------------------------------------------------------------

PERSONS_OPENAPI = {
    "openapi": "3.0.3",
    "info": {"title": "Population register (test)", "version": "1.0"},
    "paths": {
        "/persons/{id}": {
            "get": {
                "operationId": "getPerson",
                "parameters": [{"name": "id", "in": "path", "required": True, "schema": {"type": "string"}}],
                "responses": {"200": {"description": "the person"}},
            }
        },
        "/persons": {"post": {"operationId": "findPersons", "responses": {"200": {"description": "matches"}}}},
    },
}


class World:
    """A provider and a consumer registered for this test session, plus helpers."""

    def __init__(self, cfg, admin, sfx, backend, ca_file, tmp):
        self.cfg, self.admin, self.sfx, self.backend, self.ca_file, self.tmp = (
            cfg, admin, sfx, backend, ca_file, tmp,
        )
        self.provider_member = admin.member("GOV", f"PRV{sfx}")
        self.provider = admin.subsystem(self.provider_member, "API")
        self.consumer_member = admin.member("GOV", f"CON{sfx}")
        self.consumer = self.new_client("APP", certificate=True, gdx=True)
        self._n = 0
        # A general service: any method, any path, granted to the consumer.
        self.echo = self.new_service("echo", backend_path="/echo")
        # A service described by OpenAPI.
        self.persons = self.new_service("persons", openapi=PERSONS_OPENAPI)

    def new_client(self, code, certificate=False, oauth=True, gdx=False) -> Client:
        sub = self.admin.subsystem(self.consumer_member, code)
        c = Client(self.cfg, self.admin, sub, self.ca_file, self.tmp)
        if certificate:
            c.with_certificate()
        if oauth:
            c.with_oauth_key()
        if gdx:
            c.with_gdx()
        return c

    def code(self, prefix: str) -> str:
        self._n += 1
        return f"{prefix}{self._n}"

    def new_service(
        self,
        prefix: str,
        backend_path: str = "",
        backend_url: str | None = None,
        grant: bool = True,
        provider: str | None = None,
        **spec,
    ) -> str:
        code = self.code(prefix)
        svc = self.admin.service(
            provider or self.provider, code, (backend_url or self.backend.url) + backend_path, **spec
        )
        if grant:
            self.admin.grant(svc, self.consumer.id)
        return svc


# ---- the data subject ------------------------------------------------------------------------


class Citizen:
    def __init__(self, cfg: Config, login: dict):
        self.cfg = cfg
        self.nid = login["identifier"]
        self.http = requests.Session()
        self.http.headers["User-Agent"] = USER_AGENT
        r = self.http.get(cfg.base + "/account", timeout=30)
        expect(r, 200)  # after the redirect to the sign-in page
        assert "/signin" in r.url, f"/account should lead to the sign-in page{show(r)}"
        m = re.search(r'name="csrf" value="([0-9a-f]+)"', r.text)
        assert m, f"no csrf field on the sign-in page{show(r)}"
        req = re.search(r'name="request" value="([^"]*)"', r.text)
        r = self.http.post(
            cfg.base + "/signin?lang=en",
            data={
                "request": req.group(1) if req else "",
                "csrf": m.group(1),
                "identifier": self.nid,
                "nationality": "",
                "password": login["password"],
            },
            allow_redirects=False,
            timeout=30,
        )
        assert r.status_code in (302, 303), f"sign-in failed{show(r)}"
        assert self.http.cookies.get("saphan_session"), f"no saphan_session cookie{show(r)}"

    @property
    def csrf(self) -> str:
        return self.http.cookies.get("saphan_csrf")

    def req(self, method, path, **kw) -> requests.Response:
        headers = kw.pop("headers", {})
        if method != "GET":
            headers["X-CSRF-Token"] = self.csrf
        return self.http.request(method, self.cfg.base + path, headers=headers, timeout=30, **kw)

    def give_consent(self, consumer: str, service: str, purpose: str, valid_for: int = 3600) -> dict:
        r = self.req(
            "POST",
            "/api/v1/me/consents",
            json={
                "consumer": consumer,
                "service": service,
                "purpose": purpose,
                "valid_until": int(time.time()) + valid_for,
            },
        )
        expect(r, 201)
        consent = r.json()
        assert consent.get("id"), f"no consent id{show(r)}"
        return consent


def password_only_citizen(cfg: Config) -> dict:
    for login in cfg.logins:
        if (
            login.get("kind") == "citizen"
            and login.get("password")
            and not login.get("totp_secret")
            and re.fullmatch(r"\d{13}", login.get("identifier", ""))
        ):
            return login
    raise AssertionError("demo-logins.json has no citizen with a password and no TOTP")


# ---- assertion verification ------------------------------------------------------------------


def verify_assertion(token: str, jwks: dict, audience: str, issuer: str) -> dict:
    header = jwt.get_unverified_header(token)
    assert header.get("alg") == "ES256", f"assertion alg {header.get('alg')!r}"
    keys = [k for k in jwks["keys"] if k.get("kid") == header.get("kid")]
    assert keys, f"kid {header.get('kid')!r} is not in the platform JWKS"
    key = jwt.PyJWK(keys[0]).key
    return jwt.decode(
        token,
        key,
        algorithms=["ES256"],
        audience=audience,
        issuer=issuer,
        options={"require": ["iss", "aud", "sub", "iat", "exp", "jti"]},
    )


def b64_sha512_ok(value: str | None) -> bool:
    if not value or len(value) != 88:
        return False
    try:
        return len(base64.b64decode(value, validate=True)) == 64
    except ValueError:
        return False


def sha256_hex(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def host_port(url: str) -> str:
    return urlsplit(url).netloc
