#!/usr/bin/env python3
"""A provider backend for the exchange tests: a real, separate HTTP/1.1 process.

    python3 backend.py PORT

Modes, chosen by the first path segment (anything else is `echo`):

  /echo/...            200, JSON {method, path, query, headers: [[name, value], ...], body_sha256, body_length}
  /persons/...         same as echo (the path an OpenAPI-described service uses)
  /redirect            302, Location: http://127.0.0.1:PORT/echo/followed
  /hang?secs=N         sleeps N seconds, then answers like echo
  /download?mb=N       streams N MiB of the deterministic pattern (see `pattern_block`)
  /upload              reads the body in chunks, answers {sha256, length}
  /cookie              echo, plus `Set-Cookie: backend_session=secret` and `X-Visible: 1`
  /hop                 echo, plus `Connection: X-Secret-Hop`, `X-Secret-Hop: 1`, `Keep-Alive`, `X-Visible: 1`
  /notfound            404 {"error": "no such record"} (the provider's own error)

It prints `READY <port>` on stdout once listening.
"""

import hashlib
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import parse_qs, urlsplit

MIB = 1024 * 1024


def pattern_block() -> bytes:
    """1 MiB of deterministic, incompressible bytes: SHA-256 in counter mode."""
    out = bytearray()
    counter = 0
    while len(out) < MIB:
        out += hashlib.sha256(b"saphan-exchange-test-%d" % counter).digest()
        counter += 1
    return bytes(out[:MIB])


BLOCK = pattern_block()


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"
    server_version = "TestBackend/1.0"

    def log_message(self, fmt, *args):  # quiet
        pass

    # -- request bodies ---------------------------------------------------------------------

    def _body_chunks(self):
        """Yields the request body in pieces: chunked transfer coding or Content-Length."""
        te = (self.headers.get("Transfer-Encoding") or "").lower()
        if "chunked" in te:
            while True:
                line = self.rfile.readline(65537)
                if not line:
                    return
                size = int(line.split(b";", 1)[0].strip() or b"0", 16)
                if size == 0:
                    # trailers until an empty line
                    while True:
                        t = self.rfile.readline(65537)
                        if t in (b"\r\n", b"\n", b""):
                            return
                remaining = size
                while remaining:
                    piece = self.rfile.read(min(remaining, MIB))
                    if not piece:
                        return
                    remaining -= len(piece)
                    yield piece
                self.rfile.readline(3)  # CRLF after the chunk
        else:
            remaining = int(self.headers.get("Content-Length") or 0)
            while remaining:
                piece = self.rfile.read(min(remaining, MIB))
                if not piece:
                    return
                remaining -= len(piece)
                yield piece

    def _drain(self):
        h = hashlib.sha256()
        n = 0
        for piece in self._body_chunks():
            h.update(piece)
            n += len(piece)
        return h.hexdigest(), n

    # -- answers ----------------------------------------------------------------------------

    def _json(self, status, value, extra=()):
        data = json.dumps(value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, v in extra:
            self.send_header(name, v)
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(data)

    def _echo(self, status=200, extra=(), digest=None):
        sha, n = digest if digest else self._drain()
        url = urlsplit(self.path)
        self._json(
            status,
            {
                "method": self.command,
                "path": url.path,
                "query": url.query,
                "headers": [[k, v] for k, v in self.headers.items()],
                "body_sha256": sha,
                "body_length": n,
            },
            extra,
        )

    def _handle(self):
        url = urlsplit(self.path)
        first = url.path.strip("/").split("/", 1)[0]
        query = parse_qs(url.query)
        if first == "redirect":
            self._drain()
            port = self.server.server_address[1]
            self.send_response(302)
            self.send_header("Location", f"http://127.0.0.1:{port}/echo/followed")
            self.send_header("Content-Length", "0")
            self.end_headers()
        elif first == "hang":
            digest = self._drain()
            time.sleep(float(query.get("secs", ["30"])[0]))
            try:
                self._echo(digest=digest)
            except OSError:
                pass
        elif first == "download":
            self._drain()
            mb = int(query.get("mb", ["1"])[0])
            self.send_response(200)
            self.send_header("Content-Type", "application/octet-stream")
            self.send_header("Content-Length", str(mb * MIB))
            self.end_headers()
            try:
                for _ in range(mb):
                    self.wfile.write(BLOCK)
            except OSError:
                pass
        elif first == "upload":
            sha, n = self._drain()
            self._json(200, {"sha256": sha, "length": n})
        elif first == "hop":
            self._echo(
                extra=(
                    ("Connection", "X-Secret-Hop"),
                    ("X-Secret-Hop", "1"),
                    ("Keep-Alive", "timeout=5"),
                    ("X-Visible", "1"),
                )
            )
        elif first == "cookie":
            self._echo(extra=(("Set-Cookie", "backend_session=secret; Path=/"), ("X-Visible", "1")))
        elif first == "notfound":
            self._drain()
            self._json(404, {"error": "no such record"})
        else:
            self._echo()

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = do_HEAD = do_OPTIONS = _handle


def main():
    port = int(sys.argv[1]) if len(sys.argv) > 1 else 0
    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    server.daemon_threads = True
    print(f"READY {server.server_address[1]}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
