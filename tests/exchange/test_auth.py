"""Who may call: mutual TLS, OAuth client credentials, GDX, and the X-Road-Client rules."""

import http.client
import json
import time
import uuid
from urllib.parse import urlsplit

import pytest
import requests
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from helpers import (
    USER_AGENT,
    b64_sha512_ok,
    expect,
    expect_ok,
    expect_xroad_error,
    host_port,
    seen_headers,
    show,
    verify_assertion,
)


def test_mtls_call_end_to_end(world, consumer, cfg, platform_jwks):
    x_road_id = str(uuid.uuid4())
    r = consumer.get(
        world.persons,
        "/persons/4711?fields=name",
        via="mtls",
        headers={
            "X-Road-Id": x_road_id,
            "X-Road-UserId": "officer-42",
            "X-Road-Issue": "case-2024-001",
            "X-Road-Represented-Party": "COM/0105551234567",
            # Must not reach the provider: credentials of the consumer, whatever their kind.
            "Authorization": "Bearer must-not-leak",
        },
    )
    expect_ok(r)
    # The exchange's response headers.
    assert r.headers.get("X-Road-Client") == consumer.id, show(r)
    assert r.headers.get("X-Road-Service") == world.persons, show(r)
    assert r.headers.get("X-Road-Id") == x_road_id, show(r)
    assert r.headers.get("X-Road-Request-Id"), show(r)
    request_hash = r.headers.get("X-Road-Request-Hash")
    assert b64_sha512_ok(request_hash), f"X-Road-Request-Hash is not base64 SHA-512{show(r)}"

    # What the provider saw.
    echo = r.json()
    seen = seen_headers(echo)
    assert echo["method"] == "GET" and echo["path"] == "/persons/4711", echo
    assert echo["query"] == "fields=name", echo
    assert seen.get("x-road-client") == [consumer.id], seen
    assert seen.get("x-road-id") == [x_road_id], seen
    assert seen.get("x-road-service") == [world.persons], seen
    assert seen.get("x-road-issue") == ["case-2024-001"], seen
    assert "authorization" not in seen, f"Authorization reached the provider: {seen}"
    assert seen.get("host") != [host_port(cfg.tls)], f"the consumer's Host reached the provider: {seen}"
    assert seen.get("host") == [host_port(world.backend.url)], seen
    assert USER_AGENT not in seen.get("user-agent", []), f"the consumer's User-Agent reached the provider: {seen}"

    # The platform's signed statement to the provider.
    assertion = seen.get("saphan-exchange-assertion")
    assert assertion and len(assertion) == 1, f"no Saphan-Exchange-Assertion: {seen}"
    claims = verify_assertion(assertion[0], platform_jwks, audience=world.persons, issuer=cfg.base)
    assert claims["sub"] == consumer.id, claims
    assert claims["x_road_id"] == x_road_id and claims["jti"] != x_road_id, claims
    assert claims["exp"] - claims["iat"] == 60, claims
    assert abs(claims["iat"] - time.time()) < 30, claims
    assert claims.get("issue") == "case-2024-001", claims
    assert claims.get("user"), f"no user claim although X-Road-UserId was sent: {claims}"
    assert "officer-42" not in json.dumps(claims), f"the user id is in clear in the assertion: {claims}"
    assert claims.get("req_headers_hash"), claims
    assert claims.get("req_hash") == request_hash, (
        f"assertion req_hash {claims.get('req_hash')!r} != X-Road-Request-Hash {request_hash!r}"
    )


def test_mtls_post_body_hash_matches(world, consumer, cfg, platform_jwks):
    body = json.dumps({"query": "somchai", "limit": 5}).encode()
    r = consumer.call(
        "POST", world.persons, "/persons", via="mtls", data=body,
        headers={"Content-Type": "application/json"},
    )
    expect_ok(r)
    echo = r.json()
    import hashlib

    assert echo["body_sha256"] == hashlib.sha256(body).hexdigest(), echo
    seen = seen_headers(echo)
    claims = verify_assertion(
        seen["saphan-exchange-assertion"][0], platform_jwks, audience=world.persons, issuer=cfg.base
    )
    assert claims.get("req_hash") == r.headers.get("X-Road-Request-Hash"), (claims, show(r))


