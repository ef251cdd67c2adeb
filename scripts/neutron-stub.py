#!/usr/bin/python3
"""neutron-stub.py -- the smallest "neutron" that lets nova work with --nic none.

Nova (Zed) has no neutron-less mode: every GET /servers/{id} and
/servers/detail calls neutron `GET /v2.0/ports?device_id=...` (security-group
bindings in the server view), and nova-compute calls list_ports when it
deletes an instance and in the _heal_instance_info_cache periodic task.
This stub answers every collection GET with an empty list, every DELETE with
204 and everything else with a neutron-style 404, and logs each request.

    neutron-stub.py [--host 127.0.0.1] [--port 9696] [--log FILE]
Registered in keystone as service type 'network' by all-in-one.sh (the
all-in-one cloud has no neutron; instances boot with --nic none).
"""
import argparse
import json
import sys
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from urllib.parse import urlsplit

LOG = sys.stderr


class Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, fmt, *args):  # one line per request
        LOG.write("%s %s\n" % (time.strftime("%Y-%m-%dT%H:%M:%S"), fmt % args))
        LOG.flush()

    def _send(self, code, body=None):
        data = b"" if body is None else json.dumps(body).encode()
        self.send_response(code)
        if body is not None:
            self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.send_header("X-Openstack-Request-Id", "req-neutron-stub")
        self.end_headers()
        self.wfile.write(data)

    def _drain(self):
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            self.rfile.read(n)

    def _notfound(self, what):
        self._send(404, {"NeutronError": {"type": "HTTPNotFound", "message": f"{what} not found (neutron-stub)", "detail": ""}})

    def do_GET(self):
        path = urlsplit(self.path).path.rstrip("/")
        if path in ("", "/"):
            return self._send(200, {"versions": [{"id": "v2.0", "status": "CURRENT",
                                 "links": [{"rel": "self", "href": "http://127.0.0.1:9696/v2.0/"}]}]})
        parts = [p for p in path.split("/") if p]
        if parts[0] == "v2.0":
            parts = parts[1:]
        if parts and parts[-1].endswith(".json"):
            parts[-1] = parts[-1][:-5]
        if len(parts) == 1:          # collection: /v2.0/ports, /v2.0/security-groups, ...
            return self._send(200, {parts[0].replace("-", "_"): []})
        if parts and parts[0] == "quotas":
            return self._send(200, {"quota": {}})
        return self._notfound("/".join(parts))

    def do_DELETE(self):
        self._drain()
        self._send(204)

    def do_POST(self):
        self._drain()
        self._notfound(self.path)

    do_PUT = do_POST


def main():
    global LOG
    ap = argparse.ArgumentParser()
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, default=9696)
    ap.add_argument("--log")
    a = ap.parse_args()
    if a.log:
        LOG = open(a.log, "a")
    ThreadingHTTPServer((a.host, a.port), Handler).serve_forever()


if __name__ == "__main__":
    main()
