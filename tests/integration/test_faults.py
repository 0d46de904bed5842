# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Fault injection against the drill stack: each test breaks one thing mid-rollback.

The faults are a data store stopped while a run captures or restores, a backup
whose files were changed, and a missing confirmation without a terminal. Others are
SIGINT or SIGTERM sent to the ansible-playbook process in the switch, restore or
disable phase, two runs at once, and notification channels that refuse connections. The
states that a recreate interrupted between two of its steps leaves are also
prepared by hand with docker commands, because a signal lands on one of them only
by chance.

The tests check the exit code, the message and the state that the run reports.
They compare the data with a recorded state, using tests/helpers/datastate.py, which
compares the bytes of every MongoDB document and Redis key. Where a run stopped
part-way, a second run must converge.

A run is paused at a task boundary by sending SIGSTOP to its process group when the
task's banner appears in the output, so that a data store can be stopped exactly
between two tasks. docs/fault-injection.md lists these tests beside the faults that
other test files cover.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from drill_helpers import (
    BACKEND_CONTAINER,
    BACKUP_ROOT,
    COMPOSE_FILE,
    ENV_PRODUCTION,
    FAST_HEALTH_DEADLINE,
    PROJECT_DIR,
    REPO,
    STACK_SCRIPT,
    VENV_BIN,
    CommandResult,
    StackSnapshot,
    compose,
    dangling_image_ids,
    delete_tag,
    fetch_json,
    image_id,
    incident_folders,
    inspect_container,
    new_incident_folder,
    playbook_environment,
    read_rollback_log,
    remove_image,
    reset_stack,
    run_checked,
    run_playbook,
    tag_commit,
    take_snapshot,
)

sys.path.insert(0, str(REPO / "tests" / "helpers"))
import datastate  # the helper lives outside the test folders

pytestmark = pytest.mark.usefixtures("drill_stack")

LOCK_FILE = Path("/var/lock/truebond-rollback.lock")
TAKEOVER_HINT = "-e rollback_lock_takeover=true"
ROLLBACK_DB = "playbooks/rollback_db.yml"
ROLLBACK_FULL = "playbooks/rollback_full.yml"
ROLLBACK_APP = "playbooks/rollback_app.yml"
DISABLE_FEATURE = "playbooks/disable_feature.yml"
DATA_ROLLBACK_VARS = {
    "version": "v0.9.5",
    "confirm": "yes",
    "drop_new_collections": True,
    "severity": "high",
    "issue": "Fault drill: the v1.0.0 migration broke the data",
}
# The banner of the capture's first task: a run paused there has changed nothing yet.
CAPTURE_BANNER = "Capture | Decide the incident id"
# Seconds to wait for a task banner, and for a whole run after it.
BANNER_TIMEOUT = 180
RUN_TIMEOUT = 300
# PIDs of the ansible-playbook processes these tests started, so that the teardown
# removes a lock left behind only when one of them held it.
STARTED_PIDS: set[int] = set()


def stack(*arguments: str) -> str:
    return run_checked(["bash", str(STACK_SCRIPT), *arguments])


def record_data() -> dict:
    """Return the bytes of every MongoDB document and Redis key, as datastate does."""
    return datastate.record(datastate.read_env(ENV_PRODUCTION))


def data_differences(reference: dict, stores: str = "all") -> list[str]:
    """Return how the live data differs from ``reference`` (empty when it matches)."""
    return datastate.compare(reference, record_data(), stores)


def fresh_v100() -> dict:
    """Put the stack on v1.0.0 with freshly seeded, migrated data; return its state."""
    stack("start-stores")
    reset_stack("v1.0.0")
    stack("seed")
    return record_data()


def free_port() -> int:
    """Return a loopback port that nothing listens on (closed right after binding)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


class PlaybookProcess:
    """An ansible-playbook run in its own process group, with its output streamed.

    stdin is /dev/null, so the run has no terminal, as under AWX or CI. A reader
    thread collects stdout and stderr (merged) so that the test can wait for a
    task banner and then pause the run, signal it or let it finish.
    """

    def __init__(self, playbook: str, extra_vars: dict | None = None):
        self.argv = [str(VENV_BIN / "ansible-playbook"), playbook]
        if extra_vars:
            self.argv += ["-e", json.dumps(extra_vars)]
        self.lines: list[str] = []
        self._changed = threading.Condition()
        self.process = subprocess.Popen(
            self.argv,
            cwd=REPO,
            env=playbook_environment(PYTHONUNBUFFERED="1"),
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,
        )
        STARTED_PIDS.add(self.process.pid)
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        for line in self.process.stdout:
            with self._changed:
                self.lines.append(line)
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    def wait_for(self, text: str, timeout: float = BANNER_TIMEOUT) -> None:
        """Block until a line of output contains ``text``; fail if the run ends first."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while not any(text in line for line in self.lines):
                remaining = deadline - time.monotonic()
                if remaining <= 0 or not self._reader.is_alive():
                    tail = "".join(self.lines[-60:])
                    raise AssertionError(
                        f"{text!r} did not appear in the output of {self.argv}:\n{tail}"
                    )
                self._changed.wait(min(remaining, 1))

    def pause(self) -> None:
        os.killpg(self.process.pid, signal.SIGSTOP)

    def resume(self) -> None:
        os.killpg(self.process.pid, signal.SIGCONT)

    def send(self, signum: int) -> None:
        """Send ``signum`` to the ansible-playbook process only, as a terminal would."""
        os.kill(self.process.pid, signum)

    def finish(self, timeout: float = RUN_TIMEOUT) -> CommandResult:
        try:
            self.process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait()
        self._reader.join(timeout=10)
        output = "".join(self.lines)
        return CommandResult(self.argv, self.process.returncode, output, "")


