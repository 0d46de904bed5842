# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A disk that fills up while a database rollback captures the state.

The incident folders go to a small tmpfs mounted for the test. The run is paused at
the MongoDB snapshot, the tmpfs is filled to the last byte, and the run goes on. The
snapshot cannot be written, and neither can the rollback log of the failed run, so
the test checks that the run still stops before any data changes and still prints
its account of the state. After space is freed, the same command converges.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from drill_helpers import run_checked
from test_faults import (
    DATA_ROLLBACK_VARS,
    ROLLBACK_DB,
    PlaybookProcess,
    assert_stack_unchanged,
    data_differences,
    fresh_v100,
    lock_record,
    paused_at,
    predeploy_backup,  # noqa: F401 - a fixture, used by name
    take_snapshot,
)

pytestmark = pytest.mark.usefixtures("drill_stack")

SNAPSHOT_BANNER = "Capture | Take the MongoDB snapshot main"
# Big enough for the incident folder's files before the snapshot (container logs,
# compose and env copies, the image list), small enough to fill in an instant.
DISK_SIZE = "32m"


@pytest.fixture
def small_disk(tmp_path) -> Path:
    """A tmpfs of DISK_SIZE at a fresh folder, unmounted at the end."""
    mount = tmp_path / "backup-disk"
    mount.mkdir(mode=0o700)
    run_checked(
        [
            "mount",
            "-t",
            "tmpfs",
            "-o",
            f"size={DISK_SIZE},mode=0700",
            "tmpfs",
            str(mount),
        ]
    )
    yield mount
    run_checked(["umount", str(mount)])


def fill(mount: Path) -> Path:
    """Write zeros into ``mount`` until no byte is left; return the filler file."""
    filler = mount / "filler"
    chunk = bytes(1 << 20)
    with filler.open("wb", buffering=0) as handle:
        while True:
            try:
                handle.write(chunk)
            except OSError as error:
                assert error.errno == errno.ENOSPC, error
                break
        for size in (4096, 1):
            while True:
                try:
                    handle.write(bytes(size))
                except OSError:
                    break
    statvfs = os.statvfs(mount)
    assert statvfs.f_bavail == 0, statvfs
    return filler


def test_db_disk_full_at_capture_then_rerun(predeploy_backup, small_disk):  # noqa: F811
    data_before = fresh_v100()
    before = take_snapshot()
    extra = {
        **DATA_ROLLBACK_VARS,
        "backup": str(predeploy_backup.path),
        "truebond_backup_root": str(small_disk),
        # The preflight's minimum would refuse this small disk before the capture.
        "truebond_capture_min_free_mb": 1,
    }
    fillers = []

    run = PlaybookProcess(ROLLBACK_DB, extra)
    paused_at(run, SNAPSHOT_BANNER, lambda: fillers.append(fill(small_disk)))
    result = run.finish()

    assert result.rc == 2, result.describe()
    flat = result.flat_output
    assert 'The mongodb snapshot "main" failed:' in flat, result.describe()
    assert "No space left on device" in flat, result.describe()
    assert "before any step that could lose data" in flat
    assert "WARNING: the rollback log was NOT written to" in flat, result.describe()
    assert "Database rollback to v0.9.5 FAILED at task" in flat, result.describe()
    assert "mongodb: not touched by this run" in flat
    assert_stack_unchanged(before)
    assert data_differences(data_before) == []
    assert lock_record() is None
    # A snapshot cut short must never look usable.
    for record in small_disk.glob("incident-*/**/snapshot.json"):
        assert '"complete": true' not in record.read_text(encoding="utf-8"), record

    fillers[0].unlink()
    rerun = run_checked_playbook(extra)

    assert rerun.rc == 0, rerun.describe()
    assert data_differences(predeploy_backup.data, "mongodb") == []
    assert lock_record() is None


def run_checked_playbook(extra: dict):
    """Run the database rollback to the end and return its result."""
    return PlaybookProcess(ROLLBACK_DB, extra).finish()
