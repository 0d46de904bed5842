# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for critical_path_probe against a stand-in backend and the drill backend."""

from __future__ import annotations

import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.truebond.rollback.plugins.module_utils import _http
from ansible_collections.truebond.rollback.plugins.modules import critical_path_probe

# pytest's default "prepend" import mode puts this folder on sys.path, because the
# test folders have no __init__.py.
from critical_path_backend import (
    read_client_frame,
    server_frame,
    start_stand_in,
    stop_stand_in,
)

ALL_PATHS = ["signup", "login", "message", "search", "websocket"]
REPO_ROOT = Path(__file__).resolve().parents[4]
DRILL_BACKEND = REPO_ROOT / "tests" / "stack" / "app" / "backend" / "server.py"
VENV_BIN = REPO_ROOT / ".venv" / "bin"
MONGO_PORTS = range(27121, 27130)
REDIS_PORTS = range(16421, 16430)
BACKEND_PORTS = range(18180, 18190)


@pytest.fixture
def backend():
    """Start stand-in backends with the given faults and stop them afterwards."""
    servers = []

    def start(*faults, slow_seconds=1.0):
        server = start_stand_in(faults, slow_seconds)
        servers.append(server)
        return server

    yield start
    for server in servers:
        stop_stand_in(server)


def run_main(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        critical_path_probe.main()
    return json.loads(capsys.readouterr().out)


def outcome(result, name):
    return next(path for path in result["paths"] if path["name"] == name)


# Parameter checks


def make_params(**overrides):
    params = {
        "base_url": "http://127.0.0.1:18180",
        "paths": list(ALL_PATHS),
        "account": None,
        "email_domain": "rollback-probe.invalid",
        "room": "rollback-probe",
        "timeout": 5.0,
        "validate_certs": True,
        "run_in_check_mode": False,
    }
    params.update(overrides)
    return params


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param(
            {"paths": ["message"]},
            "path 'message' needs 'login', which paths does not list; "
            "add 'login' to paths",
            id="message-without-login",
        ),
        pytest.param(
            {"paths": ["signup", "login", "search"]},
            "path 'search' needs 'message', which paths does not list; "
            "add 'message' to paths",
            id="search-without-message",
        ),
        pytest.param(
            {"paths": ["signup", "websocket"]},
            "path 'websocket' needs 'login', which paths does not list; "
            "add 'login' to paths",
            id="websocket-without-login",
        ),
        pytest.param(
            {"paths": ["login"]},
            "path 'login' needs 'signup' or an account; add 'signup' to paths or "
            "set account to an existing probe account",
            id="login-without-signup-or-account",
        ),
        pytest.param(
            {"paths": []},
            "paths is empty; list at least one of signup, login, message, search, "
            "websocket",
            id="empty-paths",
        ),
        pytest.param(
            {"paths": ["signup", "signup"]},
            "paths lists 'signup' more than once",
            id="duplicate-path",
        ),
        pytest.param(
            {"base_url": "ftp://127.0.0.1"},
            "base_url 'ftp://127.0.0.1' is not an http or https URL with a host; "
            "use a URL such as 'http://127.0.0.1:18080'",
            id="ftp-url",
        ),
        pytest.param(
            {"base_url": "http://["},
            "base_url 'http://[' is not a valid URL (Invalid IPv6 URL); use a URL"
            " such as 'http://127.0.0.1:18080'",
            id="unclosed-ipv6-bracket",
        ),
        pytest.param(
            {"base_url": "A://]"},
            "base_url 'A://]' is not a valid URL (Invalid IPv6 URL); use a URL such"
            " as 'http://127.0.0.1:18080'",
            id="closing-bracket-only",
        ),
        pytest.param(
            {"base_url": "http://127.0.0.1:99999"},
            "base_url 'http://127.0.0.1:99999' is not a valid URL (Port out of range"
            " 0-65535); use a URL such as 'http://127.0.0.1:18080'",
            id="port-out-of-range",
        ),
        pytest.param(
            {"timeout": 0},
            "timeout must be greater than 0, got 0",
            id="zero-timeout",
        ),
        pytest.param(
            {"email_domain": "probe@invalid"},
            "email_domain 'probe@invalid' is not a domain name; use a domain such "
            "as 'rollback-probe.invalid'",
            id="domain-with-at",
        ),
    ],
)
def test_validate_params_rejects(overrides, message):
    with pytest.raises(ValueError) as error:
        critical_path_probe.validate_params(make_params(**overrides))
    assert str(error.value) == message


