"""What may be called: rights (direct, group, requested and approved), their revocation and
expiry, endpoints, purposes, rate limits, unknown and suspended services."""

import time

from helpers import expect, expect_ok, expect_xroad_error, show

DENIED = "Server.ServerProxy.AccessDenied"


def test_denied_without_right(world, consumer):
    svc = world.new_service("noright", backend_path="/echo", grant=False)
    expect_xroad_error(consumer.get(svc, "/x"), 403, DENIED)
    expect_xroad_error(consumer.get(svc, "/x", via="mtls"), 403, DENIED)


def test_path_not_an_endpoint_denied(world, consumer):
    # persons is described by OpenAPI: GET /persons/{id} and POST /persons only.
    expect_ok(consumer.get(world.persons, "/persons/1"))
    expect_xroad_error(consumer.get(world.persons, "/secrets/1"), 403, DENIED)
    expect_xroad_error(consumer.call("DELETE", world.persons, "/persons/1"), 403, DENIED)
    expect_xroad_error(consumer.get(world.persons, "/persons/1/extra"), 403, DENIED)


def test_right_limited_to_method_and_path(world, consumer, admin):
    svc = world.new_service(
        "narrow", backend_path="", grant=False,
        endpoints=[{"method": "GET", "path": "/persons/{id}"}, {"method": "POST", "path": "/persons"}],
    )
    admin.grant(svc, consumer.id, method="GET", path="/persons/{id}")
    expect_ok(consumer.get(svc, "/persons/7"))
    expect_xroad_error(consumer.call("POST", svc, "/persons", json={}), 403, DENIED)


def test_denied_after_right_revoked(world, consumer, admin):
    svc = world.new_service("revoke", backend_path="/echo", grant=False)
    right = admin.grant(svc, consumer.id)
    expect_ok(consumer.get(svc, "/x"))
    admin.revoke_right(right["id"])
    expect_xroad_error(consumer.get(svc, "/x"), 403, DENIED)
    expect_xroad_error(consumer.get(svc, "/x", via="mtls"), 403, DENIED)


def test_revoked_right_listed_as_revoked(world, consumer, admin):
    svc = world.new_service("revlist", backend_path="/echo", grant=False)
    right = admin.grant(svc, consumer.id)
    admin.revoke_right(right["id"])
    listed = admin.req("GET", f"/api/v1/exchange/services/{svc.split('/', 1)[1]}/rights", 200).json()
    mine = [x for x in listed if x["id"] == right["id"]]
    assert mine and mine[0].get("revoked_at"), f"the revoked right is not marked revoked: {listed}"


def test_denied_after_right_expires(world, consumer, admin):
    svc = world.new_service("expire", backend_path="/echo", grant=False)
    until = int(time.time()) + 3
    admin.grant(svc, consumer.id, valid_until=until)
    expect_ok(consumer.get(svc, "/x"))
    time.sleep(max(0.0, until + 1.2 - time.time()))
    expect_xroad_error(consumer.get(svc, "/x"), 403, DENIED)


def test_right_in_the_past_refused_or_useless(world, consumer, admin):
    svc = world.new_service("past", backend_path="/echo", grant=False)
    r = admin.req(
        "POST", f"/api/v1/exchange/services/{svc.split('/', 1)[1]}/rights",
        json={"grantee": consumer.id, "legal_basis": "test", "valid_until": int(time.time()) - 10},
    )
    if r.status_code == 201:
        expect_xroad_error(consumer.get(svc, "/x"), 403, DENIED)
    else:
        assert r.status_code == 400, show(r)


def test_grantee_without_instance_prefix(world, consumer, admin):
    svc = world.new_service("noprefix", backend_path="/echo", grant=False)
    admin.grant(svc, consumer.id.split("/", 1)[1])
    expect_ok(consumer.get(svc, "/x"))


def test_access_request_approved(world, consumer, admin):
    svc = world.new_service("areq", backend_path="/echo", grant=False)
    r = admin.req(
        "POST", "/api/v1/exchange/access-requests", 201,
        json={"consumer": consumer.id, "service": svc, "purpose": "Welfare eligibility",
              "legal_basis": "Welfare Act s.12"},
    )
    req = r.json()
    assert req.get("status") == "pending" and req.get("id"), show(r)
    expect_xroad_error(consumer.get(svc, "/x"), 403, DENIED)
    d = admin.req(
        "POST", f"/api/v1/exchange/access-requests/{req['id']}/decision", 200, json={"approve": True}
    )
    assert d.json().get("status") in ("approved", "granted"), show(d)
    expect_ok(consumer.get(svc, "/x"))
    # Deciding twice is a conflict, either way.
    r2 = admin.req(
        "POST", f"/api/v1/exchange/access-requests/{req['id']}/decision",
        json={"approve": False, "reason": "changed my mind"},
    )
    expect(r2, 409)
    assert r2.headers.get("Content-Type", "").startswith("application/problem+json"), show(r2)
    # And the right it granted still works.
    expect_ok(consumer.get(svc, "/x"))


