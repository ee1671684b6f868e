"""Raising a citizen's identity assurance with their ID card (issue 5).

The account page's card form makes the digital ID ask the civil registry's card check through
the exchange: GovStack `exists` on `idcard/1.0` (service `idcard-v1`), as the platform's own
subsystem TH/GOV/DGA/DIGITALID. The laser code is stored only as a keyed hash. The person sees
the check in their own data-access history.
"""

import json

from helpers import Citizen, expect, password_only_citizen

ACCOUNT = "/account?lang=en"


def card_of(cfg, national_id: str) -> dict:
    cards = json.loads((cfg.data_dir / "demo-idcards.json").read_text())
    for card in cards:
        if card["nationalId"] == national_id:
            return card
    raise AssertionError(f"demo-idcards.json has no card for {national_id}")


def check(citizen: Citizen, birth_date: str, laser_code: str) -> str:
    r = citizen.http.post(
        citizen.cfg.base + "/account/idcard?lang=en",
        data={"csrf": citizen.csrf, "birth_date": birth_date, "laser_code": laser_code},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code == 303, f"{r.status_code} {r.text[:300]}"
    location = r.headers["location"]
    assert location.startswith("/account?idcard="), location
    return location.split("idcard=", 1)[1].split("#", 1)[0]


def test_the_card_check_answers_through_the_exchange(cfg):
    """A wrong laser code or birth date does not match; malformed input is refused before any
    call; the right card matches and the page says so; the check is in the person's history."""
    login = password_only_citizen(cfg)
    card = card_of(cfg, login["identifier"])
    citizen = Citizen(cfg, login)
    page = expect(citizen.req("GET", ACCOUNT), 200)
    assert 'id="idcard"' in page.text, "the account page offers the card check"

    assert check(citizen, card["birthDate"], "AA0000000000") == "mismatch"
    assert check(citizen, "1900-01-01", card["laserCode"]) == "mismatch"
    assert check(citizen, "not a date", card["laserCode"]) == "invalid"
    assert check(citizen, card["birthDate"], "12345") == "invalid"
    # As printed on the card, with dashes: accepted.
    laser = card["laserCode"]
    printed = f"{laser[:3]}-{laser[3:10]}-{laser[10:]}"
    assert check(citizen, card["birthDate"], printed) == "verified"
    page = expect(citizen.req("GET", "/account?idcard=verified&lang=en"), 200)
    assert "Your card matches the civil registry" in page.text

    accesses = expect(citizen.req("GET", "/api/v1/me/data-access"), 200).json()
    checks = [a for a in accesses if a["service"].endswith("/idcard-v1")]
    assert checks, f"the card checks are in the person's data-access history: {accesses}"
    assert all(a["consumer"] == "TH/GOV/DGA/DIGITALID" for a in checks), checks
    assert all(a["purpose"] == "identity-proofing" for a in checks), checks
    assert len(checks) >= 3, "every check that reached DOPA is listed, matches or not"


def test_the_card_check_needs_a_signed_in_citizen_and_the_csrf_token(cfg):
    """No session: back to sign-in; a forged form (no CSRF token): refused."""
    import requests

    r = requests.post(
        cfg.base + "/account/idcard",
        data={"csrf": "x", "birth_date": "2000-01-01", "laser_code": "AA0000000000"},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code in (303, 400, 403), r.status_code
    citizen = Citizen(cfg, password_only_citizen(cfg))
    r = citizen.http.post(
        cfg.base + "/account/idcard",
        data={"csrf": "forged", "birth_date": "2000-01-01", "laser_code": "AA0000000000"},
        allow_redirects=False,
        timeout=30,
    )
    assert r.status_code in (400, 403), r.status_code
