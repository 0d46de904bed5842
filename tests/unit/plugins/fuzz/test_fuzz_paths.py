# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Property-based tests of file paths that come from module arguments or snapshots.

Covers capture_manifest (documents keys and copies dest, through write_documents
and main()), backup_select (snapshot.json file lists and store names),
redis_restore (dbfilename and the append-only names), rollback_lock (path and
run_id) and the collection file names of _mongo. The central property: a path is
either rejected with the module's own error, or it resolves (os.path.realpath)
inside the folder it belongs to.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import tempfile
from pathlib import Path
from urllib.parse import unquote

import pytest
from ansible_collections.truebond.rollback.plugins.module_utils import _mongo
from ansible_collections.truebond.rollback.plugins.modules import (
    backup_select,
    capture_manifest,
    mongo_restore,
    redis_restore,
    rollback_lock,
)
from fuzz_support import assert_no_traceback, run_module_main
from hypothesis import example, given, settings
from hypothesis import strategies as st

FAST = settings(max_examples=200, derandomize=True, deadline=None)
FILESYSTEM = settings(max_examples=60, derandomize=True, deadline=None)

# Path segments that try to leave a folder: parent references, absolute paths,
# symlinks that the fixtures below create, backslashes and Windows forms, spaces
# that strip() removes, and a home directory reference.
ESCAPE_SEGMENTS = [
    "..",
    ".",
    "",
    "a",
    "sub",
    "link",
    "sub/up",
    "sub/escape",
    "dangling",
    "file.txt",
    "..\\..",
    "a\\b",
    "C:\\x",
    " ",
    " ..",
    "~",
    "%2e%2e",
    "manifest.json",
    "SHA256SUMS",
]
escape_paths = st.one_of(
    st.lists(st.sampled_from(ESCAPE_SEGMENTS), min_size=1, max_size=4).map("/".join),
    st.lists(st.sampled_from(ESCAPE_SEGMENTS), min_size=1, max_size=3).map(
        lambda parts: "/" + "/".join(parts)
    ),
    st.text(alphabet="./\\ab ~", max_size=12),
)


def is_inside(path, folder):
    real_folder = os.path.realpath(folder)
    return os.path.realpath(path).startswith(real_folder + os.sep)


def files_below(folder):
    """Return the paths of every file and symlink below folder, links not followed."""
    found = set()
    for directory, _dirs, names in os.walk(folder):
        for name in names:
            found.add(os.path.join(directory, name))
    return found


def make_incident(base):
    """Create base/incident with the symlinks that ESCAPE_SEGMENTS name.

    base/outside is a sibling that no write may reach: incident/link points to it,
    incident/sub/escape points to it through "../..", incident/sub/up points back
    to incident, and incident/dangling points to a missing folder in outside.
    """
    incident = Path(base, "incident")
    outside = Path(base, "outside")
    (incident / "sub").mkdir(parents=True)
    outside.mkdir()
    (incident / "file.txt").write_text("captured\n")
    (incident / "link").symlink_to(outside)
    (incident / "sub" / "escape").symlink_to(Path("..", "..", "outside"))
    (incident / "sub" / "up").symlink_to(Path(".."))
    (incident / "dangling").symlink_to(outside / "missing")
    return incident, outside


# capture_manifest -------------------------------------------------------------


@FILESYSTEM
@given(escape_paths)
@example("link/x")
@example("sub/escape/x")
@example("dangling")
@example("dangling/x")
@example("sub/up/x")
@example("/etc/x")
@example("../outside/x")
@example(" ../outside/x")
@example("a\\..\\..\\outside")
@example("link")
def test_document_stays_in_incident(relative):
    with tempfile.TemporaryDirectory() as base:
        incident, outside = make_incident(base)
        try:
            written = capture_manifest.write_documents(
                str(incident), {relative: "document\n"}, check_mode=False
            )
        except capture_manifest.ManifestError as error:
            assert repr(relative) in str(error)
            written = []
        except OSError:
            # main() reports these as a read or write failure, for example a
            # document key that names an existing folder.
            written = []
        assert os.listdir(outside) == []
        for path in files_below(incident):
            if os.path.islink(path):
                continue
            assert is_inside(path, incident)
        for name in written:
            target = os.path.join(incident, *name.strip().split("/"))
            assert is_inside(target, incident)
            assert Path(target).read_text() == "document\n"