def test_token_call(world, consumer):
    r = consumer.get(world.echo, "/hello", via="token")
    expect_ok(r)
    assert r.headers.get("X-Road-Client") == consumer.id, show(r)
    seen = seen_headers(r.json())
    assert r.json()["path"] == "/echo/hello", r.json()
    assert "authorization" not in seen, f"the bearer token reached the provider: {seen}"
    assert seen.get("x-road-client") == [consumer.id], seen


def test_token_response_shape(consumer):
    r = expect(consumer.token_request(consumer.assertion()), 200)
    body = r.json()
    assert body.get("access_token"), show(r)
    assert body.get("token_type", "").lower() == "bearer", show(r)
    assert isinstance(body.get("expires_in"), int) and body["expires_in"] > 0, show(r)


def test_token_assertion_reuse_refused(consumer):
    assertion = consumer.assertion()
    expect(consumer.token_request(assertion), 200)
    r = consumer.token_request(assertion)
    expect(r, 401)
    assert r.json().get("error") == "invalid_client", show(r)


def test_token_assertion_for_other_subsystem_refused(world, consumer):
    # Signed by the consumer's key but claiming to be another subsystem.
    other = world.new_client("IMP")
    assertion = consumer.assertion(iss=other.id, sub=other.id)
    r = consumer.token_request(assertion)
    assert r.status_code in (400, 401), show(r)
    assert r.json().get("error") == "invalid_client", show(r)


def test_invalid_bearer_token_refused(world, consumer):
    r = consumer.get(world.echo, "/x", via="none", headers={"Authorization": "Bearer not-a-token"})
    expect_xroad_error(r, 401, "Server.ClientProxy.SslAuthenticationFailed")


def test_no_credential_refused(world, consumer):
    r = consumer.get(world.echo, "/x", via="none")
    expect_xroad_error(r, 401, "Server.ClientProxy.SslAuthenticationFailed")


def test_gdx_call(world, consumer, cfg):
    token = consumer.gdx_token()
    r = consumer.get(
        world.echo, "/gdx", via="none",
        headers={"Consumer-Key": consumer.gdx["consumer_key"], "Token": token},
    )
    expect_ok(r)
    seen = seen_headers(r.json())
    assert "consumer-key" not in seen and "token" not in seen, f"GDX credentials reached the provider: {seen}"
    assert seen.get("x-road-client") == [consumer.id], seen


def test_gdx_validate_with_national_id_agent(consumer, citizen):
    assert consumer.gdx_token(agent=citizen.nid)


def test_gdx_wrong_secret_refused(consumer, cfg):
    r = requests.get(
        cfg.base + "/ws/auth/validate",
        params={"ConsumerSecret": "wrong-" + consumer.gdx["consumer_secret"], "AgentID": "tests"},
        headers={"Consumer-Key": consumer.gdx["consumer_key"]},
        timeout=30,
    )
    expect(r, 401)
    assert not r.json().get("Result"), show(r)


def test_gdx_wrong_token_refused(world, consumer):
    r = consumer.get(
        world.echo, "/gdx", via="none",
        headers={"Consumer-Key": consumer.gdx["consumer_key"], "Token": "forged-token"},
    )
    expect_xroad_error(r, 401, "Server.ClientProxy.SslAuthenticationFailed")


@pytest.mark.parametrize("via", ["token", "mtls", "gdx"])
def test_disabled_consumer_subsystem_refused(world, admin, via):
    client = world.new_client("OFF" + via.upper(), certificate=via == "mtls", gdx=via == "gdx")
    svc = world.echo
    admin.grant(svc, client.id)
    expect_ok(client.get(svc, "/a", via=via))
    admin.set_subsystem_active(client.id, False)
    try:
        # Changes on this node take effect immediately.
        expect_xroad_error(client.get(svc, "/a", via=via), 401, "Server.ClientProxy.SslAuthenticationFailed")
    finally:
        admin.set_subsystem_active(client.id, True)
    expect_ok(client.get(svc, "/a", via=via))


def test_disabled_subsystem_gets_no_token(world, admin):
    client = world.new_client("OFT")
    admin.set_subsystem_active(client.id, False)
    r = client.token_request(client.assertion())
    assert r.status_code in (400, 401), f"a disabled subsystem got a token{show(r)}"


