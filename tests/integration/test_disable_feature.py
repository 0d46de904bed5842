# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration tests of playbooks/disable_feature.yml against the drill stack.

Each test starts from the drill stack at v1.0.0 with .env.production as
tests/stack/project/env.production has it (REALTIME_MESSAGING_ENABLED=true) and a
backend container created from that file. The module fixture restores that state at
the end and removes the env file backups that the runs wrote.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
from drill_helpers import (
    BACKEND_CONTAINER,
    BACKUP_ROOT,
    BACKUP_SUFFIX,
    ENV_PRODUCTION,
    FRONTEND_CONTAINER,
    PROJECT_DIR,
    REPO,
    STACK_DEFAULT_VERSION,
    CommandResult,
    ContainerState,
    compose,
    fetch_json,
    incident_folders,
    inspect_container,
    read_rollback_log,
    reset_stack,
    run_checked,
    run_playbook,
)

pytestmark = pytest.mark.usefixtures("drill_stack")

PLAYBOOK = "playbooks/disable_feature.yml"
FLAG = "REALTIME_MESSAGING_ENABLED"
# The drill stack's env file as stack.sh installs it.
ENV_REFERENCE = REPO / "tests" / "stack" / "project" / "env.production"
FLAG_ON_LINE = f"\n{FLAG}=true\n".encode()
FLAG_OFF_LINE = f"\n{FLAG}=false\n".encode()
KNOWN_FLAGS_TEXT = "Known flags: PAYMENTS_ENABLED, REALTIME_MESSAGING_ENABLED."
# Seconds the features API check may take in runs that are expected to fail.
FAST_DEADLINE = 4


def env_backups() -> set[str]:
    """Return the names of the timestamped backups beside .env.production."""
    prefix = ENV_PRODUCTION.name
    return {
        entry.name
        for entry in PROJECT_DIR.iterdir()
        if entry.name.startswith(prefix)
        and BACKUP_SUFFIX.search(entry.name[len(prefix) :])
    }


def container_environment(name: str) -> dict[str, str]:
    """Return the Config.Env of container ``name`` as a dict."""
    output = run_checked(
        [
            "docker",
            "inspect",
            "--type",
            "container",
            "--format",
            "{{json .Config.Env}}",
            name,
        ]
    )
    return dict(item.split("=", 1) for item in json.loads(output) if "=" in item)


def features() -> dict[str, bool]:
    """Return the features that the drill backend reports."""
    status, body = fetch_json("/api/features")
    assert status == 200, body
    return body["features"]


def wait_for_feature(value: bool, deadline: float = 30) -> None:
    """Wait until /api/features reports ``value`` for the flag."""
    end = time.monotonic() + deadline
    while True:
        try:
            if features().get(FLAG) is value:
                return
        except (OSError, ValueError, AssertionError):
            pass
        if time.monotonic() > end:
            raise AssertionError(f"/api/features did not report {FLAG}={value}")
        time.sleep(0.2)


def restore_flag_on() -> None:
    """Put the drill stack back on v1.0.0 with the reference env file, flag on.

    stack.sh only resets the image, and a container keeps the environment it was
    created with, so the backend is recreated when its environment differs.
    """
    reference = ENV_REFERENCE.read_bytes()
    if ENV_PRODUCTION.read_bytes() != reference:
        ENV_PRODUCTION.write_bytes(reference)
    reset_stack(STACK_DEFAULT_VERSION)
    if container_environment(BACKEND_CONTAINER).get(FLAG) != "true":
        compose(
            "up", "-d", "--no-deps", "--force-recreate", "--pull", "never", "backend"
        )
    wait_for_feature(True)


@pytest.fixture(scope="module", autouse=True)
def flag_restored():
    """Leave .env.production and the backend as the drill stack installs them."""
    backups_before = env_backups()
    restore_flag_on()
    yield
    restore_flag_on()
    for name in sorted(env_backups() - backups_before):
        (PROJECT_DIR / name).unlink()


@dataclass
class FlagSnapshot:
    """The state a feature disable changes, or must keep."""

    env_bytes: bytes
    backend: ContainerState
    frontend: ContainerState
    backend_env: dict[str, str]
    incident_folders: set[str]
    env_backups: set[str]


def take_flag_snapshot() -> FlagSnapshot:
    return FlagSnapshot(
        env_bytes=ENV_PRODUCTION.read_bytes(),
        backend=inspect_container(BACKEND_CONTAINER),
        frontend=inspect_container(FRONTEND_CONTAINER),
        backend_env=container_environment(BACKEND_CONTAINER),
        incident_folders=incident_folders(),
        env_backups=env_backups(),
    )