def test_document_key_with_nul():
    with tempfile.TemporaryDirectory() as base:
        incident, _outside = make_incident(base)
        with pytest.raises(capture_manifest.ManifestError):
            capture_manifest.write_documents(
                str(incident), {"a\x00b": "x"}, check_mode=False
            )


@FILESYSTEM
@given(documents=st.lists(escape_paths, min_size=1, max_size=3), dest=escape_paths)
@example(documents=["link/x"], dest="sub/escape/y")
@example(documents=["ok.json"], dest="../outside/copy")
def test_capture_manifest_main_stays_inside(documents, dest):
    with tempfile.TemporaryDirectory() as base:
        incident, outside = make_incident(base)
        source = Path(base, "compose.yml")
        source.write_text("services: {}\n")
        result = run_module_main(
            capture_manifest.main,
            {
                "path": str(incident),
                "documents": dict.fromkeys(documents, "document\n"),
                "copies": [{"src": str(source), "dest": dest}],
            },
        )
        assert_no_traceback(result)
        assert os.listdir(outside) == []
        assert source.read_text() == "services: {}\n"
        for path in files_below(incident):
            if not os.path.islink(path):
                assert is_inside(path, incident)


@pytest.mark.parametrize(
    "documents, copies",
    [
        pytest.param({"a\x00b": "x"}, [], id="documents-key"),
        pytest.param({}, [{"src": "/tmp/a\x00b", "dest": "copy"}], id="copies-src"),
    ],
)
def test_capture_manifest_main_nul(documents, copies):
    with tempfile.TemporaryDirectory() as base:
        incident, _outside = make_incident(base)
        result = run_module_main(
            capture_manifest.main,
            {"path": str(incident), "documents": documents, "copies": copies},
        )
        assert_no_traceback(result)


# backup_select ----------------------------------------------------------------


def sha256_text(text):
    return hashlib.sha256(text.encode()).hexdigest()


def write_json(path, document):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(document))


def make_backup(root, backup_id, files=None):
    """Write root/backup_id with one redis snapshot 'cache' listing ``files``."""
    folder = Path(root, backup_id)
    write_json(
        folder / "manifest.json",
        {
            "format": 1,
            "metadata": {
                "purpose": "backup",
                "containers": {"truebond-backend": "truebond-backend:v0.9.5"},
            },
        },
    )
    snapshot_dir = folder / "datastores" / "cache"
    snapshot_dir.mkdir(parents=True)
    (snapshot_dir / "dump.rdb").write_text("REDIS0011")
    if files is None:
        files = {"dump.rdb": {"bytes": 9, "sha256": sha256_text("REDIS0011")}}
    write_json(
        snapshot_dir / "snapshot.json",
        {
            "kind": "redis",
            "complete": True,
            "taken_at": "2026-12-04T17:38:01.123Z",
            "files": files,
        },
    )
    return folder, snapshot_dir


@FILESYSTEM
@given(escape_paths)
@example("../../../outside/secret")
@example("/etc/hostname")
@example("link/secret")
def test_snapshot_files_stay_in_snapshot(relative):
    with tempfile.TemporaryDirectory() as base:
        _folder, snapshot_dir = make_backup(base, "backup-a")
        outside = Path(base, "outside")
        outside.mkdir()
        (outside / "secret").write_text("x")
        (snapshot_dir / "link").symlink_to(outside)
        files = {relative: {"bytes": 1, "sha256": sha256_text("x")}}
        try:
            backup_select.check_files(str(snapshot_dir), files, verify_checksums=True)
        except backup_select.Unusable:
            pass
        else:
            assert is_inside(os.path.join(snapshot_dir, relative), snapshot_dir)


