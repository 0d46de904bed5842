"""TrueBond-like backend used by the drill stack and the tests.

It answers the health endpoints of the rollback plan with its version in the body,
takes a moment to start, and exits cleanly on SIGTERM. Each release's behaviour comes
from release.json, which the drill stack writes per git tag, so that one release can
be healthy and another broken in a way that health checks catch.
"""

import json
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
STARTED_AT = time.time()


def load_release():
    with open(os.path.join(HERE, "release.json"), encoding="utf-8") as handle:
        return json.load(handle)


RELEASE = load_release()
VERSION = RELEASE["version"]
AUTH_BROKEN = bool(RELEASE.get("auth_broken", False))
REQUEST_COUNTS = {}
COUNTS_LOCK = threading.Lock()


def feature_flags():
    """Return the *_ENABLED variables of the environment as booleans."""
    flags = {}
    for name, value in sorted(os.environ.items()):
        if name.endswith("_ENABLED"):
            flags[name] = value.strip().lower() in ("1", "true", "yes", "on")
    return flags


class Handler(BaseHTTPRequestHandler):
    server_version = "truebond-backend/" + VERSION

    def log_message(self, format, *args):
        sys.stdout.write(
            "{} {}\n".format(
                time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), format % args
            )
        )

    def send_json(self, code, body):
        payload = json.dumps(body).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)
        with COUNTS_LOCK:
            key = (self.path.split("?")[0], code)
            REQUEST_COUNTS[key] = REQUEST_COUNTS.get(key, 0) + 1

    def send_metrics(self):
        lines = [
            "# HELP http_requests_total HTTP requests answered, by path and status code.",
            "# TYPE http_requests_total counter",
        ]
        with COUNTS_LOCK:
            for (path, code), count in sorted(REQUEST_COUNTS.items()):
                lines.append(
                    f'http_requests_total{{path="{path}",code="{code}"}} {count}'
                )
        payload = ("\n".join(lines) + "\n").encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def do_GET(self):
        path = self.path.split("?")[0]
        if path == "/api/health":
            self.send_json(200, {"status": "ok", "version": VERSION})
        elif path == "/api/health/detailed":
            auth = "failing" if AUTH_BROKEN else "ok"
            status = "degraded" if AUTH_BROKEN else "ok"
            self.send_json(
                503 if AUTH_BROKEN else 200,
                {
                    "status": status,
                    "version": VERSION,
                    "uptime_seconds": round(time.time() - STARTED_AT, 1),
                    "checks": {"http": "ok", "auth": auth},
                },
            )
        elif path == "/api/auth/health":
            if AUTH_BROKEN:
                self.send_json(
                    500,
                    {
                        "status": "error",
                        "version": VERSION,
                        "error": "token signing key could not be loaded",
                    },
                )
            else:
                self.send_json(200, {"status": "ok", "version": VERSION})
        elif path == "/api/features":
            self.send_json(200, {"version": VERSION, "features": feature_flags()})
        elif path == "/metrics":
            self.send_metrics()
        elif path == "/":
            # Real deployments often redirect the bare host to the web app.
            self.send_response(302)
            self.send_header("Location", "/api/health")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_json(404, {"status": "not found", "path": path})


def main():
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "18080"))
    startup_delay = float(os.environ.get("STARTUP_DELAY_SECONDS", "0.5"))
    print(f"truebond-backend {VERSION} starting on {host}:{port}", flush=True)
    # A real service loads configuration and connects to its stores before it listens.
    time.sleep(startup_delay)
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True

    def stop(signum, frame):
        print(
            f"truebond-backend {VERSION} received signal {signum}, stopping",
            flush=True,
        )
        threading.Thread(target=server.shutdown, daemon=True).start()

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"truebond-backend {VERSION} listening", flush=True)
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    print(f"truebond-backend {VERSION} stopped", flush=True)


if __name__ == "__main__":
    main()