# How ansible-core 2.19 ends on each signal: SIGINT (Ctrl+C) raises
# KeyboardInterrupt, which it reports, and exits 99. SIGTERM is passed to the
# workers and then kills the process, so Python's subprocess reports -15. Neither
# runs the playbook's rescue or always section, so the lock stays behind.
EXIT_CODES = {signal.SIGINT: 99, signal.SIGTERM: -signal.SIGTERM}
INTERRUPTS = [
    pytest.param(signal.SIGINT, id="SIGINT"),
    pytest.param(signal.SIGTERM, id="SIGTERM"),
]


def assert_interrupted(result: CommandResult, signum: int) -> None:
    assert result.rc == EXIT_CODES[signum], result.describe()
    if signum == signal.SIGINT:
        assert "User interrupted execution" in result.output


def closed_channels(state_dir: Path) -> dict:
    """Return notify settings whose chat webhook and status page refuse connections."""
    return {
        "notify_slack_webhook_url": f"http://127.0.0.1:{free_port()}/hooks/drill",
        "notify_statuspage_api_base": f"http://127.0.0.1:{free_port()}/v1",
        "notify_statuspage_page_id": "drillpage01",
        "notify_statuspage_api_key": "fault-drill-statuspage-key",
        "notify_state_dir": str(state_dir),
        "notify_retry_delay": 0,
    }


def assert_channels_failed(result: CommandResult, incident: Path) -> None:
    """Assert that the run succeeded and logged each closed channel as failed."""
    assert result.rc == 0, result.describe()
    log = read_rollback_log(incident)
    assert log["result"] == "success"
    statuses = {
        (entry["channel"], entry["event"], entry["status"])
        for entry in log["extra"]["notifications"]
    }
    for event in ("rollback_started", "rollback_completed"):
        assert ("slack", event, "failed") in statuses
        assert ("statuspage", event, "failed") in statuses
    assert "fault-drill-statuspage-key" not in result.output


def paused_at(run: PlaybookProcess, banner: str, action) -> None:
    """Pause ``run`` when ``banner`` appears, call ``action``, then let it go on."""
    run.wait_for(banner)
    run.pause()
    try:
        action()
    finally:
        run.resume()


def lock_record() -> dict | None:
    if not LOCK_FILE.exists():
        return None
    return json.loads(LOCK_FILE.read_text(encoding="utf-8"))


def assert_stale_lock_rejected(
    run: PlaybookProcess, procedure: str, extra_vars: dict, playbook: str
) -> None:
    """The killed run's lock stays; a run without the takeover is rejected by it."""
    held = lock_record()
    assert held is not None
    assert held["procedure"] == procedure

    blocked = run_playbook(extra_vars, playbook=playbook)

    assert blocked.rc == 2, blocked.describe()
    flat = blocked.flat_output
    assert f"rollback lock '{LOCK_FILE}' is held by" in flat, blocked.describe()
    assert f"for procedure {procedure} since" in flat
    assert f"The lock is stale because process {run.process.pid}" in flat
    assert f"take the lock over with {TAKEOVER_HINT}" in flat


def assert_stack_unchanged(before: StackSnapshot, version: str = "v1.0.0") -> None:
    """Assert that the backend container, the compose file and its backups stayed."""
    after = take_snapshot()
    assert after.backend.id == before.backend.id
    assert after.backend.image == f"truebond-backend:{version}"
    assert after.backend.status == "running"
    assert after.compose_bytes == before.compose_bytes
    assert after.compose_backups == before.compose_backups


def assert_backend_runs(version: str) -> None:
    backend = inspect_container(BACKEND_CONTAINER)
    assert backend.image == f"truebond-backend:{version}"
    assert backend.image_id == image_id(f"truebond-backend:{version}")
    assert backend.status == "running"
    status, body = fetch_json("/api/health")
    assert status == 200, body
    assert body.get("version") == version, body


@dataclass
class ServiceContainer:
    """One container of the backend service, as docker ps lists it."""

    id: str
    name: str
    image: str
    state: str


def backend_service_containers() -> list[ServiceContainer]:
    """List every container of the backend service by its Compose labels, newest first."""
    output = run_checked(
        [
            "docker",
            "ps",
            "--all",
            "--no-trunc",
            "--filter",
            "label=com.docker.compose.project=truebond",
            "--filter",
            "label=com.docker.compose.service=backend",
            "--format",
            "{{json .}}",
        ]
    )
    containers = []
    for line in output.splitlines():
        entry = json.loads(line)
        containers.append(
            ServiceContainer(
                entry["ID"], entry["Names"], entry["Image"], entry["State"]
            )
        )
    return containers


def assert_backend_converged(version: str) -> None:
    """Assert that the backend runs ``version`` and is the service's only container."""
    assert_backend_runs(version)
    names = [container.name for container in backend_service_containers()]
    assert names == [BACKEND_CONTAINER]


def wait_until_stopped(container_id: str, timeout: float = 30) -> None:
    """Wait until container ``container_id`` no longer runs or no longer exists.

    The test polls by ID, because during a recreate the container name belongs to
    the old container, then to none, then to the replacement.
    """
    deadline = time.monotonic() + timeout
    while True:
        completed = subprocess.run(
            ["docker", "inspect", "--format", "{{.State.Running}}", container_id],
            capture_output=True,
            text=True,
            check=False,
        )
        if completed.returncode != 0 or completed.stdout.strip() != "true":
            return
        assert time.monotonic() < deadline, f"container {container_id} still runs"
        time.sleep(0.05)


@pytest.fixture(autouse=True)
def remove_lock_of_killed_runs():
    """Remove the rollback lock after a test if a run that the test killed held it."""
    yield
    record = lock_record()
    if record is not None and record.get("owner_pid") in STARTED_PIDS:
        LOCK_FILE.unlink()


@dataclass
class PredeployBackup:
    """The backup that the snapshot playbook took on v0.9.5, and the data it holds."""

    path: Path
    data: dict


