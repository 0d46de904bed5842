# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for the _files module_utils: atomic writes and backups."""

from __future__ import annotations

import hashlib
import os
import re
import stat

import pytest
from ansible_collections.truebond.rollback.plugins.module_utils import _files
from ansible_collections.truebond.rollback.plugins.module_utils._files import (
    atomic_write,
    sha256_file,
)

BACKUP_NAME = re.compile(r"\.env\.[0-9]{8}T[0-9]{6}Z\.bak\Z")


def file_mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_atomic_write_replaces_content(tmp_path):
    target = tmp_path / ".env"
    target.write_bytes(b"OLD=1\n")
    assert atomic_write(target, b"NEW=1\n", backup=False) is None
    assert target.read_bytes() == b"NEW=1\n"


def test_atomic_write_preserves_mode(tmp_path):
    target = tmp_path / ".env"
    target.write_bytes(b"OLD=1\n")
    os.chmod(target, 0o640)
    atomic_write(target, b"NEW=1\n", backup=False)
    assert file_mode(target) == 0o640


def test_atomic_write_mode_overrides_existing(tmp_path):
    target = tmp_path / ".env"
    target.write_bytes(b"OLD=1\n")
    os.chmod(target, 0o644)
    atomic_write(target, b"NEW=1\n", backup=False, mode=0o600)
    assert file_mode(target) == 0o600


def test_atomic_write_new_file_uses_umask(tmp_path):
    target = tmp_path / "new.txt"
    previous = os.umask(0o027)
    try:
        atomic_write(target, b"data", backup=True)
    finally:
        os.umask(previous)
    assert file_mode(target) == 0o640


def test_atomic_write_new_file_with_mode(tmp_path):
    target = tmp_path / ".env"
    assert atomic_write(target, b"TAG=v1\n", backup=True, mode=0o600) is None
    assert file_mode(target) == 0o600
    assert target.read_bytes() == b"TAG=v1\n"


def test_atomic_write_preserves_owner(tmp_path):
    target = tmp_path / ".env"
    target.write_bytes(b"OLD=1\n")
    before = os.stat(target)
    atomic_write(target, b"NEW=1\n", backup=False)
    after = os.stat(target)
    assert (after.st_uid, after.st_gid) == (before.st_uid, before.st_gid)


@pytest.mark.skipif(os.geteuid() != 0, reason="changing the owner needs root")
def test_atomic_write_restores_foreign_owner(tmp_path):
    target = tmp_path / ".env"
    target.write_bytes(b"OLD=1\n")
    os.chown(target, 1234, 5678)
    backup = atomic_write(target, b"NEW=1\n", backup=True)
    assert (os.stat(target).st_uid, os.stat(target).st_gid) == (1234, 5678)
    assert (os.stat(backup).st_uid, os.stat(backup).st_gid) == (1234, 5678)


def test_atomic_write_makes_backup(tmp_path):
    target = tmp_path / ".env"
    target.write_bytes(b"OLD=1\n")
    os.chmod(target, 0o600)
    backup = atomic_write(target, b"NEW=1\n", backup=True)
    assert BACKUP_NAME.search(backup)
    assert os.path.dirname(backup) == str(tmp_path)
    with open(backup, "rb") as stream:
        assert stream.read() == b"OLD=1\n"
    assert file_mode(backup) == 0o600
    assert target.read_bytes() == b"NEW=1\n"


def test_atomic_write_backup_names_do_not_collide(tmp_path, monkeypatch):
    monkeypatch.setattr(
        _files.time, "gmtime", lambda: (2026, 1, 12, 9, 30, 0, 0, 12, 0)
    )
    target = tmp_path / ".env"
    target.write_bytes(b"V=1\n")
    first = atomic_write(target, b"V=2\n", backup=True)
    second = atomic_write(target, b"V=3\n", backup=True)
    assert first == f"{target}.20260112T093000Z.bak"
    assert second == f"{target}.20260112T093000Z.1.bak"
    with open(first, "rb") as stream:
        assert stream.read() == b"V=1\n"
    with open(second, "rb") as stream:
        assert stream.read() == b"V=2\n"


def test_atomic_write_follows_symlink(tmp_path):
    real = tmp_path / "real.env"
    real.write_bytes(b"OLD=1\n")
    link = tmp_path / ".env"
    link.symlink_to(real)
    atomic_write(link, b"NEW=1\n", backup=False)
    assert link.is_symlink()
    assert real.read_bytes() == b"NEW=1\n"


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    target = tmp_path / ".env"
    target.write_bytes(b"OLD=1\n")
    atomic_write(target, b"NEW=1\n", backup=False)
    assert sorted(os.listdir(tmp_path)) == [".env"]


def test_atomic_write_cleans_up_after_failure(tmp_path, monkeypatch):
    target = tmp_path / ".env"
    target.write_bytes(b"OLD=1\n")

    def failing_replace(source, destination):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(_files.os, "replace", failing_replace)
    with pytest.raises(OSError):
        atomic_write(target, b"NEW=1\n", backup=False)
    assert target.read_bytes() == b"OLD=1\n"
    assert sorted(os.listdir(tmp_path)) == [".env"]


def test_sha256_file(tmp_path):
    target = tmp_path / "data"
    target.write_bytes(b"x" * 3_000_000)
    expected = hashlib.sha256(b"x" * 3_000_000).hexdigest()
    assert sha256_file(target) == expected
