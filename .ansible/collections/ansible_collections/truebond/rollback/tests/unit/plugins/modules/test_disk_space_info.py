# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for the disk_space_info module."""

from __future__ import annotations

import json
import os
import types

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.truebond.rollback.plugins.modules import disk_space_info

MIB = 1024 * 1024


def fake_statvfs(free_mib, total_mib, block_size=4096):
    blocks_per_mib = MIB // block_size
    stats = types.SimpleNamespace(
        f_bavail=free_mib * blocks_per_mib,
        f_blocks=total_mib * blocks_per_mib,
        f_frsize=block_size,
    )
    checked = []

    def statvfs(path):
        checked.append(path)
        return stats

    statvfs.checked = checked
    return statvfs


def run_main(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        disk_space_info.main()
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    "relative, existing",
    [
        pytest.param("", "", id="existing-directory"),
        pytest.param("a/b/c", "", id="three-missing-levels"),
        pytest.param("present/missing", "present", id="one-missing-level"),
        pytest.param("present/file.txt", "present/file.txt", id="existing-file"),
    ],
)
def test_nearest_existing_path(tmp_path, relative, existing):
    (tmp_path / "present").mkdir()
    (tmp_path / "present" / "file.txt").write_text("x")
    target = os.path.join(tmp_path, relative) if relative else str(tmp_path)
    expected = os.path.join(tmp_path, existing) if existing else str(tmp_path)
    assert disk_space_info.nearest_existing_path(target) == expected


def test_nearest_existing_path_stops_at_root():
    assert disk_space_info.nearest_existing_path("/no-such-dir/x/y") == "/"


def test_measure_reports_filesystem(tmp_path, monkeypatch):
    statvfs = fake_statvfs(free_mib=120, total_mib=10240)
    monkeypatch.setattr(disk_space_info.os, "statvfs", statvfs)
    result = disk_space_info.measure(str(tmp_path / "incident"), min_free_mb=100)
    assert statvfs.checked == [str(tmp_path)]
    assert result == {
        "checked_path": str(tmp_path),
        "free_bytes": 120 * MIB,
        "total_bytes": 10240 * MIB,
        "free_mb": 120,
        "enough": True,
    }


@pytest.mark.parametrize(
    "free_bytes, min_free_mb, enough",
    [
        pytest.param(512 * MIB, 512, True, id="exactly-enough"),
        pytest.param(512 * MIB - 4096, 512, False, id="one-block-short"),
        pytest.param(0, 0, True, id="zero-needed"),
        pytest.param(0, None, True, id="no-minimum"),
    ],
)
def test_measure_enough(tmp_path, monkeypatch, free_bytes, min_free_mb, enough):
    stats = types.SimpleNamespace(
        f_bavail=free_bytes // 4096, f_blocks=1 << 20, f_frsize=4096
    )
    monkeypatch.setattr(disk_space_info.os, "statvfs", lambda path: stats)
    result = disk_space_info.measure(str(tmp_path), min_free_mb)
    assert result["enough"] is enough


def test_measure_real_filesystem(tmp_path):
    result = disk_space_info.measure(str(tmp_path))
    assert result["total_bytes"] > 0
    assert 0 <= result["free_bytes"] <= result["total_bytes"]
    assert result["free_mb"] == result["free_bytes"] // MIB


def test_main_low_space_message(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(disk_space_info.os, "statvfs", fake_statvfs(120, 10240))
    target = tmp_path / "truebond"
    result = run_main(
        {
            "path": str(target),
            "min_free_mb": 512,
            "hint": "free space or set capture_state_min_free_mb",
        },
        capsys,
    )
    assert result["failed"] is True
    assert result["msg"] == (
        f"only 120 MiB free on {tmp_path} (filesystem of {target}), 512 MiB "
        "needed; free space or set capture_state_min_free_mb"
    )
    assert result["enough"] is False
    assert result["free_mb"] == 120


def test_main_low_space_on_existing_path(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(disk_space_info.os, "statvfs", fake_statvfs(10, 100))
    result = run_main({"path": str(tmp_path), "min_free_mb": 20}, capsys)
    assert result["msg"] == f"only 10 MiB free on {tmp_path}, 20 MiB needed"


def test_main_enough_space(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(disk_space_info.os, "statvfs", fake_statvfs(2048, 10240))
    result = run_main({"path": str(tmp_path / "new"), "min_free_mb": 512}, capsys)
    assert "failed" not in result
    assert result["changed"] is False
    assert result["enough"] is True
    assert result["checked_path"] == str(tmp_path)


def test_main_rejects_negative_minimum(tmp_path, capsys):
    result = run_main({"path": str(tmp_path), "min_free_mb": -1}, capsys)
    assert result["msg"] == "min_free_mb must not be negative, got -1"


def test_main_reports_statvfs_error(tmp_path, monkeypatch, capsys):
    def denied(path):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(disk_space_info.os, "statvfs", denied)
    result = run_main({"path": str(tmp_path)}, capsys)
    assert result["msg"] == (
        f"could not read the free space for {str(tmp_path)!r}: [Errno 13] "
        f"Permission denied: {str(tmp_path)!r}; check that the path is readable by "
        "the remote user"
    )