def test_backup_select_main_nul_in_snapshot_files():
    with tempfile.TemporaryDirectory() as base:
        folder, _snapshot_dir = make_backup(
            base, "backup-a", files={"dump\x00.rdb": {"bytes": 9, "sha256": ""}}
        )
        result = run_module_main(
            backup_select.main,
            {"path": str(folder), "stores": [{"name": "cache", "kind": "redis"}]},
        )
        assert_no_traceback(result)


@FILESYSTEM
@given(st.one_of(escape_paths, st.text(max_size=12)))
@example("..")
def test_backup_select_store_name(name):
    with tempfile.TemporaryDirectory() as base:
        folder, _snapshot_dir = make_backup(base, "backup-a")
        make_backup(base, "backup-b")
        result = run_module_main(
            backup_select.main,
            {"path": str(folder), "stores": [{"name": name, "kind": "redis"}]},
        )
    assert_no_traceback(result)
    if not result.get("failed"):
        chosen = result["snapshots"][name]["path"]
        assert is_inside(chosen, os.path.join(folder, "datastores")), chosen


def test_backup_select_store_name_escapes():
    with tempfile.TemporaryDirectory() as base:
        folder, _snapshot_dir = make_backup(base, "backup-a")
        make_backup(base, "backup-b")
        name = "../../backup-b/datastores/cache"
        result = run_module_main(
            backup_select.main,
            {"path": str(folder), "stores": [{"name": name, "kind": "redis"}]},
        )
        assert result.get("failed") is True


# redis_restore ----------------------------------------------------------------

REDIS_NAME_PARAMS = ("dbfilename", "appenddirname", "appendfilename")
redis_file_names = st.one_of(
    escape_paths, st.text(alphabet="./ab", min_size=1, max_size=8)
)


def restore_params(data_dir, **overrides):
    params = {
        "data_dir": str(data_dir),
        "dbfilename": "dump.rdb",
        "appenddirname": "appendonlydir",
        "appendfilename": "appendonly.aof",
    }
    params.update(overrides)
    return params


def plan_or_error(params):
    try:
        return redis_restore.plan_restore(
            params, {"rdb_file": "dump.rdb"}, "20261204T170000Z"
        )
    except redis_restore.RestoreError:
        return None


def assert_plan_in_data_dir(plan, data_dir):
    real = os.path.realpath(data_dir)
    assert os.path.dirname(os.path.realpath(plan["rdb_path"])) == real
    for old, new in plan["aside"].items():
        assert os.path.dirname(os.path.realpath(old)) == real
        assert os.path.dirname(os.path.realpath(new)) == real


# The names that stay in the data folder: plain file names, which is what
# dbfilename and the append-only names are in Redis.
plain_file_names = st.text(
    alphabet=st.characters(
        codec="utf-8", exclude_characters="/\x00", exclude_categories=("Cs",)
    ),
    min_size=1,
    max_size=20,
).filter(lambda name: name not in (".", ".."))


@FAST
@given(param=st.sampled_from(REDIS_NAME_PARAMS), name=plain_file_names)
def test_redis_plain_names_stay_in_data_dir(param, name):
    with tempfile.TemporaryDirectory() as base:
        plan = plan_or_error(restore_params(base, **{param: name}))
        if plan is not None:
            assert_plan_in_data_dir(plan, base)


@FAST
@given(param=st.sampled_from(REDIS_NAME_PARAMS), name=redis_file_names)
def test_redis_names_stay_in_data_dir(param, name):
    with tempfile.TemporaryDirectory() as base:
        data_dir = Path(base, "data")
        data_dir.mkdir()
        for existing in ("appendonlydir", "appendonly.aof"):
            Path(base, existing).write_text("")
        plan = plan_or_error(restore_params(data_dir, **{param: name}))
        if plan is not None:
            assert_plan_in_data_dir(plan, data_dir)


