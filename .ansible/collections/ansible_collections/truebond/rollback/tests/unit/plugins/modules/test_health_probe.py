# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for the health_probe module against throwaway local HTTP servers."""

from __future__ import annotations

import json
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.truebond.rollback.plugins.modules import health_probe

PORT_RANGE = range(18500, 18600)
HEALTH_PATHS = ["/api/health", "/api/health/detailed", "/api/auth/health"]


def json_reply(status, body, headers=None):
    return status, headers or {}, json.dumps(body).encode()


def healthy_reply(path, count):
    return json_reply(200, {"status": "ok", "version": "v0.9.5"})


def broken_auth_reply(path, count):
    if path == "/api/auth/health":
        return json_reply(
            500,
            {"status": "error", "version": "v1.0.0", "error": "signing key missing"},
        )
    if path == "/api/health/detailed":
        return json_reply(503, {"status": "degraded", "version": "v1.0.0"})
    return json_reply(200, {"status": "ok", "version": "v1.0.0"})


def redirect_reply(path, count):
    if path == "/login":
        return healthy_reply(path, count)
    return 302, {"Location": "/login"}, b""


def old_version_reply(path, count):
    return json_reply(200, {"status": "ok", "version": "v1.0.0"})


def html_reply(path, count):
    return 200, {"Content-Type": "text/html"}, b"<html><body>It works</body></html>"


def healthy_after(failing_requests):
    def reply(path, count):
        if count <= failing_requests:
            return json_reply(503, {"status": "starting", "version": "v0.9.5"})
        return healthy_reply(path, count)

    return reply


def failing_every(period):
    def reply(path, count):
        if count % period == 0:
            return json_reply(500, {"status": "error", "version": "v0.9.5"})
        return healthy_reply(path, count)

    return reply


def failing_at(counts):
    def reply(path, count):
        if count in counts:
            return json_reply(500, {"status": "error", "count": count})
        return healthy_reply(path, count)

    return reply


def slow_reply(path, count):
    time.sleep(0.5)
    return healthy_reply(path, count)


class ScriptedHandler(BaseHTTPRequestHandler):
    def do_GET(self):
        server = self.server
        with server.lock:
            server.count += 1
            count = server.count
            server.requests.append((self.path, dict(self.headers)))
        status, headers, body = server.reply(self.path, count)
        self.send_response(status)
        for name, value in headers.items():
            self.send_header(name, value)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


def bind_server():
    for port in PORT_RANGE:
        try:
            return ThreadingHTTPServer(("127.0.0.1", port), ScriptedHandler)
        except OSError:
            continue
    raise RuntimeError("no free port in 18500-18599 for a test server")


@pytest.fixture
def serve():
    """Start servers whose responses come from reply(path, count).

    reply returns (status, headers, body), and count is the server's request number.
    """
    servers = []

    def start(reply):
        server = bind_server()
        server.reply = reply
        server.count = 0
        server.requests = []
        server.lock = threading.Lock()
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        servers.append(server)
        host, port = server.server_address
        server.base_url = f"http://{host}:{port}"
        return server

    yield start
    for server in servers:
        server.shutdown()
        server.server_close()


@pytest.fixture
def closed_port_url():
    """Return a URL on a port in the test range where nothing listens."""
    for port in PORT_RANGE:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
        return f"http://127.0.0.1:{port}"
    raise RuntimeError("no free port in 18500-18599")


