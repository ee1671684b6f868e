#!/usr/bin/env python3
"""The exchange gateway benchmark (`cargo xtask bench` runs it; or `python3 bench/exchange.py
--bin target/release/saphan`).

In one run on this machine, a backend answering 1 KiB JSON (nginx `return 200`) is called
  (a) directly,
  (b) through nginx as a plain reverse proxy (keep-alive upstream),
  (c) through the Saphan gateway: bearer-token authentication, the right, the data subject's
      consent (a database read), purpose, rate-limit and breaker checks, the signed assertion to
      the provider and the durable message log (group-committed audit record) on every call;
  (d) with --bare, through a bare proxy on the gateway's own HTTP stack and nothing else
      (crates/saphan-web/examples/bare_proxy.rs): what the stack alone costs, for reading (c).
Peak throughput: wrk, 2 threads, 64 connections. Latency: oha (the Rust load generator the issue
names; `cargo install`ed into ~/.cache/saphan-bench if missing) at a fixed, evenly paced rate of
half of (c)'s peak over 16 connections, with latency correction (a late request counts from when
it should have started), median of (a) and of (c). Targets: (c) >= 0.8 x (b) throughput; (c)'s median at most
1 ms above (a)'s. Numbers are ratios against baselines measured in the same run.
"""
import argparse
import base64
import json
import os
import re
import shutil
import socket
import subprocess
import sys
import tempfile
import time
import uuid

import jwt  # PyJWT
import requests
from cryptography.hazmat.primitives.asymmetric import ec

DURATION = int(os.environ.get("BENCH_SECS", "10"))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


OHA_VERSION = "1.16.0"


def oha_binary():
    """oha from PATH, or installed with cargo into a cache outside the clone."""
    found = shutil.which("oha")
    if found:
        return found
    root = os.path.expanduser("~/.cache/saphan-bench")
    binary = os.path.join(root, "bin", "oha")
    if not os.path.exists(binary):
        print(f"bench: installing oha {OHA_VERSION} with cargo (once, a few minutes)", flush=True)
        subprocess.run(["cargo", "install", "oha", "--version", OHA_VERSION, "--locked", "--root", root],
                       check=True)
    return binary


def ensure_tools():
    oha_binary()
    missing = [t for t, pkg in (("wrk", "wrk"), ("hey", "hey"), ("nginx", "nginx")) if not shutil.which(t)]
    if missing:
        if os.geteuid() != 0:
            sys.exit(f"bench: install {' '.join(missing)} (Debian packages wrk, hey, nginx)")
        subprocess.run(["apt-get", "update", "-qq"], check=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True,
                       env={**os.environ, "DEBIAN_FRONTEND": "noninteractive"})


def wait_port(port, proc=None, timeout=120):
    deadline = time.time() + timeout
    while time.time() < deadline:
        if proc is not None and proc.poll() is not None:
            sys.exit(f"bench: a process exited early (status {proc.returncode})")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return
        except OSError:
            time.sleep(0.2)
    sys.exit(f"bench: nothing listens on {port}")


