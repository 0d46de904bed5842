# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration tests of playbooks/drill.yml, the scheduled drill, on the drill stack.

Each drill starts from the good release v0.9.5, as a real drill does, so that the
deploy of the bad release v1.0.0 really changes the backend. The drills write their
history into a temporary folder (drill_history_file), so that the test runs do not
enter the trend of the drill stack's own history.
"""

from __future__ import annotations

import json
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path

import pytest
from drill_helpers import (
    BACKEND_CONTAINER,
    BACKEND_REPOSITORY,
    BACKUP_ROOT,
    REPO,
    CommandResult,
    StackSnapshot,
    compose_backups,
    fetch_json,
    incident_folders,
    inspect_container,
    read_rollback_log,
    reset_stack,
    run_playbook,
    take_snapshot,
)

pytestmark = pytest.mark.usefixtures("drill_stack")

PLAYBOOK = "playbooks/drill.yml"
GOOD_VERSION = "v0.9.5"
BAD_VERSION = "v1.0.0"
PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
DEFAULT_HISTORY = BACKUP_ROOT / "drills" / "history.jsonl"
DRILL_TIMEOUT = 600


@dataclass
class DrillRun:
    """One drill run and the state read right after it."""

    result: CommandResult
    before: StackSnapshot
    history_lines: list[bytes]
    new_incident_folders: list[str]
    backend_image: str
    health: tuple[int, dict]
    backups_after: set[str]

    @property
    def incident_dir(self) -> Path:
        assert len(self.new_incident_folders) == 1, (
            f"expected one new incident folder, found {self.new_incident_folders}"
        )
        return BACKUP_ROOT / self.new_incident_folders[0]

    @property
    def record(self) -> dict:
        return json.loads(self.history_lines[-1])


def read_lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines() if path.is_file() else []


def run_drill(history_file: Path, extra_vars: dict | None = None) -> DrillRun:
    """Put the stack on the good release, run the drill and record the state."""
    reset_stack(GOOD_VERSION)
    before = take_snapshot()
    result = run_playbook(
        {"drill_history_file": str(history_file), **(extra_vars or {})},
        playbook=PLAYBOOK,
        timeout=DRILL_TIMEOUT,
    )
    return DrillRun(
        result=result,
        before=before,
        history_lines=read_lines(history_file),
        new_incident_folders=sorted(incident_folders() - before.incident_folders),
        backend_image=inspect_container(BACKEND_CONTAINER).image,
        health=fetch_json("/api/health"),
        backups_after=compose_backups(),
    )


@pytest.fixture(scope="module")
def history_file(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("drill-history") / "drills" / "history.jsonl"


@pytest.fixture(scope="module")
def drills(history_file) -> list[DrillRun]:
    """Run the drill twice in a row with one history."""
    return [run_drill(history_file), run_drill(history_file)]


# --- The drill end to end ---------------------------------------------------------


def test_drill_exits_zero(drills):
    for run in drills:
        assert run.result.rc == 0, run.result.describe()


def test_drill_leaves_backend_on_good_release(drills):
    for run in drills:
        assert run.backend_image == f"{BACKEND_REPOSITORY}:{GOOD_VERSION}"
        status, body = run.health
        assert status == 200
        assert body["version"] == GOOD_VERSION


def test_drill_history_grows_by_one_per_run(drills):
    assert len(drills[0].history_lines) == 1
    assert len(drills[1].history_lines) == 2
    assert drills[1].history_lines[0] == drills[0].history_lines[0]


def test_drill_record_has_detection_and_rto(drills):
    for run in drills:
        record = run.record
        log = read_rollback_log(run.incident_dir)
        assert record["from_version"] == BAD_VERSION
        assert record["to_version"] == GOOD_VERSION
        assert record["environment"] == "drill"
        assert record["result"] == "success"
        assert record["decision"]["decision"] in (
            "immediate_rollback",
            "consider_rollback",
        )
        # v1.0.0 returns 500 on /api/auth/health, one of the three endpoints.
        assert record["decision"]["metrics"]["error_rate"] > 0.1
        assert record["measurement"]["requests"] == 20
        assert record["measurement"]["errors_5xx"] > 0
        assert record["rto_seconds"] == log["rto"]["seconds"]
        assert record["rto_seconds"] > 0
        assert record["rto_met"] is True
        assert record["incident_dir"] == str(run.incident_dir)


def test_drill_rollback_log_names_the_drill(drills):
    for run in drills:
        log = read_rollback_log(run.incident_dir)
        assert log["result"] == "success"
        assert log["from_version"] == BAD_VERSION
        assert log["to_version"] == GOOD_VERSION
        assert log["issue"].startswith(f"Scheduled drill {run.record['drill_id']}:")


def test_drill_report_shows_measured_rto(drills, history_file):
    run = drills[-1]
    rto_row = (
        f"| RTO | {run.record['rto_seconds']:.1f} s against the objective of "
        "15 min: met |"
    )
    for folder in (run.incident_dir, history_file.parent):
        report = (folder / "drill-report.md").read_text(encoding="utf-8")
        assert report.startswith(f"# Rollback drill {run.record['drill_id']}\n")
        assert rto_row in report
        assert "![RTO of every drill over time](rto-trend.png)" in report
        assert f"History: {history_file} (2 drills, newest first below)." in report


def test_drill_trend_chart_is_png(drills, history_file):
    for folder in (drills[-1].incident_dir, history_file.parent):
        chart = folder / "rto-trend.png"
        assert chart.read_bytes().startswith(PNG_SIGNATURE)
        assert stat.S_IMODE(chart.stat().st_mode) == 0o600


def test_drill_history_folder_is_private(drills, history_file):
    assert stat.S_IMODE(history_file.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(history_file.stat().st_mode) == 0o600


def test_drill_removes_its_compose_backups(drills):
    for run in drills:
        assert run.backups_after == run.before.compose_backups
        removed = run.record["removed_backups"]
        # The deploy of v1.0.0 and the rollback to v0.9.5 each back the file up.
        assert len(removed) == 2, removed


def test_drill_does_not_touch_default_history(drills):
    assert not DEFAULT_HISTORY.exists() or all(
        json.loads(line)["drill_id"] != run.record["drill_id"]
        for line in read_lines(DEFAULT_HISTORY)
        for run in drills
    )


# --- A bad release that the decision matrix does not detect ----------------------

# Thresholds that no measurement crosses, so the decision is continue.
BLIND_THRESHOLDS = {
    "error_rate": {"immediate": 1.0, "consider": 1.0, "monitor": 1.0},
    "uptime": {"immediate": 0.0, "consider": 0.0, "monitor": 0.0},
    "response_time": {"immediate": 3600, "consider": 3600, "monitor": 3600},
}


@pytest.fixture(scope="module")
def undetected(tmp_path_factory) -> DrillRun:
    history = tmp_path_factory.mktemp("undetected") / "drills" / "history.jsonl"
    return run_drill(history, {"drill_thresholds": BLIND_THRESHOLDS})


def test_undetected_drill_fails(undetected):
    assert undetected.result.rc != 0, undetected.result.describe()
    assert (
        f"The bad release was not detected: the decision for {BAD_VERSION} is "
        "continue, not immediate_rollback or consider_rollback"
    ) in undetected.result.flat_output


def test_undetected_drill_switches_back(undetected):
    assert undetected.backend_image == f"{BACKEND_REPOSITORY}:{GOOD_VERSION}"
    assert undetected.new_incident_folders == []
    assert undetected.backups_after == undetected.before.compose_backups


def test_undetected_drill_is_recorded(undetected):
    assert len(undetected.history_lines) == 1
    record = undetected.record
    assert record["result"] == "not_detected"
    assert record["rto_seconds"] is None
    assert record["decision"]["decision"] == "continue"


# --- Inventories that are not drill or staging targets ---------------------------


def inventory_copy(tmp_path: Path, environment_line: str) -> Path:
    """Copy inventories/drill with truebond_environment replaced by ``environment_line``."""
    inventory = tmp_path / "inventory"
    shutil.copytree(REPO / "inventories" / "drill", inventory)
    group_vars = inventory / "group_vars" / "all.yml"
    text = group_vars.read_text()
    assert "\ntruebond_environment: drill\n" in text
    group_vars.write_text(
        text.replace("\ntruebond_environment: drill\n", f"\n{environment_line}")
    )
    return inventory


@pytest.mark.parametrize(
    ("environment_line", "shown"),
    [
        pytest.param(
            "truebond_environment: production\n", '"production"', id="production"
        ),
        pytest.param("", '"not set"', id="not-set"),
    ],
)
def test_drill_rejects_other_inventory(tmp_path, environment_line, shown):
    # On the good release, a drill that went ahead would switch the backend.
    reset_stack(GOOD_VERSION)
    inventory = inventory_copy(tmp_path, environment_line)
    history = tmp_path / "drills" / "history.jsonl"
    before = take_snapshot()

    result = run_playbook(
        {"drill_history_file": str(history)},
        "-i",
        str(inventory),
        playbook=PLAYBOOK,
        timeout=DRILL_TIMEOUT,
    )

    assert result.rc != 0, result.describe()
    assert (
        f"The drill is rejected on drill-app: truebond_environment is {shown}"
    ) in result.flat_output
    assert "Nothing was changed." in result.flat_output
    after = take_snapshot()
    assert after.backend.id == before.backend.id
    assert after.backend.image == before.backend.image
    assert after.compose_bytes == before.compose_bytes
    assert after.compose_backups == before.compose_backups
    assert after.incident_folders == before.incident_folders
    assert not history.parent.exists()
    assert result.recap()["changed"] == 0