@pytest.fixture(scope="module")
def predeploy_backup() -> PredeployBackup:
    """Take a backup on seeded v0.9.5, as before a deploy; remove it at the end."""
    stack("start-stores")
    reset_stack("v0.9.5")
    stack("seed")
    data = record_data()
    before = set(BACKUP_ROOT.glob("backup-*"))
    result = run_playbook({}, playbook="playbooks/snapshot.yml")
    assert result.rc == 0, result.describe()
    created = sorted(set(BACKUP_ROOT.glob("backup-*")) - before)
    assert len(created) == 1, created
    yield PredeployBackup(created[0], data)
    shutil.rmtree(created[0])
    stack("start-stores")


def copy_backup(backup: PredeployBackup, destination: Path) -> Path:
    """Copy the backup folder to ``destination``, keeping its 0700/0600 modes."""
    target = destination / backup.path.name
    shutil.copytree(backup.path, target)
    return target


def rewrite_file_record(snapshot_dir: Path, relative: str) -> None:
    """Set the size and SHA-256 of ``relative`` in snapshot.json to the file's own."""
    manifest_path = snapshot_dir / "snapshot.json"
    manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
    data = (snapshot_dir / relative).read_bytes()
    manifest["files"][relative] = {
        "bytes": len(data),
        "sha256": hashlib.sha256(data).hexdigest(),
    }
    manifest_path.write_text(json.dumps(manifest, indent=2), encoding="utf-8")