def start_nginx(tmp, backend_port, proxy_port):
    body = json.dumps({"id": 1, "items": ["x" * 30] * 28}, separators=(",", ":"))
    body = (body + " " * 1024)[:1024]
    conf = os.path.join(tmp, "nginx.conf")
    for d in ("cb", "pt", "fc", "uw", "sc"):
        os.makedirs(os.path.join(tmp, d), exist_ok=True)
    user = "user root root;" if os.geteuid() == 0 else ""
    with open(conf, "w") as f:
        f.write(f"""{user}
worker_processes 2;
daemon off;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/cb; proxy_temp_path {tmp}/pt; fastcgi_temp_path {tmp}/fc;
  uwsgi_temp_path {tmp}/uw; scgi_temp_path {tmp}/sc;
  keepalive_requests 1000000;
  upstream backend {{ server 127.0.0.1:{backend_port}; keepalive 256; }}
  server {{
    listen 127.0.0.1:{backend_port};
    location / {{ default_type application/json; return 200 '{body}'; }}
  }}
  server {{
    listen 127.0.0.1:{proxy_port};
    location / {{ proxy_pass http://backend; proxy_http_version 1.1; proxy_set_header Connection ""; }}
  }}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", conf, "-p", tmp], stderr=subprocess.DEVNULL)
    wait_port(backend_port, proc)
    wait_port(proxy_port, proc)
    return proc


def start_saphan(binary, tmp, port, database_url):
    env = {**os.environ, "RUST_LOG": "warn", "SAPHAN_EXCHANGE__TOKEN_TTL_SECS": "3600",
           "SAPHAN_EXCHANGE__TLS_LISTEN": f"127.0.0.1:{free_port()}"}
    env.pop("SAPHAN_DATABASE_URL", None)
    if database_url:
        env["SAPHAN_DATABASE_URL"] = database_url
    data = os.path.join(tmp, "saphan")
    proc = subprocess.Popen([binary, "demo", "--data-dir", data, "--listen", f"127.0.0.1:{port}"],
                            env=env, stdout=subprocess.DEVNULL)
    wait_port(port, proc)
    base = f"http://localhost:{port}"
    for _ in range(300):
        try:
            if requests.get(base + "/readyz", timeout=2).status_code == 200:
                break
        except requests.RequestException:
            pass
        time.sleep(0.2)
    return proc, base, data


def admin_api(base, data):
    """The platform's admin API with the demo's admin token: a session and a checked `call`."""
    token = open(os.path.join(data, "admin-token")).read().strip()
    admin = requests.Session()
    admin.headers["Authorization"] = f"Bearer {token}"

    def call(method, path, body=None, status=(200, 201, 204)):
        r = admin.request(method, base + path, json=body, timeout=30)
        if r.status_code not in status:
            sys.exit(f"bench setup: {method} {path} -> {r.status_code} {r.text[:300]}")
        return r.json() if r.content else None

    return admin, call


def consumer_token(base, call, member, subsystem):
    """An OAuth key for the consumer subsystem GOV/member/subsystem and a bearer token
    (private_key_jwt), through the admin API's `call`."""
    key = ec.generate_private_key(ec.SECP256R1())
    numbers = key.public_key().public_numbers()
    b64 = lambda n: base64.urlsafe_b64encode(n.to_bytes(32, "big")).rstrip(b"=").decode()
    jwk = {"kty": "EC", "crv": "P-256", "x": b64(numbers.x), "y": b64(numbers.y), "kid": "bench", "alg": "ES256"}
    call("PUT", f"/api/v1/exchange/subsystems/GOV/{member}/{subsystem}/keys", {"keys": [jwk]})
    client = f"TH/GOV/{member}/{subsystem}"
    assertion = jwt.encode({"iss": client, "sub": client, "aud": base + "/api/v1/exchange/token",
                            "exp": int(time.time()) + 300, "jti": uuid.uuid4().hex},
                           key, algorithm="ES256", headers={"kid": "bench"})
    r = requests.post(base + "/api/v1/exchange/token", data={
        "grant_type": "client_credentials",
        "client_assertion_type": "urn:ietf:params:oauth:client-assertion-type:jwt-bearer",
        "client_assertion": assertion}, timeout=30)
    if r.status_code != 200:
        sys.exit(f"bench setup: token -> {r.status_code} {r.text[:300]}")
    bearer = r.json()["access_token"]
    return bearer


def setup(base, data, backend_port):
    """Provider, consumer, service, right, token, a citizen's consent: the whole path of (c)."""
    admin, call = admin_api(base, data)

    suffix = uuid.uuid4().hex[:6].upper()
    prov, cons = f"BENCHP{suffix}", f"BENCHC{suffix}"
    for code in (prov, cons):
        call("POST", "/api/v1/exchange/members",
             {"class": "GOV", "code": code, "name_th": code, "name_en": code})
    call("POST", f"/api/v1/exchange/members/GOV/{prov}/subsystems", {"code": "API"})
    call("POST", f"/api/v1/exchange/members/GOV/{cons}/subsystems", {"code": "APP"})
    service = f"TH/GOV/{prov}/API/data"
    call("POST", f"/api/v1/exchange/subsystems/GOV/{prov}/API/services", {
        "code": "data", "title_th": "bench", "title_en": "bench",
        "backend_url": f"http://127.0.0.1:{backend_port}",
        "endpoints": [{"method": "GET", "path": "/data/{id}"}],
        "personal_data": True, "consent_required": True, "purposes": ["bench"]})
    call("POST", f"/api/v1/exchange/services/GOV/{prov}/API/data/rights",
         {"grantee": f"GOV/{cons}/APP", "method": "GET", "path": "/data/{id}", "legal_basis": "benchmark"})
    client = f"TH/GOV/{cons}/APP"
    bearer = consumer_token(base, call, cons, "APP")
    # A citizen signs in (password-only demo person) and consents.
    logins = json.load(open(os.path.join(data, "demo-logins.json")))
    people = logins if isinstance(logins, list) else logins.get("people", logins.get("logins", []))
    person = next(p for p in people if p.get("kind") == "citizen" and p.get("password")
                  and not p.get("totp_secret") and re.fullmatch(r"\d{13}", p.get("identifier", "")))
    browser = requests.Session()
    page = browser.get(base + "/account", timeout=30)
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    req = re.search(r'name="request" value="([^"]*)"', page.text)
    r = browser.post(base + "/signin?lang=en", data={
        "request": req.group(1) if req else "", "csrf": csrf, "identifier": person["identifier"],
        "nationality": "", "password": person["password"]}, allow_redirects=False, timeout=30)
    if r.status_code not in (302, 303):
        sys.exit(f"bench setup: sign-in -> {r.status_code}")
    r = browser.post(base + "/api/v1/me/consents",
                     json={"consumer": client, "service": service, "purpose": "bench",
                           "valid_until": int(time.time()) + 3600},
                     headers={"X-CSRF-Token": browser.cookies.get("saphan_csrf")}, timeout=30)
    if r.status_code != 201:
        sys.exit(f"bench setup: consent -> {r.status_code} {r.text[:300]}")
    headers = {"Authorization": f"Bearer {bearer}", "X-Road-Client": client,
               "Saphan-Consent": r.json()["id"], "Saphan-Purpose": "bench",
               "X-Road-UserId": "TH" + person["identifier"]}
    url = f"{base}/r1/{service}/data/1"
    check = requests.get(url, headers=headers, timeout=30)
    if check.status_code != 200 or len(check.content) != 1024:
        sys.exit(f"bench setup: a gateway call -> {check.status_code} {check.text[:300]}")
    return url, headers, admin


def wrk(url, headers):
    args = ["wrk", "-t2", "-c64", f"-d{DURATION}s", "--latency"]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    out = subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    bad = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out)
    errors = re.search(r"Socket errors:.*", out)
    if bad or errors:
        sys.exit(f"bench: failures under load at {url}:\n{out}")
    return rps