def assert_unchanged(before: FlagSnapshot) -> None:
    after = take_flag_snapshot()
    assert after.env_bytes == before.env_bytes
    assert after.backend.id == before.backend.id
    assert after.backend_env.get(FLAG) == before.backend_env.get(FLAG)
    assert after.frontend.id == before.frontend.id
    assert after.env_backups == before.env_backups
    assert after.incident_folders == before.incident_folders


def run_disable(extra_vars: dict, *options: str) -> CommandResult:
    return run_playbook(extra_vars, *options, playbook=PLAYBOOK)


# --- Rejected input: nothing may change ------------------------------------------


@pytest.mark.parametrize(
    ("feature", "reason"),
    [
        pytest.param(
            "REALTIME_MESSAGING",
            "'REALTIME_MESSAGING' is not defined in any env file of the service",
            id="prefix-of-a-flag",
        ),
        pytest.param(
            "NOPE_ENABLED",
            "'NOPE_ENABLED' is not defined in any env file of the service",
            id="unknown-flag",
        ),
        pytest.param(
            "JWT_SECRET",
            "'JWT_SECRET' does not match known_pattern '_ENABLED$'",
            id="not-a-flag",
        ),
    ],
)
def test_unknown_flag_rejected(feature, reason):
    restore_flag_on()
    before = take_flag_snapshot()

    result = run_disable({"feature": feature})

    assert result.rc == 2, result.describe()
    assert reason in result.flat_output, result.describe()
    assert KNOWN_FLAGS_TEXT in result.flat_output, result.describe()
    assert "Nothing was written." in result.flat_output, result.describe()
    assert_unchanged(before)


def test_flag_outside_allowed_list_rejected():
    restore_flag_on()
    before = take_flag_snapshot()

    result = run_disable(
        {"feature": "PAYMENTS_ENABLED", "disable_feature_allowed": [FLAG]}
    )

    assert result.rc == 2, result.describe()
    assert (
        "'PAYMENTS_ENABLED' is not in the allowed list (REALTIME_MESSAGING_ENABLED)."
        " Known flags: REALTIME_MESSAGING_ENABLED." in result.flat_output
    ), result.describe()
    assert_unchanged(before)


def test_missing_feature_rejected():
    restore_flag_on()
    before = take_flag_snapshot()

    result = run_disable({})

    assert result.rc == 2, result.describe()
    assert "No feature flag was given. Pass -e feature=NAME" in result.flat_output
    assert_unchanged(before)


def test_bad_apply_choice_rejected():
    restore_flag_on()
    before = take_flag_snapshot()

    result = run_disable({"feature": FLAG, "apply": "restart"})

    assert result.rc == 2, result.describe()
    assert (
        "value of apply must be one of: recreate, sighup, none, got: restart"
        in result.output
    ), result.describe()
    assert_unchanged(before)


# --- Check mode ----------------------------------------------------------------


def test_check_mode_changes_nothing():
    restore_flag_on()
    before = take_flag_snapshot()

    result = run_disable({"feature": FLAG}, "--check", "--diff")

    assert result.rc == 0, result.describe()
    assert f"-{FLAG}=true\n+{FLAG}=false" in result.output, result.describe()
    assert "Check mode: would recreate the container of service backend" in (
        result.flat_output
    )
    assert "JWT_SECRET" not in result.output
    assert_unchanged(before)


def test_check_mode_with_comma_separated_flags():
    restore_flag_on()
    before = take_flag_snapshot()

    result = run_disable(
        {"feature": f"{FLAG}, PAYMENTS_ENABLED", "value": "false"}, "--check", "--diff"
    )

    assert result.rc == 0, result.describe()
    # PAYMENTS_ENABLED is already false, so only one line would change.
    assert f"-{FLAG}=true\n+{FLAG}=false" in result.output, result.describe()
    assert "-PAYMENTS_ENABLED" not in result.output
    assert_unchanged(before)


# --- Disable, repeat, turn back on ---------------------------------------------


@dataclass
class DisableRun:
    """One playbook run and the state read right after it."""

    result: CommandResult
    before: FlagSnapshot
    after: FlagSnapshot
    features: dict[str, bool]

    @property
    def incident_dir(self) -> Path:
        created = sorted(self.after.incident_folders - self.before.incident_folders)
        assert len(created) == 1, f"expected one new incident folder, found {created}"
        return BACKUP_ROOT / created[0]


def run_and_record(extra_vars: dict, *options: str) -> DisableRun:
    before = take_flag_snapshot()
    result = run_disable(extra_vars, *options)
    return DisableRun(result, before, take_flag_snapshot(), features())