def flip_middle_byte(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


# --- Database rollback ----------------------------------------------------------


def test_db_unconfirmed_without_terminal_changes_nothing(predeploy_backup):
    data_before = fresh_v100()
    before = take_snapshot()
    extra = {key: value for key, value in DATA_ROLLBACK_VARS.items()}
    del extra["confirm"]

    result = PlaybookProcess(ROLLBACK_DB, extra).finish()

    assert result.rc == 2, result.describe()
    flat = result.flat_output
    assert 'Not confirmed (the answer was ""), so nothing was changed.' in flat
    assert "run again with -e confirm=yes" in flat, result.describe()
    assert_stack_unchanged(before)
    assert incident_folders() == before.incident_folders
    assert data_differences(data_before) == []
    assert lock_record() is None


@dataclass
class FailedRun:
    """A run that failed, the state before it and the state right after it."""

    result: CommandResult
    before: StackSnapshot
    data_differences: list[str]
    incident_dir: Path


@pytest.fixture(scope="module")
def mongodb_down_at_capture(predeploy_backup) -> FailedRun:
    data_before = fresh_v100()
    before = take_snapshot()
    run = PlaybookProcess(ROLLBACK_DB, DATA_ROLLBACK_VARS)
    try:
        paused_at(run, CAPTURE_BANNER, lambda: stack("stop-store", "mongodb"))
        result = run.finish()
    finally:
        stack("start-stores")
    return FailedRun(
        result=result,
        before=before,
        data_differences=data_differences(data_before),
        incident_dir=new_incident_folder(before.incident_folders),
    )


def test_db_mongodb_down_at_capture_stops(mongodb_down_at_capture):
    result = mongodb_down_at_capture.result

    assert result.rc == 2, result.describe()
    flat = result.flat_output
    assert 'The mongodb snapshot "main" failed:' in flat, result.describe()
    assert "127.0.0.1:27017" in flat
    assert "before any step that could lose data" in flat
    assert "run again with -e allow_missing_snapshots=true" in flat
    assert "Database rollback to v0.9.5 FAILED at task" in flat
    assert "mongodb: not touched by this run" in flat
    assert_stack_unchanged(mongodb_down_at_capture.before)
    log = read_rollback_log(mongodb_down_at_capture.incident_dir)
    assert log["result"] == "failed"
    assert log["failure"]["task"] == "Capture | Stop because a snapshot failed"
    assert mongodb_down_at_capture.data_differences == []
    assert lock_record() is None


def test_db_failure_account_names_phase(mongodb_down_at_capture):
    log = read_rollback_log(mongodb_down_at_capture.incident_dir)

    assert log["timeline"][-1]["phase"] == "capture"
    assert log["timeline"][-1]["status"] == "failed"
    assert log["state"]["failed_in_phase"] == "capture"
    assert "failed_in_phase: capture" in mongodb_down_at_capture.result.flat_output


def test_db_output_hides_credentials(mongodb_down_at_capture):
    output = mongodb_down_at_capture.result.output

    assert "drill-only-mongodb-admin-password" not in output


def test_db_mongodb_down_allowed_fails_at_restore(predeploy_backup):
    """Go on without the snapshot when allowed, then fail at the restore.

    MongoDB stays down from the capture to the restore. The run switches the
    backend and reports the failed restore with the state it left. A second run
    after MongoDB is back restores the backup's data.
    """
    data_before = fresh_v100()
    before = take_snapshot()
    extra = {**DATA_ROLLBACK_VARS, "allow_missing_snapshots": True}

    run = PlaybookProcess(ROLLBACK_DB, extra)
    try:
        paused_at(
            run,
            CAPTURE_BANNER,
            lambda: stack("stop-store", "mongodb"),
        )
        result = run.finish()
    finally:
        stack("start-stores")

    assert result.rc == 2, result.describe()
    flat = result.flat_output
    assert 'WARNING: going on WITHOUT the mongodb snapshot "main", as allowed' in flat
    assert "Database rollback to v0.9.5 FAILED at task" in flat, result.describe()
    assert "127.0.0.1:27017" in flat
    incident = new_incident_folder(before.incident_folders)
    log = read_rollback_log(incident)
    assert log["result"] == "failed"
    assert log["timeline"][-1]["phase"] == "restore"
    assert log["timeline"][-1]["status"] == "failed"
    # A snapshot folder without a complete snapshot.json is never restored from.
    snapshot_file = incident / "datastores" / "main" / "snapshot.json"
    if snapshot_file.exists():
        assert json.loads(snapshot_file.read_text())["complete"] is False
    # MongoDB was down, so the failed restore cannot have changed a document. The
    # switched v0.9.5 backend creates its own messages index at start, though.
    differences = data_differences(data_before, "mongodb")
    assert [d for d in differences if not d.startswith("indexes of messages:")] == []
    assert lock_record() is None

    rerun = run_playbook(DATA_ROLLBACK_VARS, playbook=ROLLBACK_DB)

    assert rerun.rc == 0, rerun.describe()
    assert_backend_runs("v0.9.5")
    assert data_differences(predeploy_backup.data, "mongodb") == []


def test_db_changed_bson_rejected(predeploy_backup, tmp_path):
    data_before = fresh_v100()
    before = take_snapshot()
    backup = copy_backup(predeploy_backup, tmp_path)
    users = backup / "datastores" / "main" / "truebond" / "users.bson"
    flip_middle_byte(users)

    result = run_playbook(
        {**DATA_ROLLBACK_VARS, "backup": str(backup)}, playbook=ROLLBACK_DB
    )

    assert result.rc == 2, result.describe()
    flat = result.flat_output
    assert (
        f"snapshot file {users} does not match its recorded SHA-256 checksum" in flat
    ), result.describe()
    assert_stack_unchanged(before)
    assert incident_folders() == before.incident_folders
    assert data_differences(data_before) == []
    assert lock_record() is None


def test_db_sigterm_in_restore_then_rerun(predeploy_backup, tmp_path):
    """Kill the restore, then converge with the chat and the status page down."""
    data_before = fresh_v100()
    before = take_snapshot()

    run = PlaybookProcess(ROLLBACK_DB, DATA_ROLLBACK_VARS)
    run.wait_for("Restore | Drop and restore the collections from")
    time.sleep(0.5)
    run.send(signal.SIGTERM)
    result = run.finish()

    # ansible-playbook passes SIGTERM to its workers and then dies of it, so
    # neither the rescue nor the always section runs.
    assert result.rc == -signal.SIGTERM, result.describe()
    incident = new_incident_folder(before.incident_folders)
    snapshot = json.loads(
        (incident / "datastores" / "main" / "snapshot.json").read_text()
    )
    # The capture contains the data as it was before the run, so nothing is lost.
    assert snapshot["complete"] is True
    assert sum(
        collection["count"]
        for collection in snapshot["databases"]["truebond"]["collections"].values()
    ) == sum(len(item["documents"]) for item in data_before["mongodb"].values())
    assert lock_record()["owner_pid"] == run.process.pid
    assert_stale_lock_rejected(run, "rollback_db", DATA_ROLLBACK_VARS, ROLLBACK_DB)
    incidents = incident_folders()

    rerun = run_playbook(
        {
            **DATA_ROLLBACK_VARS,
            **closed_channels(tmp_path),
            "rollback_lock_takeover": True,
        },
        playbook=ROLLBACK_DB,
    )

    assert_channels_failed(rerun, new_incident_folder(incidents))
    assert f"Took over the stale rollback lock '{LOCK_FILE}' of" in rerun.flat_output
    assert_backend_runs("v0.9.5")
    assert data_differences(predeploy_backup.data, "mongodb") == []
    assert lock_record() is None


# --- Full system rollback -------------------------------------------------------


def test_full_redis_down_at_preflight_stops(predeploy_backup):
    data_before = fresh_v100()
    before = take_snapshot()
    stack("stop-store", "redis")
    try:
        result = run_playbook(DATA_ROLLBACK_VARS, playbook=ROLLBACK_FULL)
    finally:
        stack("start-stores")

    assert result.rc == 2, result.describe()
    flat = result.flat_output
    assert "could not connect to Redis at 127.0.0.1:6379" in flat, result.describe()
    assert "Check that Redis is running and that host and port are right." in flat
    assert "drill-only-redis-password" not in result.output
    assert_stack_unchanged(before)
    assert incident_folders() == before.incident_folders
    assert data_differences(data_before) == []
    assert lock_record() is None


@pytest.mark.parametrize(
    ("store", "snapshot", "address"),
    [
        pytest.param("redis", 'redis snapshot "cache"', "127.0.0.1:6379", id="redis"),
        pytest.param(
            "mongodb", 'mongodb snapshot "main"', "127.0.0.1:27017", id="mongodb"
        ),
    ],
)
def test_full_store_down_at_capture_stops(predeploy_backup, store, snapshot, address):
    data_before = fresh_v100()
    before = take_snapshot()

    run = PlaybookProcess(ROLLBACK_FULL, DATA_ROLLBACK_VARS)
    try:
        paused_at(run, CAPTURE_BANNER, lambda: stack("stop-store", store))
        result = run.finish()
    finally:
        stack("start-stores")

    assert result.rc == 2, result.describe()
    flat = result.flat_output
    assert f"The {snapshot} failed:" in flat, result.describe()
    assert address in flat
    assert "before any step that could lose data" in flat
    assert "Full system rollback to v0.9.5 FAILED at task" in flat
    assert "drill-only-mongodb-admin-password" not in result.output
    assert "drill-only-redis-password" not in result.output
    assert_stack_unchanged(before)
    log = read_rollback_log(new_incident_folder(before.incident_folders))
    assert log["result"] == "failed"
    assert data_differences(data_before) == []
    assert lock_record() is None


def test_full_corrupted_rdb_rejected_first(predeploy_backup, tmp_path):
    data_before = fresh_v100()
    before = take_snapshot()
    backup = copy_backup(predeploy_backup, tmp_path)
    snapshot_dir = backup / "datastores" / "cache"
    flip_middle_byte(snapshot_dir / "dump.rdb")
    # Only redis-check-rdb can tell: the checksum matches the changed file.
    rewrite_file_record(snapshot_dir, "dump.rdb")

    result = run_playbook(
        {**DATA_ROLLBACK_VARS, "backup": str(backup)}, playbook=ROLLBACK_FULL
    )

    assert result.rc == 2, result.describe()
    flat = result.flat_output
    assert "redis-check-rdb" in flat, result.describe()
    assert "dump.rdb" in flat
    # Redis kept running on its own data, because the check came before the stop.
    assert data_differences(data_before, "redis") == []
    # The correct behaviour: the backup is rejected before anything changes.
    assert data_differences(data_before, "mongodb") == []
    assert_stack_unchanged(before)


@dataclass
class KilledRun:
    """A run killed by a signal, with the data from before it."""

    run: PlaybookProcess
    data_before: dict


def kill_full_run_at(
    banner: str,
    delay: float,
    signum: int = signal.SIGTERM,
    wait=None,
) -> KilledRun:
    """Start rollback_full on fresh v1.0.0 data and send ``signum`` after ``banner``.

    The signal comes ``delay`` s after the banner, or after ``wait()`` returns when
    the test passes one. Assert that the run ended on the signal, that the capture's
    snapshots of both stores are complete, and that a second run without takeover
    is rejected by the stale lock.
    """
    data_before = fresh_v100()
    before = take_snapshot()

    run = PlaybookProcess(ROLLBACK_FULL, DATA_ROLLBACK_VARS)
    run.wait_for(banner)
    if wait is not None:
        wait()
    time.sleep(delay)
    run.send(signum)
    result = run.finish()

    assert_interrupted(result, signum)
    incident = new_incident_folder(before.incident_folders)
    # Both snapshots of the capture are complete, so the data from before the run is
    # kept even though the restore stopped part-way.
    snapshots = {}
    for name in ("main", "cache"):
        snapshot_file = incident / "datastores" / name / "snapshot.json"
        snapshots[name] = json.loads(snapshot_file.read_text(encoding="utf-8"))
        assert snapshots[name]["complete"] is True
    assert sum(
        collection["count"]
        for collection in snapshots["main"]["databases"]["truebond"][
            "collections"
        ].values()
    ) == sum(len(item["documents"]) for item in data_before["mongodb"].values())
    assert snapshots["cache"]["keyspace"]["db0"]["keys"] == len(data_before["redis"])
    assert lock_record()["owner_pid"] == run.process.pid
    assert_stale_lock_rejected(run, "rollback_full", DATA_ROLLBACK_VARS, ROLLBACK_FULL)
    return KilledRun(run, data_before)


def assert_full_takeover_converges(killed: KilledRun, backup: PredeployBackup) -> None:
    rerun = run_playbook(
        {**DATA_ROLLBACK_VARS, "rollback_lock_takeover": True}, playbook=ROLLBACK_FULL
    )

    assert rerun.rc == 0, rerun.describe()
    assert f"Took over the stale rollback lock '{LOCK_FILE}' of" in rerun.flat_output
    assert_backend_converged("v0.9.5")
    assert data_differences(backup.data) == []
    assert lock_record() is None


def test_full_sigterm_in_mongodb_restore_then_rerun(predeploy_backup):
    """Kill the run while it restores MongoDB, with every service stopped."""
    killed = kill_full_run_at("Restore | Drop and restore the collections from", 0.5)

    assert_full_takeover_converges(killed, predeploy_backup)


def test_full_sigint_in_stop_then_rerun(predeploy_backup):
    """Interrupt the run once the stop phase has stopped the backend.

    Every application container is down and no data store is restored yet, so the
    data must be as before the run, and the takeover run converges.
    """
    # The stop keeps the container, so its name still finds it.
    killed = kill_full_run_at(
        "Stop services | Stop every service",
        0,
        signal.SIGINT,
        wait=lambda: wait_until_stopped(BACKEND_CONTAINER),
    )
    assert data_differences(killed.data_before) == []

    assert_full_takeover_converges(killed, predeploy_backup)


def test_full_sigterm_in_redis_restore_then_rerun(predeploy_backup):
    """Kill the run after it stopped Redis for the restore.

    The second run takes the stale lock over, stops in the preflight with the
    command that starts Redis, changes nothing and releases the lock. Once Redis runs
    again (the test starts it with stack.sh), the next run converges: the restore
    replaces the data that Redis loaded.
    """
    try:
        # Redis stopped in the task before. The signal comes while the module that
        # replaces the RDB file starts, before the task that starts Redis. (At
        # the banner itself, ansible-core 2.19's SIGTERM handler can fail with
        # "ValueError: process object is closed" and exit 250.)
        kill_full_run_at("Restore Redis | Put the snapshot's RDB file in place", 0.2)
        with pytest.raises(ConnectionRefusedError):
            socket.create_connection(("127.0.0.1", 6379), timeout=5).close()
        incidents = incident_folders()

        blocked = run_playbook(
            {**DATA_ROLLBACK_VARS, "rollback_lock_takeover": True},
            playbook=ROLLBACK_FULL,
        )

        assert blocked.rc == 2, blocked.describe()
        flat = blocked.flat_output
        assert "could not connect to Redis at 127.0.0.1:6379" in flat
        assert (
            "If an interrupted rollback stopped Redis (its lock is then stale)" in flat
        )
        assert "and run again. Nothing was changed." in flat, blocked.describe()
        assert f"Took over the stale rollback lock '{LOCK_FILE}' of" in flat
        assert incident_folders() == incidents
        assert lock_record() is None

        stack("start-stores")
        rerun = run_playbook(DATA_ROLLBACK_VARS, playbook=ROLLBACK_FULL)

        assert rerun.rc == 0, rerun.describe()
        assert_backend_converged("v0.9.5")
        assert data_differences(predeploy_backup.data) == []
        assert lock_record() is None
    finally:
        stack("start-stores")


# --- Application rollback -------------------------------------------------------


def test_app_concurrent_run_rejected(tmp_path):
    """Two rollbacks at once, with the chat webhook and the status page down.

    The second run is rejected with the holder of the lock, and the first one
    finishes: channels that refuse connections are recorded as failed in the log,
    and do not fail the rollback.
    """
    reset_stack("v1.0.0")
    before = incident_folders()
    channels = closed_channels(tmp_path)
    first = PlaybookProcess(ROLLBACK_APP, {"version": "v0.9.5", **channels})
    first.wait_for("Rollback lock | Report the lock")

    second = run_playbook({"version": "v0.9.5"}, playbook=ROLLBACK_APP)
    result = first.finish()

    assert second.rc == 2, second.describe()
    flat = second.flat_output
    assert f"rollback lock '{LOCK_FILE}' is held by" in flat, second.describe()
    assert "for procedure rollback_app since" in flat
    assert f"Process {first.process.pid} on" in flat
    assert "so that rollback may still be running. Wait for it to finish." in flat
    assert_channels_failed(result, new_incident_folder(before))
    assert_backend_runs("v0.9.5")
    assert lock_record() is None


def set_compose_tag(version: str) -> None:
    """Name ``version`` as the backend's tag in the compose file, as the switch does."""
    text = COMPOSE_FILE.read_text(encoding="utf-8")
    changed, count = re.subn(
        r"^(\s*image: truebond-backend:)\S+$",
        rf"\g<1>{version}",
        text,
        flags=re.MULTILINE,
    )
    assert count == 1, text
    COMPOSE_FILE.write_text(changed, encoding="utf-8")


# Docker Compose 5.6.1 recreates a container in four steps: it creates the replacement
# under the temporary name <first 12 hex digits of the old ID>_<name>, stops the old
# container, removes it, and renames the replacement. Each function below leaves the
# state that an interrupt between two of those steps leaves, for the switch from
# v1.0.0 to v0.9.5, with the compose file already on v0.9.5.


def interrupt_before_remove() -> None:
    """Leave the old container stopped beside the replacement, which has the temporary name."""
    old = inspect_container(BACKEND_CONTAINER)
    set_compose_tag("v0.9.5")
    config_hash = compose("config", "--hash", "backend").split()[1]
    run_checked(["docker", "stop", BACKEND_CONTAINER])
    labels = {
        **old.labels,
        "com.docker.compose.config-hash": config_hash,
        "com.docker.compose.image": image_id("truebond-backend:v0.9.5"),
    }
    argv = ["docker", "create", "--name", f"{old.id[:12]}_{BACKEND_CONTAINER}"]
    argv += ["--network", "host"]
    for name, value in sorted(labels.items()):
        argv += ["--label", f"{name}={value}"]
    run_checked([*argv, "truebond-backend:v0.9.5"])


def create_replacement() -> None:
    """Recreate the backend from the compose file as it is now, without starting it."""
    compose(
        "up",
        "--no-start",
        "--no-deps",
        "--force-recreate",
        "--pull",
        "never",
        "backend",
    )


def give_replacement_temporary_name(old_id: str) -> None:
    """Rename the replacement back to the name it has before Compose's last step."""
    temporary_name = f"{old_id[:12]}_{BACKEND_CONTAINER}"
    run_checked(["docker", "rename", BACKEND_CONTAINER, temporary_name])


def interrupt_after_rename() -> None:
    """Leave the replacement created under its own name and never started."""
    set_compose_tag("v0.9.5")
    create_replacement()


def interrupt_before_rename() -> None:
    """Leave only the replacement, created and still under the temporary name."""
    old_id = inspect_container(BACKEND_CONTAINER).id
    interrupt_after_rename()
    give_replacement_temporary_name(old_id)


def remove_stray_backend_containers() -> None:
    """Remove the backend containers that a failed test left under other names."""
    containers = backend_service_containers()
    if [container.name for container in containers] != [BACKEND_CONTAINER]:
        for container in containers:
            run_checked(["docker", "rm", "--force", container.id])
        reset_stack("v1.0.0")


@pytest.fixture
def backend_containers_restored():
    yield
    remove_stray_backend_containers()


RECREATE_LEFTOVER_MESSAGE = "left by a docker compose recreate that stopped part-way"


@pytest.mark.parametrize(
    ("interrupt", "preflight_message"),
    [
        pytest.param(
            interrupt_before_remove,
            RECREATE_LEFTOVER_MESSAGE,
            id="old-stopped-beside-replacement",
        ),
        pytest.param(
            interrupt_before_rename,
            RECREATE_LEFTOVER_MESSAGE,
            id="replacement-under-temporary-name",
        ),
        pytest.param(
            interrupt_after_rename,
            "but is created, so the rollback starts it again",
            id="replacement-not-started",
        ),
    ],
)
def test_app_rerun_after_interrupted_recreate(
    interrupt, preflight_message, backend_containers_restored
):
    reset_stack("v1.0.0")
    interrupt()
    assert [c for c in backend_service_containers() if c.state == "running"] == []

    rerun = run_playbook({"version": "v0.9.5"}, playbook=ROLLBACK_APP)

    assert rerun.rc == 0, rerun.describe()
    assert preflight_message in rerun.flat_output, rerun.describe()
    assert_backend_converged("v0.9.5")
    assert lock_record() is None


@pytest.mark.parametrize("signum", INTERRUPTS)
def test_app_signal_in_switch_then_rerun(backend_containers_restored, signum):
    """Interrupt the recreate once it has stopped the old container, then run again.

    Where the signal lands decides which of the states above the run leaves, so
    test_app_rerun_after_interrupted_recreate prepares each of them by hand.
    """
    reset_stack("v1.0.0")
    before = incident_folders()

    old_id = inspect_container(BACKEND_CONTAINER).id

    run = PlaybookProcess(ROLLBACK_APP, {"version": "v0.9.5"})
    run.wait_for("Switch image | Recreate on the new image only the service")
    wait_until_stopped(old_id)
    run.send(signum)
    result = run.finish()

    assert_interrupted(result, signum)
    assert len(incident_folders() - before) == 1
    assert_stale_lock_rejected(run, "rollback_app", {"version": "v0.9.5"}, ROLLBACK_APP)

    rerun = run_playbook(
        {"version": "v0.9.5", "rollback_lock_takeover": True}, playbook=ROLLBACK_APP
    )

    assert rerun.rc == 0, rerun.describe()
    assert_backend_converged("v0.9.5")
    assert lock_record() is None


def test_app_low_disk_space_changes_nothing():
    reset_stack("v1.0.0")
    before = take_snapshot()

    result = run_playbook(
        {
            "version": "v0.9.5",
            "truebond_capture_min_free_mb": 1 << 40,
            "truebond_health_deadline": FAST_HEALTH_DEADLINE,
        },
        playbook=ROLLBACK_APP,
    )

    assert result.rc == 2, result.describe()
    flat = result.flat_output
    assert "set truebond_capture_min_free_mb" in flat, result.describe()
    assert_stack_unchanged(before)
    assert incident_folders() == before.incident_folders
    assert lock_record() is None


# The image of this release starts from the local v0.9.5 image (so the build needs no
# registry) and exits at once, so that its container crash-loops under the compose
# file's restart policy.
CRASHING_DOCKERFILE = (
    b"FROM truebond-backend:v0.9.5\n"
    b'ENTRYPOINT ["python3", "-c", "raise SystemExit(3)"]\n'
)


@pytest.fixture
def crashing_release():
    """Tag v0.9.1 on a commit whose image exits at start, and clean up afterwards."""
    delete_tag("v0.9.1")
    dangling_before = dangling_image_ids()
    tag_commit(
        "v0.9.1",
        {"backend/Dockerfile.production": CRASHING_DOCKERFILE},
        "Release v0.9.1 whose backend exits at start",
    )
    yield "v0.9.1"
    reset_stack("v1.0.0")
    delete_tag("v0.9.1")
    remove_image("truebond-backend:v0.9.1")
    for leftover in sorted(dangling_image_ids() - dangling_before):
        run_checked(["docker", "image", "rm", "--force", leftover])


def test_app_crash_looping_target_then_rerun(crashing_release):
    reset_stack("v1.0.0")
    before = incident_folders()

    result = run_playbook(
        {"version": crashing_release, "truebond_health_deadline": FAST_HEALTH_DEADLINE},
        playbook=ROLLBACK_APP,
    )

    assert result.rc == 2, result.describe()
    flat = result.flat_output
    assert "FAILED" in flat, result.describe()
    assert "State left behind" in flat
    assert "truebond-backend:v0.9.1" in flat
    log = read_rollback_log(new_incident_folder(before))
    assert log["result"] == "failed"
    failed = log["state"]["recovery"]["state_after_failure"]
    assert failed["running_image"] == "truebond-backend:v0.9.1"
    # The recovery put back the release that ran before the run.
    assert log["state"]["recovery"]["result"] == "switched back"
    assert_backend_runs("v1.0.0")
    assert lock_record() is None

    rerun = run_playbook({"version": "v0.9.5"}, playbook=ROLLBACK_APP)

    assert rerun.rc == 0, rerun.describe()
    assert_backend_runs("v0.9.5")


# The automatic recovery switches back only to the image that ran before the run.
# These tests change that image's tag while the run verifies the unhealthy v1.0.0.
PREVIOUS_IMAGE = "truebond-backend:v0.9.5"
# A second tag that keeps the v0.9.5 image on the host while its own tag is gone.
KEEPER_TAG = "truebond-backend:fault-drill-keep"


@pytest.fixture
def previous_image_restored():
    """Put the v0.9.5 tag back on the image it named, and the stack on v1.0.0."""
    original = image_id(PREVIOUS_IMAGE)
    yield original
    run_checked(["docker", "tag", original, PREVIOUS_IMAGE])
    remove_image(KEEPER_TAG)
    reset_stack("v1.0.0")


def untag_previous_image(original: str) -> None:
    run_checked(["docker", "tag", original, KEEPER_TAG])
    run_checked(["docker", "image", "rm", PREVIOUS_IMAGE])


def move_previous_tag(original: str) -> None:
    run_checked(["docker", "tag", "truebond-backend:v1.0.0", PREVIOUS_IMAGE])


@pytest.mark.parametrize(
    ("change_image", "reason"),
    [
        pytest.param(
            untag_previous_image,
            "image truebond-backend:v0.9.5 is no longer on the host.",
            id="tag-removed",
        ),
        pytest.param(
            move_previous_tag,
            "truebond-backend:v0.9.5 is image sha256:",
            id="tag-moved",
        ),
    ],
)
def test_app_no_recovery_when_previous_image_changed(
    previous_image_restored, change_image, reason
):
    """Change the v0.9.5 tag while the run verifies v1.0.0: no switch back to it."""
    original = previous_image_restored
    reset_stack("v0.9.5")
    before = incident_folders()

    run = PlaybookProcess(
        ROLLBACK_APP,
        {"version": "v1.0.0", "truebond_health_deadline": FAST_HEALTH_DEADLINE},
    )
    paused_at(run, "Verify health | Probe", lambda: change_image(original))
    result = run.finish()

    assert result.rc == 2, result.describe()
    flat = result.flat_output
    assert f"Automatic recovery: not attempted, because {reason}" in flat, (
        result.describe()
    )
    # The failed target stays: switching to a changed image could start other code.
    backend = inspect_container(BACKEND_CONTAINER)
    assert backend.image == "truebond-backend:v1.0.0"
    assert backend.status == "running"
    log = read_rollback_log(new_incident_folder(before))
    assert log["result"] == "failed"
    assert log["state"]["recovery"]["attempted"] is False
    assert reason.rstrip(".") in log["state"]["recovery"]["reason"]
    assert "recover" not in [phase["phase"] for phase in log["timeline"]]
    assert lock_record() is None


# --- Feature disable ------------------------------------------------------------


def acquire_lock(procedure: str, owner_pid: int) -> dict:
    """Take the rollback lock with the module itself, as a run of ``procedure``."""
    arguments = {
        "ANSIBLE_MODULE_ARGS": {
            "state": "acquired",
            "path": str(LOCK_FILE),
            "procedure": procedure,
            "holder": "fault-drill-operator",
            "owner_pid": owner_pid,
        }
    }
    completed = subprocess.run(
        [
            str(VENV_BIN / "python"),
            "-m",
            "ansible_collections.truebond.rollback.plugins.modules.rollback_lock",
        ],
        input=json.dumps(arguments),
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(REPO / ".collections")},
        timeout=60,
    )
    result = json.loads(completed.stdout)
    assert not result.get("failed"), result
    return result


