#!/usr/bin/env python3
"""A deliberately BROKEN relay in front of the real service: a test tool for the Postman suite.

It proves that collection.json fails against a service that exposes keys or never resets:

  --mode unmask   /api/audit answers show full keys: every `masked_key` such as `key_AB...` is
                  replaced by the known full key with that prefix (`key_ABC123`).
  --mode noreset  key_YST789 (spent yesterday, see fixtures.sql) is refused like the legacy
                  service did, whose counters never reset: the metered routes answer 429 with the
                  headers of a real 429 (taken from the service's own answer, rewritten to "spent"),
                  and /api/usage reports yesterday's count as today's.
  --mode pass     relays unchanged (shows that the relay itself breaks nothing).

Usage: broken_relay.py --mode MODE --upstream http://127.0.0.1:PORT [--port N]
It prints `listening on http://127.0.0.1:N` once it accepts connections. Standard library only.
Never point it at anything but a local test service.
"""

from __future__ import annotations

import argparse
import calendar
import http.client
import json
import math
import sys
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

# The keys the suite knows (sample data and fixtures.sql), by their 6-character display prefix.
KNOWN_KEYS = ["key_ABC123", "key_DEF456", "key_YST789", "key_EXP789", "key_RVK789"]
BY_PREFIX = {key[:6]: key for key in KNOWN_KEYS}
NEVER_RESETS = "key_YST789"
METERED = ("/api/export", "/api/import", "/api/audit")
HOP_BY_HOP = {
    "connection",
    "keep-alive",
    "proxy-authenticate",
    "proxy-authorization",
    "te",
    "trailers",
    "transfer-encoding",
    "upgrade",
    "content-length",
}


def presented_key(headers) -> str | None:
    value = (headers.get("X-API-Key") or "").strip()
    if value:
        return value
    scheme, _, token = (headers.get("Authorization") or "").strip().partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return None


def rfc3339(seconds: int) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(seconds))


def unmask_audit(body: bytes) -> bytes:
    """What a service that forgot to mask would answer."""
    doc = json.loads(body)
    for row in doc.get("data") or []:
        masked = row.get("masked_key") or ""
        if masked.endswith("...") and masked[:6] in BY_PREFIX:
            row["masked_key"] = BY_PREFIX[masked[:6]]
    return json.dumps(doc, separators=(",", ":")).encode()


def never_reset_refusal(status: int, headers: list[tuple[str, str]]) -> tuple[int, list, bytes]:
    """Turn the service's answer for a key it has just reset into the legacy 429: the same header
    set as a real 429 (X-RateLimit-*, RateLimit-Policy, RateLimit, Retry-After), but spent."""
    found = {name.lower(): value for name, value in headers}
    limit = int(found.get("x-ratelimit-limit", "5"))
    reset = int(found.get("x-ratelimit-reset", str((int(time.time()) // 86400 + 1) * 86400)))
    to_reset = max(1, math.ceil(reset - time.time()))
    out = [
        (n, v)
        for n, v in headers
        if n.lower()
        not in {
            "x-ratelimit-remaining",
            "x-ratelimit-used",
            "ratelimit",
            "content-type",
            "retry-after",
        }
    ]
    out += [
        ("Content-Type", "application/json"),
        ("X-RateLimit-Remaining", "0"),
        ("X-RateLimit-Used", str(limit)),
        ("RateLimit", f'"daily";r=0;t={to_reset}'),
        ("Retry-After", str(to_reset)),
    ]
    body = {
        "error": {
            "code": "quota_exceeded",
            "message": f"Daily quota of {limit} requests is used up. It resets at 00:00 UTC, "
            f"{rfc3339(reset)} (in {to_reset} seconds).",
            "reset_at": rfc3339(reset),
            "limit": limit,
        }
    }
    return 429, out, json.dumps(body, separators=(",", ":")).encode()


def never_reset_usage(body: bytes) -> bytes:
    """/api/usage as a never-resetting service sees it: yesterday's spent count is still today's."""
    doc = json.loads(body)
    if "limit" in doc:
        doc["used"] = doc["limit"]
        doc["remaining"] = 0
        try:
            parsed = time.strptime(doc.get("window_start", ""), "%Y-%m-%dT%H:%M:%SZ")
            start = calendar.timegm(parsed)
        except ValueError:
            start = None
        if start is not None:  # the stored window is yesterday's, and its reset already passed
            doc["window_start"] = rfc3339(start - 86400)
            doc["reset_at"] = rfc3339(start)
            doc["reset_in_seconds"] = 0
    return json.dumps(doc, separators=(",", ":")).encode()


class Relay(BaseHTTPRequestHandler):
    mode = "pass"
    upstream: urllib.parse.SplitResult

    def log_message(self, fmt, *args):  # quiet: newman prints what matters
        pass

    def _relay(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else None
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP | {"host"}}
        conn = http.client.HTTPConnection(self.upstream.hostname, self.upstream.port, timeout=30)
        try:
            conn.request(self.command, self.path, body=body, headers=headers)
            response = conn.getresponse()
            status, payload = response.status, response.read()
            out_headers = [(n, v) for n, v in response.getheaders() if n.lower() not in HOP_BY_HOP]
        finally:
            conn.close()

        path = urllib.parse.urlsplit(self.path).path
        if self.mode == "unmask" and path == "/api/audit" and status == 200:
            payload = unmask_audit(payload)
        elif self.mode == "noreset" and presented_key(self.headers) == NEVER_RESETS:
            if path in METERED and status == 200:
                status, out_headers, payload = never_reset_refusal(status, out_headers)
            elif path == "/api/usage" and status == 200:
                payload = never_reset_usage(payload)

        self.send_response(status)
        for name, value in out_headers:
            if name.lower() not in {"date", "server"}:
                self.send_header(name, value)
        self.send_header("Content-Length", str(len(payload)))
        self.send_header("Connection", "close")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(payload)

    do_GET = do_POST = do_PUT = do_DELETE = do_HEAD = do_PATCH = _relay


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mode", choices=["unmask", "noreset", "pass"], required=True)
    parser.add_argument("--upstream", required=True, help="e.g. http://127.0.0.1:18555")
    parser.add_argument("--port", type=int, default=0, help="0: any free port")
    args = parser.parse_args(argv)
    upstream = urllib.parse.urlsplit(args.upstream)
    if upstream.hostname not in {"127.0.0.1", "localhost", "::1"}:
        parser.error("the relay is a local test tool: --upstream must be a loopback address")
    handler = type("ModeRelay", (Relay,), {"mode": args.mode, "upstream": upstream})
    server = ThreadingHTTPServer(("127.0.0.1", args.port), handler)
    server.daemon_threads = True
    print(
        f"listening on http://127.0.0.1:{server.server_address[1]} (mode {args.mode})", flush=True
    )
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
