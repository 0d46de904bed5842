# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration tests of playbooks/rollback_app.yml against the drill stack.

Each test resets the stack to the release it needs, runs the playbook as a
subprocess and checks the real state afterwards. Tests that share one playbook run
get it from a module-scoped fixture that records the state right after the run.

The last test in this file that creates an incident folder is a successful run, so
that tests/host, which reads the newest incident folder, finds a successful capture.
"""

from __future__ import annotations

import itertools
import json
import os
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

import pytest
from drill_helpers import (
    BACKEND_CONTAINER,
    BACKEND_REPOSITORY,
    BACKUP_ROOT,
    COMPOSE_FILE,
    ENV_PRODUCTION,
    FAST_HEALTH_DEADLINE,
    FRONTEND_CONTAINER,
    KNOWN_VERSIONS_TEXT,
    PLAYBOOK,
    PROJECT_DIR,
    VENV_BIN,
    CommandResult,
    ContainerState,
    StackSnapshot,
    compose_backups,
    controller_chart_file,
    dangling_image_ids,
    delete_tag,
    fetch_json,
    git,
    image_id,
    image_labels,
    incident_folders,
    inspect_container,
    new_incident_folder,
    playbook_environment,
    read_rollback_log,
    remove_image,
    reset_stack,
    run_checked,
    run_command,
    run_playbook,
    tag_commit,
    take_snapshot,
)

pytestmark = pytest.mark.usefixtures("drill_stack")

OLD_IMAGE_LINE = b"    image: truebond-backend:v1.0.0\n"
NEW_IMAGE_LINE = b"    image: truebond-backend:v0.9.5\n"
TIMELINE_PHASES = ["preflight", "capture", "prepare", "switch", "verify"]


def assert_nothing_changed(before: StackSnapshot) -> None:
    """Assert that the stack is as ``before`` recorded it.

    The checks cover the backend container, the compose file and its backups, and
    the incident folders.
    """
    after = take_snapshot()
    assert after.backend.id == before.backend.id
    assert after.backend.image == before.backend.image
    assert after.compose_bytes == before.compose_bytes
    assert after.compose_backups == before.compose_backups
    assert after.incident_folders == before.incident_folders


def file_modes(folder: Path) -> dict[str, int]:
    """Return the permission bits of every file under ``folder``, by relative path."""
    return {
        str(path.relative_to(folder)): stat.S_IMODE(path.stat().st_mode)
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


def folder_modes(folder: Path) -> dict[str, int]:
    """Return the permission bits of ``folder`` and every folder under it."""
    folders = [folder, *sorted(p for p in folder.rglob("*") if p.is_dir())]
    return {
        str(path.relative_to(folder)): stat.S_IMODE(path.stat().st_mode)
        for path in folders
    }


# --- Playbook loading ------------------------------------------------------------


def test_playbook_parses_with_strict_yaml_keys():
    # ansible-core 2.19 reports a key set both by a << merge and in the mapping
    # itself as a duplicate, which DUPLICATE_YAML_DICT_KEY=error turns into an error.
    result = run_command(
        [str(VENV_BIN / "ansible-playbook"), PLAYBOOK, "--syntax-check"],
        environment=playbook_environment(ANSIBLE_DUPLICATE_YAML_DICT_KEY="error"),
    )

    assert result.rc == 0, result.describe()
    assert "duplicate mapping key" not in result.output


# --- Input validation: nothing may change ---------------------------------------

BAD_VERSIONS = [
    pytest.param("1.0", id="no-v-prefix"),
    pytest.param("v1.0", id="two-components"),
    pytest.param("latest", id="latest"),
    pytest.param("v0.9.5;rm -rf /tmp/x", id="shell-command"),
    pytest.param("$(id)", id="command-substitution"),
    pytest.param("v1.0.0-rc.1", id="pre-release"),
    pytest.param("v9.9.9", id="unknown-release"),
    pytest.param("v0.9.5 ", id="trailing-space"),
]


@pytest.mark.parametrize("version", BAD_VERSIONS)
def test_bad_version_rejected(version):
    reset_stack("v1.0.0")
    before = take_snapshot()

    result = run_playbook(
        {"version": version, "truebond_health_deadline": FAST_HEALTH_DEADLINE}
    )

    assert result.rc == 2, result.describe()
    # The module quotes the value with repr(), so a trailing space stays visible.
    assert repr(version) in result.output, result.describe()
    assert KNOWN_VERSIONS_TEXT in result.output, result.describe()
    assert_nothing_changed(before)


@pytest.mark.parametrize(
    ("name", "value", "allowed"),
    [
        pytest.param(
            "severity", "urgent", "critical, high, medium, low, unknown", id="severity"
        ),
        pytest.param("strategy", "fast", "recreate, stop-first", id="strategy"),
    ],
)
def test_bad_choice_rejected(name, value, allowed):
    reset_stack("v1.0.0")
    before = take_snapshot()

    result = run_playbook(
        {
            "version": "v0.9.5",
            name: value,
            "truebond_health_deadline": FAST_HEALTH_DEADLINE,
        }
    )

    assert result.rc == 2, result.describe()
    expected = f"value of {name} must be one of: {allowed}, got: {value}"
    assert expected in result.output, result.describe()
    assert_nothing_changed(before)


# --- Rollback from v1.0.0 to v0.9.5 ---------------------------------------------


@dataclass
class RollbackRun:
    """One playbook run and the state read right after it."""

    result: CommandResult
    before: StackSnapshot
    backend: ContainerState
    frontend: ContainerState
    compose_bytes: bytes
    new_backups: set[str]
    health: dict[str, tuple[int, dict]]
    new_incident_folders: list[str]

    @property
    def incident_dir(self) -> Path:
        assert len(self.new_incident_folders) == 1, (
            f"expected one new incident folder, found {self.new_incident_folders}"
        )
        return BACKUP_ROOT / self.new_incident_folders[0]


def run_and_record(extra_vars: dict | None, *options: str) -> RollbackRun:
    """Snapshot the stack, run the playbook and record the state right after it."""
    before = take_snapshot()
    result = run_playbook(extra_vars, *options)
    return RollbackRun(
        result=result,
        before=before,
        backend=inspect_container(BACKEND_CONTAINER),
        frontend=inspect_container(FRONTEND_CONTAINER),
        compose_bytes=COMPOSE_FILE.read_bytes(),
        new_backups=compose_backups() - before.compose_backups,
        health={path: fetch_json(path) for path in ("/api/health", "/api/auth/health")},
        new_incident_folders=sorted(incident_folders() - before.incident_folders),
    )


@pytest.fixture(scope="module")
def rollback_v1_to_v095() -> RollbackRun:
    reset_stack("v1.0.0")
    return run_and_record({"version": "v0.9.5"})


def test_rollback_exits_zero(rollback_v1_to_v095):
    assert rollback_v1_to_v095.result.rc == 0, rollback_v1_to_v095.result.describe()


def test_rollback_runs_target_image(rollback_v1_to_v095):
    backend = rollback_v1_to_v095.backend

    assert backend.image == "truebond-backend:v0.9.5"
    assert backend.image_id == image_id("truebond-backend:v0.9.5")
    assert backend.status == "running"
    assert backend.id != rollback_v1_to_v095.before.backend.id


@pytest.mark.parametrize("path", ["/api/health", "/api/auth/health"])
def test_rollback_health_reports_target(rollback_v1_to_v095, path):
    status, body = rollback_v1_to_v095.health[path]

    assert status == 200, body
    assert body.get("version") == "v0.9.5", body


def test_rollback_keeps_frontend_container(rollback_v1_to_v095):
    before = rollback_v1_to_v095.before.frontend

    assert rollback_v1_to_v095.frontend.id == before.id
    assert rollback_v1_to_v095.frontend.status == "running"


def test_rollback_changes_only_image_line(rollback_v1_to_v095):
    before = rollback_v1_to_v095.before.compose_bytes

    assert before.count(OLD_IMAGE_LINE) == 1
    assert rollback_v1_to_v095.compose_bytes == before.replace(
        OLD_IMAGE_LINE, NEW_IMAGE_LINE
    )


def test_rollback_backs_up_compose_file(rollback_v1_to_v095):
    backups = rollback_v1_to_v095.new_backups

    assert len(backups) == 1, backups
    backup = PROJECT_DIR / backups.pop()
    assert backup.read_bytes() == rollback_v1_to_v095.before.compose_bytes


def test_rollback_log_records_success(rollback_v1_to_v095):
    log = read_rollback_log(rollback_v1_to_v095.incident_dir)

    assert log["to_version"] == "v0.9.5"
    assert log["from_version"] == "v1.0.0"
    assert log["result"] == "success"
    assert log["rto"]["met"] is True
    assert log["extra"]["strategy"] == "recreate"


def test_rollback_log_timeline_phases(rollback_v1_to_v095):
    timeline = read_rollback_log(rollback_v1_to_v095.incident_dir)["timeline"]

    assert [phase["phase"] for phase in timeline] == TIMELINE_PHASES
    for phase in timeline:
        assert phase.get("started"), phase
        assert phase.get("ended"), phase
        assert phase["ended"] >= phase["started"], phase


def test_rollback_log_phases_contiguous(rollback_v1_to_v095):
    log = read_rollback_log(rollback_v1_to_v095.incident_dir)
    timeline = log["timeline"]

    assert log["started_at"] == timeline[0]["started"]
    for earlier, later in itertools.pairwise(timeline):
        assert earlier["ended"] == later["started"], (earlier, later)


@pytest.mark.parametrize(
    "name",
    [
        "rollback-log.json",
        "rollback-log.md",
        "manifest.json",
        "SHA256SUMS",
        "containers.json",
        "env/.env.production",
        "logs/truebond-backend.log",
    ],
)
def test_incident_folder_has_file(rollback_v1_to_v095, name):
    assert (rollback_v1_to_v095.incident_dir / name).is_file()


def test_incident_checksums_verify(rollback_v1_to_v095):
    completed = subprocess.run(
        ["sha256sum", "-c", "SHA256SUMS"],
        cwd=rollback_v1_to_v095.incident_dir,
        capture_output=True,
        text=True,
        check=False,
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr


def test_incident_records_old_container(rollback_v1_to_v095):
    incident_dir = rollback_v1_to_v095.incident_dir
    containers = json.loads((incident_dir / "containers.json").read_text())
    by_name = {container["Name"].lstrip("/"): container for container in containers}
    old_backend = rollback_v1_to_v095.before.backend

    assert BACKEND_CONTAINER in by_name, sorted(by_name)
    recorded = by_name[BACKEND_CONTAINER]
    assert recorded["Id"] == old_backend.id
    assert recorded["Config"]["Image"] == "truebond-backend:v1.0.0"
    assert recorded["Image"] == old_backend.image_id
    assert recorded["Image"] == image_id("truebond-backend:v1.0.0")


def test_incident_env_copy_matches_project(rollback_v1_to_v095):
    copy = rollback_v1_to_v095.incident_dir / "env" / ".env.production"

    assert copy.read_bytes() == ENV_PRODUCTION.read_bytes()


def test_incident_folder_is_private(rollback_v1_to_v095):
    incident_dir = rollback_v1_to_v095.incident_dir
    files = file_modes(incident_dir)
    folders = folder_modes(incident_dir)

    assert folders["."] == 0o700
    assert {path: oct(mode) for path, mode in folders.items() if mode != 0o700} == {}
    assert files, "the incident folder has no files"
    assert {path: oct(mode) for path, mode in files.items() if mode != 0o600} == {}


def test_incident_folder_has_chart(rollback_v1_to_v095):
    chart = rollback_v1_to_v095.incident_dir / "timeline.png"

    assert chart.is_file()
    assert chart.read_bytes().startswith(b"\x89PNG")


def test_rollback_removes_controller_chart(rollback_v1_to_v095):
    assert not controller_chart_file(rollback_v1_to_v095.incident_dir).exists()


def test_rollback_prints_log_paths(rollback_v1_to_v095):
    incident_dir = rollback_v1_to_v095.incident_dir
    output = rollback_v1_to_v095.result.output

    assert f"Rollback log (Markdown): {incident_dir}/rollback-log.md" in output
    assert f"Rollback log (JSON): {incident_dir}/rollback-log.json" in output


# --- Target resolution ------------------------------------------------------------


def test_omitted_version_picks_previous_release():
    reset_stack("v1.0.0")
    before = incident_folders()

    result = run_playbook()

    assert result.rc == 0, result.describe()
    # v1.0.0-rc.1 is newer than v0.9.5 but a pre-release, so it is left out.
    assert (
        "Rolling back truebond-backend from v1.0.0 to v0.9.5 (previous release"
        in result.flat_output
    ), result.describe()
    backend = inspect_container(BACKEND_CONTAINER)
    assert backend.image == "truebond-backend:v0.9.5"
    assert backend.image_id == image_id("truebond-backend:v0.9.5")
    log = read_rollback_log(new_incident_folder(before))
    assert log["to_version"] == "v0.9.5"
    assert log["from_version"] == "v1.0.0"


def test_same_version_changes_nothing():
    reset_stack("v0.9.5")
    before = take_snapshot()

    result = run_playbook({"version": "v0.9.5"})

    assert result.rc == 0, result.describe()
    assert result.recap()["changed"] == 0, result.describe()
    assert "already runs v0.9.5" in result.flat_output, result.describe()
    assert_nothing_changed(before)


# --- Rebuild from git -------------------------------------------------------------


def git_state_outside_compose_file() -> tuple[str, list[str], str]:
    """Return HEAD, `git status` and `git diff` of the drill project.

    The compose file and its timestamped backups are left out, because a rollback
    is expected to change them.
    """
    head = git("rev-parse", "HEAD").strip()
    status = [
        line
        for line in git("status", "--porcelain", "--untracked-files=all").splitlines()
        if not line[3:].startswith(COMPOSE_FILE.name)
    ]
    diff = git("diff", "HEAD", "--", ".", f":(exclude){COMPOSE_FILE.name}")
    return head, status, diff


def build_folders() -> set[str]:
    """Return the temporary folders that switch_image creates for a build worktree."""
    temp_root = Path(os.environ.get("TMPDIR", "/tmp"))
    return {path.name for path in temp_root.glob("truebond-rollback-build.*")}


@pytest.fixture
def rebuilt_v094_image():
    """Make sure truebond-backend:v0.9.4 is absent, and remove it after the test."""
    reference = f"{BACKEND_REPOSITORY}:v0.9.4"
    reset_stack("v1.0.0")
    remove_image(reference)
    yield reference
    reset_stack("v1.0.0")
    remove_image(reference)


def test_git_only_release_is_built(rebuilt_v094_image):
    assert image_id(rebuilt_v094_image) is None
    git_before = git_state_outside_compose_file()
    build_folders_before = build_folders()
    commit = git("rev-parse", "v0.9.4^{commit}").strip()

    result = run_playbook({"version": "v0.9.4"})

    assert result.rc == 0, result.describe()
    built_id = image_id(rebuilt_v094_image)
    assert built_id is not None
    assert image_labels(rebuilt_v094_image).get(
        "org.opencontainers.image.revision"
    ) == (commit)
    backend = inspect_container(BACKEND_CONTAINER)
    assert backend.image == rebuilt_v094_image
    assert backend.image_id == built_id
    worktrees = git("worktree", "list", "--porcelain").splitlines()
    assert [line for line in worktrees if line.startswith("worktree ")] == [
        f"worktree {PROJECT_DIR}"
    ]
    assert git_state_outside_compose_file() == git_before
    assert build_folders() == build_folders_before


# --- Failures ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def unhealthy_switch_to_v1() -> RollbackRun:
    """Roll "back" from v0.9.5 to v1.0.0, whose /api/auth/health fails."""
    reset_stack("v0.9.5")
    return run_and_record(
        {"version": "v1.0.0", "truebond_health_deadline": FAST_HEALTH_DEADLINE}
    )


def test_unhealthy_target_fails_with_account(unhealthy_switch_to_v1):
    result = unhealthy_switch_to_v1.result
    output = result.output

    assert result.rc == 2, result.describe()
    assert "FAILED" in output
    assert "/api/auth/health" in output
    assert "State left behind" in output
    assert (
        "Automatic recovery: switched the backend back to v0.9.5, the release that "
        "ran before (healthy)."
    ) in output, result.describe()


def test_unhealthy_target_switches_back(unhealthy_switch_to_v1):
    before = unhealthy_switch_to_v1.before.backend
    backend = unhealthy_switch_to_v1.backend

    assert backend.image == "truebond-backend:v0.9.5"
    assert backend.image_id == before.image_id
    assert backend.status == "running"
    assert unhealthy_switch_to_v1.health["/api/health"][1]["version"] == "v0.9.5"
    assert (
        unhealthy_switch_to_v1.compose_bytes
        == unhealthy_switch_to_v1.before.compose_bytes
    )


def test_unhealthy_target_log_records_recovery(unhealthy_switch_to_v1):
    log = read_rollback_log(unhealthy_switch_to_v1.incident_dir)

    assert log["result"] == "failed"
    assert log["failure"]["task"]
    assert log["to_version"] == "v1.0.0"
    assert log["from_version"] == "v0.9.5"
    recovery = log["state"]["recovery"]
    assert recovery["result"] == "switched back"
    assert recovery["to_version"] == "v0.9.5"
    assert recovery["healthy"] is True
    assert recovery["state_after_failure"]["running_image"] == "truebond-backend:v1.0.0"
    assert log["state"]["running_image"] == "truebond-backend:v0.9.5"
    phases = {phase["phase"]: phase["status"] for phase in log["timeline"]}
    assert phases["verify"] == "failed"
    assert phases["recover"] == "ok"


def test_unhealthy_target_saves_container_log(unhealthy_switch_to_v1):
    evidence = (
        unhealthy_switch_to_v1.incident_dir / "logs" / "after-failure-backend.log"
    )

    assert evidence.is_file()
    assert evidence.stat().st_size > 0
    log = read_rollback_log(unhealthy_switch_to_v1.incident_dir)
    assert str(evidence) in log["next_steps"][1]


def test_unhealthy_target_folder_files_private(unhealthy_switch_to_v1):
    files = file_modes(unhealthy_switch_to_v1.incident_dir)

    assert {path: oct(mode) for path, mode in files.items() if mode != 0o600} == {}


@pytest.fixture(scope="module")
def unhealthy_switch_without_recovery() -> RollbackRun:
    reset_stack("v0.9.5")
    return run_and_record(
        {
            "version": "v1.0.0",
            "recover": False,
            "truebond_health_deadline": FAST_HEALTH_DEADLINE,
        }
    )


def test_recovery_off_keeps_new_container(unhealthy_switch_without_recovery):
    run = unhealthy_switch_without_recovery
    output = run.result.output

    assert run.result.rc == 2, run.result.describe()
    assert run.backend.image == "truebond-backend:v1.0.0"
    assert run.backend.image_id == image_id("truebond-backend:v1.0.0")
    assert (
        "Automatic recovery: not attempted, because it is turned off (recover=false)."
    ) in output
    assert "ansible-playbook truebond.rollback.rollback_app -e version=v0.9.5" in output
    log = read_rollback_log(run.incident_dir)
    assert log["state"]["recovery"]["attempted"] is False
    assert log["state"]["running_image"] == "truebond-backend:v1.0.0"
    assert [phase["phase"] for phase in log["timeline"]][-1] == "verify"


def test_no_recovery_when_backend_was_stopped_before():
    """Switching back to a backend that did not serve would not restore service."""
    reset_stack("v0.9.5")
    run_checked(["docker", "stop", BACKEND_CONTAINER])

    run = run_and_record(
        {"version": "v1.0.0", "truebond_health_deadline": FAST_HEALTH_DEADLINE}
    )

    assert run.result.rc == 2, run.result.describe()
    assert (
        "Automatic recovery: not attempted, because the backend was exited before "
        "the run, so switching back would not restore service."
    ) in run.result.output, run.result.describe()
    assert run.backend.image == "truebond-backend:v1.0.0"
    log = read_rollback_log(run.incident_dir)
    assert log["state"]["recovery"]["attempted"] is False
    assert "recover" not in [phase["phase"] for phase in log["timeline"]]


@pytest.fixture
def tag_without_dockerfile():
    """Tag v0.9.3 on a parentless commit with an empty tree, and delete it after."""
    delete_tag("v0.9.3")
    tag_commit("v0.9.3", {}, "Release v0.9.3 without a Dockerfile")
    yield "v0.9.3"
    delete_tag("v0.9.3")


def test_unbuildable_target_changes_nothing(tag_without_dockerfile):
    reset_stack("v1.0.0")
    before = take_snapshot()

    result = run_playbook(
        {"version": "v0.9.3", "truebond_health_deadline": FAST_HEALTH_DEADLINE}
    )

    assert result.rc == 2, result.describe()
    flat = result.flat_output
    assert "can be neither used nor built" in flat, result.describe()
    assert "truebond-backend:v0.9.3 is not a local image" in flat
    assert "has no backend/Dockerfile.production to build it from" in flat
    assert "Nothing was changed" in flat
    assert_nothing_changed(before)


# The base image is named with a loopback registry so that the build fails without
# any attempt to reach a public registry: the classic builder pulls a missing base
# image even when the build sets pull=false.
FAILING_DOCKERFILE = b"FROM 127.0.0.1:9/truebond-missing-base:none\n"


@pytest.fixture
def tag_with_failing_build():
    """Tag v0.9.2 on a commit whose Dockerfile cannot build, and clean up afterwards."""
    delete_tag("v0.9.2")
    dangling_before = dangling_image_ids()
    tag_commit(
        "v0.9.2",
        {"backend/Dockerfile.production": FAILING_DOCKERFILE},
        "Release v0.9.2 with a base image that does not exist",
    )
    yield "v0.9.2"
    delete_tag("v0.9.2")
    remove_image(f"{BACKEND_REPOSITORY}:v0.9.2")
    for leftover in sorted(dangling_image_ids() - dangling_before):
        run_checked(["docker", "image", "rm", "--force", leftover])


def test_failed_build_keeps_running_backend(tag_with_failing_build):
    reset_stack("v1.0.0")
    before = take_snapshot()
    build_folders_before = build_folders()

    result = run_playbook(
        {"version": "v0.9.2", "truebond_health_deadline": FAST_HEALTH_DEADLINE}
    )

    assert result.rc == 2, result.describe()
    # The failure comes from the build of the Dockerfile at the tag.
    assert FAILING_DOCKERFILE.decode().strip() in result.output, result.describe()
    backend = inspect_container(BACKEND_CONTAINER)
    assert backend.id == before.backend.id
    assert backend.image == "truebond-backend:v1.0.0"
    assert backend.status == "running"
    status, body = fetch_json("/api/health")
    assert status == 200, body
    assert body.get("version") == "v1.0.0", body
    assert COMPOSE_FILE.read_bytes() == before.compose_bytes
    assert compose_backups() == before.compose_backups
    assert image_id(f"{BACKEND_REPOSITORY}:v0.9.2") is None
    assert "Nothing was switched: the backend still runs v1.0.0" in result.flat_output
    log = read_rollback_log(new_incident_folder(before.incident_folders))
    assert log["result"] == "failed"
    assert log["next_steps"], log
    assert log["next_steps"][0].startswith(
        "Nothing was switched: the backend still runs v1.0.0"
    )
    worktrees = git("worktree", "list", "--porcelain").splitlines()
    assert [line for line in worktrees if line.startswith("worktree ")] == [
        f"worktree {PROJECT_DIR}"
    ]
    assert build_folders() == build_folders_before


# --- Check mode and strategies ------------------------------------------------------


def test_check_mode_changes_nothing():
    reset_stack("v1.0.0")
    before = take_snapshot()

    result = run_playbook({"version": "v0.9.5"}, "--check", "--diff")

    assert result.rc == 0, result.describe()
    lines = result.stdout.splitlines()
    assert "-    image: truebond-backend:v1.0.0" in lines, result.describe()
    assert "+    image: truebond-backend:v0.9.5" in lines, result.describe()
    after = take_snapshot()
    assert after.backend.id == before.backend.id
    assert after.compose_bytes == before.compose_bytes
    assert after.compose_backups == before.compose_backups
    assert after.env_production_bytes == before.env_production_bytes
    assert not (PROJECT_DIR / ".env").exists()
    assert after.images == before.images
    assert after.incident_folders == before.incident_folders


def test_stop_first_strategy_rolls_back():
    reset_stack("v1.0.0")
    before = incident_folders()

    result = run_playbook({"version": "v0.9.5", "strategy": "stop-first"})

    assert result.rc == 0, result.describe()
    backend = inspect_container(BACKEND_CONTAINER)
    assert backend.image == "truebond-backend:v0.9.5"
    assert backend.image_id == image_id("truebond-backend:v0.9.5")
    log = read_rollback_log(new_incident_folder(before))
    assert log["result"] == "success"
    assert log["extra"]["strategy"] == "stop-first"
