#!/usr/bin/env python3
"""A webhook receiver for the demo: checks each request's Standard Webhooks signature
(HMAC-SHA256 of "<webhook-id>.<webhook-timestamp>.<body>" keyed with the whsec_ secret,
timestamps within 5 minutes) and prints one line per event to stdout.

Usage: webhook-receiver.py PORT SECRET_FILE   (listens on 127.0.0.1:PORT)
"""

import base64
import hashlib
import hmac
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

PORT = int(sys.argv[1])
SECRET = open(sys.argv[2]).read().strip()
KEY = base64.b64decode(SECRET.removeprefix("whsec_"))


def verified(headers, body: bytes) -> bool:
    msg_id = headers.get("webhook-id", "")
    stamp = headers.get("webhook-timestamp", "")
    if not stamp.isdigit() or abs(time.time() - int(stamp)) > 300:
        return False
    expected = base64.b64encode(
        hmac.new(KEY, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    ).decode()
    offered = [s.split(",", 1)[1] for s in headers.get("webhook-signature", "").split() if s.startswith("v1,")]
    return any(hmac.compare_digest(expected, s) for s in offered)


class Handler(BaseHTTPRequestHandler):
    def do_POST(self):
        body = self.rfile.read(int(self.headers.get("content-length", "0")))
        if not verified(self.headers, body):
            print(f"REFUSED {self.headers.get('webhook-id')}: bad signature", flush=True)
            self.send_response(400)
            self.end_headers()
            return
        event = json.loads(body)
        data = event.get("data", {})
        print(
            f"{event.get('timestamp')} {event.get('type'):<20} tenant={data.get('tenant')}"
            f" phase={data.get('phase')} id={self.headers['webhook-id']} (signature verified)",
            flush=True,
        )
        self.send_response(204)
        self.end_headers()

    def log_message(self, *_):
        pass


ThreadingHTTPServer(("127.0.0.1", PORT), Handler).serve_forever()