def test_access_request_refusal_needs_reason(world, consumer, admin):
    svc = world.new_service("aref", backend_path="/echo", grant=False)
    req = admin.req(
        "POST", "/api/v1/exchange/access-requests", 201,
        json={"consumer": consumer.id, "service": svc, "purpose": "p", "legal_basis": "b"},
    ).json()
    r = admin.req(
        "POST", f"/api/v1/exchange/access-requests/{req['id']}/decision", json={"approve": False}
    )
    expect(r, 400)
    assert r.headers.get("Content-Type", "").startswith("application/problem+json"), show(r)
    # The request is still pending: a refusal with a reason is then accepted.
    r = admin.req(
        "POST", f"/api/v1/exchange/access-requests/{req['id']}/decision", 200,
        json={"approve": False, "reason": "No legal basis for this purpose"},
    )
    assert r.json().get("status") in ("refused", "rejected", "denied"), show(r)
    expect_xroad_error(consumer.get(svc, "/x"), 403, DENIED)
    expect(
        admin.req(
            "POST", f"/api/v1/exchange/access-requests/{req['id']}/decision", json={"approve": True}
        ),
        409,
    )


def test_group_right(world, admin, sfx):
    client = world.new_client("GRP")
    svc = world.new_service("group", backend_path="/echo", grant=False)
    group = f"G{sfx}{world.code('')}"
    admin.req("POST", "/api/v1/exchange/groups", 201, json={"code": group, "description": "test group"})
    admin.grant(svc, f"group:{group}")
    expect_xroad_error(client.get(svc, "/x"), 403, DENIED)
    admin.req("POST", f"/api/v1/exchange/groups/{group}/members", 204, json={"subsystem": client.id})
    expect_ok(client.get(svc, "/x"))


def test_purpose_not_allowed(world, consumer, platform_jwks, cfg):
    from helpers import seen_headers, verify_assertion

    svc = world.new_service("purpose", backend_path="/echo", purposes=["welfare", "tax"])
    kind = "Server.ServerProxy.PurposeNotAllowed"
    expect_xroad_error(consumer.get(svc, "/x"), 403, kind)
    expect_xroad_error(consumer.get(svc, "/x", headers={"Saphan-Purpose": "marketing"}), 403, kind)
    r = expect_ok(consumer.get(svc, "/x", headers={"Saphan-Purpose": "tax"}))
    seen = seen_headers(r.json())
    claims = verify_assertion(seen["saphan-exchange-assertion"][0], platform_jwks, svc, cfg.base)
    assert claims.get("purpose") == "tax", claims


def _exhaust(client, svc, limit):
    """Makes `limit` calls that must pass, then one more, and returns that one. Should a
    wall-clock minute begin meanwhile (a fixed-window limiter would reset), it goes once more."""
    for attempt in range(2):
        minute = int(time.time() // 60)
        responses = [client.get(svc, f"/{attempt}-{i}") for i in range(limit + 1)]
        if attempt == 0:
            for r in responses[:limit]:
                expect_ok(r)
        last = responses[-1]
        if last.status_code == 429 or int(time.time() // 60) == minute:
            break
    return last


def test_rate_limit(world, consumer):
    svc = world.new_service("rate", backend_path="/echo", rate_limit_per_min=3)
    r = _exhaust(consumer, svc, 3)
    expect_xroad_error(r, 429, "Server.ClientProxy.RateLimited")
    # The limit is per consumer and service: another service is unaffected.
    expect_ok(consumer.get(world.echo, "/other"))


def test_rate_limit_is_per_consumer(world, consumer, admin):
    svc = world.new_service("rate", backend_path="/echo", rate_limit_per_min=2)
    other = world.new_client("RTE")
    admin.grant(svc, other.id)
    expect_xroad_error(_exhaust(consumer, svc, 2), 429, "Server.ClientProxy.RateLimited")
    expect_ok(other.get(svc, "/1"))


def test_unknown_service(world, consumer):
    expect_xroad_error(
        consumer.get(f"{world.provider}/nosuchservice", "/x"), 404, "Server.ServerProxy.UnknownService"
    )
    expect_xroad_error(
        consumer.get(f"TH/GOV/NOSUCH{world.sfx}/API/svc", "/x"), 404, "Server.ServerProxy.UnknownService"
    )


def test_suspended_service(world, consumer, admin):
    svc = world.new_service("suspend", backend_path="/echo")
    expect_ok(consumer.get(svc, "/x"))
    admin.set_service_active(svc, False)
    expect_xroad_error(consumer.get(svc, "/x"), 503, "Server.ServerProxy.ServiceDisabled")
    admin.set_service_active(svc, True)
    expect_ok(consumer.get(svc, "/x"))


def test_republished_service_keeps_rights_and_changes_backend(world, consumer, admin, start_backend):
    svc = world.new_service("repub", backend_path="/echo")
    expect_ok(consumer.get(svc, "/x"))
    other = start_backend()
    code = svc.rsplit("/", 1)[1]
    admin.service(world.provider, code, other.url + "/echo")
    r = expect_ok(consumer.get(svc, "/x"))
    from helpers import seen_headers

    assert seen_headers(r.json()).get("host") == [f"127.0.0.1:{other.port}"], r.json()
