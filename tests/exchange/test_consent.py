"""Consent: services that need the data subject's consent, the person's own API (give, list,
revoke consents; who accessed my data)."""

import time

import pytest
import requests

from helpers import expect, expect_ok, expect_xroad_error, seen_headers, show, verify_assertion

PURPOSES = ["welfare-eligibility", "tax-assessment"]


@pytest.fixture(scope="module")
def consent_service(world):
    return world.new_service(
        "consent", backend_path="/echo", personal_data=True, consent_required=True,
        purposes=PURPOSES, classification="confidential",
    )


@pytest.fixture(scope="module")
def consent(citizen, consumer, consent_service):
    return citizen.give_consent(consumer.id, consent_service, PURPOSES[0])


def call(consumer, svc, consent_id=None, purpose=PURPOSES[0], subject=None, **kw):
    h = {"Saphan-Purpose": purpose}
    if consent_id:
        h["Saphan-Consent"] = consent_id
    if subject:
        h["Saphan-Data-Subject"] = subject
    return consumer.get(svc, "/record", headers=h, **kw)


def test_consent_required(consumer, consent_service):
    expect_xroad_error(call(consumer, consent_service), 403, "Server.ServerProxy.ConsentRequired")


def test_consent_not_found(consumer, consent_service):
    expect_xroad_error(
        call(consumer, consent_service, consent_id="00000000-0000-4000-8000-000000000000"),
        403, "Server.ServerProxy.ConsentNotFound",
    )


def test_valid_consent_allows_call(world, cfg, consumer, consent_service, consent, citizen, platform_jwks):
    r = expect_ok(call(consumer, consent_service, consent["id"], subject="TH" + citizen.nid))
    seen = seen_headers(r.json())
    claims = verify_assertion(seen["saphan-exchange-assertion"][0], platform_jwks, consent_service, cfg.base)
    assert claims.get("consent") == consent["id"], claims
    assert claims.get("purpose") == PURPOSES[0], claims
    assert claims.get("data_subject"), f"no data_subject claim on a consent call: {claims}"
    # The provider learns whose consent it is (so it answers only about that person), and only
    # through this claim; everything else carries pseudonyms.
    assert claims.get("data_subject_id") == "TH" + citizen.nid, claims
    others = {k: v for k, v in claims.items() if k != "data_subject_id"}
    assert citizen.nid not in str(others), f"the national id is in clear in the assertion: {claims}"


def test_valid_consent_without_declared_subject(consumer, consent_service, consent):
    expect_ok(call(consumer, consent_service, consent["id"]))


def test_consent_for_another_purpose_mismatch(consumer, consent_service, consent):
    expect_xroad_error(
        call(consumer, consent_service, consent["id"], purpose=PURPOSES[1]),
        403, "Server.ServerProxy.ConsentMismatch",
    )


def test_consent_of_another_person_mismatch(consumer, consent_service, consent, other_nid):
    expect_xroad_error(
        call(consumer, consent_service, consent["id"], subject="TH" + other_nid),
        403, "Server.ServerProxy.ConsentMismatch",
    )


def test_consent_given_to_another_consumer_mismatch(world, admin, consent_service, consent):
    other = world.new_client("CNS")
    admin.grant(consent_service, other.id)
    expect_xroad_error(call(other, consent_service, consent["id"]), 403, "Server.ServerProxy.ConsentMismatch")


def test_revoked_consent_denied(citizen, consumer, consent_service):
    c = citizen.give_consent(consumer.id, consent_service, PURPOSES[0])
    expect_ok(call(consumer, consent_service, c["id"]))
    expect(citizen.req("DELETE", f"/api/v1/me/consents/{c['id']}"), 204)
    expect_xroad_error(call(consumer, consent_service, c["id"]), 403, "Server.ServerProxy.ConsentRevoked")
    listed = expect(citizen.req("GET", "/api/v1/me/consents"), 200).json()
    mine = [x for x in listed if x["id"] == c["id"]]
    assert mine and mine[0].get("revoked_at"), f"revoked consent not marked revoked: {listed}"


def test_expired_consent_denied(citizen, consumer, consent_service):
    c = citizen.give_consent(consumer.id, consent_service, PURPOSES[0], valid_for=2)
    expect_ok(call(consumer, consent_service, c["id"]))
    time.sleep(max(0.0, c.get("valid_until", time.time() + 2) + 1.2 - time.time()))
    expect_xroad_error(call(consumer, consent_service, c["id"]), 403, "Server.ServerProxy.ConsentExpired")