@pytest.mark.parametrize(
    ("playbook", "extra_vars", "holder_procedure"),
    [
        pytest.param(
            DISABLE_FEATURE,
            {"feature": "REALTIME_MESSAGING_ENABLED"},
            "rollback_db",
            id="disable_feature",
        ),
        pytest.param(ROLLBACK_DB, DATA_ROLLBACK_VARS, "rollback_app", id="rollback_db"),
        pytest.param(
            ROLLBACK_FULL, DATA_ROLLBACK_VARS, "disable_feature", id="rollback_full"
        ),
    ],
)
def test_run_rejected_while_lock_held(playbook, extra_vars, holder_procedure):
    """A run meets the lock of another procedure whose process still runs."""
    reset_stack("v1.0.0")
    before = take_snapshot()
    data_before = record_data()
    holder = subprocess.Popen(["sleep", "300"])
    try:
        lock = acquire_lock(holder_procedure, holder.pid)
        result = run_playbook(extra_vars, playbook=playbook)
    finally:
        holder.kill()
        holder.wait()
    if lock_record() and lock_record()["run_id"] == lock["run_id"]:
        LOCK_FILE.unlink()

    assert result.rc == 2, result.describe()
    flat = result.flat_output
    assert f"rollback lock '{LOCK_FILE}' is held by fault-drill-operator" in flat
    assert f"for procedure {holder_procedure} since" in flat, result.describe()
    assert f"Process {holder.pid} on" in flat
    after = take_snapshot()
    assert after.env_production_bytes == before.env_production_bytes
    assert after.backend.id == before.backend.id
    assert after.incident_folders == before.incident_folders
    assert data_differences(data_before) == []


