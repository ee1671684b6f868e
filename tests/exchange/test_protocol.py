"""The X-Road REST protocol at the gateway: ids, headers in both directions, redirects, the
default Accept, paths, the provider's own errors, the message log and usage."""

import http.client
import json
import re
import uuid
from urllib.parse import urlsplit

from helpers import expect, expect_ok, expect_xroad_error, seen_headers, show

UUID_RE = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$", re.I)


def test_x_road_id_echoed(world, consumer):
    x_road_id = str(uuid.uuid4())
    r = expect_ok(consumer.get(world.echo, "/id", headers={"X-Road-Id": x_road_id}))
    assert r.headers.get("X-Road-Id") == x_road_id, show(r)
    assert seen_headers(r.json()).get("x-road-id") == [x_road_id], r.json()


def test_x_road_id_generated(world, consumer):
    r = expect_ok(consumer.get(world.echo, "/id"))
    generated = r.headers.get("X-Road-Id")
    assert generated and UUID_RE.match(generated), f"no generated UUID X-Road-Id{show(r)}"
    assert seen_headers(r.json()).get("x-road-id") == [generated], r.json()
    r2 = expect_ok(consumer.get(world.echo, "/id"))
    assert r2.headers.get("X-Road-Id") != generated, "two calls got the same generated X-Road-Id"


def test_x_road_id_on_errors(world, consumer):
    x_road_id = str(uuid.uuid4())
    r = consumer.get(f"{world.provider}/nosuch", "/x", headers={"X-Road-Id": x_road_id})
    body = expect_xroad_error(r, 404, "Server.ServerProxy.UnknownService")
    assert r.headers.get("X-Road-Id") == x_road_id and body["detail"] == x_road_id, show(r)


def test_headers_pass_through(world, consumer):
    r = expect_ok(
        consumer.get(
            world.echo, "/custom",
            headers={"X-Custom-Header": "kept", "Content-Language": "th", "X-Road-UserId": "officer-7"},
        )
    )
    seen = seen_headers(r.json())
    assert seen.get("x-custom-header") == ["kept"], seen
    assert seen.get("content-language") == ["th"], seen


def test_hop_by_hop_stripped_towards_provider(world, consumer):
    r = expect_ok(
        consumer.get(
            world.echo, "/hop",
            headers={
                "Connection": "keep-alive, X-Private-Hop",
                "X-Private-Hop": "secret",
                "Keep-Alive": "timeout=5",
                "TE": "trailers",
                "Proxy-Authorization": "Basic c2VjcmV0OnNlY3JldA==",
                "X-Kept": "yes",
            },
        )
    )
    seen = seen_headers(r.json())
    for name in ("x-private-hop", "keep-alive", "te", "proxy-authorization"):
        assert name not in seen, f"hop-by-hop header {name} reached the provider: {seen}"
    assert seen.get("connection", ["keep-alive"])[0].lower() in ("keep-alive", "close"), (
        f"the consumer's Connection header reached the provider: {seen}"
    )
    assert seen.get("x-kept") == ["yes"], f"an end-to-end header was dropped: {seen}"


def test_upgrade_header_stripped_towards_provider(world, consumer):
    r = expect_ok(consumer.get(world.echo, "/upgrade", headers={"Upgrade": "example/1", "X-Kept": "yes"}))
    seen = seen_headers(r.json())
    assert "upgrade" not in seen, f"Upgrade reached the provider: {seen}"


def test_hop_by_hop_stripped_towards_consumer(world, consumer):
    svc = world.new_service("hop", backend_path="")
    r = expect_ok(consumer.get(svc, "/hop"))
    assert "X-Secret-Hop" not in r.headers, f"a header the provider's Connection listed reached the consumer{show(r)}"
    assert "Keep-Alive" not in r.headers, f"Keep-Alive reached the consumer{show(r)}"
    assert "X-Secret-Hop" not in r.headers.get("Connection", ""), show(r)
    assert "TestBackend" not in r.headers.get("Server", ""), f"the provider's Server header reached the consumer{show(r)}"
    assert r.headers.get("X-Visible") == "1", f"an end-to-end header from the provider was dropped{show(r)}"


