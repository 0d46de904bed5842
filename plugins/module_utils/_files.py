# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Atomic file replacement with an optional timestamped backup."""

from __future__ import annotations

import errno
import hashlib
import os
import stat
import tempfile
import time

BACKUP_TIMESTAMP_FORMAT = "%Y%m%dT%H%M%SZ"


def sha256_file(path, chunk_size: int = 1024 * 1024) -> str:
    """Return the SHA-256 hex digest of the file at ``path``."""
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        for chunk in iter(lambda: stream.read(chunk_size), b""):
            digest.update(chunk)
    return digest.hexdigest()


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _copy_owner(path: str, source_stat: os.stat_result) -> None:
    """Give ``path`` the owner and group of ``source_stat``, as far as permitted.

    An unprivileged user can usually set neither the owner nor a group that it is
    not a member of. Then the group alone is tried, and failing that the new file
    keeps the current user's owner and group.
    """
    try:
        os.chown(path, source_stat.st_uid, source_stat.st_gid)
        return
    except PermissionError:
        pass
    try:
        os.chown(path, -1, source_stat.st_gid)
    except PermissionError:
        pass


def _current_umask() -> int:
    # os.umask has no read-only form, so set it and restore it at once.
    umask = os.umask(0o022)
    os.umask(umask)
    return umask


def _backup_path(path: str) -> str:
    timestamp = time.strftime(BACKUP_TIMESTAMP_FORMAT, time.gmtime())
    return f"{path}.{timestamp}.bak"


def _write_backup(path: str, source_stat: os.stat_result) -> str:
    """Copy ``path`` to ``<path>.<UTC timestamp>.bak`` and return the backup path.

    The copy gets the mode, owner and group of the original. When two backups are
    made within the same second, the later one is named ``<path>.<UTC
    timestamp>.<n>.bak`` with n = 1, 2, ... so that no backup is overwritten.
    """
    base = _backup_path(path)
    candidate = base
    counter = 0
    while True:
        try:
            fd = os.open(candidate, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            break
        except FileExistsError:
            counter += 1
            candidate = f"{base[: -len('.bak')]}.{counter}.bak"

    try:
        with os.fdopen(fd, "wb") as backup, open(path, "rb") as original:
            for chunk in iter(lambda: original.read(1024 * 1024), b""):
                backup.write(chunk)
            backup.flush()
            os.fsync(backup.fileno())
        os.chmod(candidate, stat.S_IMODE(source_stat.st_mode))
        _copy_owner(candidate, source_stat)
        os.utime(candidate, ns=(source_stat.st_atime_ns, source_stat.st_mtime_ns))
    except BaseException:
        _remove_quietly(candidate)
        raise
    return candidate


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError as exc:
        if exc.errno != errno.ENOENT:
            raise


def atomic_write(path, data: bytes, backup: bool = False, mode: int | None = None):
    """Replace the file at ``path`` with ``data`` atomically and return the backup path.

    The data goes to a temporary file in the same directory, which is fsynced and
    then renamed over ``path`` with os.replace, so readers see either the old or the
    new content. The directory is fsynced afterwards. ``mode`` (an int such as
    0o600) sets the permissions. Without it, an existing file keeps its mode and a
    new file gets 0o666 minus the umask. An existing file also keeps its owner and
    group where the caller is permitted to set them.

    With ``backup`` true and an existing file, the original is first copied to
    ``<path>.<UTC timestamp YYYYmmddTHHMMSSZ>.bak`` and that path is returned.
    Otherwise the return value is None. A symlink at ``path`` is followed, so the
    file it points to is replaced and the link stays.

    NOTE: SELinux contexts and extended attributes are not copied to the new file.
    """
    target = os.path.realpath(os.fspath(path))
    directory = os.path.dirname(target)

    try:
        existing_stat = os.stat(target)
    except FileNotFoundError:
        existing_stat = None

    backup_path = None
    if backup and existing_stat is not None:
        backup_path = _write_backup(target, existing_stat)

    fd, temp_path = tempfile.mkstemp(
        dir=directory, prefix=f".{os.path.basename(target)}.", suffix=".tmp"
    )
    try:
        with os.fdopen(fd, "wb") as stream:
            stream.write(data)
            stream.flush()
            os.fsync(stream.fileno())

        if mode is not None:
            os.chmod(temp_path, mode)
        elif existing_stat is not None:
            os.chmod(temp_path, stat.S_IMODE(existing_stat.st_mode))
        else:
            os.chmod(temp_path, 0o666 & ~_current_umask())
        if existing_stat is not None:
            _copy_owner(temp_path, existing_stat)

        os.replace(temp_path, target)
    except BaseException:
        _remove_quietly(temp_path)
        raise

    _fsync_directory(directory)
    return backup_path


def free_space_text(folder: str) -> str:
    """Describe the free space of the filesystem that contains ``folder``."""
    current = os.path.abspath(folder)
    while not os.path.exists(current) and os.path.dirname(current) != current:
        current = os.path.dirname(current)
    try:
        stats = os.statvfs(current)
    except OSError as error:
        return f"free space unknown ({error})"
    free = stats.f_bavail * stats.f_frsize
    return f"{free // (1024 * 1024)} MiB ({free} bytes) free on the filesystem of {current}"


def is_disk_full(error: OSError) -> bool:
    """Return whether ``error`` means that the disk or the user's quota is full."""
    return getattr(error, "errno", None) in (errno.ENOSPC, errno.EDQUOT)
