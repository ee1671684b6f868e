"""pytest fixtures for the data-exchange gateway tests (helpers live in helpers.py).

Everything talks to a running platform from outside, over HTTP, as member agencies would. Codes
carry a random suffix per test session so the suite can be re-run against the same platform.
"""

import os
import re
import secrets

import pytest
import requests

from helpers import (
    Admin,
    Backend,
    Citizen,
    Client,
    Config,
    World,
    expect,
    password_only_citizen,
    show,
)

REQUIRED_ENV = ("BASE_URL", "TLS_URL", "SAPHAN_DATA_DIR")


def pytest_sessionstart(session):
    missing = [v for v in REQUIRED_ENV if not os.environ.get(v)]
    if missing:
        pytest.exit(
            f"tests/exchange needs a running platform: set {', '.join(missing)} "
            "(cargo xtask test does; see tests/exchange/README.md)",
            returncode=4,
        )


@pytest.fixture(scope="session")
def cfg() -> Config:
    return Config()


@pytest.fixture(scope="session")
def sfx() -> str:
    """A random suffix for this test session's codes."""
    return secrets.token_hex(3).upper()


@pytest.fixture(scope="session")
def ca_file(cfg, tmp_path_factory) -> str:
    r = expect(requests.get(cfg.base + "/api/v1/platform/ca.pem", timeout=10), 200)
    assert "BEGIN CERTIFICATE" in r.text, show(r)
    path = tmp_path_factory.mktemp("ca") / "ca.pem"
    path.write_text(r.text)
    return str(path)


@pytest.fixture(scope="session")
def platform_jwks(cfg) -> dict:
    r = expect(requests.get(cfg.base + "/api/v1/platform/jwks.json", timeout=10), 200)
    return r.json()


@pytest.fixture(scope="session")
def admin(cfg) -> Admin:
    return Admin(cfg)


@pytest.fixture(scope="session")
def backend():
    b = Backend()
    yield b
    b.stop()


@pytest.fixture
def start_backend():
    """Starts extra backends for one test; all are stopped afterwards."""
    started = []

    def start(port: int = 0) -> Backend:
        b = Backend(port)
        started.append(b)
        return b

    yield start
    for b in started:
        b.stop()


@pytest.fixture(scope="session")
def world(cfg, admin, sfx, backend, ca_file, tmp_path_factory) -> World:
    return World(cfg, admin, sfx, backend, ca_file, tmp_path_factory.mktemp("creds"))


@pytest.fixture(scope="session")
def consumer(world) -> Client:
    return world.consumer


@pytest.fixture(scope="session")
def citizen(cfg) -> Citizen:
    return Citizen(cfg, password_only_citizen(cfg))


@pytest.fixture(scope="session")
def other_nid(cfg, citizen) -> str:
    """Another person's valid national id (from the demo logins)."""
    for login in cfg.logins:
        ident = login.get("identifier", "")
        if re.fullmatch(r"\d{13}", ident) and ident != citizen.nid:
            return ident
    raise AssertionError("demo-logins.json has only one Thai national id")