def _tls_call(world, consumer, cert_file, key_file, path="/rev"):
    return requests.get(
        world.cfg.tls + f"/r1/{world.echo}{path}",
        headers={"X-Road-Client": consumer.id},
        cert=(cert_file, key_file),
        verify=world.ca_file,
        timeout=30,
    )


def test_revoked_certificate_refused(world, consumer, admin):
    issued = admin.certificate(consumer.id)
    cert_file, key_file = consumer.write_cert(issued, issued["private_key_pem"])
    expect_ok(_tls_call(world, consumer, cert_file, key_file))
    admin.revoke_certificate(issued["fingerprint_sha256"])
    try:
        r = _tls_call(world, consumer, cert_file, key_file)
    except requests.exceptions.SSLError:
        return  # refused in the TLS handshake: also a refusal
    except requests.exceptions.ConnectionError:
        return
    expect_xroad_error(r, 401, "Server.ClientProxy.SslAuthenticationFailed")
    # The subsystem's other certificate still works.
    expect_ok(consumer.get(world.echo, "/still", via="mtls"))


def test_certificate_for_own_key(world, consumer, admin):
    key = ec.generate_private_key(ec.SECP256R1())
    public_pem = key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode()
    issued = admin.certificate(consumer.id, public_key_pem=public_pem)
    assert not issued.get("private_key_pem"), "the platform returned a private key although the subsystem sent its own public key"
    cert = x509.load_pem_x509_certificate(issued["certificate_pem"].encode())
    assert cert.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    ).decode() == public_pem, "the certificate is not for the key that was sent"
    for field in ("fingerprint_sha256", "serial", "not_after"):
        assert issued.get(field), f"no {field} in {issued}"
    key_pem = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ).decode()
    cert_file, key_file = consumer.write_cert(issued, key_pem)
    expect_ok(_tls_call(world, consumer, cert_file, key_file, "/own-key"))


def test_certificate_from_another_ca_refused(world, consumer, tmp_path):
    # A self-signed certificate: the TLS listener must not accept it, or the gateway must refuse it.
    import datetime

    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, consumer.id)])
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(days=1))
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = tmp_path / "self.crt", tmp_path / "self.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_file.write_bytes(key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    ))
    try:
        r = _tls_call(world, consumer, str(cert_file), str(key_file), "/self-signed")
    except (requests.exceptions.SSLError, requests.exceptions.ConnectionError):
        return
    expect_xroad_error(r, 401, "Server.ClientProxy.SslAuthenticationFailed")


# ---- X-Road-Client ---------------------------------------------------------------------------


def test_missing_client_header_bad_request(world, consumer):
    r = consumer.get(world.echo, "/x", client_header=False)
    expect_xroad_error(r, 400, "Client.BadRequest")


def test_malformed_client_header_bad_request(world, consumer):
    r = consumer.get(world.echo, "/x", headers={"X-Road-Client": "not an id"})
    expect_xroad_error(r, 400, "Client.BadRequest")


def test_client_mismatch_forbidden(world, consumer):
    r = consumer.get(world.echo, "/x", headers={"X-Road-Client": world.provider})
    expect_xroad_error(r, 403, "Server.ClientProxy.ClientMismatch")


def test_client_mismatch_over_mtls_forbidden(world, consumer):
    r = consumer.get(world.echo, "/x", via="mtls", headers={"X-Road-Client": world.provider})
    expect_xroad_error(r, 403, "Server.ClientProxy.ClientMismatch")


def test_information_mediator_client_accepted(world, consumer):
    r = consumer.get(
        world.echo, "/im", client_header=False, headers={"Information-Mediator-Client": consumer.id}
    )
    expect_ok(r)
    assert r.headers.get("X-Road-Client") == consumer.id, show(r)


def test_govstack_client_accepted(world, consumer):
    r = consumer.get(world.echo, "/gs", client_header=False, headers={"X-GovStack-Client": consumer.id})
    expect_ok(r)