FLAG = "REALTIME_MESSAGING_ENABLED"
# The drill stack's env file as stack.sh installs it, with the flag on.
ENV_REFERENCE = REPO / "tests" / "stack" / "project" / "env.production"


def container_flag(name: str) -> str | None:
    """Return the value of the flag in the environment of container ``name``."""
    output = run_checked(
        ["docker", "inspect", "--format", "{{json .Config.Env}}", name]
    )
    environment = dict(item.split("=", 1) for item in json.loads(output) if "=" in item)
    return environment.get(FLAG)


def env_backups() -> set[Path]:
    """Return the timestamped backups beside .env.production."""
    return set(PROJECT_DIR.glob(f"{ENV_PRODUCTION.name}.*.bak"))


@pytest.fixture
def flag_on_restored():
    """Leave .env.production and the backend with the flag on, as stack.sh has them."""
    backups_before = env_backups()
    yield
    remove_stray_backend_containers()
    ENV_PRODUCTION.write_bytes(ENV_REFERENCE.read_bytes())
    reset_stack("v1.0.0")
    if container_flag(BACKEND_CONTAINER) != "true":
        compose(
            "up", "-d", "--no-deps", "--force-recreate", "--pull", "never", "backend"
        )
    for backup in sorted(env_backups() - backups_before):
        backup.unlink()