def make_redis_snapshot(folder):
    folder.mkdir()
    (folder / "dump.rdb").write_bytes(b"REDIS0011")
    write_json(
        folder / "snapshot.json",
        {
            "kind": "redis",
            "format": 1,
            "complete": True,
            "rdb_file": "dump.rdb",
            "files": {
                "dump.rdb": {"bytes": 9, "sha256": sha256_text("REDIS0011")},
            },
        },
    )


def test_redis_restore_main_dbfilename_escapes():
    with tempfile.TemporaryDirectory() as base:
        snapshot = Path(base, "snapshot")
        make_redis_snapshot(snapshot)
        data_dir = Path(base, "data")
        data_dir.mkdir()
        result = run_module_main(
            redis_restore.main,
            {
                "src": str(snapshot),
                "data_dir": str(data_dir),
                "dbfilename": "../dump.rdb",
                # Nothing listens on the discard port of the loopback address, so
                # the module takes Redis as stopped.
                "host": "127.0.0.1",
                "port": 9,
                "check_rdb": False,
            },
        )
        assert_no_traceback(result)
        assert not Path(base, "dump.rdb").exists()


# rollback_lock ------------------------------------------------------------------

RUN_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")


run_ids = st.text(max_size=140) | st.text(alphabet="ab.:_-\n\x00 ", max_size=10)


@FAST
@given(run_ids)
@example("a" * 129)
@example("run-1;rm")
def test_lock_run_id_pattern(run_id):
    params = {
        "state": "info",
        "procedure": None,
        "run_id": run_id,
        "ttl_minutes": 120,
        "owner_pid": None,
    }
    try:
        rollback_lock.check_params(params)
    except rollback_lock.LockError as error:
        assert repr(run_id) in str(error) or not run_id
    else:
        assert run_id == "" or RUN_ID.fullmatch(run_id)


def test_lock_run_id_trailing_newline():
    params = {
        "state": "info",
        "procedure": None,
        "run_id": "0\n",
        "ttl_minutes": 120,
        "owner_pid": None,
    }
    with pytest.raises(rollback_lock.LockError):
        rollback_lock.check_params(params)


lock_names = st.one_of(
    escape_paths,
    st.text(alphabet=st.characters(exclude_characters="\x00"), max_size=12),
)


@FILESYSTEM
@given(lock_names)
@example("deep/er/lock")
@example("file.txt/lock")
@example("")
def test_lock_main_path_no_traceback(name):
    with tempfile.TemporaryDirectory() as base:
        incident, _outside = make_incident(base)
        result = run_module_main(
            rollback_lock.main,
            {
                "path": os.path.join(incident, name),
                "procedure": "rollback_app",
                "run_id": "run-1",
            },
        )
        assert_no_traceback(result)
        if not result.get("failed"):
            lock = Path(result["lock_path"])
            assert json.loads(lock.read_text())["run_id"] == "run-1"
            assert lock.stat().st_mode & 0o777 == 0o600


def test_lock_main_path_nul():
    with tempfile.TemporaryDirectory() as base:
        result = run_module_main(
            rollback_lock.main,
            {
                "path": os.path.join(base, "a\x00b", "lock"),
                "procedure": "rollback_app",
                "run_id": "run-1",
            },
        )
        assert_no_traceback(result)


# _mongo collection file names and namespace patterns --------------------------

collection_names = st.text(min_size=1, max_size=20) | st.text(
    alphabet="%/.\\*$a2F", min_size=1, max_size=10
)


@FAST
@given(name=collection_names, compressed=st.booleans())
@example(name="../../etc/passwd", compressed=False)
@example(name="%2F", compressed=True)
def test_collection_file_name_one_segment(name, compressed):
    for file_name in (
        _mongo.bson_file_name(name, compressed),
        _mongo.metadata_file_name(name, compressed),
    ):
        assert "/" not in file_name
        assert file_name not in (".", "..")
    stem = _mongo.escape_collection_name(name)
    assert unquote(stem) == name