@pytest.fixture(scope="module")
def disabled() -> DisableRun:
    restore_flag_on()
    return run_and_record({"feature": FLAG, "severity": "medium", "issue": "drill"})


def test_disable_exits_zero(disabled):
    assert disabled.result.rc == 0, disabled.result.describe()


def test_disable_changes_only_flag_line(disabled):
    before = disabled.before.env_bytes

    assert before.count(FLAG_ON_LINE) == 1
    assert disabled.after.env_bytes == before.replace(FLAG_ON_LINE, FLAG_OFF_LINE)


def test_disable_backs_up_env_file(disabled):
    backups = disabled.after.env_backups - disabled.before.env_backups

    assert len(backups) == 1, backups
    assert (PROJECT_DIR / backups.pop()).read_bytes() == disabled.before.env_bytes


def test_disable_recreates_only_backend(disabled):
    assert disabled.after.backend.id != disabled.before.backend.id
    assert disabled.after.backend.image == disabled.before.backend.image
    assert disabled.after.backend.status == "running"
    assert disabled.after.frontend.id == disabled.before.frontend.id


def test_disable_sets_container_environment(disabled):
    assert disabled.before.backend_env[FLAG] == "true"
    assert disabled.after.backend_env[FLAG] == "false"
    assert disabled.after.backend_env["PAYMENTS_ENABLED"] == "false"


def test_disable_reported_by_api(disabled):
    assert disabled.features == {FLAG: False, "PAYMENTS_ENABLED": False}


def test_disable_writes_type_4_log(disabled):
    log = read_rollback_log(disabled.incident_dir)

    assert log["rollback_type"] == 4
    assert log["procedure"] == "feature-disable"
    assert log["result"] == "success"
    assert log["from_version"] is None
    assert log["to_version"] is None
    assert [phase["phase"] for phase in log["timeline"]] == [
        "preflight",
        "capture",
        "disable",
        "verify",
    ]
    assert log["extra"]["flags"][FLAG] == {
        "previous": "true",
        "value": "false",
        "file": str(ENV_PRODUCTION),
        "compose": "false",
        "container": "false",
        "api": False,
    }


def test_disable_captures_env_before_change(disabled):
    captured = disabled.incident_dir / "env" / ".env.production"

    assert captured.read_bytes() == disabled.before.env_bytes


def test_second_run_changes_nothing(disabled):
    assert disabled.result.rc == 0, disabled.result.describe()
    before = take_flag_snapshot()

    result = run_disable({"feature": FLAG})

    assert result.rc == 0, result.describe()
    assert result.recap()["changed"] == 0, result.describe()
    assert f"{FLAG}=false is already set in the env file and in the container" in (
        result.flat_output
    )
    assert_unchanged(before)


def test_value_true_turns_feature_back_on(disabled):
    assert disabled.result.rc == 0, disabled.result.describe()
    assert container_environment(BACKEND_CONTAINER)[FLAG] == "false"

    run = run_and_record({"feature": FLAG, "value": "true"})

    assert run.result.rc == 0, run.result.describe()
    assert run.after.env_bytes == ENV_REFERENCE.read_bytes()
    assert run.after.backend_env[FLAG] == "true"
    assert run.features[FLAG] is True
    assert run.after.frontend.id == run.before.frontend.id
    assert read_rollback_log(run.incident_dir)["extra"]["flags"][FLAG]["previous"] == (
        "false"
    )


# --- A failed verification -------------------------------------------------------


def test_failed_verification_writes_failed_log():
    restore_flag_on()
    before = take_flag_snapshot()

    # /api/health returns no features, so the API check fails after the recreate.
    run = run_and_record(
        {
            "feature": FLAG,
            "disable_feature_features_path": "/api/health",
            "disable_feature_deadline": FAST_DEADLINE,
        }
    )

    assert run.result.rc == 2, run.result.describe()
    output = run.result.flat_output
    assert f"Feature disable {FLAG}=false FAILED at task" in output
    assert f'flags in its environment {{"{FLAG}": "false"}}' in output
    assert f"-e feature={FLAG} -e value=true" in output
    assert "Automatic recovery: not attempted: the flags keep the requested values" in (
        output
    )
    log = read_rollback_log(run.incident_dir)
    assert log["state"]["automatic_recovery"].startswith("not attempted")
    assert log["rollback_type"] == 4
    assert log["result"] == "failed"
    assert log["timeline"][-1]["phase"] == "verify"
    assert log["timeline"][-1]["status"] == "failed"
    assert log["state"]["env_file_changed"] is True
    assert log["extra"]["flags"][FLAG]["previous"] == "true"
    assert run.after.env_bytes == before.env_bytes.replace(FLAG_ON_LINE, FLAG_OFF_LINE)
