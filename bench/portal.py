#!/usr/bin/env python3
"""The portal benchmark (`cargo xtask bench` runs it; or `python3 bench/portal.py --bin
target/release/saphan`).

Portal pages under load from 200 concurrent users (hey, 200 connections, each asking again as
soon as it is answered), in one run on this machine:
  (a) the page served by Saphan (the catalogue snapshot, the template, the language choice);
  (b) the same page's HTML, saved from Saphan a moment before, served as a static file by nginx.
Pages: the catalogue (`/services?lang=th`), one procedure's manual
(`/services/food-business-permit?lang=th`), and a signed-in citizen's application status page
(`/applications/{id}`: the session, the application, its timeline). Reported: throughput and p99 latency of each, and (a) against (b). The issue sets
no target for these ratios; they are printed for the planners.
"""
import argparse
import os
import re
import shutil
import subprocess
import sys
import tempfile

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import exchange as ex  # noqa: E402  (shared helpers: tools, demo start, ports)

USERS = 200
PAGES = [
    ("catalogue", "/services?lang=th"),
    ("manual", "/services/food-business-permit?lang=th"),
]


def start_static(tmp, port, files):
    """nginx serving `files` ({name: html}) from a directory, as a CDN or web server would."""
    root = os.path.join(tmp, "static")
    os.makedirs(root, exist_ok=True)
    for name, html in files.items():
        with open(os.path.join(root, f"{name}.html"), "wb") as f:
            f.write(html)
    for d in ("cb", "pt", "fc", "uw", "sc"):
        os.makedirs(os.path.join(tmp, d), exist_ok=True)
    user = "user root root;" if os.geteuid() == 0 else ""
    conf = os.path.join(tmp, "nginx-static.conf")
    with open(conf, "w") as f:
        f.write(f"""{user}
worker_processes 2;
daemon off;
pid {tmp}/nginx-static.pid;
error_log {tmp}/nginx-static-error.log warn;
events {{ worker_connections 4096; }}
http {{
  access_log off;
  client_body_temp_path {tmp}/cb; proxy_temp_path {tmp}/pt; fastcgi_temp_path {tmp}/fc;
  uwsgi_temp_path {tmp}/uw; scgi_temp_path {tmp}/sc;
  keepalive_requests 1000000;
  server {{
    listen 127.0.0.1:{port};
    root {root};
    default_type text/html;
    location / {{ try_files $uri =404; }}
  }}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", conf, "-p", tmp], stderr=subprocess.DEVNULL)
    ex.wait_port(port, proc)
    return proc


def load(url, cookie=None):
    """hey with USERS concurrent users for the benchmark's duration: req/s and p99 in ms."""
    headers = ["-H", f"Cookie: {cookie}"] if cookie else []
    out = subprocess.run(["hey", "-z", f"{ex.DURATION}s", "-c", str(USERS), *headers, url],
                         capture_output=True, text=True, check=True).stdout
    codes = re.findall(r"\[(\d{3})\]\s+(\d+) responses", out)
    if not codes or any(c != "200" for c, _ in codes):
        sys.exit(f"bench: non-200 answers under load at {url}:\n{out}")
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p99 = float(re.search(r"99% in ([\d.]+) secs", out).group(1)) * 1000
    return rps, p99


def signed_in_application(base, data):
    """Signs the demo's password-only citizen in and starts a certificate-of-residence
    application with the registry reads: the status page's path and the session cookie."""
    import json
    login = next(l for l in json.load(open(os.path.join(data, "demo-logins.json")))
                 if l["label"] == "citizen (password only)")
    http = ex.requests.Session()
    page = http.get(base + "/signin", timeout=30)
    csrf = re.search(r'name="csrf" value="([0-9a-f]+)"', page.text).group(1)
    http.post(base + "/signin", data={"csrf": csrf, "identifier": login["identifier"],
                                      "nationality": "", "password": login["password"]}, timeout=30)
    session = http.cookies.get("saphan_session")
    if not session:
        sys.exit("bench setup: the citizen could not sign in")
    http.get(base + "/services/residence-certificate/apply", timeout=30)
    started = http.post(base + "/services/residence-certificate/apply?lang=th",
                        data={"csrf": http.cookies.get("saphan_csrf"), "consent": "yes"}, timeout=60)
    found = re.search(r"/applications/([0-9a-f-]{36})/", started.url)
    if not found:
        sys.exit(f"bench setup: no application started ({started.status_code} {started.url})")
    return f"/applications/{found.group(1)}?lang=th", f"saphan_session={session}"


def run(binary, database_url, label):
    tmp = tempfile.mkdtemp(prefix="saphan-bench-portal-")
    saphan = nginx = None
    try:
        saphan, base, data = ex.start_saphan(binary, tmp, ex.free_port(), database_url)
        status_path, cookie = signed_in_application(base, data)
        pages = PAGES + [("status", status_path)]
        files = {}
        for name, path in pages:
            page = ex.requests.get(base + path, headers={"Cookie": cookie}, timeout=30)
            if page.status_code != 200 or "<html" not in page.text:
                sys.exit(f"bench setup: {path} -> {page.status_code}")
            files[name] = page.content
        static_port = ex.free_port()
        nginx = start_static(tmp, static_port, files)
        print(f"\n== portal benchmark on {label}: {USERS} concurrent users, {ex.DURATION} s per measurement")
        rows = []
        for name, path in pages:
            best = {}
            for round_ in (1, 2):
                for who, url in (("saphan", base + path), ("nginx", f"http://127.0.0.1:{static_port}/{name}.html")):
                    rps, p99 = load(url, cookie if who == "saphan" else None)
                    print(f"   {name} round {round_} {who:6} {rps:9.0f} req/s  p99 {p99:7.1f} ms", flush=True)
                    old = best.get(who)
                    if old is None or rps > old[0]:
                        best[who] = (rps, p99)
            rows.append((name, path, len(files[name]), best["saphan"], best["nginx"]))
        print("""
| page | size | (a) Saphan req/s | p99 ms | (b) nginx static req/s | p99 ms | throughput (a)/(b) | p99 (a)/(b) |
|---|---|---|---|---|---|---|---|""")
        for name, path, size, (a_rps, a_p99), (b_rps, b_p99) in rows:
            print(f"| {name} `{path}` | {size / 1024:.1f} KiB | {a_rps:.0f} | {a_p99:.1f} | {b_rps:.0f} | {b_p99:.1f} "
                  f"| {a_rps / b_rps:.2f} | {a_p99 / b_p99:.1f} |")
        return True
    finally:
        if nginx is not None:
            nginx.terminate()
            nginx.wait(timeout=30)
        ex.stop_saphan(saphan)
        shutil.rmtree(tmp, ignore_errors=True)


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--bin", default="target/release/saphan")
    parser.add_argument("--postgres", help="also run on PostgreSQL: a server URL such as "
                        "postgres://postgres@127.0.0.1:5432/test (a fresh database is made and dropped)")
    args = parser.parse_args()
    ex.ensure_tools()
    ex.on_each_database(args.postgres, lambda url, label: run(args.bin, url, label))
    print("\nbench: portal figures printed (no target set)")


if __name__ == "__main__":
    main()
