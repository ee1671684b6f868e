"""Rules added after review: a right covers exactly the endpoint a call is (also when the path is
percent-encoded), the exchange's own headers and cookies never cross it, and the person API
takes the browser session only."""

from helpers import expect, expect_ok, expect_xroad_error, seen_headers, show

DENIED = "Server.ServerProxy.AccessDenied"


def test_a_template_right_does_not_open_a_literal_sibling(world, consumer, admin):
    svc = world.new_service(
        "sibling", backend_path="", grant=False,
        endpoints=[{"method": "GET", "path": "/items/{id}"}, {"method": "GET", "path": "/items/export"}],
    )
    admin.grant(svc, consumer.id, method="GET", path="/items/{id}")
    expect_ok(consumer.get(svc, "/items/7"))
    expect_xroad_error(consumer.get(svc, "/items/export"), 403, DENIED)
    # Percent-encoding an unreserved character does not disguise the endpoint.
    expect_xroad_error(consumer.get(svc, "/items/%65xport"), 403, DENIED)
    expect_xroad_error(consumer.get(svc, "/items/%65%78%70%6F%72%74"), 403, DENIED)


def test_the_normalised_path_is_what_the_provider_sees(world, consumer):
    r = expect_ok(consumer.get(world.echo, "/%61bc"))
    assert r.json()["path"].endswith("/abc"), r.json()


def test_other_client_names_and_exchange_headers_do_not_reach_the_provider(world, consumer):
    r = expect_ok(consumer.get(world.echo, "/x", headers={
        "Information-Mediator-Client": "TH/GOV/SOMEONE/ELSE",
        "X-GovStack-Client": "TH/GOV/SOMEONE/ELSE",
        "X-Road-Request-Hash": "forged",
        "X-Road-Error": "forged",
        "Cookie": "saphan_session=stolen",
    }))
    seen = seen_headers(r.json())
    for name in ("information-mediator-client", "x-govstack-client", "x-road-request-hash",
                 "x-road-error", "cookie"):
        assert name not in seen, f"{name} reached the provider: {seen}"
    assert seen["x-road-client"] == [consumer.id], seen


def test_provider_cookies_do_not_reach_the_consumer(world, consumer, backend):
    svc = world.new_service("cookie", backend_path="/cookie")
    r = expect_ok(consumer.get(svc, "/x"))
    assert "set-cookie" not in {k.lower() for k in r.headers}, show(r)
    assert r.headers.get("X-Visible") == "1", show(r)


def test_the_person_api_refuses_bearer_tokens(cfg, consumer):
    import requests
    r = requests.get(cfg.base + "/api/v1/me/consents",
                     headers={"Authorization": "Bearer " + consumer.token()}, timeout=30)
    expect(r, 401)
