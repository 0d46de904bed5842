# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Processes of the decide.yml integration tests: backend, load and Prometheus.

Each test starts its own drill backend straight from the source tree, a load
generator that sends requests to it, and a Prometheus that scrapes it once a
second. Everything listens on 127.0.0.1 only, and every process is stopped by its
own handle.
"""

from __future__ import annotations

import json
import math
import os
import shutil
import signal
import socket
import string
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
import uuid
from pathlib import Path

REPO = Path(__file__).resolve().parents[3]
SERVER = REPO / "tests" / "stack" / "app" / "backend" / "server.py"
CONFIG_TEMPLATE = Path(__file__).with_name("prometheus.yml.in")
BACKEND_PORTS = range(18600, 18700)
PROMETHEUS_PORTS = range(19090, 19100)
JOB = "truebond-backend"
# Each load thread repeats this sequence, so that 4 of 5 requests go to the
# endpoint with the induced conditions whatever its latency.
PATH_CYCLE = ("/api/messages",) * 4 + ("/api/health",)
MESSAGES_SHARE = 4 / 5
# Requests go straight to 127.0.0.1, whatever proxy the environment names.
_DIRECT_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))
# Environment variables of server.py that this module sets itself.
BACKEND_SETTINGS = (
    "RELEASE_FILE",
    "INDUCED_ERROR_RATE",
    "INDUCED_LATENCY_SECONDS",
    "EXTENDED_METRICS",
    "HOST",
    "PORT",
    "STARTUP_DELAY_SECONDS",
)


# Attempts to start a server when another process takes the chosen port first,
# for example a second run of these tests at the same time.
START_ATTEMPTS = 5


class PortTakenError(Exception):
    """The server exited because another process listens on its port."""


def free_port(ports):
    """Return the first port of ports that nothing listens on at 127.0.0.1."""
    for port in ports:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
            try:
                probe.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError(f"no free port in {ports.start}-{ports.stop - 1} on 127.0.0.1")


def wait_until(condition, timeout, description, interval=0.2):
    """Call condition until it returns a true value and return that value."""
    deadline = time.monotonic() + timeout
    while True:
        value = condition()
        if value:
            return value
        if time.monotonic() >= deadline:
            raise AssertionError(
                f"timed out after {timeout} s waiting for {description}"
            )
        time.sleep(interval)


def http_get(url, timeout=2.0):
    """Return (status, body) of a GET request, or (None, error text) without a response."""
    try:
        with _DIRECT_OPENER.open(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()
    except (urllib.error.URLError, OSError) as error:
        return None, str(error)


def stop_process(process, timeout=10):
    """Stop a process started by this module with SIGTERM, then SIGKILL."""
    if process is None or process.poll() is not None:
        return
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(timeout=timeout)


def check_exited(process, log_path, name):
    """Raise when process has exited: PortTakenError if its port was in use."""
    if process.poll() is None:
        return
    log = read_log(log_path)
    if "address already in use" in log.lower():
        raise PortTakenError(log)
    raise AssertionError(f"{name} exited with {process.returncode}: {log}")


def read_log(path, limit=3000):
    try:
        return path.read_text(encoding="utf-8", errors="replace")[-limit:]
    except OSError as error:
        return f"(log {path} not readable: {error})"


def ensure_prometheus():
    """Return the path of the prometheus binary, installing Debian's package if missing."""
    found = shutil.which("prometheus")
    if found:
        return found
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    install = ["apt-get", "install", "-y", "--no-install-recommends", "prometheus"]
    result = subprocess.run(
        install, check=False, env=env, capture_output=True, text=True
    )
    if result.returncode != 0:
        # A fresh machine may have no package lists yet.
        update = ["apt-get", "update"]
        subprocess.run(update, check=False, env=env, capture_output=True, text=True)
        result = subprocess.run(
            install, check=False, env=env, capture_output=True, text=True
        )
    found = shutil.which("prometheus")
    if not found:
        raise RuntimeError(
            "prometheus is not installed and `apt-get install -y "
            "--no-install-recommends prometheus` failed with exit code "
            f"{result.returncode}: {result.stderr[-1500:]}"
        )
    return found