def _raw_call(cfg, path, headers):
    """Sends headers exactly as given (repeats included), over plain HTTP."""
    u = urlsplit(cfg.base)
    conn = http.client.HTTPConnection(u.hostname, u.port or 80, timeout=30)
    try:
        conn.putrequest("GET", path, skip_accept_encoding=True)
        for name, value in headers:
            conn.putheader(name, value)
        conn.endheaders()
        resp = conn.getresponse()
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, resp.read()
    finally:
        conn.close()


def test_repeated_client_header_last_wins(world, consumer, cfg):
    auth = ("Authorization", f"Bearer {consumer.token()}")
    status, headers, body = _raw_call(
        cfg, f"/r1/{world.echo}/repeat",
        [auth, ("X-Road-Client", world.provider), ("X-Road-Client", consumer.id)],
    )
    assert status == 200 and "x-road-error" not in headers, (status, headers, body[:500])
    # And the other way round: the last one names a subsystem the token is not for.
    status, headers, body = _raw_call(
        cfg, f"/r1/{world.echo}/repeat",
        [auth, ("X-Road-Client", consumer.id), ("X-Road-Client", world.provider)],
    )
    assert status == 403 and headers.get("x-road-error") == "Server.ClientProxy.ClientMismatch", (
        status, headers, body[:500],
    )


# ---- more on the credentials -----------------------------------------------------------------


def test_token_audience_may_be_base_url(consumer, cfg):
    r = consumer.token_request(consumer.assertion(aud=cfg.base))
    expect(r, 200)


def test_token_wrong_audience_refused(consumer):
    r = consumer.token_request(consumer.assertion(aud="https://elsewhere.example/token"))
    assert r.status_code in (400, 401) and r.json().get("error") == "invalid_client", show(r)


def test_token_assertion_valid_too_long_refused(consumer):
    now = int(time.time())
    r = consumer.token_request(consumer.assertion(exp=now + 2 * 3600))
    assert r.status_code in (400, 401) and r.json().get("error") == "invalid_client", (
        f"an assertion valid for two hours was accepted{show(r)}"
    )


def test_token_expired_assertion_refused(consumer):
    now = int(time.time())
    r = consumer.token_request(consumer.assertion(iat=now - 600, exp=now - 300))
    assert r.status_code in (400, 401) and r.json().get("error") == "invalid_client", show(r)


def test_token_assertion_signed_by_other_key_refused(consumer):
    import jwt as pyjwt

    now = int(time.time())
    forged = pyjwt.encode(
        {"iss": consumer.id, "sub": consumer.id, "aud": consumer.cfg.base + "/api/v1/exchange/token",
         "iat": now, "exp": now + 300, "jti": str(uuid.uuid4())},
        ec.generate_private_key(ec.SECP256R1()), algorithm="ES256", headers={"kid": consumer.kid},
    )
    r = consumer.token_request(forged)
    assert r.status_code in (400, 401) and r.json().get("error") == "invalid_client", show(r)


def test_token_works_on_tls_listener(world, consumer):
    r = requests.get(
        world.cfg.tls + f"/r1/{world.echo}/tls-token",
        headers={"X-Road-Client": consumer.id, "Authorization": f"Bearer {consumer.token()}"},
        verify=world.ca_file,
        timeout=30,
    )
    expect_ok(r)


def test_tls_listener_without_credential_refused(world, consumer):
    try:
        r = requests.get(
            world.cfg.tls + f"/r1/{world.echo}/no-cert",
            headers={"X-Road-Client": consumer.id},
            verify=world.ca_file,
            timeout=30,
        )
    except (requests.exceptions.SSLError, requests.exceptions.ConnectionError):
        return
    expect_xroad_error(r, 401, "Server.ClientProxy.SslAuthenticationFailed")


def test_consumer_cannot_forge_exchange_assertion(world, consumer, cfg, platform_jwks):
    r = expect_ok(consumer.get(world.echo, "/forge", headers={"Saphan-Exchange-Assertion": "forged.jws.value"}))
    seen = seen_headers(r.json())
    values = seen.get("saphan-exchange-assertion", [])
    assert len(values) == 1 and values[0] != "forged.jws.value", f"the consumer's assertion reached the provider: {values}"
    verify_assertion(values[0], platform_jwks, world.echo, cfg.base)