def test_validate_params_login_with_account():
    account = {"email": "probe@rollback-probe.invalid", "password": "secret"}
    critical_path_probe.validate_params(
        make_params(paths=["login", "message"], account=account)
    )


def test_main_dependency_error_fails(capsys):
    result = run_main({"paths": ["login", "message", "search"]}, capsys)
    assert result["failed"] is True
    assert result["msg"] == (
        "path 'login' needs 'signup' or an account; add 'signup' to paths or set "
        "account to an existing probe account"
    )


def test_main_rejects_unknown_path(capsys):
    result = run_main({"paths": ["signup", "logout"]}, capsys)
    assert result["failed"] is True
    assert "logout" in result["msg"]


# WebSocket framing


def test_websocket_accept_matches_rfc_example():
    # The example key and accept value of RFC 6455, section 1.3.
    assert (
        critical_path_probe.websocket_accept("dGhlIHNhbXBsZSBub25jZQ==")
        == "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    )


@pytest.mark.parametrize(
    ("size", "length_byte"),
    [
        pytest.param(5, 5, id="7-bit"),
        pytest.param(125, 125, id="7-bit-max"),
        pytest.param(126, 126, id="16-bit-min"),
        pytest.param(65535, 126, id="16-bit-max"),
        pytest.param(65536, 127, id="64-bit"),
    ],
)
def test_encode_frame_masks_and_sizes(size, length_byte):
    payload = bytes(index % 251 for index in range(size))
    frame = critical_path_probe.encode_frame(0x1, payload, b"\x01\x02\x03\x04")
    assert frame[0] == 0x81
    assert frame[1] == 0x80 | length_byte
    masked, opcode, decoded = read_client_frame(io.BytesIO(frame))
    assert masked is True
    assert opcode == 0x1
    assert decoded == payload
    assert payload not in frame or size == 0


@pytest.mark.parametrize(
    "size",
    [
        pytest.param(3, id="7-bit"),
        pytest.param(300, id="16-bit"),
        pytest.param(70000, id="64-bit"),
    ],
)
def test_read_frame_decodes_server_lengths(size):
    payload = b"a" * size
    client = critical_path_probe.WebSocketClient(
        "http://127.0.0.1:1", "/api/ws", 1.0, True
    )
    client.buffer = server_frame(0x1, payload)
    fin, opcode, decoded = client.read_frame(time.monotonic() + 1)
    assert fin is True
    assert opcode == 0x1
    assert decoded == payload


def test_read_frame_rejects_masked_server_frame():
    client = critical_path_probe.WebSocketClient(
        "http://127.0.0.1:1", "/api/ws", 1.0, True
    )
    client.buffer = critical_path_probe.encode_frame(0x1, b"hi", b"\x00\x00\x00\x01")
    with pytest.raises(critical_path_probe.WebSocketError) as error:
        client.read_frame(time.monotonic() + 1)
    assert str(error.value) == "the server sent a masked frame, which RFC 6455 forbids"


def test_receive_message_ping_and_fragments():
    left, right = socket.socketpair()
    with left, right:
        client = critical_path_probe.WebSocketClient(
            "http://127.0.0.1:1", "/api/ws", 1.0, True
        )
        client.sock = left
        right.sendall(
            server_frame(0x9, b"ping?")
            + server_frame(0x1, b'{"type": ', fin=False)
            + server_frame(0x0, b'"hello"}')
        )
        message = client.receive_message(time.monotonic() + 1)
        assert message == b'{"type": "hello"}'
        masked, opcode, payload = read_client_frame(right.makefile("rb"))
        assert masked is True
        assert opcode == 0xA
        assert payload == b"ping?"


def test_receive_message_reports_close_frame():
    client = critical_path_probe.WebSocketClient(
        "http://127.0.0.1:1", "/api/ws", 1.0, True
    )
    client.buffer = server_frame(0x8, b"\x03\xe9going away")
    with pytest.raises(critical_path_probe.WebSocketError) as error:
        client.receive_message(time.monotonic() + 1)
    assert str(error.value) == (
        "the server closed the connection (code 1001, reason 'going away')"
    )


# Runs against the stand-in backend


def test_main_all_paths_pass(backend, capsys):
    server = backend()
    result = run_main({"base_url": server.base_url}, capsys)
    assert "failed" not in result
    assert result["changed"] is False
    assert result["ok"] is True
    assert [path["name"] for path in result["paths"]] == ALL_PATHS
    assert all(path["ok"] for path in result["paths"])
    assert [path["status"] for path in result["paths"]] == [201, 200, 201, 200, 101]
    assert all(path["seconds"] >= 0 for path in result["paths"])
    assert result["room"] == "rollback-probe"
    assert result["account_email"].startswith("rollback-probe-")
    assert result["account_email"].endswith("@rollback-probe.invalid")
    assert list(server.users) == [result["account_email"]]
    assert server.users[result["account_email"]]["name"] == "rollback probe"


def test_main_runs_paths_in_fixed_order(backend, capsys):
    server = backend()
    result = run_main(
        {
            "base_url": server.base_url,
            "paths": ["search", "message", "login", "signup"],
        },
        capsys,
    )
    assert [path["name"] for path in result["paths"]] == [
        "signup",
        "login",
        "message",
        "search",
    ]
    assert result["ok"] is True


def test_main_websocket_frames_are_masked_and_closed(backend, capsys):
    server = backend()
    run_main({"base_url": server.base_url}, capsys)
    assert server.client_frames
    assert all(masked for masked, _opcode, _payload in server.client_frames)
    assert server.client_frames[-1][1] == 0x8
    assert server.client_frames[-1][2] == b"\x03\xe8"


@pytest.mark.parametrize(
    "fault",
    [
        pytest.param("ws_big_hello", id="64-bit-hello"),
        pytest.param("ws_ping_fragmented", id="ping-and-fragments"),
    ],
)
def test_main_websocket_handles_frames(backend, capsys, fault):
    server = backend(fault)
    result = run_main({"base_url": server.base_url}, capsys)
    assert outcome(result, "websocket")["ok"] is True


def test_main_auth_broken_fails(backend, capsys):
    server = backend("auth_500")
    result = run_main({"base_url": server.base_url}, capsys)
    assert result["failed"] is True
    assert result["ok"] is False
    signup = outcome(result, "signup")
    assert signup["ok"] is False
    assert signup["status"] == 500
    assert signup["detail"] == (
        "POST /api/auth/signup returned 500, expected 201 - "
        '{"status": "error", "error": "users unavailable"}'
    )
    for name in ("login", "message", "search", "websocket"):
        assert outcome(result, name)["ok"] is False
        assert outcome(result, name)["seconds"] is None
    assert outcome(result, "login")["detail"] == "not run, because 'signup' failed"
    assert result["msg"] == (
        f"critical paths of {server.base_url} failed: signup failed (500), "
        "login not run, message not run, search not run, websocket not run. "
        "First failure, signup: POST /api/auth/signup returned 500, expected 201 - "
        '{"status": "error", "error": "users unavailable"}. '
        "Next: check the auth service and its MongoDB connection "
        "(GET /api/auth/health and /api/health/detailed)."
    )


def test_main_login_broken_with_account(backend, capsys):
    server = backend("auth_500")
    account = {"email": "standing@rollback-probe.invalid", "password": "Pw-1234567"}
    result = run_main(
        {
            "base_url": server.base_url,
            "paths": ["login", "message"],
            "account": account,
        },
        capsys,
    )
    assert result["failed"] is True
    assert outcome(result, "login")["status"] == 500
    assert outcome(result, "message")["detail"] == "not run, because 'login' failed"
    assert "First failure, login: POST /api/auth/login returned 500" in result["msg"]
    assert "signing" in result["msg"]


def test_main_account_accepts_taken_signup(backend, capsys):
    server = backend()
    account = {"email": "standing@rollback-probe.invalid", "password": "Pw-1234567"}
    args = {"base_url": server.base_url, "account": account}
    first = run_main(args, capsys)
    second = run_main(args, capsys)
    assert outcome(first, "signup")["status"] == 201
    assert outcome(second, "signup")["status"] == 409
    assert outcome(second, "signup")["ok"] is True
    assert second["ok"] is True
    assert second["account_email"] == "standing@rollback-probe.invalid"


def test_main_search_missing_message_fails(backend, capsys):
    server = backend("search_misses")
    result = run_main({"base_url": server.base_url}, capsys)
    assert result["failed"] is True
    search = outcome(result, "search")
    message_id = server.messages[0]["id"]
    assert search["ok"] is False
    assert search["status"] == 200
    assert search["detail"].startswith("GET /api/search?q=probe-")
    assert (
        f"returned 200 with 1 results, but not message '{message_id}'"
        in (search["detail"])
    )
    assert outcome(result, "websocket")["ok"] is True
    assert "search failed (200), websocket ok (101)." in result["msg"]
    assert "Next: check that the search index contains new messages" in result["msg"]


def test_main_websocket_rejected_fails(backend, capsys):
    server = backend("ws_404")
    result = run_main({"base_url": server.base_url}, capsys)
    assert result["failed"] is True
    websocket = outcome(result, "websocket")
    assert websocket["ok"] is False
    assert websocket["status"] == 404
    assert websocket["detail"] == (
        "WebSocket handshake on /api/ws?token=******** rejected: returned 404, "
        'expected 101 - {"status": "not found", "path": "/api/ws"}'
    )
    assert "websocket failed (404)" in result["msg"]
    assert "Upgrade and Connection headers" in result["msg"]


def test_main_websocket_bad_accept_fails(backend, capsys):
    server = backend("ws_bad_accept")
    result = run_main({"base_url": server.base_url}, capsys)
    websocket = outcome(result, "websocket")
    assert websocket["ok"] is False
    assert websocket["status"] == 101
    assert "Sec-WebSocket-Accept 'd3Jvbmc='" in websocket["detail"]


def test_main_websocket_without_broadcast_times_out(backend, capsys):
    server = backend("ws_silent")
    result = run_main({"base_url": server.base_url, "timeout": 0.5}, capsys)
    websocket = outcome(result, "websocket")
    assert websocket["ok"] is False
    assert websocket["detail"].startswith(
        "WebSocket on /api/ws?token=******** did not deliver message "
    )
    assert websocket["detail"].endswith(": timed out after 0.5 s")


def test_main_login_timeout_fails(backend, capsys):
    server = backend("slow_login", slow_seconds=1.5)
    started = time.monotonic()
    result = run_main({"base_url": server.base_url, "timeout": 0.3}, capsys)
    assert time.monotonic() - started < 1.4
    login = outcome(result, "login")
    assert login["ok"] is False
    assert login["status"] is None
    assert login["detail"] == "POST /api/auth/login failed: timed out after 0.3 s"
    assert "login failed (no response)" in result["msg"]


def test_main_connection_refused_fails(capsys):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_main(
        {"base_url": f"http://127.0.0.1:{port}", "paths": ["signup"]}, capsys
    )
    assert result["failed"] is True
    assert outcome(result, "signup")["detail"].startswith(
        "POST /api/auth/signup failed: "
    )


def test_main_never_returns_secrets(backend, capsys):
    server = backend()
    account = {"email": "standing@rollback-probe.invalid", "password": "Pw-s3cr3t-42"}
    result = run_main({"base_url": server.base_url, "account": account}, capsys)
    text = json.dumps(result)
    tokens = list(server.tokens)
    assert len(tokens) == 1
    assert tokens[0] not in text
    assert "Pw-s3cr3t-42" not in text
    ws_request = next(r for r in server.requests if r["path"].startswith("/api/ws"))
    assert tokens[0] in ws_request["path"]


def test_main_failure_body_hides_password(backend, capsys):
    server = backend("login_echo")
    account = {"email": "standing@rollback-probe.invalid", "password": "Pw-s3cr3t-42"}
    result = run_main({"base_url": server.base_url, "account": account}, capsys)
    assert result["failed"] is True
    assert "Pw-s3cr3t-42" not in json.dumps(result)
    assert '"password": "********"' in outcome(result, "login")["detail"]


def test_main_generated_password_not_returned(backend, capsys):
    server = backend("login_echo")
    result = run_main({"base_url": server.base_url}, capsys)
    password = server.users[result["account_email"]]["password"]
    assert password not in json.dumps(result)


def test_main_check_mode_sends_nothing(backend, capsys):
    server = backend()
    result = run_main(
        {"base_url": server.base_url, "_ansible_check_mode": True}, capsys
    )
    assert server.requests == []
    assert result["changed"] is False
    assert result["ok"] is None
    assert [path["name"] for path in result["paths"]] == ALL_PATHS
    assert outcome(result, "search")["detail"] == (
        "check mode: would GET /api/search and expect the posted message"
    )
    assert all(path["ok"] is None for path in result["paths"])


def test_main_check_mode_runs_when_asked(backend, capsys):
    server = backend()
    result = run_main(
        {
            "base_url": server.base_url,
            "_ansible_check_mode": True,
            "run_in_check_mode": True,
        },
        capsys,
    )
    assert result["ok"] is True
    assert result["changed"] is False
    assert len(server.messages) == 2


# Shared HTTP helpers


def test_excerpt_cuts_long_text():
    assert _http.excerpt("a  b\n c", 10) == "a b c"
    assert _http.excerpt("x" * 20, 10) == "xxxxxxx..."


def test_parse_json_object_rejects_lists():
    assert _http.parse_json_object(b"[1]") is None
    assert _http.parse_json_object(b"not json") is None
    assert _http.parse_json_object(b'{"a": 1}') == {"a": 1}


# Runs against the drill backend, when its source has the critical-path API


def free_port(ports):
    for port in ports:
        with socket.socket() as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1}")