@FAST
@given(st.text(max_size=20) | st.text(alphabet="*\\.ab", max_size=10))
def test_namespace_pattern_never_raises(pattern):
    compiled = _mongo.compile_namespace_pattern(pattern)
    assert _mongo.namespace_selected("app.users", [pattern], [pattern]) in (
        True,
        False,
    )
    if "*" not in pattern and "\\" not in pattern:
        assert compiled.match(pattern)


@FAST
@given(namespace=st.text(max_size=20), other=st.text(max_size=20))
@example(namespace="app.*", other="app.users")
@example(namespace="a\\", other="a\\\\")
def test_escaped_namespace_matches_only_itself(namespace, other):
    compiled = _mongo.compile_namespace_pattern(
        mongo_restore.escape_namespace(namespace)
    )
    assert compiled.match(namespace)
    assert bool(compiled.match(other)) == (other == namespace)


def test_namespace_pattern_trailing_newline():
    assert not _mongo.namespace_selected("app.users\n", include=["app.users"])


def run_redis_restore(base, **params):
    """Run redis_restore.main() on a fresh snapshot and data folder below base."""
    snapshot = Path(base, "snapshot")
    make_redis_snapshot(snapshot)
    data_dir = Path(base, "data")
    data_dir.mkdir()
    args = {
        "src": str(snapshot),
        "data_dir": str(data_dir),
        # Nothing listens on the discard port of the loopback address, so the
        # module takes Redis as stopped.
        "host": "127.0.0.1",
        "port": 9,
        "check_rdb": False,
        **params,
    }
    return run_module_main(redis_restore.main, args), data_dir


modes = st.one_of(
    st.none(),
    st.text(alphabet="01234567 89o+x_", max_size=6),
    st.integers(min_value=0, max_value=0o7777),
    st.floats(allow_nan=False),
    st.lists(st.integers(), max_size=2),
)
owner_names = st.one_of(
    st.none(),
    st.text(alphabet="0123456789\u0663\uff11abc", max_size=8),
    st.sampled_from(["root", "nobody", "no-such-user"]),
)


@FILESYSTEM
@given(dbfilename=plain_file_names, mode=modes, owner=owner_names, group=owner_names)
@example(dbfilename="dump.rdb", mode="0660", owner=None, group=None)
@example(dbfilename="dump.rdb", mode="rw", owner=None, group=None)
def test_redis_restore_main_places_in_data_dir(dbfilename, mode, owner, group):
    with tempfile.TemporaryDirectory() as base:
        result, data_dir = run_redis_restore(
            base, dbfilename=dbfilename, mode=mode, owner=owner, group=group
        )
        assert_no_traceback(result)
        outside = sorted(os.listdir(base))
        placed = sorted(os.listdir(data_dir))
    assert outside == ["data", "snapshot"]
    if not result.get("failed"):
        assert placed == [dbfilename]


@pytest.mark.parametrize(
    "params",
    [
        pytest.param({"owner": "99999999999999999999"}, id="owner-too-large"),
        pytest.param({"group": "99999999999999999999"}, id="group-too-large"),
        pytest.param({"dbfilename": "a\x00b"}, id="dbfilename-nul"),
    ],
)
def test_redis_restore_main_bad_values(params):
    with tempfile.TemporaryDirectory() as base:
        result, _data_dir = run_redis_restore(base, **params)
    assert_no_traceback(result)


def test_redis_restore_main_negative_mode():
    with tempfile.TemporaryDirectory() as base:
        result, data_dir = run_redis_restore(base, mode="-1")
        mode = None
        if not result.get("failed"):
            mode = os.stat(data_dir / "dump.rdb").st_mode & 0o7777
    assert result.get("failed") is True, f"restored with mode {mode:04o}"
