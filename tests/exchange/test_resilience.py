"""When providers misbehave (hang, die) and when bodies are large (streamed both ways, with the
platform's memory flat)."""

import hashlib
import os
import socket
import time
from urllib.parse import urlsplit

import requests


from backend import BLOCK, MIB
from helpers import Backend, RssSampler, expect_ok, expect_xroad_error, show

LARGE_MB = int(os.environ.get("SAPHAN_EXCHANGE_LARGE_MB", "200"))
MEMORY_GROWTH_LIMIT_KIB = 100 * 1024


def test_provider_hangs_timeout(world, consumer):
    svc = world.new_service("hang", backend_path="", timeout_secs=2)
    started = time.monotonic()
    r = consumer.get(svc, "/hang?secs=8", timeout=20)
    elapsed = time.monotonic() - started
    expect_xroad_error(r, 504, "Server.ServerProxy.Timeout")
    assert 1.8 <= elapsed <= 2 + 2.5, f"the 504 came after {elapsed:.2f} s for a 2 s timeout{show(r)}"


def test_provider_dies_then_circuit_opens(world, consumer):
    b = Backend()
    try:
        svc = world.new_service("dies", backend_url=b.url, backend_path="/echo")
        expect_ok(consumer.get(svc, "/alive"))
    finally:
        b.stop()
    # Five consecutive failures: each one is a real attempt that fails.
    for i in range(5):
        r = consumer.get(svc, f"/dead{i}")
        expect_xroad_error(r, 502, "Server.ServerProxy.ServiceFailed")
        assert str(b.port) not in r.text and "127.0.0.1" not in r.text, (
            f"the error leaks the provider's backend address{show(r)}"
        )
    # Then the breaker is open: answered at once, without trying the backend.
    consumer.token()  # keep token fetching out of the timing
    started = time.perf_counter()
    r = consumer.get(svc, "/open")
    elapsed = time.perf_counter() - started
    expect_xroad_error(r, 503, "Server.ServerProxy.ServiceUnavailable")
    assert elapsed < 0.2, f"the open circuit answered in {elapsed * 1000:.0f} ms (limit 200 ms)"


def test_circuit_probe_after_cooldown(world, consumer):
    b = Backend()
    port = b.port
    svc = world.new_service("probe", backend_url=b.url, backend_path="/echo")
    expect_ok(consumer.get(svc, "/alive"))
    b.stop()
    for i in range(5):
        expect_xroad_error(consumer.get(svc, f"/dead{i}"), 502, "Server.ServerProxy.ServiceFailed")
    opened = time.monotonic()
    expect_xroad_error(consumer.get(svc, "/open"), 503, "Server.ServerProxy.ServiceUnavailable")
    b = Backend(port)  # the provider is back, but the circuit stays open for the cooldown
    try:
        expect_xroad_error(consumer.get(svc, "/still-open"), 503, "Server.ServerProxy.ServiceUnavailable")
        time.sleep(max(0.0, opened + 10.5 - time.monotonic()))
        expect_ok(consumer.get(svc, "/probe"))
        expect_ok(consumer.get(svc, "/closed-again"))
    finally:
        b.stop()


def _abort_upload(cfg, consumer, svc):
    """Starts a chunked upload past the part the gateway reads whole (64 KiB), then hangs up."""
    base = urlsplit(cfg.base)
    with socket.create_connection((base.hostname, base.port), timeout=10) as s:
        head = (
            f"POST /r1/{svc}/upload HTTP/1.1\r\nHost: {base.netloc}\r\n"
            f"Authorization: Bearer {consumer.token()}\r\nX-Road-Client: {consumer.id}\r\n"
            "Content-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n"
        )
        s.sendall(head.encode())
        chunk = BLOCK[: 64 * 1024]
        for _ in range(4):
            s.sendall(f"{len(chunk):x}\r\n".encode() + chunk + b"\r\n")
        time.sleep(0.3)  # the gateway is streaming to the provider now
    # Closed mid-body: the consumer's failure, not the provider's.


def test_consumer_aborted_uploads_do_not_open_the_circuit(world, consumer, cfg):
    svc = world.new_service("aborts", backend_path="", timeout_secs=30)
    expect_ok(consumer.get(svc, "/echo/before"))
    for _ in range(7):  # more than the 5 failures in a row that open a breaker
        _abort_upload(cfg, consumer, svc)
    time.sleep(0.5)
    r = consumer.get(svc, "/echo/after")
    assert r.status_code == 200, f"uploads the consumer broke off counted against the provider{show(r)}"