def test_consent_list(citizen, consent):
    listed = expect(citizen.req("GET", "/api/v1/me/consents"), 200).json()
    assert any(x["id"] == consent["id"] for x in listed), listed


def test_consent_valid_until_beyond_a_year_refused(citizen, consumer, consent_service):
    r = citizen.req(
        "POST", "/api/v1/me/consents",
        json={"consumer": consumer.id, "service": consent_service, "purpose": PURPOSES[0],
              "valid_until": int(time.time()) + 400 * 86400},
    )
    expect(r, 400)


def test_consent_write_needs_csrf(citizen, consumer, consent_service):
    r = citizen.http.post(
        citizen.cfg.base + "/api/v1/me/consents",
        json={"consumer": consumer.id, "service": consent_service, "purpose": PURPOSES[0],
              "valid_until": int(time.time()) + 3600},
        timeout=30,
    )
    assert r.status_code in (401, 403), f"a consent was accepted without X-CSRF-Token{show(r)}"


def test_me_api_without_session(cfg):
    for path in ("/api/v1/me/consents", "/api/v1/me/data-access"):
        r = requests.get(cfg.base + path, timeout=30)
        expect(r, 401)
        assert r.headers.get("Content-Type", "").startswith("application/problem+json"), show(r)


def test_data_access_lists_consent_call(consumer, consent_service, consent, citizen):
    x_road_id = None
    r = expect_ok(call(consumer, consent_service, consent["id"]))
    x_road_id = r.headers["X-Road-Id"]
    accesses = expect(citizen.req("GET", "/api/v1/me/data-access"), 200).json()
    mine = [a for a in accesses if a.get("x_road_id") == x_road_id]
    assert mine, f"the consent call {x_road_id} is not in data-access: {accesses[:5]}"
    a = mine[0]
    assert a["consumer"] == consumer.id, a
    assert a["service"] == consent_service, a
    assert a["purpose"] == PURPOSES[0], a
    assert a["consent"] == consent["id"], a
    assert a["released"] is True, a
    assert a.get("time") and a.get("record") is not None, a
    assert a.get("consumer_name", {}).get("en") and a.get("consumer_name", {}).get("th"), a
    assert a.get("service_title"), a
    # Newest first.
    assert accesses[0]["x_road_id"] == x_road_id, f"newest access is not first: {accesses[:3]}"


def test_data_access_lists_declared_subject_call(world, consumer, citizen):
    r = expect_ok(consumer.get(world.echo, "/subject", headers={"Saphan-Data-Subject": "TH" + citizen.nid}))
    x_road_id = r.headers["X-Road-Id"]
    accesses = expect(citizen.req("GET", "/api/v1/me/data-access"), 200).json()
    mine = [a for a in accesses if a.get("x_road_id") == x_road_id]
    assert mine, f"the call {x_road_id} with Saphan-Data-Subject is not in data-access: {accesses[:5]}"
    assert mine[0]["consumer"] == consumer.id and mine[0]["service"] == world.echo, mine[0]


def test_data_access_lists_refused_consent_call_not_released(consumer, consent_service, consent, citizen):
    r = call(consumer, consent_service, consent["id"], purpose=PURPOSES[1], subject="TH" + citizen.nid)
    expect_xroad_error(r, 403, "Server.ServerProxy.ConsentMismatch")
    accesses = expect(citizen.req("GET", "/api/v1/me/data-access"), 200).json()
    mine = [a for a in accesses if a.get("x_road_id") == r.headers["X-Road-Id"]]
    assert mine, f"the refused call {r.headers['X-Road-Id']} about this person is not in data-access: {accesses[:3]}"
    assert mine[0]["released"] is False, mine[0]


def test_data_access_lists_call_refused_for_lack_of_right(world, consumer, citizen):
    # A call naming this person in Saphan-Data-Subject, refused because the consumer holds no
    # right: still a call made about this person, which they should see (released = false).
    svc = world.new_service("noright", backend_path="/echo", grant=False)
    r = consumer.get(svc, "/x", headers={"Saphan-Data-Subject": "TH" + citizen.nid})
    expect_xroad_error(r, 403, "Server.ServerProxy.AccessDenied")
    accesses = expect(citizen.req("GET", "/api/v1/me/data-access"), 200).json()
    mine = [a for a in accesses if a.get("x_road_id") == r.headers["X-Road-Id"]]
    assert mine, f"the refused call {r.headers['X-Road-Id']} naming this person is not in data-access: {accesses[:3]}"
    assert mine[0]["released"] is False, mine[0]
