"""TrueBond-like backend used by the drill stack and the tests.

It serves the health endpoints of the rollback plan with its version in the body,
takes a moment to start, and exits cleanly on SIGTERM. Each release's behaviour comes
from release.json, which the drill stack writes per git tag, so that one release can
be healthy and another broken in a way that health checks catch.

Data stores: with MONGODB_URI and REDIS_URL set (the drill stack sets both in
.env.production), users and messages live in MongoDB, and sessions, profiles and
counters in Redis (stores.py). The clients connect on first use, so that a store that
is down shows up as a failing check in /api/health/detailed and as 503 responses, not
as a crash. A release whose release.json has "migrates": true migrates the schema at
start (stores.MIGRATION_ID). Without the two variables the app runs without stores,
and the store checks say "not configured".

API on top of the health endpoints, JSON bodies:

- POST /api/auth/signup {email, password, name}: 201 {status, user_id}, 409 when the
  email is taken.
- POST /api/auth/login {email, password}: 200 {status, token}, 401 on a wrong email
  or password. The token is a Redis session with a TTL of stores.SESSION_TTL_SECONDS.
  Both respond with 500 in a release whose auth is broken.
- POST /api/messages {room, text} with "Authorization: Bearer TOKEN": 201 {status, id}.
- GET /api/search?q=TEXT&room=ROOM with the Bearer header: 200 {status, results},
  messages whose text contains q (case-insensitive), newest first, at most 50.
- GET /api/ws?token=TOKEN: a WebSocket (RFC 6455). The server first sends
  {"type": "hello", "version"}, then every posted message as {"type": "message", id,
  room, text, sender}.

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
from urllib.parse import parse_qs, urlsplit

import rfc6455
import stores

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
MIGRATES = bool(RELEASE.get("migrates", False))
AUTH_BROKEN_ERROR = "token signing key could not be loaded"
STORES = stores.Stores(
    os.environ.get("MONGODB_URI", "").strip() or None,
    os.environ.get("REDIS_URL", "").strip() or None,
    VERSION,
)
# Open WebSocket connections that receive every posted message, under WEBSOCKETS_LOCK.
WEBSOCKETS = set()
WEBSOCKETS_LOCK = threading.Lock()
# Seconds between retries of the start-up steps while a store is down.
PREPARE_RETRY_SECONDS = 5
# Maximum size of a request body in bytes.
MAX_BODY_BYTES = 65536
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


def log(message):
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    print(f"{stamp} {message}", flush=True)


def broadcast(event):
    """Send event as a text frame to every open WebSocket and drop the dead ones."""
    text = json.dumps(event)
    with WEBSOCKETS_LOCK:
        connections = list(WEBSOCKETS)
    for connection in connections:
        try:
            connection.send_text(text)
        except OSError as error:
            log(f"websocket {connection.peer}: send failed ({error}), dropping it")
            with WEBSOCKETS_LOCK:
                WEBSOCKETS.discard(connection)


def prepare_stores(log_failure=True):
    """Run the start-up steps once. Return True when they succeeded."""
    try:
        for change in STORES.prepare(MIGRATES):
            log(change)
    except stores.StoreError as error:
        if log_failure:
            log(
                f"start-up steps on the data stores failed ({error});"
                f" retrying every {PREPARE_RETRY_SECONDS} s"
            )
        return False
    return True


def retry_prepare_stores():
    """Retry the start-up steps until they succeed, logging one failure a minute."""
    attempt = 0
    while True:
        time.sleep(PREPARE_RETRY_SECONDS)
        attempt += 1
        if prepare_stores(log_failure=attempt % 12 == 0):
            break
    log(f"start-up steps on the data stores finished after {attempt} retries")


def detailed_health():
    """Return the status code and body of /api/health/detailed."""
    checks = {"http": "ok", "auth": "failing" if AUTH_BROKEN else "ok"}
    errors = {}
    if AUTH_BROKEN:
        errors["auth"] = AUTH_BROKEN_ERROR
    for store in ("mongodb", "redis"):
        checks[store], error = STORES.check(store)
        if error:
            errors[store] = error
    failing = any(value == "failing" for value in checks.values())
    body = {
        "status": "degraded" if failing else "ok",
        "version": VERSION,
        "uptime_seconds": round(time.time() - STARTED_AT, 1),
        "checks": checks,
    }
    if errors:
        body["errors"] = errors
    return (503 if failing else 200), body


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
            self.send_json(*detailed_health())
        elif path == "/api/auth/health":
            if AUTH_BROKEN:
                self.send_auth_broken()
            else:
                self.send_json(200, {"status": "ok", "version": VERSION})
        elif path == "/api/features":
            self.send_json(200, {"version": VERSION, "features": feature_flags()})
        elif path == "/metrics":
            self.send_metrics()
        elif path == "/api/search":
            self.with_store_errors(self.search)
        elif path == "/api/ws":
            self.with_store_errors(self.open_websocket)
        elif path == "/":
            # Real deployments often redirect the bare host to the web app.
            self.send_response(302)
            self.send_header("Location", "/api/health")
            self.send_header("Content-Length", "0")
            self.end_headers()
        else:
            self.send_json(404, {"status": "not found", "path": path})

    def do_POST(self):
        self.request_started = time.perf_counter()
        path = self.path.split("?")[0]
        routes = {
            "/api/auth/signup": self.signup,
            "/api/auth/login": self.login,
            "/api/messages": self.post_message,
        }
        if path in routes:
            self.with_store_errors(routes[path])
        else:
            self.send_json(404, {"status": "not found", "path": path})

    # Helpers of the data-store endpoints

    def send_error_json(self, code, message):
        self.send_json(code, {"status": "error", "version": VERSION, "error": message})

    def send_auth_broken(self):
        self.send_error_json(500, AUTH_BROKEN_ERROR)

    def with_store_errors(self, endpoint):
        """Call endpoint, and respond with 503 when a data store fails."""
        try:
            endpoint()
        except stores.StoreError as error:
            log(f"{self.command} {self.path.split('?')[0]}: {error}")
            self.send_error_json(503, f"data store failed: {error}")

    def read_json_body(self, fields):
        """Return the JSON object of the body with fields as non-empty strings.

        Respond with 400 and return None when the body is not such an object.
        """
        try:
            length = int(self.headers.get("Content-Length", "0"))
        except ValueError:
            length = -1
        if not 0 < length <= MAX_BODY_BYTES:
            self.send_error_json(
                400, f"the request needs a JSON body of 1 to {MAX_BODY_BYTES} bytes"
            )
            return None
        try:
            body = json.loads(self.rfile.read(length))
        except ValueError as error:
            self.send_error_json(400, f"the body is not valid JSON: {error}")
            return None
        if not isinstance(body, dict):
            self.send_error_json(400, "the body must be a JSON object")
            return None
        for name in fields:
            value = body.get(name)
            if not isinstance(value, str) or not value.strip():
                self.send_error_json(400, f"{name} must be a non-empty string")
                return None
        return body

    def bearer_session(self):
        """Return the session of the Bearer token, or respond with 401 and return None."""
        header = self.headers.get("Authorization", "")
        scheme, _, token = header.partition(" ")
        session = None
        if scheme.lower() == "bearer":
            session = STORES.session(token.strip())
        if session is None:
            self.send_error_json(401, "a valid session token is required (Bearer)")
        return session

    # Data-store endpoints

    def signup(self):
        if AUTH_BROKEN:
            self.send_auth_broken()
            return
        body = self.read_json_body(("email", "password", "name"))
        if body is None:
            return
        email = body["email"].strip().lower()
        try:
            user_id = STORES.create_user(email, body["password"], body["name"].strip())
        except stores.EmailTaken:
            self.send_error_json(409, f"the email {email!r} is already registered")
            return
        self.send_json(201, {"status": "created", "user_id": user_id})

    def login(self):
        if AUTH_BROKEN:
            self.send_auth_broken()
            return
        body = self.read_json_body(("email", "password"))
        if body is None:
            return
        user = STORES.authenticate(body["email"].strip().lower(), body["password"])
        if user is None:
            self.send_error_json(401, "wrong email or password")
            return
        self.send_json(200, {"status": "ok", "token": STORES.create_session(user)})

    def post_message(self):
        session = self.bearer_session()
        if session is None:
            return
        body = self.read_json_body(("room", "text"))
        if body is None:
            return
        message = STORES.add_message(session, body["room"].strip(), body["text"])
        broadcast({"type": "message", **message})
        self.send_json(201, {"status": "created", "id": message["id"]})

    def search(self):
        session = self.bearer_session()
        if session is None:
            return
        query = parse_qs(urlsplit(self.path).query)
        text = query.get("q", [""])[0]
        if not text.strip():
            self.send_error_json(400, "the query parameter q is required")
            return
        room = query.get("room", [""])[0].strip() or None
        results = STORES.search(text, room)
        self.send_json(200, {"status": "ok", "results": results})

    def open_websocket(self):
        problem = rfc6455.handshake_error(self.headers)
        if problem:
            self.send_error_json(400, f"not a WebSocket request: {problem}")
            return
        token = parse_qs(urlsplit(self.path).query).get("token", [""])[0]
        if STORES.session(token) is None:
            self.send_error_json(401, "a valid session token is required (token)")
            return
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        accept = rfc6455.accept_value(self.headers["Sec-WebSocket-Key"])
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()
        self.close_connection = True
        with COUNTS_LOCK:
            key = ("/api/ws", 101)
            REQUEST_COUNTS[key] = REQUEST_COUNTS.get(key, 0) + 1
        peer = "{}:{}".format(*self.client_address[:2])
        connection = rfc6455.Connection(self.rfile, self.wfile, peer)
        connection.send_text(json.dumps({"type": "hello", "version": VERSION}))
        with WEBSOCKETS_LOCK:
            WEBSOCKETS.add(connection)
        try:
            connection.serve()
        finally:
            with WEBSOCKETS_LOCK:
                WEBSOCKETS.discard(connection)


def main():
    host = os.environ.get("HOST", "127.0.0.1")
    port = int(os.environ.get("PORT", "18080"))
    startup_delay = float(os.environ.get("STARTUP_DELAY_SECONDS", "0.5"))
    print(f"truebond-backend {VERSION} starting on {host}:{port}", flush=True)
    # A real service loads configuration and connects to its stores before it listens.
    time.sleep(startup_delay)
    if not prepare_stores():
        threading.Thread(target=retry_prepare_stores, daemon=True).start()
    ThreadingHTTPServer.allow_reuse_address = True
    server = ThreadingHTTPServer((host, port), Handler)
    server.daemon_threads = True

    def stop(signum, frame):
        print(
            f"truebond-backend {VERSION} received signal {signum}, stopping",
            flush=True,
        )
        threading.Thread(target=server.shutdown, daemon=True).start()
        with WEBSOCKETS_LOCK:
            connections = list(WEBSOCKETS)
        for connection in connections:
            connection.close(rfc6455.CLOSE_GOING_AWAY, "server stopping")

    signal.signal(signal.SIGTERM, stop)
    signal.signal(signal.SIGINT, stop)
    print(f"truebond-backend {VERSION} listening", flush=True)
    server.serve_forever(poll_interval=0.1)
    server.server_close()
    print(f"truebond-backend {VERSION} stopped", flush=True)


if __name__ == "__main__":
    main()