def test_streamed_uploads_to_a_dead_provider_open_the_circuit(world, consumer):
    b = Backend()
    try:
        svc = world.new_service("dies-streamed", backend_url=b.url, backend_path="/echo")
        expect_ok(consumer.get(svc, "/alive"))
    finally:
        b.stop()
    body = BLOCK[: 96 * 1024]  # more than the 64 KiB read whole: this upload streams
    for i in range(5):
        try:
            r = consumer.call("POST", svc, f"/dead{i}", data=body,
                              headers={"Content-Type": "application/octet-stream"})
            expect_xroad_error(r, 502, "Server.ServerProxy.ServiceFailed")
        except requests.ConnectionError:
            pass  # the gateway may answer and close before the whole upload is read
    expect_xroad_error(consumer.get(svc, "/open"), 503, "Server.ServerProxy.ServiceUnavailable")


def _pid(cfg):
    assert cfg.pid, "SAPHAN_PID is not set: the memory of the platform cannot be measured"
    assert os.path.exists(f"/proc/{cfg.pid}/status"), f"no process {cfg.pid} (SAPHAN_PID)"
    return cfg.pid


def _expected_sha256(mb: int) -> str:
    h = hashlib.sha256()
    for _ in range(mb):
        h.update(BLOCK)
    return h.hexdigest()


def test_large_upload_streams(world, consumer, cfg, admin):
    pid = _pid(cfg)
    svc = world.new_service("upload", backend_path="", timeout_secs=300)
    sent = hashlib.sha256()

    def body():
        for _ in range(LARGE_MB):
            sent.update(BLOCK)
            yield BLOCK

    with RssSampler(pid) as rss:
        r = consumer.call("POST", svc, "/upload", data=body(), timeout=300,
                          headers={"Content-Type": "application/octet-stream"})
    expect_ok(r)
    got = r.json()
    assert got["length"] == LARGE_MB * MIB, f"the provider got {got['length']} bytes of {LARGE_MB * MIB}"
    assert got["sha256"] == sent.hexdigest(), "the provider got different bytes than were sent"
    growth_peak = rss.peak - rss.start_kib
    growth_end = rss.end_kib - rss.start_kib
    assert growth_peak < MEMORY_GROWTH_LIMIT_KIB and growth_end < MEMORY_GROWTH_LIMIT_KIB, (
        f"platform RSS grew by {growth_peak / 1024:.0f} MiB at peak, {growth_end / 1024:.0f} MiB after "
        f"(before {rss.start_kib / 1024:.0f} MiB) for a {LARGE_MB} MiB upload"
    )
    # The message log counted every byte.
    entries = admin.req("GET", "/api/v1/exchange/log", 200, params={"service": svc, "limit": 5}).json()
    mine = [e for e in entries if e["call"]["x_road_id"] == r.headers.get("X-Road-Id")]
    assert mine, f"no log record for the upload: {entries}"
    assert mine[0]["call"]["request_bytes"] == LARGE_MB * MIB and mine[0]["call"]["complete"] is True, mine[0]


def test_large_download_streams(world, consumer, cfg):
    pid = _pid(cfg)
    svc = world.new_service("download", backend_path="", timeout_secs=300)
    expected = _expected_sha256(LARGE_MB)
    got = hashlib.sha256()
    n = 0
    with RssSampler(pid) as rss:
        r = consumer.get(svc, f"/download?mb={LARGE_MB}", stream=True, timeout=300)
        expect_ok(r)
        for chunk in r.iter_content(chunk_size=MIB):
            got.update(chunk)
            n += len(chunk)
        r.close()
    assert n == LARGE_MB * MIB, f"got {n} bytes of {LARGE_MB * MIB}"
    assert got.hexdigest() == expected, "the consumer got different bytes than the provider sent"
    growth_peak = rss.peak - rss.start_kib
    growth_end = rss.end_kib - rss.start_kib
    assert growth_peak < MEMORY_GROWTH_LIMIT_KIB and growth_end < MEMORY_GROWTH_LIMIT_KIB, (
        f"platform RSS grew by {growth_peak / 1024:.0f} MiB at peak, {growth_end / 1024:.0f} MiB after "
        f"(before {rss.start_kib / 1024:.0f} MiB) for a {LARGE_MB} MiB download"
    )