class FakeClock:
    """Monotonic clock that only advances when the probe sleeps."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


def make_params(**overrides):
    params = {
        "base_url": "http://127.0.0.1:18080",
        "endpoints": list(HEALTH_PATHS),
        "expected_version": None,
        "version_field": "version",
        "expected_status": [200],
        "consecutive": 3,
        "interval": 0.01,
        "timeout": 2.0,
        "deadline": 5.0,
        "validate_certs": True,
        "headers": {},
        "fail_on_unhealthy": True,
    }
    params.update(overrides)
    return params


def probe_with_fake_clock(params):
    clock = FakeClock()
    return health_probe.run_probe(params, clock=clock, sleep=clock.sleep)


def run_main(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        health_probe.main()
    return json.loads(capsys.readouterr().out)


def fetched(status=200, body=b"", location=None, error=None):
    return {
        "status": status,
        "location": location,
        "body": body,
        "error": error,
        "latency_ms": None if error else 1.0,
    }


VERSION_BODY = b'{"status": "ok", "version": "v0.9.5"}'


@pytest.mark.parametrize(
    "response, expected_version, version_field, ok, reason",
    [
        pytest.param(
            fetched(200, VERSION_BODY),
            "v0.9.5",
            "version",
            True,
            "returned 200 with version 'v0.9.5'",
            id="expected-version",
        ),
        pytest.param(
            fetched(200, VERSION_BODY),
            "v1.0.0",
            "version",
            False,
            "returned 200 with version 'v0.9.5', expected 'v1.0.0'",
            id="other-version",
        ),
        pytest.param(
            fetched(500, b'{"error": "boom"}'),
            None,
            "version",
            False,
            'returned 500, expected 200 - {"error": "boom"}',
            id="server-error",
        ),
        pytest.param(
            fetched(503, b""),
            None,
            "version",
            False,
            "returned 503, expected 200 - (empty body)",
            id="empty-error-body",
        ),
        pytest.param(
            fetched(302, b"", location="/login"),
            None,
            "version",
            False,
            "returned 302, a redirect to /login (not followed)",
            id="redirect",
        ),
        pytest.param(
            fetched(301, b""),
            None,
            "version",
            False,
            "returned 301, a redirect without a Location header",
            id="redirect-without-location",
        ),
        pytest.param(
            fetched(200, b"<html>ok</html>"),
            "v0.9.5",
            "version",
            False,
            "returned 200 with a body that is not JSON, so its version cannot be "
            "checked - <html>ok</html>",
            id="html-with-expected-version",
        ),
        pytest.param(
            fetched(200, b"<html>ok</html>"),
            None,
            "version",
            True,
            "returned 200",
            id="html-without-expected-version",
        ),
        pytest.param(
            fetched(200, b'{"status": "ok"}'),
            "v0.9.5",
            "version",
            False,
            "returned 200 without a 'version' field in its JSON body - "
            '{"status": "ok"}',
            id="missing-version-field",
        ),
        pytest.param(
            fetched(200, b'["v0.9.5"]'),
            "v0.9.5",
            "version",
            False,
            "returned 200 without a 'version' field in its JSON body - [\"v0.9.5\"]",
            id="json-list-body",
        ),
        pytest.param(
            fetched(200, b'{"build": {"n": 1}, "release": "v0.9.5"}'),
            "v0.9.5",
            "release",
            True,
            "returned 200 with version 'v0.9.5'",
            id="custom-version-field",
        ),
        pytest.param(
            fetched(200, b'{"version": 2}'),
            "2",
            "version",
            True,
            "returned 200 with version 2",
            id="number-version-as-string",
        ),
        pytest.param(
            fetched(None, error="[Errno 111] Connection refused"),
            None,
            "version",
            False,
            "failed: [Errno 111] Connection refused",
            id="connection-error",
        ),
    ],
)
def test_evaluate_response_cases(response, expected_version, version_field, ok, reason):
    verdict = health_probe.evaluate_response(
        response, [200], expected_version, version_field
    )
    assert verdict["ok"] is ok
    assert verdict["reason"] == reason


def test_evaluate_response_accepts_listed_statuses():
    verdict = health_probe.evaluate_response(fetched(204, b""), [200, 204], None)
    assert verdict["ok"] is True
    assert verdict["reason"] == "returned 204"


def test_evaluate_response_names_all_expected_statuses():
    verdict = health_probe.evaluate_response(fetched(500, b"x"), [200, 204], None)
    assert verdict["reason"] == "returned 500, expected one of 200, 204 - x"


def test_evaluate_response_limits_excerpts():
    body = ('{"error": "%s"}' % ("x" * 1000)).encode()
    verdict = health_probe.evaluate_response(fetched(500, body), [200], None)
    assert len(verdict["body_excerpt"]) == 300
    assert verdict["reason"].endswith("x...")
    assert len(verdict["reason"]) == len("returned 500, expected 200 - ") + 120


@pytest.mark.parametrize(
    "overrides, message",
    [
        pytest.param(
            {"base_url": "127.0.0.1:18080"},
            "base_url '127.0.0.1:18080' is not an http or https URL with a host; "
            "use a URL such as 'http://127.0.0.1:18080'",
            id="base-url-without-scheme",
        ),
        pytest.param(
            {"base_url": "ftp://127.0.0.1"},
            "base_url 'ftp://127.0.0.1' is not an http or https URL with a host; "
            "use a URL such as 'http://127.0.0.1:18080'",
            id="base-url-ftp",
        ),
        pytest.param(
            {"endpoints": []},
            "endpoints is empty; list at least one path to probe",
            id="no-endpoints",
        ),
        pytest.param(
            {"endpoints": ["api/health"]},
            "endpoint 'api/health' does not start with '/'; give a path such as "
            "'/api/health'",
            id="relative-endpoint",
        ),
        pytest.param(
            {"expected_status": []},
            "expected_status is empty; list at least one status code",
            id="no-expected-status",
        ),
        pytest.param(
            {"expected_status": [200, 999]},
            "expected_status contains 999, not an HTTP status",
            id="invalid-status",
        ),
        pytest.param(
            {"expected_status": [200, 302]},
            "expected_status contains 302, but redirects always fail because they "
            "are not followed; remove it and probe the target path",
            id="redirect-status",
        ),
        pytest.param(
            {"consecutive": 0},
            "consecutive must be at least 1, got 0",
            id="zero-consecutive",
        ),
        pytest.param(
            {"interval": -1.0},
            "interval must not be negative, got -1.0",
            id="negative-interval",
        ),
        pytest.param(
            {"deadline": -1.0},
            "deadline must not be negative, got -1.0",
            id="negative-deadline",
        ),
        pytest.param(
            {"timeout": 0.0},
            "timeout must be greater than 0, got 0.0",
            id="zero-timeout",
        ),
        pytest.param(
            {"consecutive": 3, "interval": 1.0, "deadline": 1.5},
            "consecutive=3 rounds 1.0 s apart need at least 2.0 s, but deadline is "
            "1.5 s; raise deadline or lower consecutive or interval",
            id="deadline-too-short",
        ),
    ],
)
def test_validate_params_rejects(overrides, message):
    with pytest.raises(ValueError) as error:
        health_probe.validate_params(make_params(**overrides))
    assert str(error.value) == message


def test_validate_params_accepts_defaults():
    health_probe.validate_params(make_params())


def test_probe_healthy_server(serve):
    server = serve(healthy_reply)
    result = health_probe.run_probe(
        make_params(base_url=server.base_url, expected_version="v0.9.5")
    )
    assert result["healthy"] is True
    assert result["rounds"] == 3
    assert result["streak"] == 3
    assert result["best_streak"] == 3
    assert result["failures"] == []
    assert [endpoint["path"] for endpoint in result["endpoints"]] == HEALTH_PATHS
    assert len(server.requests) == 9


def test_probe_reports_endpoint_details(serve):
    server = serve(healthy_reply)
    result = health_probe.run_probe(
        make_params(base_url=server.base_url, endpoints=["/api/health"], consecutive=2)
    )
    endpoint = result["endpoints"][0]
    assert endpoint["url"] == server.base_url + "/api/health"
    assert endpoint["status"] == 200
    assert endpoint["ok"] is True
    assert endpoint["version"] == "v0.9.5"
    assert endpoint["location"] is None
    assert endpoint["body_excerpt"] == '{"status": "ok", "version": "v0.9.5"}'
    latency = endpoint["latency_ms"]
    assert latency["last"] is not None
    assert latency["min"] <= latency["median"] <= latency["max"]


def test_probe_broken_server_fails_at_deadline(serve):
    server = serve(broken_auth_reply)
    params = make_params(base_url=server.base_url, interval=0.25, deadline=1.0)
    result = probe_with_fake_clock(params)
    assert result["healthy"] is False
    assert result["rounds"] == 5
    assert result["streak"] == 0
    assert result["elapsed"] == 1.0
    assert result["failures"] == [
        (
            '/api/health/detailed returned 503, expected 200 - {"status": "degraded", '
            '"version": "v1.0.0"}'
        ),
        (
            '/api/auth/health returned 500, expected 200 - {"status": "error", '
            '"version": "v1.0.0", "error": "signing key missing"}'
        ),
    ]
    assert health_probe.build_unhealthy_message(params, result) == (
        server.base_url + " not healthy after 1.0 s (5 rounds, best streak 0 of 3): "
        '/api/health/detailed returned 503, expected 200 - {"status": "degraded", '
        '"version": "v1.0.0"}; /api/auth/health returned 500, expected 200 - '
        '{"status": "error", "version": "v1.0.0", "error": "signing key missing"}'
    )


def test_probe_redirect_fails_without_following(serve):
    server = serve(redirect_reply)
    result = probe_with_fake_clock(
        make_params(
            base_url=server.base_url, endpoints=["/"], consecutive=1, deadline=0
        )
    )
    endpoint = result["endpoints"][0]
    assert result["healthy"] is False
    assert endpoint["status"] == 302
    assert endpoint["location"] == "/login"
    assert result["failures"] == ["/ returned 302, a redirect to /login (not followed)"]
    assert [path for path, headers in server.requests] == ["/"]


def test_probe_message_for_single_round(serve):
    server = serve(redirect_reply)
    params = make_params(base_url=server.base_url, endpoints=["/"], deadline=0)
    result = probe_with_fake_clock(params)
    assert health_probe.build_unhealthy_message(params, result) == (
        server.base_url + " not healthy after 0.0 s (1 round, best streak 0 of 3): "
        "/ returned 302, a redirect to /login (not followed)"
    )


def test_probe_other_version_fails(serve):
    server = serve(old_version_reply)
    result = probe_with_fake_clock(
        make_params(base_url=server.base_url, expected_version="v0.9.5", deadline=0)
    )
    assert result["healthy"] is False
    assert result["failures"] == [
        f"{path} returned 200 with version 'v1.0.0', expected 'v0.9.5'"
        for path in HEALTH_PATHS
    ]


def test_probe_other_version_passes_unchecked(serve):
    server = serve(old_version_reply)
    result = health_probe.run_probe(
        make_params(base_url=server.base_url, consecutive=1)
    )
    assert result["healthy"] is True
    assert result["endpoints"][0]["version"] == "v1.0.0"


def test_probe_non_json_body_fails_version_check(serve):
    server = serve(html_reply)
    result = probe_with_fake_clock(
        make_params(
            base_url=server.base_url,
            endpoints=["/api/health"],
            expected_version="v0.9.5",
            deadline=0,
        )
    )
    assert result["failures"] == [
        (
            "/api/health returned 200 with a body that is not JSON, so its version "
            "cannot be checked - <html><body>It works</body></html>"
        )
    ]


def test_probe_recovers_after_failures(serve):
    server = serve(healthy_after(4))
    result = health_probe.run_probe(
        make_params(base_url=server.base_url, endpoints=["/api/health"], consecutive=2)
    )
    assert result["healthy"] is True
    assert result["rounds"] == 6
    assert result["streak"] == 2
    assert result["failures"] == [
        (
            '/api/health returned 503, expected 200 - {"status": "starting", '
            '"version": "v0.9.5"}'
        )
    ]


def test_probe_flap_resets_streak(serve):
    server = serve(failing_at({3, 6}))
    result = health_probe.run_probe(
        make_params(base_url=server.base_url, endpoints=["/api/health"], consecutive=3)
    )
    # Rounds 3 and 6 fail, so the first streak of three ends at round 9.
    assert result["healthy"] is True
    assert result["rounds"] == 9
    assert result["streak"] == 3
    assert result["failures"] == [
        '/api/health returned 500, expected 200 - {"status": "error", "count": 6}'
    ]


def test_probe_flapping_never_reaches_streak(serve):
    server = serve(failing_every(3))
    params = make_params(
        base_url=server.base_url,
        endpoints=["/api/health"],
        consecutive=3,
        interval=0.25,
        deadline=2.0,
    )
    result = probe_with_fake_clock(params)
    assert result["healthy"] is False
    assert result["rounds"] == 9
    assert result["best_streak"] == 2
    assert health_probe.build_unhealthy_message(params, result) == (
        server.base_url + " not healthy after 2.0 s (9 rounds, best streak 2 of 3): "
        '/api/health returned 500, expected 200 - {"status": "error", '
        '"version": "v0.9.5"}'
    )


def test_probe_message_when_last_round_passed(serve):
    server = serve(failing_every(2))
    params = make_params(
        base_url=server.base_url,
        endpoints=["/api/health"],
        consecutive=2,
        interval=0.5,
        deadline=1.0,
    )
    result = probe_with_fake_clock(params)
    # Rounds at 0.0, 0.5 and 1.0 s pass, fail and pass, so the streak stays at 1.
    assert result["rounds"] == 3
    assert result["streak"] == 1
    assert health_probe.build_unhealthy_message(params, result) == (
        server.base_url + " not healthy after 1.0 s (3 rounds, best streak 1 of 2): "
        "last failing round: /api/health returned 500, expected 200 - "
        '{"status": "error", "version": "v0.9.5"}'
    )


def test_probe_connection_refused(closed_port_url):
    result = probe_with_fake_clock(
        make_params(base_url=closed_port_url, endpoints=["/api/health"], deadline=0)
    )
    endpoint = result["endpoints"][0]
    assert result["healthy"] is False
    assert endpoint["status"] is None
    assert endpoint["latency_ms"] == {
        "last": None,
        "min": None,
        "max": None,
        "median": None,
    }
    assert result["failures"] == ["/api/health failed: [Errno 111] Connection refused"]


def test_probe_timeout(serve):
    server = serve(slow_reply)
    result = probe_with_fake_clock(
        make_params(
            base_url=server.base_url, endpoints=["/api/health"], timeout=0.1, deadline=0
        )
    )
    assert result["failures"] == ["/api/health failed: timed out after 0.1 s"]


def test_probe_sends_headers(serve):
    server = serve(healthy_reply)
    health_probe.run_probe(
        make_params(
            base_url=server.base_url,
            endpoints=["/api/health"],
            consecutive=1,
            headers={"X-Drill": "rollback"},
        )
    )
    headers = server.requests[0][1]
    assert headers["X-Drill"] == "rollback"
    assert headers["User-Agent"] == "truebond.rollback.health_probe"


def test_main_healthy_exits_unchanged(serve, capsys):
    server = serve(healthy_reply)
    result = run_main(
        {"base_url": server.base_url, "interval": 0.01, "expected_version": "v0.9.5"},
        capsys,
    )
    assert result["changed"] is False
    assert result["healthy"] is True
    assert result["expected_version"] == "v0.9.5"
    assert "failed" not in result


def test_main_check_mode_still_probes(serve, capsys):
    server = serve(healthy_reply)
    result = run_main(
        {"base_url": server.base_url, "consecutive": 1, "_ansible_check_mode": True},
        capsys,
    )
    assert result["changed"] is False
    assert result["healthy"] is True
    assert len(server.requests) == 3


def test_main_unhealthy_fails(serve, capsys):
    server = serve(broken_auth_reply)
    result = run_main(
        {"base_url": server.base_url, "consecutive": 1, "deadline": 0, "interval": 0},
        capsys,
    )
    assert result["failed"] is True
    assert result["healthy"] is False
    assert result["msg"].startswith(server.base_url + " not healthy after ")
    assert "/api/auth/health returned 500" in result["msg"]
    assert "/api/health/detailed returned 503" in result["msg"]


def test_main_unhealthy_without_failing(serve, capsys):
    server = serve(broken_auth_reply)
    result = run_main(
        {
            "base_url": server.base_url,
            "consecutive": 1,
            "deadline": 0,
            "fail_on_unhealthy": False,
        },
        capsys,
    )
    assert "failed" not in result
    assert result["healthy"] is False
    assert result["changed"] is False
    assert "/api/auth/health returned 500" in result["msg"]


def test_main_rejects_invalid_option(capsys):
    result = run_main({"consecutive": 0}, capsys)
    assert result["failed"] is True
    assert result["msg"] == "consecutive must be at least 1, got 0"