class Backend:
    """The drill backend run from the source tree with induced conditions."""

    def __init__(self, workdir, error_rate=0.0, latency=0.0, induced=True):
        self.workdir = Path(workdir)
        self.error_rate = error_rate
        self.latency = latency
        # False leaves INDUCED_* and EXTENDED_METRICS unset, as in the drill stack.
        self.induced = induced
        # A version of its own distinguishes this backend from any other on the port.
        self.version = f"v9.9.0-decide.{uuid.uuid4().hex[:8]}"
        self.port = None
        self.process = None
        self.log_path = self.workdir / "backend.log"

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        release_file = self.workdir / "release.json"
        release_file.write_text(json.dumps({"version": self.version}) + "\n")
        for _attempt in range(START_ATTEMPTS):
            self.port = free_port(BACKEND_PORTS)
            self._spawn(release_file)
            try:
                wait_until(self._ready, 10, f"the backend on port {self.port}")
                return
            except PortTakenError:
                continue
        raise AssertionError(
            f"the backend found no free port in {START_ATTEMPTS} tries"
        )

    def _spawn(self, release_file):
        env = {
            name: value
            for name, value in os.environ.items()
            if name not in BACKEND_SETTINGS
        }
        env.update(
            {
                "RELEASE_FILE": str(release_file),
                "HOST": "127.0.0.1",
                "PORT": str(self.port),
                "STARTUP_DELAY_SECONDS": "0",
                "PYTHONUNBUFFERED": "1",
            }
        )
        if self.induced:
            env.update(
                {
                    "INDUCED_ERROR_RATE": str(self.error_rate),
                    "INDUCED_LATENCY_SECONDS": str(self.latency),
                    "EXTENDED_METRICS": "true",
                }
            )
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, str(SERVER)],
                env=env,
                stdout=log,
                stderr=subprocess.STDOUT,
                stdin=subprocess.DEVNULL,
            )

    def _ready(self):
        check_exited(self.process, self.log_path, "the backend")
        status, body = http_get(self.url + "/api/health", timeout=1)
        if status != 200:
            return False
        try:
            return json.loads(body).get("version") == self.version
        except ValueError:
            return False

    def stop(self):
        stop_process(self.process)


class LoadGenerator:
    """Threads that send PATH_CYCLE requests to a backend until stopped."""

    def __init__(self, base_url, threads=4, pause=0.02, stagger=0.0):
        self.base_url = base_url
        self.thread_count = threads
        self.pause = pause
        # Seconds between the starts of two threads, so that slow requests do not
        # all complete at the same moment.
        self.stagger = stagger
        self.stopping = threading.Event()
        self.threads = []

    def start(self):
        for index in range(self.thread_count):
            thread = threading.Thread(
                target=self._run, args=(index * self.stagger,), daemon=True
            )
            thread.start()
            self.threads.append(thread)

    def _run(self, delay):
        if self.stopping.wait(delay):
            return
        while not self.stopping.is_set():
            for path in PATH_CYCLE:
                status, _body = http_get(self.base_url + path, timeout=20)
                if status is None:
                    # The backend is down: retry without a busy loop.
                    self.stopping.wait(0.2)
                elif self.pause:
                    self.stopping.wait(self.pause)
                if self.stopping.is_set():
                    return

    def stop(self):
        self.stopping.set()
        for thread in self.threads:
            thread.join(timeout=25)


class Prometheus:
    """A Prometheus server with its own storage that scrapes one backend."""

    def __init__(self, binary, workdir, backend_port):
        self.binary = binary
        self.workdir = Path(workdir)
        self.backend_port = backend_port
        self.port = None
        self.process = None
        self.log_path = self.workdir / "prometheus.log"
        self.storage = self.workdir / "data"

    @property
    def url(self):
        return f"http://127.0.0.1:{self.port}"

    def start(self):
        self.workdir.mkdir(parents=True, exist_ok=True)
        template = string.Template(CONFIG_TEMPLATE.read_text(encoding="utf-8"))
        config = self.workdir / "prometheus.yml"
        config.write_text(
            template.substitute(job=JOB, backend_port=self.backend_port),
            encoding="utf-8",
        )
        for _attempt in range(START_ATTEMPTS):
            self.port = free_port(PROMETHEUS_PORTS)
            command = [
                self.binary,
                f"--config.file={config}",
                f"--storage.tsdb.path={self.storage}",
                f"--web.listen-address=127.0.0.1:{self.port}",
            ]
            with open(self.log_path, "ab") as log:
                self.process = subprocess.Popen(
                    command,
                    stdout=log,
                    stderr=subprocess.STDOUT,
                    stdin=subprocess.DEVNULL,
                )
            try:
                wait_until(self._ready, 30, f"Prometheus on port {self.port}")
                return
            except PortTakenError:
                continue
        raise AssertionError(f"Prometheus found no free port in {START_ATTEMPTS} tries")

    def _ready(self):
        check_exited(self.process, self.log_path, "Prometheus")
        status, _body = http_get(self.url + "/-/ready", timeout=1)
        if status != 200:
            return False
        # Another Prometheus on the port would have another storage path.
        status, body = http_get(self.url + "/api/v1/status/flags", timeout=1)
        flags = json.loads(body).get("data", {}) if status == 200 else {}
        return flags.get("storage.tsdb.path") == str(self.storage)

    def query_value(self, promql):
        """Return the value of a query with one sample, or None for any other response."""
        url = self.url + "/api/v1/query?" + urllib.parse.urlencode({"query": promql})
        status, body = http_get(url)
        if status != 200:
            return None
        result = json.loads(body)["data"]["result"]
        if len(result) != 1:
            return None
        value = float(result[0]["value"][1])
        return value if math.isfinite(value) else None

    def wait_for_samples(self, window, scrapes=3, timeout=40):
        """Wait until the window contains several scrapes and some finished requests."""

        def enough():
            count = self.query_value(f'count_over_time(up{{job="{JOB}"}}[{window}])')
            finished = self.query_value(
                "sum(increase(http_request_duration_seconds_count"
                f'{{job="{JOB}"}}[{window}]))'
            )
            return count is not None and count >= scrapes and bool(finished)

        wait_until(enough, timeout, f"{scrapes} scrapes of the backend in {window}")

    def stop(self):
        stop_process(self.process)
