# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The Python entry point runs the procedures against the drill stack.

Each test resets the stack to the state its procedure starts from and runs
`python -m ansible_collections.truebond.rollback.plugins.plugin_utils.runner_cli`
with a private data directory in a temporary folder. It then checks the stack, the
ansible-runner artifacts (job_events/*.json and the copy of the rollback log) and
the phases that the command printed.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from drill_helpers import (
    BACKEND_CONTAINER,
    BACKEND_REPOSITORY,
    BACKUP_SUFFIX,
    ENV_PRODUCTION,
    PROJECT_DIR,
    REPO,
    STACK_DEFAULT_VERSION,
    STACK_SCRIPT,
    VENV_BIN,
    CommandResult,
    compose,
    fetch_json,
    inspect_container,
    playbook_environment,
    reset_stack,
    run_checked,
    run_command,
)

pytestmark = pytest.mark.usefixtures("drill_stack")

CLI_MODULE = "ansible_collections.truebond.rollback.plugins.plugin_utils.runner_cli"
COLLECTIONS_ROOT = REPO / ".collections"
GOOD_VERSION = "v0.9.5"
FLAG = "REALTIME_MESSAGING_ENABLED"
# The drill stack's env file as stack.sh installs it.
ENV_REFERENCE = REPO / "tests" / "stack" / "project" / "env.production"
CLI_TIMEOUT = 600


@dataclass
class CliRun:
    """One run of the entry point and where its artifacts are."""

    result: CommandResult
    private_data_dir: Path

    @property
    def artifact_dir(self) -> Path:
        folders = sorted((self.private_data_dir / "artifacts").iterdir())
        assert len(folders) == 1, f"expected one artifacts folder, found {folders}"
        return folders[0]

    def events(self) -> list[dict]:
        paths = sorted((self.artifact_dir / "job_events").glob("*.json"))
        return [json.loads(path.read_text()) for path in paths]

    def rollback_log(self) -> dict:
        path = self.artifact_dir / "rollback-log" / "drill-app" / "rollback-log.json"
        return json.loads(path.read_text())


def run_cli(tmp_path: Path, *arguments: str) -> CliRun:
    private_data_dir = tmp_path / "runner"
    environment = playbook_environment(
        PYTHONPATH=os.pathsep.join(
            filter(None, [str(COLLECTIONS_ROOT), os.environ.get("PYTHONPATH")])
        )
    )
    result = run_command(
        [
            str(VENV_BIN / "python"),
            "-m",
            CLI_MODULE,
            *arguments,
            "--private-data-dir",
            str(private_data_dir),
        ],
        environment=environment,
        timeout=CLI_TIMEOUT,
    )
    return CliRun(result, private_data_dir)


def stack(*arguments: str) -> None:
    run_checked(["bash", str(STACK_SCRIPT), *arguments])


def env_backups() -> set[str]:
    prefix = ENV_PRODUCTION.name
    return {
        entry.name
        for entry in PROJECT_DIR.iterdir()
        if entry.name.startswith(prefix)
        and BACKUP_SUFFIX.search(entry.name[len(prefix) :])
    }


def backend_flag() -> str | None:
    output = run_checked(
        [
            "docker",
            "inspect",
            "--type",
            "container",
            "--format",
            "{{json .Config.Env}}",
            BACKEND_CONTAINER,
        ]
    )
    environment = dict(item.split("=", 1) for item in json.loads(output) if "=" in item)
    return environment.get(FLAG)


def wait_for_feature(value: bool, deadline: float = 30) -> None:
    end = time.monotonic() + deadline
    while True:
        try:
            status, body = fetch_json("/api/features")
            if status == 200 and body["features"].get(FLAG) is value:
                return
        except (OSError, ValueError, KeyError):
            pass
        if time.monotonic() > end:
            raise AssertionError(f"/api/features did not report {FLAG}={value}")
        time.sleep(0.2)


def restore_flag_on() -> None:
    """Put the stack back on v1.0.0 with the reference env file, flag on.

    A container keeps the environment it was created with, so the backend is
    recreated when its flag differs from the reference file.
    """
    reference = ENV_REFERENCE.read_bytes()
    if ENV_PRODUCTION.read_bytes() != reference:
        ENV_PRODUCTION.write_bytes(reference)
    reset_stack(STACK_DEFAULT_VERSION)
    if backend_flag() != "true":
        compose(
            "up", "-d", "--no-deps", "--force-recreate", "--pull", "never", "backend"
        )
    wait_for_feature(True)


def assert_artifacts_and_phases(run: CliRun, procedure: str) -> dict:
    """Check the job events, the rollback log copy and the printed phases."""
    events = run.events()
    kinds = {event.get("event") for event in events}
    assert "playbook_on_start" in kinds
    assert "playbook_on_stats" in kinds
    assert "runner_on_ok" in kinds
    log = run.rollback_log()
    assert log["result"] == "success"
    assert log["procedure"] == procedure
    output = run.result.stdout
    for phase in log["timeline"]:
        assert f"{phase['phase']} phase started" in output, run.result.describe()
    assert "writing the rollback log" in output
    assert "Rollback log of drill-app:" in output
    assert "  Result: success" in output
    assert f"Artifacts: {run.artifact_dir} (job_events/, stdout)" in output
    return log


# --- app ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def app_run(tmp_path_factory) -> CliRun:
    reset_stack(STACK_DEFAULT_VERSION)
    return run_cli(
        tmp_path_factory.mktemp("cli-app"),
        "app",
        "--version",
        GOOD_VERSION,
        "--severity",
        "high",
        "--issue",
        "Entry point test: v1.0.0 breaks authentication",
    )


def test_app_exits_zero(app_run):
    assert app_run.result.rc == 0, app_run.result.describe()


def test_app_switches_backend(app_run):
    backend = inspect_container(BACKEND_CONTAINER)
    assert backend.image == f"{BACKEND_REPOSITORY}:{GOOD_VERSION}"


def test_app_artifacts_and_phases(app_run):
    log = assert_artifacts_and_phases(app_run, "application")
    assert [phase["phase"] for phase in log["timeline"]] == [
        "preflight",
        "capture",
        "prepare",
        "switch",
        "verify",
    ]
    assert log["to_version"] == GOOD_VERSION
    assert f"Versions: {STACK_DEFAULT_VERSION} -> {GOOD_VERSION}" in (
        app_run.result.stdout
    )
    assert "RTO: " in app_run.result.stdout
    assert "playbooks/rollback_app.yml succeeded." in app_run.result.stdout


# --- db ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def db_run(tmp_path_factory) -> CliRun:
    # The pre-deploy backup is taken on v0.9.5's data, then v1.0.0's migration
    # changes the data, as `make drill-db` does it.
    stack("set", GOOD_VERSION)
    stack("seed")
    snapshot = run_command(
        [str(VENV_BIN / "ansible-playbook"), "playbooks/snapshot.yml"],
        timeout=CLI_TIMEOUT,
    )
    assert snapshot.rc == 0, snapshot.describe()
    stack("set", STACK_DEFAULT_VERSION)
    return run_cli(
        tmp_path_factory.mktemp("cli-db"),
        "db",
        "--version",
        GOOD_VERSION,
        "--yes",
        "--drop-new-collections",
        "--severity",
        "high",
        "--issue",
        "Entry point test: the v1.0.0 migration breaks the data",
    )


def test_db_exits_zero(db_run):
    assert db_run.result.rc == 0, db_run.result.describe()


def test_db_switches_backend(db_run):
    backend = inspect_container(BACKEND_CONTAINER)
    assert backend.image == f"{BACKEND_REPOSITORY}:{GOOD_VERSION}"


def test_db_artifacts_and_phases(db_run):
    log = assert_artifacts_and_phases(db_run, "database")
    assert "restore" in [phase["phase"] for phase in log["timeline"]]
    assert log["rpo"]["seconds"] is not None
    assert "RPO: " in db_run.result.stdout


# --- feature -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def feature_run(tmp_path_factory):
    backups_before = env_backups()
    restore_flag_on()
    run = run_cli(
        tmp_path_factory.mktemp("cli-feature"),
        "feature",
        "--feature",
        FLAG,
        "--severity",
        "medium",
        "--issue",
        "Entry point test: messages arrive twice",
    )
    status, body = fetch_json("/api/features")
    yield run, status, body
    restore_flag_on()
    for name in sorted(env_backups() - backups_before):
        (PROJECT_DIR / name).unlink()


def test_feature_exits_zero(feature_run):
    run, _status, _body = feature_run
    assert run.result.rc == 0, run.result.describe()


def test_feature_turns_flag_off(feature_run):
    _run, status, body = feature_run
    assert status == 200
    assert body["features"][FLAG] is False


def test_feature_artifacts_and_phases(feature_run):
    run, _status, _body = feature_run
    log = assert_artifacts_and_phases(run, "feature-disable")
    assert log["rollback_type"] == 4


# --- drill -------------------------------------------------------------------------


@pytest.fixture(scope="module")
def drill_run(tmp_path_factory) -> tuple[CliRun, Path]:
    folder = tmp_path_factory.mktemp("cli-drill")
    history = folder / "drills" / "history.jsonl"
    reset_stack(GOOD_VERSION)
    run = run_cli(folder, "drill", "-e", f"drill_history_file={history}")
    return run, history


def test_drill_exits_zero(drill_run):
    run, _history = drill_run
    assert run.result.rc == 0, run.result.describe()


def test_drill_artifacts_and_phases(drill_run):
    run, history = drill_run
    log = assert_artifacts_and_phases(run, "application")
    record = json.loads(history.read_bytes().splitlines()[-1])
    assert record["rto_seconds"] == log["rto"]["seconds"]
    assert "playbooks/drill.yml succeeded." in run.result.stdout
