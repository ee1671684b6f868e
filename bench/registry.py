#!/usr/bin/env python3
"""The registry benchmark (`cargo xtask bench` runs it; or `python3 bench/registry.py --bin
target/release/saphan`).

Person-by-id (GovStack `read` of one person of the demo's civil registry, `person/1.0`) in one
run on this machine:
  (a) served by the registry backend directly, with an exchange assertion minted for the request
      by `saphan exchange assert` (the backend checks it as it checks the gateway's);
  (b) through the exchange: bearer token, the right, the signed assertion, the message log.
Both write the durable audit record of the person's read (their data-usage history); (b) also
writes the exchange's call record. Peak throughput with wrk (2 threads, 64 connections), best of
two alternating rounds. Target: (b) >= 0.8 x (a).
"""
import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import uuid

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import exchange as ex  # noqa: E402  (shared helpers: demo start, admin API, tokens, wrk)

SERVICE = "TH/GOV/DOPA/CIVREG/person-v1"
PATH = "/data/person/1.0/read"


def wrk_post(url, headers, body, tmp):
    script = os.path.join(tmp, f"post-{uuid.uuid4().hex[:6]}.lua")
    with open(script, "w") as f:
        f.write('wrk.method = "POST"\n')
        f.write(f"wrk.body = {json.dumps(body)}\n")
        for k, v in headers.items():
            f.write(f"wrk.headers[{json.dumps(k)}] = {json.dumps(v)}\n")
    args = ["wrk", "-t2", "-c64", f"-d{ex.DURATION}s", "-s", script, url]
    out = subprocess.run(args, capture_output=True, text=True, check=True).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    if re.search(r"Non-2xx or 3xx responses:\s+(\d+)", out) or re.search(r"Socket errors:.*", out):
        sys.exit(f"bench: failures under load at {url}:\n{out}")
    return rps


def mint(binary, data, database_url, consumer, headers, body_file):
    """`saphan exchange assert` for the direct request (valid 60 s: one per round)."""
    env = {**os.environ, "SAPHAN_CONFIG": os.path.join(data, "saphan.toml"), "RUST_LOG": "warn"}
    if database_url:
        env["SAPHAN_DATABASE_URL"] = database_url
    args = [binary, "exchange", "assert", "--service", SERVICE, "--consumer", consumer,
            "--method", "POST", "--path", PATH, "--body", body_file]
    for k, v in headers.items():
        args += ["--header", f"{k}: {v}"]
    out = subprocess.run(args, capture_output=True, text=True, env=env)
    if out.returncode != 0:
        sys.exit(f"bench: saphan exchange assert failed:\n{out.stderr}")
    return out.stdout.strip()


def run(binary, database_url, label):
    tmp = tempfile.mkdtemp(prefix="saphan-bench-registry-")
    port = ex.free_port()
    saphan = None
    try:
        saphan, base, data = ex.start_saphan(binary, tmp, port, database_url)
        admin, call = ex.admin_api(base, data)
        member = f"BENCHR{uuid.uuid4().hex[:6].upper()}"
        call("POST", "/api/v1/exchange/members",
             {"class": "GOV", "code": member, "name_th": member, "name_en": member})
        call("POST", f"/api/v1/exchange/members/GOV/{member}/subsystems", {"code": "APP"})
        consumer = f"TH/GOV/{member}/APP"
        call("POST", "/api/v1/exchange/services/GOV/DOPA/CIVREG/person-v1/rights",
             {"grantee": f"GOV/{member}/APP", "method": "POST", "path": PATH,
              "legal_basis": "benchmark"})
        bearer = ex.consumer_token(base, call, member, "APP")
        logins = json.load(open(os.path.join(data, "demo-logins.json")))
        nid = next(l["identifier"] for l in logins
                   if not l.get("nationality") and re.fullmatch(r"\d{13}", l.get("identifier", "")))
        body = json.dumps({"query": {"content": {"nationalId": nid}}})
        body_file = os.path.join(tmp, "body.json")
        with open(body_file, "w") as f:
            f.write(body)
        through = {"Authorization": f"Bearer {bearer}", "X-Road-Client": consumer,
                   "Content-Type": "application/json"}
        url_b = f"{base}/r1/{SERVICE}{PATH}"
        check = ex.requests.post(url_b, data=body, headers=through, timeout=30)
        if check.status_code != 200 or check.json()["content"]["nationalId"] != nid:
            sys.exit(f"bench setup: a read through the exchange -> {check.status_code} {check.text[:300]}")
        # What the gateway forwards, fixed: the direct request carries exactly these.
        direct = {"X-Road-Client": consumer, "X-Road-Id": "bench-direct", "X-Road-Service": SERVICE,
                  "Accept": "application/json", "Content-Type": "application/json",
                  "X-Request-Id": "bench-direct", "Accept-Encoding": "identity"}
        url_a = f"{base}/registry-backend{PATH}"
        print(f"\n== registry benchmark on {label}: person-by-id ({ex.DURATION} s per measurement, 64 connections)")
        best = {"a": 0.0, "b": 0.0}
        for round_ in (1, 2):
            jws = mint(binary, data, database_url, consumer, direct, body_file)
            signed = {**direct, "Saphan-Exchange-Assertion": jws}
            # Accept-Encoding is among the headers signed: Python's HTTP client would add one.
            check = ex.requests.post(url_a, data=body, headers=signed, timeout=30)
            if check.status_code != 200:
                sys.exit(f"bench setup: a direct read -> {check.status_code} {check.text[:300]}")
            for name, url, headers in (("a", url_a, signed), ("b", url_b, through)):
                rps = wrk_post(url, headers, body, tmp)
                best[name] = max(best[name], rps)
                print(f"   round {round_} ({name}) {rps:10.0f} req/s", flush=True)
        ratio = best["b"] / best["a"]
        print(f"""
| path | peak req/s (wrk, 64 conn) |
|---|---|
| (a) the registry backend directly (assertion checked, read audited) | {best['a']:.0f} |
| (b) through the exchange (token, right, assertion, message log) | {best['b']:.0f} |

throughput (b)/(a): {ratio:.2f}  (target >= 0.80)  {'OK' if ratio >= 0.8 else 'BELOW TARGET'}""")
        return ratio >= 0.8
    finally:
        ex.stop_saphan(saphan)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default="target/release/saphan")
    parser.add_argument("--postgres", help="also run on PostgreSQL: a server URL such as "
                        "postgres://postgres@127.0.0.1:5432/test (a fresh database is made and dropped)")
    args = parser.parse_args()
    ex.ensure_tools()
    ok = ex.on_each_database(args.postgres, lambda url, label: run(args.bin, url, label))
    print("\nbench: targets met" if ok else "\nbench: a target was missed (see above)")


if __name__ == "__main__":
    main()