def test_redirect_passed_back_not_followed(world, consumer):
    svc = world.new_service("redir", backend_path="")
    r = consumer.get(svc, "/redirect")
    expect_ok(r, 302)
    assert r.headers.get("Location") == f"{world.backend.url}/echo/followed", show(r)
    assert r.headers.get("X-Road-Id"), show(r)


def test_default_accept_added(world, consumer):
    r = expect_ok(consumer.get(world.echo, "/accept", headers={"Accept": None}))
    assert "Accept" not in r.request.headers, "the test client still sent an Accept header"
    assert seen_headers(r.json()).get("accept") == ["application/json"], r.json()


def test_consumer_accept_kept(world, consumer):
    r = expect_ok(consumer.get(world.echo, "/accept", headers={"Accept": "text/csv"}))
    assert seen_headers(r.json()).get("accept") == ["text/csv"], r.json()


def _raw_get(cfg, path, headers):
    u = urlsplit(cfg.base)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for name, value in headers.items():
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_path_traversal_refused(world, consumer, cfg):
    headers = {"X-Road-Client": consumer.id, "Authorization": f"Bearer {consumer.token()}"}
    for path in ("/a/../../secret", "/..", "/a/%2e%2e/secret", "/a/%2E%2E/b", "/a%2f..%2fb"):
        status, h, body = _raw_get(cfg, f"/r1/{world.echo}{path}", headers)
        assert status == 400 and h.get("x-road-error") == "Client.BadRequest", (
            f"GET /r1/{world.echo}{path} -> {status} {h} {body[:300]!r}"
        )


def test_provider_error_passes_through(world, consumer):
    svc = world.new_service("nf", backend_path="")
    r = consumer.get(svc, "/notfound")
    assert r.status_code == 404, show(r)
    assert "X-Road-Error" not in r.headers, f"the provider's own 404 got an X-Road-Error{show(r)}"
    assert r.json() == {"error": "no such record"}, show(r)
    assert r.headers.get("X-Road-Id"), show(r)


def test_methods_and_query_forwarded(world, consumer):
    for method in ("POST", "PUT", "PATCH", "DELETE"):
        r = expect_ok(consumer.call(method, world.echo, "/m?a=1&b=two%20words", data=b"x" * 10))
        echo = r.json()
        assert echo["method"] == method and echo["path"] == "/echo/m", echo
        assert echo["query"] == "a=1&b=two%20words", echo
        if method != "DELETE":
            assert echo["body_length"] == 10, echo


# ---- the message log -------------------------------------------------------------------------


def test_message_log_record_without_national_id(world, consumer, admin, citizen):
    nid = citizen.nid
    x_road_id = str(uuid.uuid4())
    r = expect_ok(
        consumer.get(
            world.persons, f"/persons/{nid}",
            headers={"X-Road-Id": x_road_id, "Saphan-Data-Subject": "TH" + nid, "X-Road-UserId": "TH" + nid},
        )
    )
    denied_id = str(uuid.uuid4())
    denied_svc = world.new_service("logdeny", backend_path="/echo", grant=False)
    expect_xroad_error(
        consumer.get(denied_svc, f"/persons/{nid}", headers={"X-Road-Id": denied_id, "Saphan-Data-Subject": "TH" + nid}),
        403, "Server.ServerProxy.AccessDenied",
    )

    lr = admin.req("GET", "/api/v1/exchange/log", 200, params={"consumer": consumer.id, "subject": nid, "limit": 50})
    text = lr.text
    assert nid not in text, f"the national id {nid} appears in clear in the message log: {text[:3000]}"
    entries = lr.json()
    by_id = {e["call"]["x_road_id"]: e for e in entries if e.get("call")}
    assert x_road_id in by_id, f"the call {x_road_id} is not in the log searched by subject: {text[:3000]}"
    e = by_id[x_road_id]
    call = e["call"]
    assert e["detail_intact"] is True, e
    assert isinstance(e["seq"], int) and e.get("time") and e.get("hash"), e
    assert call["consumer"] == consumer.id, call
    assert call["service"] == world.persons, call
    assert call["method"] == "GET", call
    assert call["endpoint"] == "GET /persons/{id}", call
    assert call["status"] == 200 and call["error"] is None, call
    assert str(call.get("data_subject", "")).startswith("ds:"), call
    assert str(call.get("user", "")).startswith("user:"), call
    assert call.get("path_mac") and re.fullmatch(r"[0-9a-f]{64}", call["path_mac"]), call
    assert call.get("request_hash") == r.headers.get("X-Road-Request-Hash"), (call, dict(r.headers))
    assert call.get("response_hash"), call
    assert call["complete"] is True, call
    assert call["response_bytes"] == len(r.content), (call, len(r.content))
    assert isinstance(call.get("duration_ms"), int), call

    # The refused call is recorded too, with its X-Road error type.
    all_log = admin.req("GET", "/api/v1/exchange/log", 200, params={"consumer": consumer.id, "limit": 1000})
    assert nid not in all_log.text, "a national id appears in clear in the message log"
    denied = [e for e in all_log.json() if e.get("call", {}).get("x_road_id") == denied_id]
    assert denied, f"the refused call {denied_id} is not in the log"
    d = denied[0]["call"]
    assert d["error"] == "Server.ServerProxy.AccessDenied" and d["status"] == 403, d
    assert denied[0]["detail_intact"] is True, denied[0]


