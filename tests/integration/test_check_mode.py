# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Check mode of every playbook: --check --diff prints the plan and changes nothing.

Each test records the whole state of the drill stack: containers, the project's
files, the backup root, the bytes of every MongoDB document and Redis key, the Redis
dump file and the lock file. It then runs one playbook with --check --diff on the
broken release and compares.
"""

from __future__ import annotations

import hashlib
import subprocess
import sys
from pathlib import Path

import pytest
from drill_helpers import (
    BACKUP_ROOT,
    DRILL_HOME,
    ENV_PRODUCTION,
    PROJECT_DIR,
    REPO,
    STACK_SCRIPT,
    reset_stack,
    run_playbook,
    take_snapshot,
)

sys.path.insert(0, str(REPO / "tests" / "helpers"))
import datastate  # the helper lives outside the test folders

LOCK_FILE = Path("/var/lock/truebond-rollback.lock")
REDIS_DUMP = DRILL_HOME / "redis" / "data" / "dump.rdb"


def tree_digest(folder: Path) -> dict[str, str]:
    """Return the SHA-256 of every file under folder, by relative path."""
    digests = {}
    for path in sorted(folder.rglob("*")):
        if path.is_file() and not path.is_symlink():
            digests[str(path.relative_to(folder))] = hashlib.sha256(
                path.read_bytes()
            ).hexdigest()
    return digests


def whole_state() -> dict:
    env = datastate.read_env(ENV_PRODUCTION)
    return {
        "stack": take_snapshot(),
        "project": tree_digest(PROJECT_DIR / ".git")
        | {
            name: hashlib.sha256((PROJECT_DIR / name).read_bytes()).hexdigest()
            for name in sorted(p.name for p in PROJECT_DIR.iterdir() if p.is_file())
        },
        "backup_root": tree_digest(BACKUP_ROOT),
        "data": datastate.record(env),
        "redis_dump": REDIS_DUMP.read_bytes() if REDIS_DUMP.exists() else None,
        "lock": LOCK_FILE.exists(),
    }


@pytest.fixture(scope="module")
def predeploy_backup(drill_stack):
    """Take a backup on v0.9.5, as a deploy would, then deploy v1.0.0."""
    reset_stack("v0.9.5")
    subprocess.run(["bash", str(STACK_SCRIPT), "seed"], check=True)
    result = run_playbook({}, playbook="playbooks/snapshot.yml")
    assert result.rc == 0, result.output[-3000:]
    reset_stack("v1.0.0")


@pytest.mark.parametrize(
    ("playbook", "extra_vars", "plan_phrases"),
    [
        pytest.param(
            "playbooks/rollback_app.yml",
            {"version": "v0.9.5"},
            ["would recreate service backend only"],
            id="rollback_app",
        ),
        pytest.param(
            "playbooks/rollback_db.yml",
            {"version": "v0.9.5", "confirm": "yes", "drop_new_collections": True},
            ["Backend: v1.0.0 to v0.9.5", "is DROPPED and restored from"],
            id="rollback_db",
        ),
        pytest.param(
            "playbooks/rollback_full.yml",
            {"version": "v0.9.5", "confirm": "yes", "drop_new_collections": True},
            ["Every service is stopped first", "Redis cache: stopped without saving"],
            id="rollback_full",
        ),
        pytest.param(
            "playbooks/disable_feature.yml",
            {"feature": "REALTIME_MESSAGING_ENABLED"},
            ["REALTIME_MESSAGING_ENABLED"],
            id="disable_feature",
        ),
        pytest.param(
            "playbooks/snapshot.yml",
            {},
            ["with snapshots of mongodb main, redis cache"],
            id="snapshot",
        ),
        pytest.param(
            "playbooks/decide.yml",
            {
                "error_rate": 0.5,
                "uptime": 1,
                "response_time": 0.1,
                "decide_auto_rollback": True,
            },
            ["immediate_rollback", "would recreate service backend only"],
            id="decide",
        ),
        pytest.param(
            "playbooks/drill.yml",
            {},
            [
                "Check mode: v1.0.0 was not deployed, so the probe measured",
                "would recreate service backend only",
            ],
            id="drill",
        ),
    ],
)
def test_check_mode_changes_nothing(
    predeploy_backup, playbook, extra_vars, plan_phrases
):
    before = whole_state()
    result = run_playbook(extra_vars, "--check", "--diff", playbook=playbook)
    after = whole_state()
    assert result.rc == 0, result.output[-4000:]
    for phrase in plan_phrases:
        assert phrase in result.flat_output
    assert after["stack"] == before["stack"]
    assert after["project"] == before["project"]
    assert after["backup_root"] == before["backup_root"]
    assert after["data"]["mongodb"] == before["data"]["mongodb"]
    assert after["data"]["redis"] == before["data"]["redis"]
    assert after["redis_dump"] == before["redis_dump"]
    assert after["lock"] is False
