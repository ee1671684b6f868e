"""Directory services: listClients, listMethods, allowedMethods, getOpenAPI."""

import pytest
import requests

from helpers import PERSONS_OPENAPI, expect, expect_xroad_error, show


def _meta(consumer, path, via="token", **kw):
    h = {"X-Road-Client": consumer.id, **consumer.auth_headers(via)}
    session = consumer.tls if via == "mtls" else consumer.http
    if via == "mtls":
        kw.setdefault("verify", consumer.ca_file)
    return session.get(consumer.url(via, path), headers=h, timeout=30, **kw)


@pytest.fixture(scope="module")
def hidden(world):
    """A service of the provider the consumer holds no right to."""
    return world.new_service("hidden", backend_path="/echo", grant=False)


def _codes(body):
    return {s.get("service_code") for s in body.get("service", [])}


def test_list_clients(world, consumer):
    r = expect(_meta(consumer, "/listClients"), 200)
    members = r.json().get("member")
    assert isinstance(members, list), show(r)
    provider_code = world.provider_member.split("/")[1]
    subsystems = [
        m["id"] for m in members
        if m["id"].get("member_code") == provider_code and m["id"].get("subsystem_code") == "API"
    ]
    assert subsystems, f"the provider subsystem {world.provider} is not listed{show(r)}"
    sid = subsystems[0]
    assert sid["xroad_instance"] == "TH" and sid["member_class"] == "GOV", sid
    assert sid["object_type"] == "SUBSYSTEM", sid
    assert sid["instanceId"] == "TH" and sid["memberClass"] == "GOV" and sid["memberCode"] == provider_code, sid
    assert sid["applicationCode"] == "API" and sid["objectType"], sid
    member_rows = [
        m for m in members if m["id"].get("member_code") == provider_code and not m["id"].get("subsystem_code")
    ]
    assert member_rows and member_rows[0]["id"]["object_type"] == "MEMBER", f"the provider member is not listed{show(r)}"
    assert member_rows[0].get("name"), member_rows[0]


def test_list_clients_over_mtls(consumer):
    expect(_meta(consumer, "/listClients", via="mtls"), 200)


def test_directory_needs_credentials(world, cfg):
    for path in ("/listClients", f"/r1/{world.provider}/listMethods"):
        r = requests.get(cfg.base + path, headers={"X-Road-Client": world.consumer.id}, timeout=30)
        expect_xroad_error(r, 401, "Server.ClientProxy.SslAuthenticationFailed")


def test_list_methods(world, consumer, hidden):
    r = expect(_meta(consumer, f"/r1/{world.provider}/listMethods"), 200)
    body = r.json()
    codes = _codes(body)
    persons_code = world.persons.rsplit("/", 1)[1]
    hidden_code = hidden.rsplit("/", 1)[1]
    assert persons_code in codes and hidden_code in codes, f"listMethods lacks services: {codes}{show(r)}"
    persons = [s for s in body["service"] if s["service_code"] == persons_code][0]
    assert persons.get("serviceCode") == persons_code, persons
    assert persons.get("member_code") == world.provider_member.split("/")[1], persons
    assert persons.get("subsystem_code") == "API", persons
    endpoints = {(e["method"].upper(), e["path"]) for e in persons["endpoint_list"]}
    assert ("GET", "/persons/{id}") in endpoints and ("POST", "/persons") in endpoints, persons
    assert {(e["method"].upper(), e["path"]) for e in persons["endpointList"]["member"]} == endpoints, persons
    assert _codes({"service": body.get("member", [])}) == codes, "member and service lists differ"


def test_allowed_methods_only_granted(world, consumer, hidden):
    r = expect(_meta(consumer, f"/r1/{world.provider}/allowedMethods"), 200)
    codes = _codes(r.json())
    assert world.persons.rsplit("/", 1)[1] in codes, f"a granted service is missing: {codes}"
    assert hidden.rsplit("/", 1)[1] not in codes, f"allowedMethods lists a service without a right: {codes}"


def test_allowed_methods_reflect_narrow_right(world, consumer, admin):
    svc = world.new_service(
        "narrowdir", grant=False,
        endpoints=[{"method": "GET", "path": "/a/{id}"}, {"method": "POST", "path": "/b"}],
    )
    admin.grant(svc, consumer.id, method="GET", path="/a/{id}")
    body = expect(_meta(consumer, f"/r1/{world.provider}/allowedMethods"), 200).json()
    mine = [s for s in body["service"] if s["service_code"] == svc.rsplit("/", 1)[1]]
    assert mine, body
    endpoints = {(e["method"].upper(), e["path"]) for e in mine[0]["endpoint_list"]}
    assert endpoints == {("GET", "/a/{id}")}, f"allowedMethods should list only the granted endpoint: {endpoints}"


def test_get_openapi(world, consumer):
    code = world.persons.rsplit("/", 1)[1]
    r = expect(_meta(consumer, f"/r1/{world.provider}/getOpenAPI?serviceCode={code}"), 200)
    doc = r.json()
    assert doc.get("openapi") == PERSONS_OPENAPI["openapi"], doc
    assert set(doc.get("paths", {})) == set(PERSONS_OPENAPI["paths"]), doc


def test_get_openapi_unknown_service(world, consumer):
    r = _meta(consumer, f"/r1/{world.provider}/getOpenAPI?serviceCode=nosuch")
    expect_xroad_error(r, 404, "Server.ServerProxy.UnknownService")


def test_meta_without_prefix_describes_own_subsystem(world, consumer, admin):
    own = world.new_service("own", backend_path="/echo", grant=False, provider=consumer.id,
                            openapi=PERSONS_OPENAPI)
    code = own.rsplit("/", 1)[1]
    r = expect(_meta(consumer, "/listMethods"), 200)
    assert _codes(r.json()) == {code}, f"/listMethods should list the caller's own services only{show(r)}"
    r = expect(_meta(consumer, f"/getOpenAPI?serviceCode={code}"), 200)
    assert set(r.json().get("paths", {})) == set(PERSONS_OPENAPI["paths"]), show(r)
    # The consumer holds no right to its own service here: allowedMethods is empty.
    r = expect(_meta(consumer, "/allowedMethods"), 200)
    assert _codes(r.json()) == set(), show(r)