def wait_for_port(port, process, seconds):
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(
                f"process {process.args[0]} exited with {process.returncode}"
            )
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {seconds} s")


def drill_backend_has_api():
    if not DRILL_BACKEND.exists():
        return False
    source = DRILL_BACKEND.read_text(encoding="utf-8")
    return "/api/ws" in source and "/api/search" in source


@pytest.fixture
def drill_backend(request, tmp_path):
    """Run the drill backend from source with its own SecantusDB and Redis.

    Parametrize it indirectly with True to run a release whose auth is broken.
    """
    auth_broken = getattr(request, "param", False)
    if not drill_backend_has_api():
        pytest.skip("tests/stack/app/backend/server.py has no /api/ws and /api/search")
    secantusd = VENV_BIN / "secantusd-py"
    redis_server = shutil.which("redis-server")
    if not secantusd.exists() or redis_server is None:
        pytest.skip("secantusd-py or redis-server is not installed")

    processes = []

    def spawn(args, env=None, name="process"):
        log = open(tmp_path / f"{name}.log", "wb")  # noqa: SIM115 - closed below
        process = subprocess.Popen(args, stdout=log, stderr=subprocess.STDOUT, env=env)
        processes.append((process, log))
        return process

    try:
        mongo_port = free_port(MONGO_PORTS)
        mongo_dir = tmp_path / "mongo"
        mongo_dir.mkdir()
        mongo = spawn(
            [
                str(secantusd),
                "--host",
                "127.0.0.1",
                "--port",
                str(mongo_port),
                "--storage-path",
                str(mongo_dir),
                "--standalone",
            ],
            name="secantusd",
        )
        redis_port = free_port(REDIS_PORTS)
        redis = spawn(
            [
                redis_server,
                "--port",
                str(redis_port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--daemonize",
                "no",
                "--dir",
                str(tmp_path),
            ],
            name="redis",
        )
        wait_for_port(mongo_port, mongo, 30)
        wait_for_port(redis_port, redis, 10)

        release_file = tmp_path / "release.json"
        release = {"version": "v0.9.5", "auth_broken": auth_broken}
        release_file.write_text(json.dumps(release) + "\n")
        backend_port = free_port(BACKEND_PORTS)
        env = dict(
            os.environ,
            PORT=str(backend_port),
            MONGODB_URI=f"mongodb://127.0.0.1:{mongo_port}/truebond",
            REDIS_URL=f"redis://127.0.0.1:{redis_port}/0",
            RELEASE_FILE=str(release_file),
            STARTUP_DELAY_SECONDS="0",
        )
        app = spawn([sys.executable, str(DRILL_BACKEND)], env=env, name="backend")
        wait_for_port(backend_port, app, 30)
        base_url = f"http://127.0.0.1:{backend_port}"
        with urllib.request.urlopen(base_url + "/api/health", timeout=5) as response:
            assert response.status == 200
        yield base_url
    finally:
        for process, log in reversed(processes):
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    process.kill()
                    process.wait()
            log.close()


def test_drill_backend_all_paths_pass(drill_backend, capsys):
    result = run_main({"base_url": drill_backend}, capsys)
    assert result.get("failed") is None, result.get("msg")
    assert result["ok"] is True
    assert [path["status"] for path in result["paths"]] == [201, 200, 201, 200, 101]


def test_drill_backend_account_signup_conflict(drill_backend, capsys):
    account = {"email": "standing@rollback-probe.invalid", "password": "Pw-1234567"}
    args = {"base_url": drill_backend, "account": account, "paths": ["signup", "login"]}
    first = run_main(args, capsys)
    second = run_main(args, capsys)
    assert outcome(first, "signup")["status"] == 201
    assert outcome(second, "signup")["status"] == 409
    assert second["ok"] is True


@pytest.mark.parametrize("drill_backend", [True], indirect=True)
def test_drill_backend_auth_broken_fails(drill_backend, capsys):
    result = run_main({"base_url": drill_backend}, capsys)
    assert result["failed"] is True
    assert outcome(result, "signup")["status"] == 500
    assert outcome(result, "login")["detail"] == "not run, because 'signup' failed"
    assert result["msg"].startswith(
        f"critical paths of {drill_backend} failed: signup failed (500), login not run"
    )
