# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A disk that fills up while a rollback captures the state.

The incident folders go to a small tmpfs mounted for the test. The run is paused at
a task of the capture, the tmpfs is filled to the last byte, and the run goes on.
The capture cannot be written, and neither can the rollback log of the failed run,
so the tests check that the run still stops before anything changes and still
prints its account of the state. After space is freed, the same command converges.
"""

from __future__ import annotations

import errno
import os
from pathlib import Path

import pytest
from drill_helpers import FAST_HEALTH_DEADLINE, reset_stack, run_checked
from test_faults import (
    DATA_ROLLBACK_VARS,
    DISABLE_FEATURE,
    FLAG,
    ROLLBACK_APP,
    ROLLBACK_DB,
    ROLLBACK_FULL,
    PlaybookProcess,
    assert_backend_converged,
    assert_flag_off_converged,
    assert_stack_unchanged,
    data_differences,
    flag_on_restored,  # noqa: F401 - a fixture, used by name
    fresh_v100,
    lock_record,
    paused_at,
    predeploy_backup,  # noqa: F401 - a fixture, used by name
    record_data,
    take_snapshot,
)

pytestmark = pytest.mark.usefixtures("drill_stack")

SNAPSHOT_BANNER = "Capture | Take the MongoDB snapshot main"
REDIS_SNAPSHOT_BANNER = "Capture | Take the Redis snapshot cache"
# The first task of the capture that writes more than a folder.
LOGS_BANNER = "Capture | Save the recent log lines of each container"
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


@pytest.mark.parametrize(
    ("playbook", "banner", "store_type", "store_name", "failed_line", "stores"),
    [
        pytest.param(
            ROLLBACK_DB,
            SNAPSHOT_BANNER,
            "mongodb",
            "main",
            "Database rollback to v0.9.5 FAILED at task",
            "mongodb",
            id="rollback_db-mongodb",
        ),
        pytest.param(
            ROLLBACK_FULL,
            REDIS_SNAPSHOT_BANNER,
            "redis",
            "cache",
            "Full system rollback to v0.9.5 FAILED at task",
            "all",
            id="rollback_full-redis",
        ),
    ],
)
def test_data_disk_full_at_snapshot_then_rerun(
    predeploy_backup,  # noqa: F811 - the fixture imported above
    small_disk,
    playbook,
    banner,
    store_type,
    store_name,
    failed_line,
    stores,
):
    data_before = fresh_v100()
    before = take_snapshot()
    extra = small_disk_vars(
        small_disk, **DATA_ROLLBACK_VARS, backup=str(predeploy_backup.path)
    )

    result, filler = run_filling_disk_at(playbook, extra, banner, small_disk)

    assert result.rc == 2, result.describe()
    flat = result.flat_output
    assert f'The {store_type} snapshot "{store_name}" failed:' in flat, (
        result.describe()
    )
    assert "before any step that could lose data" in flat
    assert_disk_full_account(flat, failed_line)
    if playbook == ROLLBACK_DB:
        assert "mongodb: not touched by this run" in flat
    assert_stack_unchanged(before)
    assert data_differences(data_before) == []
    assert lock_record() is None
    # The snapshot cut short must never look usable. (In rollback_full the MongoDB
    # snapshot before it is complete.)
    cut_short = f"incident-*/datastores/{store_name}/snapshot.json"
    for record in small_disk.glob(cut_short):
        assert '"complete": true' not in record.read_text(encoding="utf-8"), record

    filler.unlink()
    rerun = run_checked_playbook(extra, playbook)

    assert rerun.rc == 0, rerun.describe()
    assert_backend_converged("v0.9.5")
    assert data_differences(predeploy_backup.data, stores) == []
    assert lock_record() is None


def run_filling_disk_at(
    playbook: str, extra: dict, banner: str, small_disk: Path
) -> tuple:
    """Run ``playbook``, fill ``small_disk`` at ``banner``; return the result and filler."""
    fillers = []
    run = PlaybookProcess(playbook, extra)
    paused_at(run, banner, lambda: fillers.append(fill(small_disk)))
    return run.finish(), fillers[0]


def run_checked_playbook(extra: dict, playbook: str = ROLLBACK_DB):
    """Run ``playbook`` to the end and return its result."""
    return PlaybookProcess(playbook, extra).finish()


def small_disk_vars(small_disk: Path, **extra) -> dict:
    """Return extra vars that put the incident folders on ``small_disk``."""
    return {
        **extra,
        "truebond_backup_root": str(small_disk),
        # The preflight's minimum would refuse this small disk before the capture.
        "truebond_capture_min_free_mb": 1,
    }


def assert_disk_full_account(flat: str, failed_line: str) -> None:
    assert "No space left on device" in flat
    assert "WARNING: the rollback log was NOT written to" in flat
    assert failed_line in flat


def assert_log_save_failure(flat: str) -> None:
    """Assert that the failed save of the container logs names the full disk."""
    assert (
        'FAILED at task "Capture | Fail because a container log could not be saved"'
        in flat
    )
    assert "Saving the recent log lines of truebond-backend" in flat
    assert "0 MiB (0 bytes) are free on the filesystem of" in flat
    assert "so the disk is full" in flat
    assert "The capture stopped before the rollback changed anything." in flat


def test_app_disk_full_at_capture_then_rerun(small_disk):
    reset_stack("v1.0.0")
    before = take_snapshot()
    extra = small_disk_vars(
        small_disk, version="v0.9.5", truebond_health_deadline=FAST_HEALTH_DEADLINE
    )

    result, filler = run_filling_disk_at(ROLLBACK_APP, extra, LOGS_BANNER, small_disk)

    assert result.rc == 2, result.describe()
    flat = result.flat_output
    assert_disk_full_account(flat, "Rollback to v0.9.5 FAILED at task")
    assert_log_save_failure(flat)
    assert (
        "Automatic recovery: not attempted, because the failure came before the "
        "switch, so the backend was not changed."
    ) in flat, result.describe()
    # Nothing was switched, so no container failed.
    assert "Read the log of the failed container" not in flat
    assert_stack_unchanged(before)
    assert lock_record() is None

    filler.unlink()
    rerun = run_checked_playbook(extra, ROLLBACK_APP)

    assert rerun.rc == 0, rerun.describe()
    assert_backend_converged("v0.9.5")
    assert lock_record() is None


def test_disable_disk_full_at_capture_then_rerun(flag_on_restored, small_disk):  # noqa: F811
    reset_stack("v1.0.0")
    before = take_snapshot()
    data_before = record_data()
    extra = small_disk_vars(small_disk, feature=FLAG)

    result, filler = run_filling_disk_at(
        DISABLE_FEATURE, extra, LOGS_BANNER, small_disk
    )

    assert result.rc == 2, result.describe()
    flat = result.flat_output
    assert_disk_full_account(flat, f"Feature disable {FLAG}=false FAILED at task")
    assert_log_save_failure(flat)
    # The capture comes before the env file changes.
    assert_stack_unchanged(before)
    assert take_snapshot().env_production_bytes == before.env_production_bytes
    assert lock_record() is None

    filler.unlink()
    rerun = run_checked_playbook(extra, DISABLE_FEATURE)

    assert rerun.rc == 0, rerun.describe()
    assert_flag_off_converged(data_before)