def paced(url, headers, rate):
    """oha at `rate` requests a second, evenly paced over 16 connections: median and p99 in ms,
    and the rate achieved."""
    args = [oha_binary(), "-z", f"{DURATION}s", "-c", "16", "-q", f"{max(1.0, rate):.0f}",
            "--latency-correction", "--no-tui", "--output-format", "json"]
    for k, v in headers.items():
        args += ["-H", f"{k}: {v}"]
    out = json.loads(subprocess.run(args + [url], capture_output=True, text=True, check=True).stdout)
    codes = out.get("statusCodeDistribution", {})
    if any(c != "200" for c in codes):
        sys.exit(f"bench: non-200 answers at fixed rate: {codes}")
    latency = out["latencyPercentiles"]
    return latency["p50"] * 1000, latency["p99"] * 1000, out["summary"]["requestsPerSec"]


def fresh_postgres(server):
    """A new database on `server` (a postgres:// URL), for one run; returns its URL and name."""
    name = f"saphan_test_bench_{uuid.uuid4().hex[:10]}"
    subprocess.run(["psql", server, "-qAtc", f"CREATE DATABASE {name}"], check=True)
    return server.rsplit("/", 1)[0] + "/" + name, name


def stop_saphan(proc):
    """Stops a platform started by start_saphan (gracefully, then by force)."""
    if proc is None:
        return
    proc.terminate()
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        proc.kill()


def on_each_database(postgres_server, run_one):
    """`run_one(database_url, label)` on SQLite (url None), then on a fresh PostgreSQL database
    of `postgres_server` if given (dropped afterwards); True if every run met its targets."""
    ok = run_one(None, "SQLite")
    if postgres_server:
        url, name = fresh_postgres(postgres_server)
        try:
            ok = run_one(url, "PostgreSQL") and ok
        finally:
            subprocess.run(["psql", postgres_server, "-qAtc", f"DROP DATABASE IF EXISTS {name} WITH (FORCE)"])
    return ok


