# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared pytest setup for the unit tests."""

from __future__ import annotations

import os
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
import redis
from ansible.module_utils.common import warnings as module_warnings
from redis.backoff import NoBackoff
from redis.retry import Retry

# .collections/ansible_collections/truebond/rollback is a symlink to the repository
# root, so this entry makes the import path ansible_collections.truebond.rollback
# resolve to the working tree.
COLLECTIONS_ROOT = Path(__file__).resolve().parents[2] / ".collections"
if str(COLLECTIONS_ROOT) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_ROOT))


@pytest.fixture(autouse=True)
def clear_module_warnings():
    """Drop the warnings and deprecations that one module run left behind.

    ansible-core 2.19 keeps them in module-level dicts that exit_json and fail_json
    read. Without this, a warning from one test shows up in the next test's result.
    """
    module_warnings._global_warnings.clear()
    module_warnings._global_deprecations.clear()
    yield
    module_warnings._global_warnings.clear()
    module_warnings._global_deprecations.clear()


# Debian's redis-server, run directly for the redis_* module tests. Each test gets its
# own port in this range, bound to loopback only.
REDIS_PORTS = range(16401, 16420)
_redis_port_cursor = [0]


def _port_in_use(port: int) -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def _next_redis_port() -> int:
    for _ in REDIS_PORTS:
        port = REDIS_PORTS[_redis_port_cursor[0] % len(REDIS_PORTS)]
        _redis_port_cursor[0] += 1
        if not _port_in_use(port):
            return port
    raise RuntimeError(f"every port in {REDIS_PORTS} is in use")


def _child_pids(pid: int) -> list[int]:
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(child) for child in children.split()]


def _is_redis_process(pid: int, port: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return (
        bool(cmdline)
        and b"redis-server" in cmdline[0]
        and str(port).encode() in (b" ".join(cmdline))
    )


class RedisServer:
    """A redis-server process on 127.0.0.1:port with its data in data_dir."""

    def __init__(self, base: Path, port: int, args: tuple[str, ...]):
        self.port = port
        self.data_dir = base / f"redis-{port}"
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.pidfile = base / f"redis-{port}.pid"
        self.logfile = base / f"redis-{port}.log"
        self.args = args
        self.process = None

    def argv(self, daemonize: bool) -> list[str]:
        return [
            shutil.which("redis-server") or "redis-server",
            "--port",
            str(self.port),
            "--bind",
            "127.0.0.1",
            "--dir",
            str(self.data_dir),
            "--save",
            "",
            "--pidfile",
            str(self.pidfile),
            "--logfile",
            str(self.logfile),
            *self.args,
            "--daemonize",
            "yes" if daemonize else "no",
        ]

    def start_command(self) -> str:
        """Return a shell-quoted command that starts this server in the background."""
        return shlex.join(self.argv(daemonize=True))

    def start(self) -> RedisServer:
        self.process = subprocess.Popen(self.argv(daemonize=False))
        self.wait_ready()
        return self

    def wait_ready(self, timeout: float = 10.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if self.client().ping():
                    return
            except (
                redis.exceptions.AuthenticationError,
                redis.exceptions.ResponseError,
            ):
                # A server with requirepass rejects the PING, so it is up.
                return
            except redis.exceptions.ConnectionError:
                pass
            except redis.exceptions.BusyLoadingError:
                pass
            if time.monotonic() > deadline:
                log = self.logfile.read_text() if self.logfile.exists() else ""
                raise RuntimeError(f"redis-server on {self.port} did not start: {log}")
            time.sleep(0.02)

    def client(self, db: int = 0, password: str | None = None):
        # No retries: redis-py's default backoff would make every probe take seconds.
        return redis.Redis(
            host="127.0.0.1",
            port=self.port,
            db=db,
            password=password,
            socket_timeout=5,
            retry=Retry(NoBackoff(), 0),
        )

    def pids(self) -> list[int]:
        pids = []
        if self.process is not None and self.process.poll() is None:
            pids.append(self.process.pid)
        try:
            daemon = int(self.pidfile.read_text().strip())
        except (OSError, ValueError):
            daemon = None
        if daemon and daemon not in pids and _is_redis_process(daemon, self.port):
            pids.append(daemon)
        return pids

    def kill(self) -> None:
        """End the server and its save or rewrite child by PID, without saving."""
        for pid in self.pids():
            for child in _child_pids(pid):
                _kill_quietly(child)
            _kill_quietly(pid)
        if self.process is not None:
            self.process.wait(timeout=10)
        deadline = time.monotonic() + 10
        while _port_in_use(self.port) and time.monotonic() < deadline:
            time.sleep(0.02)


def _kill_quietly(pid: int) -> None:
    try:
        os.kill(pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


@pytest.fixture
def redis_server(tmp_path):
    """Return a factory that starts redis-server with extra arguments.

    With start=False the server is only prepared, so a test can start it itself
    (for example through a start command). Every server is ended at teardown.
    """
    if shutil.which("redis-server") is None:
        pytest.fail(
            "redis-server not found; install it with: apt-get install redis-server"
        )
    servers = []

    def factory(*args: str, start: bool = True) -> RedisServer:
        server = RedisServer(tmp_path, _next_redis_port(), args)
        servers.append(server)
        return server.start() if start else server

    yield factory
    for server in servers:
        server.kill()
