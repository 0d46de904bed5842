# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""No secret of the test inventories appears in what the test run left behind.

`make test` points ANSIBLE_LOG_PATH at tests/output/ansible.log, so that the output
of every ansible-playbook run of the integration tests and the Molecule scenarios
ends up in one file. This module runs after them and searches that log, the task
timelines of the timeline callback, and the rollback logs, reports, manifests and
notes in the incident folders for every password, API key and connection string the
tests use.

The captured state itself is excluded, because it must keep the secrets to be
restored from. It is the copies of the env files (env/), the compose configuration
as Compose resolves it (compose/resolved.yml), the containers' inspect output with
their environment (containers.json) and the data-store snapshots (datastores/). The
test checks instead that those files are private (mode 0600 in folders of 0700).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DRILL_HOME = Path(os.environ.get("TRUEBOND_DRILL_HOME", "/var/tmp/truebond-drill"))
BACKUP_ROOT = DRILL_HOME / "backup"
ANSIBLE_LOG = Path(
    os.environ.get("ANSIBLE_LOG_PATH", str(REPO / "tests" / "output" / "ansible.log"))
)
TIMELINES = Path.home() / ".ansible" / "truebond" / "timelines"
# `make test` touches this file first; only what is newer belongs to this test run.
STARTED = REPO / "tests" / "output" / "test-started"

# Every secret of the drill inventory, the drill stack's env file and the
# notification tests (tests/integration/test_notify.py, test_drill_notifications.py).
SECRETS = (
    "drill-only-mongodb-app-password",
    "drill-only-mongodb-admin-password",
    "drill-only-redis-password",
    "drill-only-not-a-secret",
    "drill-statuspage-key-not-for-output",
    "sp-key-7c1f0e9a-not-for-output",
    "sp-key-wrong-51d2-not-for-output",
    "smtp-pass-3b8d-not-for-output",
    "smtp-pass-wrong-90aa-not-for-output",
    "webhook-token-not-for-output",
)
# Parts of an incident folder that are captured state, not output.
CAPTURED_STATE = ("env", "datastores", "compose/resolved.yml", "containers.json")


def is_captured_state(relative: Path) -> bool:
    text = relative.as_posix()
    return any(text == part or text.startswith(part + "/") for part in CAPTURED_STATE)


def incident_outputs() -> list[Path]:
    if not BACKUP_ROOT.is_dir():
        return []
    files = []
    for folder in sorted(BACKUP_ROOT.iterdir()):
        if not folder.is_dir():
            continue
        for path in sorted(folder.rglob("*")):
            if path.is_file() and not is_captured_state(path.relative_to(folder)):
                files.append(path)
    return files


def find_secrets(paths: list[Path]) -> list[str]:
    found = []
    for path in paths:
        data = path.read_bytes()
        for secret in SECRETS:
            if secret.encode() in data:
                found.append(f"{secret} in {path}")
    return found


def started_at() -> float:
    if not STARTED.is_file():
        pytest.skip(
            f"{STARTED} does not exist: run `make test`, which marks the start of the "
            "test run and sets ANSIBLE_LOG_PATH for the playbook runs"
        )
    return STARTED.stat().st_mtime


def test_ansible_log_has_no_secret():
    if not ANSIBLE_LOG.is_file():
        pytest.skip(
            f"{ANSIBLE_LOG} does not exist: run `make test`, which sets "
            "ANSIBLE_LOG_PATH for the playbook runs"
        )
    assert ANSIBLE_LOG.stat().st_size > 0
    assert find_secrets([ANSIBLE_LOG]) == []


def test_timelines_have_no_secret():
    start = started_at()
    timelines = sorted(
        path
        for path in (TIMELINES.glob("*.json") if TIMELINES.is_dir() else [])
        if path.stat().st_mtime >= start
    )
    if not timelines:
        pytest.skip(f"no task timeline in {TIMELINES} yet")
    assert find_secrets(timelines) == []


def test_incident_outputs_have_no_secret():
    start = started_at()
    outputs = [path for path in incident_outputs() if path.stat().st_mtime >= start]
    if not outputs:
        pytest.skip(f"no incident folder under {BACKUP_ROOT} yet")
    assert find_secrets(outputs) == []


def test_captured_state_is_private():
    if not BACKUP_ROOT.is_dir():
        pytest.skip(f"no backup root {BACKUP_ROOT} yet")
    problems = []
    for folder in sorted(BACKUP_ROOT.iterdir()):
        if not folder.is_dir() or folder.name == "drills":
            continue
        for path in [folder, *folder.rglob("*")]:
            mode = stat.S_IMODE(path.lstat().st_mode)
            expected = 0o700 if path.is_dir() else 0o600
            if not path.is_symlink() and mode != expected:
                problems.append(f"{path}: mode {mode:04o}, expected {expected:04o}")
    assert problems == []