def run(binary, database_url, label, bare_binary=None):
    tmp = tempfile.mkdtemp(prefix="saphan-bench-")
    backend_port, proxy_port, saphan_port, bare_port = free_port(), free_port(), free_port(), free_port()
    nginx = saphan = bare = None
    try:
        nginx = start_nginx(tmp, backend_port, proxy_port)
        saphan, base, data = start_saphan(binary, tmp, saphan_port, database_url)
        url_c, headers_c, admin = setup(base, data, backend_port)
        url_a = f"http://127.0.0.1:{backend_port}/data/1"
        url_b = f"http://127.0.0.1:{proxy_port}/data/1"
        paths = [("a", url_a, {}), ("b", url_b, {}), ("c", url_c, headers_c)]
        if bare_binary:
            bare = subprocess.Popen([bare_binary, f"127.0.0.1:{bare_port}", f"http://127.0.0.1:{backend_port}"])
            wait_port(bare_port, bare)
            paths.append(("d", f"http://127.0.0.1:{bare_port}/data/1", {}))
        print(f"\n== exchange gateway benchmark on {label} ({DURATION} s per measurement, 64 connections)")
        best = {name: 0.0 for name, _, _ in paths}
        for round_ in (1, 2):
            for name, url, headers in paths:
                perf = None
                if name == "c" and round_ == 1 and os.environ.get("BENCH_PERF"):
                    perf = subprocess.Popen(["perf", "record", "-F", "499", "-g", "-p", str(saphan.pid),
                                             "-o", os.environ["BENCH_PERF"], "--", "sleep", "4"],
                                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
                rps = wrk(url, headers)
                if perf:
                    perf.wait()
                best[name] = max(best[name], rps)
                print(f"   round {round_} ({name}) {rps:10.0f} req/s", flush=True)
        rate = best["c"] / 2
        p50_a, p99_a, _ = paced(url_a, {}, rate)
        p50_c, p99_c, achieved = paced(url_c, headers_c, rate)
        usage = admin.get(base + "/api/v1/exchange/usage", timeout=30).json()["rows"]
        logged = sum(r["calls"] for r in usage if r["service"].endswith("/API/data"))
        ratio = best["c"] / best["b"]
        added = p50_c - p50_a
        bare_row = ""
        if "d" in best:
            bare_row = (f"| (d) bare proxy on the gateway's HTTP stack, nothing else | {best['d']:.0f} | | |\n\n"
                        f"the stack alone (d)/(b): {best['d'] / best['b']:.2f}; the exchange's own work (c)/(d): "
                        f"{best['c'] / best['d']:.2f}\n")
        print(f"""
| path | peak req/s (wrk, 64 conn) | median ms at {rate:.0f} req/s | p99 ms |
|---|---|---|---|
| (a) direct to the backend | {best['a']:.0f} | {p50_a:.2f} | {p99_a:.2f} |
| (b) nginx reverse proxy | {best['b']:.0f} | | |
| (c) Saphan gateway (token, right, consent, durable log) | {best['c']:.0f} | {p50_c:.2f} | {p99_c:.2f} |
{bare_row}
throughput (c)/(b): {ratio:.2f}  (target >= 0.80)  {'OK' if ratio >= 0.8 else 'BELOW TARGET'}
added median latency (c)-(a) at half of (c)'s peak ({achieved:.0f} req/s achieved): {added:.2f} ms  (target <= 1 ms)  {'OK' if added <= 1.0 else 'ABOVE TARGET'}
calls recorded in the message log during the run: {logged}""")
        return ratio >= 0.8 and added <= 1.0
    finally:
        stop_saphan(saphan)
        if bare is not None:
            bare.terminate()
            bare.wait(timeout=10)
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=10)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default="target/release/saphan")
    parser.add_argument("--postgres", help="also run on PostgreSQL: a server URL such as "
                        "postgres://postgres@127.0.0.1:5432/test (a fresh database is made and dropped)")
    parser.add_argument("--bare", help="the bare_proxy example binary, for row (d)")
    args = parser.parse_args()
    ensure_tools()
    ok = on_each_database(args.postgres, lambda url, label: run(args.bin, url, label, args.bare))
    # The targets are reported, not enforced: these machines are shared and noisy.
    print("\nbench: targets met" if ok else "\nbench: a target was missed (see above)")


if __name__ == "__main__":
    main()