def test_message_log_filters_by_service(world, consumer, admin):
    r = expect_ok(consumer.get(world.echo, "/svc-filter"))
    entries = admin.req(
        "GET", "/api/v1/exchange/log", 200, params={"service": world.echo, "limit": 20}
    ).json()
    assert entries and all(e["call"]["service"] == world.echo for e in entries), entries[:3]
    assert any(e["call"]["x_road_id"] == r.headers["X-Road-Id"] for e in entries), entries[:3]


def test_message_log_needs_admin(cfg):
    import requests

    r = requests.get(cfg.base + "/api/v1/exchange/log", timeout=30)
    assert r.status_code in (401, 403), show(r)
    assert r.headers.get("Content-Type", "").startswith("application/problem+json"), show(r)


def test_usage(world, consumer, admin):
    svc = world.new_service("usage", backend_path="/echo")
    for _ in range(3):
        expect_ok(consumer.call("POST", svc, "/u", data=b"12345"))
    body = admin.req("GET", "/api/v1/exchange/usage", 200).json()
    buckets = body.get("latency_buckets_ms")
    assert isinstance(buckets, list) and buckets, body
    rows = [x for x in body["rows"] if x["consumer"] == consumer.id and x["service"] == svc]
    assert len(rows) == 1, f"no usage row for {consumer.id} -> {svc}: {json.dumps(body)[:2000]}"
    row = rows[0]
    assert row["calls"] == 3 and row["errors"] == 0, row
    assert row["provider"] == world.provider, row
    assert row["bytes_in"] == 15 and row["bytes_out"] > 0, row
    assert sum(row["latency_ms"]) == 3 and len(row["latency_ms"]) in (len(buckets), len(buckets) + 1), row


def test_admin_api_errors_are_problem_json(admin):
    r = admin.req("POST", "/api/v1/exchange/members", json={"class": "GOV"})
    expect(r, 400)
    assert r.headers.get("Content-Type", "").startswith("application/problem+json"), show(r)
    body = r.json()
    assert body.get("type") and body.get("title") and body.get("status") == 400, body


def test_an_x_road_id_holding_a_national_id_is_replaced(world, consumer):
    # Ids are kept when they are UUIDs or hold no 13-digit run; a national id never reaches the log.
    r = expect_ok(consumer.get(world.echo, "/id", headers={"X-Road-Id": "case-1101700000001"}))
    generated = r.headers.get("X-Road-Id")
    assert generated and UUID_RE.match(generated), show(r)
    r = expect_ok(consumer.get(world.echo, "/id", headers={"X-Road-Id": "case-2569-0001"}))
    assert r.headers.get("X-Road-Id") == "case-2569-0001", show(r)
