"""TrueBond-like backend used by the drill stack and the tests.

It serves the health endpoints of the rollback plan with its version in the body,
takes a moment to start, and exits cleanly on SIGTERM. Each release's behaviour comes
from release.json, which the drill stack writes per git tag, so that one release can
be healthy and another broken in a way that health checks catch.

Environment variables for tests, all off when unset (the drill stack sets none):

- RELEASE_FILE: path of the release.json to load instead of the one beside this
  script, so that the app can run straight from the source tree.
- INDUCED_ERROR_RATE (fraction from 0 to 1) and INDUCED_LATENCY_SECONDS: setting
  either one adds /api/messages and the paths below it. Each request there first
  waits INDUCED_LATENCY_SECONDS, then responds with 500 to that fraction of requests.
  The errors are spread evenly rather than drawn at random: a request fails when
  the errors so far would otherwise fall below the fraction of the requests so
  far. Any run of N requests then has within one of N times the fraction of
  errors, so that a test sees the same rate in every window.
- EXTENDED_METRICS: when true, /metrics also exposes the histogram
  http_request_duration_seconds (labels path and code) and the gauge
  process_start_time_seconds.
"""

import json
import math
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

HERE = os.path.dirname(os.path.abspath(__file__))
STARTED_AT = time.time()


# Upper bounds of the histogram buckets in seconds. They include 1, 2 and 5, the
# response time thresholds of the rollback decision matrix, because
# histogram_quantile interpolates inside a bucket and could otherwise place a
# percentile on the wrong side of a threshold.
DURATION_BUCKETS = (0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2, 5, 10)


def load_release():
    path = os.environ.get("RELEASE_FILE") or os.path.join(HERE, "release.json")
    with open(path, encoding="utf-8") as handle:
        return json.load(handle)


def read_number(name, minimum, maximum, unit):
    """Return the environment variable name as a float, or None when it is unset.

    Exit with a message naming the variable and its value when the value is not a
    number from minimum to maximum.
    """
    text = os.environ.get(name)
    if text is None or text.strip() == "":
        return None
    try:
        value = float(text)
    except ValueError:
        value = math.nan
    if not (math.isfinite(value) and minimum <= value <= maximum):
        sys.exit(f"truebond-backend: {name} must be {unit}, got {text!r}")
    return value


RELEASE = load_release()
VERSION = RELEASE["version"]
AUTH_BROKEN = bool(RELEASE.get("auth_broken", False))
REQUEST_COUNTS = {}
COUNTS_LOCK = threading.Lock()

INDUCED_ERROR_RATE = read_number("INDUCED_ERROR_RATE", 0, 1, "a fraction from 0 to 1")
INDUCED_LATENCY_SECONDS = read_number(
    "INDUCED_LATENCY_SECONDS", 0, math.inf, "a number of seconds, 0 or more"
)
MESSAGES_ENABLED = not (INDUCED_ERROR_RATE is None and INDUCED_LATENCY_SECONDS is None)
EXTENDED_METRICS = os.environ.get("EXTENDED_METRICS", "").strip().lower() in (
    "1",
    "true",
    "yes",
    "on",
)
# (path, code) -> (counts per bucket of DURATION_BUCKETS, sum of seconds, count)
DURATIONS = {}
# Requests to /api/messages and the 500s induced among them, under COUNTS_LOCK.
MESSAGES_INDUCED = {"requests": 0, "errors": 0}


def feature_flags():
    """Return the *_ENABLED variables of the environment as booleans."""
    flags = {}
    for name, value in sorted(os.environ.items()):
        if name.endswith("_ENABLED"):
            flags[name] = value.strip().lower() in ("1", "true", "yes", "on")
    return flags


def observe_duration(key, seconds):
    """Add one request duration to the histogram of key. Call with COUNTS_LOCK held."""
    buckets, total, count = DURATIONS.get(key, ([0] * len(DURATION_BUCKETS), 0.0, 0))
    for index, bound in enumerate(DURATION_BUCKETS):
        if seconds <= bound:
            buckets[index] += 1
    DURATIONS[key] = (buckets, total + seconds, count + 1)


def extended_metric_lines():
    """Return the exposition lines of EXTENDED_METRICS. Call with COUNTS_LOCK held."""
    lines = [
        (
            "# HELP http_request_duration_seconds Time from reading a request to"
            " sending its response, by path and status code."
        ),
        "# TYPE http_request_duration_seconds histogram",
    ]
    for (path, code), (buckets, total, count) in sorted(DURATIONS.items()):
        labels = f'path="{path}",code="{code}"'
        for bound, bucket_count in zip(DURATION_BUCKETS, buckets):
            lines.append(
                f'http_request_duration_seconds_bucket{{{labels},le="{bound}"}} '
                f"{bucket_count}"
            )
        lines.append(
            f'http_request_duration_seconds_bucket{{{labels},le="+Inf"}} {count}'
        )
        lines.append(f"http_request_duration_seconds_sum{{{labels}}} {total!r}")
        lines.append(f"http_request_duration_seconds_count{{{labels}}} {count}")
    lines.extend(
        [
            (
                "# HELP process_start_time_seconds Start time of the process since"
                " the Unix epoch in seconds."
            ),
            "# TYPE process_start_time_seconds gauge",
            f"process_start_time_seconds {STARTED_AT!r}",
        ]
    )
    return lines


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
            if EXTENDED_METRICS:
                observe_duration(key, time.perf_counter() - self.request_started)

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
            if EXTENDED_METRICS:
                lines.extend(extended_metric_lines())
        payload = ("\n".join(lines) + "\n").encode("utf-8")
        self.send_response(200)
        self.send_header("Content-Type", "text/plain; version=0.0.4")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def send_messages(self):
        """Respond to /api/messages with the induced latency and error rate."""
        if INDUCED_LATENCY_SECONDS:
            time.sleep(INDUCED_LATENCY_SECONDS)
        with COUNTS_LOCK:
            MESSAGES_INDUCED["requests"] += 1
            failing = MESSAGES_INDUCED["errors"] < (
                (INDUCED_ERROR_RATE or 0) * MESSAGES_INDUCED["requests"]
            )
            if failing:
                MESSAGES_INDUCED["errors"] += 1
        if failing:
            self.send_json(
                500,
                {
                    "status": "error",
                    "version": VERSION,
                    "error": f"induced error, INDUCED_ERROR_RATE={INDUCED_ERROR_RATE}",
                },
            )
        else:
            self.send_json(200, {"status": "ok", "version": VERSION, "messages": []})

    def do_GET(self):
        self.request_started = time.perf_counter()
        path = self.path.split("?")[0]
        if MESSAGES_ENABLED and (
            path == "/api/messages" or path.startswith("/api/messages/")
        ):
            self.send_messages()
        elif path == "/api/health":
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