def flag_off_bytes() -> bytes:
    """Return the reference env file with the flag set to false, as the disable writes it."""
    reference = ENV_REFERENCE.read_bytes()
    changed = reference.replace(
        f"\n{FLAG}=true\n".encode(), f"\n{FLAG}=false\n".encode()
    )
    assert changed != reference
    return changed


def assert_flag_off_converged(data_before: dict) -> None:
    assert ENV_PRODUCTION.read_bytes() == flag_off_bytes()
    assert_backend_converged("v1.0.0")
    assert container_flag(BACKEND_CONTAINER) == "false"
    status, body = fetch_json("/api/features")
    assert status == 200, body
    assert body["features"][FLAG] is False
    assert data_differences(data_before) == []
    assert lock_record() is None


def test_disable_rerun_after_interrupted_recreate(flag_on_restored):
    """Run again after a recreate that stopped before it renamed the replacement."""
    reset_stack("v1.0.0")
    data_before = record_data()
    old_id = inspect_container(BACKEND_CONTAINER).id
    ENV_PRODUCTION.write_bytes(flag_off_bytes())
    create_replacement()
    give_replacement_temporary_name(old_id)

    rerun = run_playbook({"feature": FLAG}, playbook=DISABLE_FEATURE)

    assert rerun.rc == 0, rerun.describe()
    assert_flag_off_converged(data_before)


@pytest.mark.parametrize("signum", INTERRUPTS)
def test_disable_signal_in_recreate_then_rerun(flag_on_restored, signum):
    """Interrupt the recreate that applies the flag, then take the lock over.

    The env file already has the new value when the recreate starts, so the
    second run has to notice that the backend does not run with it yet.
    """
    reset_stack("v1.0.0")
    assert ENV_PRODUCTION.read_bytes() == ENV_REFERENCE.read_bytes()
    data_before = record_data()
    old_id = inspect_container(BACKEND_CONTAINER).id

    run = PlaybookProcess(DISABLE_FEATURE, {"feature": FLAG})
    run.wait_for("Disable feature | Recreate only the container of service backend")
    wait_until_stopped(old_id)
    run.send(signum)
    result = run.finish()

    assert_interrupted(result, signum)
    assert ENV_PRODUCTION.read_bytes() == flag_off_bytes()
    assert_stale_lock_rejected(
        run, "disable_feature", {"feature": FLAG}, DISABLE_FEATURE
    )

    rerun = run_playbook(
        {"feature": FLAG, "rollback_lock_takeover": True}, playbook=DISABLE_FEATURE
    )

    assert rerun.rc == 0, rerun.describe()
    assert_flag_off_converged(data_before)
