# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for the backup_select module on backup folders built in tmp_path."""

from __future__ import annotations

import datetime
import functools
import hashlib
import json

import pytest
from ansible.module_utils import _internal as module_utils_internal
from ansible.module_utils.testing import patch_module_args
from ansible_collections.truebond.rollback.plugins.modules import backup_select

STORES = [
    {"name": "main", "kind": "mongodb"},
    {"name": "cache", "kind": "redis"},
]

# Snapshot files per kind, laid out as capture_state writes them.
SNAPSHOT_FILES = {
    "mongodb": {
        "truebond/users.bson": b"\x16\x00\x00\x00\x02email\x00\x02\x00\x00\x00a\x00\x00",
        "truebond/users.metadata.json": b'{"indexes": [], "collectionName": "users"}',
    },
    "redis": {"dump.rdb": b"REDIS0011\xfa\tredis-ver\x067.0.15\xff"},
    "atlas": {},
}

TAKEN_AT = "2026-12-04T17:30:01.123Z"
# Ten minutes after TAKEN_AT.
NOW = datetime.datetime(2026, 12, 4, 17, 40, 1, 123000, tzinfo=datetime.timezone.utc)  # noqa: UP017

NO_BACKUP_HINT = (
    "Nothing was changed. Name a backup folder with -e backup=PATH, or take one with "
    "the snapshot playbook before a deploy."
)


def sha256(data):
    return hashlib.sha256(data).hexdigest()


def write_json(path, value):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(value, indent=2))


def make_snapshot(folder, name, kind, taken_at=TAKEN_AT, **overrides):
    """Write datastores/<name>/ with real files and a snapshot.json listing them."""
    snapshot_dir = folder / "datastores" / name
    snapshot_dir.mkdir(parents=True, exist_ok=True)
    entries = {}
    for relative, data in SNAPSHOT_FILES[kind].items():
        target = snapshot_dir / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(data)
        entries[relative] = {"bytes": len(data), "sha256": sha256(data)}
    snapshot = {
        "format": 1,
        "kind": kind,
        "name": name,
        "complete": True,
        "taken_at": taken_at,
        "finished_at": taken_at,
        "files": entries,
    }
    snapshot.update(overrides)
    write_json(snapshot_dir / "snapshot.json", snapshot)
    return snapshot_dir


def make_backup(
    root,
    backup_id,
    taken_at=TAKEN_AT,
    version="v0.9.5",
    purpose="backup",
    stores=STORES,
):
    """Write <root>/<backup_id>/ with manifest.json and one snapshot per store.

    taken_at is one time for every store, or a dict from store name to time.
    """
    folder = root / backup_id
    metadata = {
        "incident_id": backup_id,
        "host": "localhost",
        "containers": {
            "truebond-backend": f"truebond-backend:{version}",
            "truebond-frontend": f"truebond-frontend:{version}",
        },
        "datastores": [store["kind"] for store in stores],
        "purpose": purpose,
    }
    write_json(
        folder / "manifest.json",
        {"format": 1, "created": "2026-12-04T17:31:00Z", "metadata": metadata},
    )
    for store in stores:
        if isinstance(taken_at, dict):
            store_taken_at = taken_at[store["name"]]
        else:
            store_taken_at = taken_at
        make_snapshot(folder, store["name"], store["kind"], store_taken_at)
    return folder


def select_params(**overrides):
    """Return module params as AnsibleModule fills them in, with defaults."""
    params = {
        "path": None,
        "root": None,
        "stores": STORES,
        "version": "",
        "purpose": "",
        "image": "truebond-backend",
        "exclude": [],
        "verify_checksums": True,
        "rpo_objective_minutes": 5.0,
    }
    params.update(overrides)
    return params


def read_snapshot(folder, name):
    return json.loads((folder / "datastores" / name / "snapshot.json").read_text())


def rewrite_snapshot(folder, name, **changes):
    snapshot = read_snapshot(folder, name)
    snapshot.update(changes)
    write_json(folder / "datastores" / name / "snapshot.json", snapshot)


def rewrite_metadata(folder, **changes):
    manifest = json.loads((folder / "manifest.json").read_text())
    manifest["metadata"].update(changes)
    write_json(folder / "manifest.json", manifest)


def run_main(args, capsys, check_mode=False):
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    with patch_module_args(args), pytest.raises(SystemExit):
        backup_select.main()
    return json.loads(capsys.readouterr().out)


@pytest.fixture
def managed_host_warnings(monkeypatch):
    """Make module.warn() record warnings in the result, as on a managed host.

    Importing controller code such as a callback plugin sets
    ansible.module_utils._internal.is_controller for the rest of the pytest run,
    and then ansible-core 2.19 sends module warnings to Display instead.
    """
    monkeypatch.setattr(module_utils_internal, "is_controller", False)


def warning_texts(result):
    """Return the warning texts of a module result (ansible-core 2.19 format)."""
    return [warning["event"]["msg"] for warning in result.get("warnings", [])]


@pytest.fixture
def fixed_now(monkeypatch):
    """Make main() compute ages against NOW."""
    monkeypatch.setattr(
        backup_select, "select", functools.partial(backup_select.select, now=NOW)
    )


# Choosing between folders.


@pytest.mark.parametrize(
    "times, expected",
    [
        pytest.param(
            {
                "backup-a": "2026-12-04T17:30:01.123Z",
                "backup-b": "2026-12-04T16:00:00.000Z",
            },
            "backup-a",
            id="newest-first-by-name",
        ),
        pytest.param(
            {
                "backup-a": "2026-12-04T16:00:00.000Z",
                "backup-b": "2026-12-04T17:30:01.123Z",
            },
            "backup-b",
            id="newest-last-by-name",
        ),
        pytest.param(
            {
                "backup-20261205T000000Z": "2026-12-03T09:00:00.000Z",
                "backup-20261201T000000Z": "2026-12-04T09:00:00.000Z",
                "backup-20261203T000000Z": "2026-12-02T09:00:00.000Z",
            },
            "backup-20261201T000000Z",
            id="folder-names-disagree-with-taken-at",
        ),
        pytest.param(
            {
                "backup-a": "2026-12-04T17:30:01.124Z",
                "backup-b": "2026-12-04T17:30:01.123Z",
            },
            "backup-a",
            id="one-millisecond-newer",
        ),
    ],
)
def test_select_picks_newest_by_taken_at(tmp_path, times, expected):
    for backup_id, taken_at in times.items():
        make_backup(tmp_path, backup_id, taken_at=taken_at)
    result, rejected = backup_select.select(select_params(root=str(tmp_path)), NOW)
    assert result["path"] == str(tmp_path / expected)
    assert result["taken_at"] == times[expected]
    others = sorted(set(times) - {expected})
    assert rejected == [
        {"path": str(tmp_path / other), "reason": "a newer backup is usable"}
        for other in others
    ]


def test_select_oldest_snapshot_decides(tmp_path):
    # backup-a has the newest snapshot overall, but its Redis snapshot is older than
    # both of backup-b's, so backup-b is the newer restore point.
    make_backup(
        tmp_path,
        "backup-a",
        taken_at={
            "main": "2026-12-04T17:50:00.000Z",
            "cache": "2026-12-04T17:00:00.000Z",
        },
    )
    make_backup(
        tmp_path,
        "backup-b",
        taken_at={
            "main": "2026-12-04T17:20:00.000Z",
            "cache": "2026-12-04T17:20:00.500Z",
        },
    )
    result, rejected = backup_select.select(select_params(root=str(tmp_path)), NOW)
    folder = tmp_path / "backup-b"
    assert result["path"] == str(folder)
    assert result["taken_at"] == "2026-12-04T17:20:00.000Z"
    assert result["snapshots"] == {
        "main": {
            "path": str(folder / "datastores" / "main"),
            "kind": "mongodb",
            "taken_at": "2026-12-04T17:20:00.000Z",
        },
        "cache": {
            "path": str(folder / "datastores" / "cache"),
            "kind": "redis",
            "taken_at": "2026-12-04T17:20:00.500Z",
        },
    }
    assert rejected == [
        {"path": str(tmp_path / "backup-a"), "reason": "a newer backup is usable"}
    ]


def test_select_ignores_snapshots_not_needed(tmp_path):
    # An old snapshot of a store the restore does not need must not move the
    # backup's taken_at.
    folder = make_backup(tmp_path, "backup-a")
    make_snapshot(folder, "audit", "mongodb", taken_at="2026-11-01T00:00:00.000Z")
    result, rejected = backup_select.select(select_params(path=str(folder)), NOW)
    assert result["taken_at"] == TAKEN_AT
    assert sorted(result["snapshots"]) == ["cache", "main"]
    assert rejected == []


def test_select_skips_unusable_newer_folder(tmp_path):
    make_backup(tmp_path, "backup-old", taken_at="2026-12-04T16:00:00.000Z")
    newer = make_backup(tmp_path, "backup-new", taken_at="2026-12-04T17:30:01.123Z")
    rewrite_snapshot(newer, "cache", complete=False)
    result, rejected = backup_select.select(select_params(root=str(tmp_path)), NOW)
    assert result["path"] == str(tmp_path / "backup-old")
    assert rejected == [
        {"path": str(newer), "reason": "snapshot 'cache' is marked incomplete"}
    ]


def test_select_ignores_plain_files_in_root(tmp_path):
    make_backup(tmp_path, "backup-a")
    (tmp_path / "README.txt").write_text("backups live here\n")
    result, rejected = backup_select.select(select_params(root=str(tmp_path)), NOW)
    assert result["path"] == str(tmp_path / "backup-a")
    assert rejected == []


# Why a single folder is rejected. Each breaker function damages a good backup
# folder, and each reason is a template with {folder} for that folder's path.


def remove_manifest(folder):
    (folder / "manifest.json").unlink()


def corrupt_manifest(folder):
    (folder / "manifest.json").write_text("{not json")


def corrupt_snapshot_json(folder):
    (folder / "datastores" / "main" / "snapshot.json").write_text('{"kind": ')


def remove_snapshot_json(folder):
    (folder / "datastores" / "cache" / "snapshot.json").unlink()


def remove_snapshot_folder(folder):
    snapshot_dir = folder / "datastores" / "cache"
    for path in sorted(snapshot_dir.rglob("*"), reverse=True):
        path.unlink()
    snapshot_dir.rmdir()


def set_version(version):
    def breaker(folder):
        rewrite_metadata(
            folder,
            containers={
                "truebond-backend": f"truebond-backend:{version}",
                "truebond-frontend": "truebond-frontend:v0.9.5",
            },
        )

    return breaker


def set_containers(containers):
    def breaker(folder):
        rewrite_metadata(folder, containers=containers)

    return breaker


def set_purpose(purpose):
    def breaker(folder):
        rewrite_metadata(folder, purpose=purpose)

    return breaker


def drop_purpose(folder):
    manifest = json.loads((folder / "manifest.json").read_text())
    del manifest["metadata"]["purpose"]
    write_json(folder / "manifest.json", manifest)


def set_snapshot(name, **changes):
    def breaker(folder):
        rewrite_snapshot(folder, name, **changes)

    return breaker


def drop_taken_at(folder):
    snapshot = read_snapshot(folder, "main")
    del snapshot["taken_at"]
    write_json(folder / "datastores" / "main" / "snapshot.json", snapshot)


def remove_bson(folder):
    (folder / "datastores" / "main" / "truebond" / "users.bson").unlink()


def truncate_rdb(folder):
    (folder / "datastores" / "cache" / "dump.rdb").write_bytes(b"REDIS0011")


def flip_rdb_byte(folder):
    path = folder / "datastores" / "cache" / "dump.rdb"
    data = bytearray(path.read_bytes())
    data[-1] ^= 0x01
    path.write_bytes(bytes(data))


def list_escaping_file(folder):
    data = b"outside the snapshot\n"
    (folder / "datastores" / "x").write_bytes(data)
    snapshot = read_snapshot(folder, "main")
    snapshot["files"]["../x"] = {"bytes": len(data), "sha256": sha256(data)}
    write_json(folder / "datastores" / "main" / "snapshot.json", snapshot)


def list_absolute_file(folder):
    snapshot = read_snapshot(folder, "main")
    snapshot["files"]["/etc/hostname"] = {"bytes": 1, "sha256": "0" * 64}
    write_json(folder / "datastores" / "main" / "snapshot.json", snapshot)


def list_file_with_nul(folder):
    snapshot = read_snapshot(folder, "main")
    snapshot["files"]["dump\x00.rdb"] = {"bytes": 1, "sha256": "0" * 64}
    write_json(folder / "datastores" / "main" / "snapshot.json", snapshot)


MAIN = "{folder}/datastores/main"
CACHE = "{folder}/datastores/cache"

REJECTION_CASES = [
    pytest.param(
        remove_manifest,
        {},
        "manifest {folder}/manifest.json does not exist",
        id="missing-manifest",
    ),
    pytest.param(
        corrupt_manifest,
        {},
        "manifest {folder}/manifest.json cannot be read: Expecting property name "
        "enclosed in double quotes: line 1 column 2 (char 1)",
        id="manifest-unreadable-json",
    ),
    pytest.param(
        corrupt_snapshot_json,
        {},
        f"snapshot 'main' {MAIN}/snapshot.json cannot be read: Expecting value: "
        "line 1 column 10 (char 9)",
        id="snapshot-unreadable-json",
    ),
    pytest.param(
        set_version("v1.0.0"),
        {"version": "v0.9.5"},
        "taken while truebond-backend ran v1.0.0, not v0.9.5",
        id="wrong-version",
    ),
    pytest.param(
        set_containers({}),
        {"version": "v0.9.5"},
        "taken while truebond-backend ran no known version, not v0.9.5",
        id="no-containers-recorded",
    ),
    pytest.param(
        set_containers({"truebond-frontend": "truebond-frontend:v0.9.5"}),
        {"version": "v0.9.5"},
        "taken while truebond-backend ran no known version, not v0.9.5",
        id="backend-container-not-recorded",
    ),
    pytest.param(
        set_containers({"truebond-backend": "truebond-backend"}),
        {"version": "v0.9.5"},
        "taken while truebond-backend ran no known version, not v0.9.5",
        id="backend-image-without-tag",
    ),
    pytest.param(
        set_version("v0.9.5"),
        {"version": "v0.9.5", "image": "ghcr.io/truebond/backend"},
        "taken while ghcr.io/truebond/backend ran no known version, not v0.9.5",
        id="other-image-not-recorded",
    ),
    pytest.param(
        set_purpose("incident"),
        {"purpose": "backup"},
        "its purpose is incident, not backup",
        id="wrong-purpose",
    ),
    pytest.param(
        drop_purpose,
        {"purpose": "backup"},
        "its purpose is not recorded, not backup",
        id="purpose-not-recorded",
    ),
    pytest.param(
        remove_snapshot_json,
        {},
        f"snapshot 'cache' {CACHE}/snapshot.json does not exist",
        id="missing-snapshot-json",
    ),
    pytest.param(
        remove_snapshot_folder,
        {},
        f"snapshot 'cache' {CACHE}/snapshot.json does not exist",
        id="missing-snapshot-folder",
    ),
    pytest.param(
        set_snapshot("cache", kind="mongodb"),
        {},
        "snapshot 'cache' is of kind 'mongodb', not 'redis'",
        id="wrong-kind",
    ),
    pytest.param(
        set_snapshot("main", kind=None),
        {},
        "snapshot 'main' is of kind None, not 'mongodb'",
        id="kind-not-recorded",
    ),
    pytest.param(
        set_snapshot("main", complete=False),
        {},
        "snapshot 'main' is marked incomplete",
        id="complete-false",
    ),
    pytest.param(
        set_snapshot("main", complete="true"),
        {},
        "snapshot 'main' is marked incomplete",
        id="complete-string-true",
    ),
    pytest.param(
        set_snapshot("main", taken_at="2026-12-04 17:30:01"),
        {},
        "snapshot 'main' has no valid taken_at: '2026-12-04 17:30:01'",
        id="taken-at-without-t-and-z",
    ),
    pytest.param(
        set_snapshot("main", taken_at="2026-12-04T17:30:01.123+00:00"),
        {},
        "snapshot 'main' has no valid taken_at: '2026-12-04T17:30:01.123+00:00'",
        id="taken-at-with-offset",
    ),
    pytest.param(
        set_snapshot("main", taken_at=1764869401),
        {},
        "snapshot 'main' has no valid taken_at: 1764869401",
        id="taken-at-number",
    ),
    pytest.param(
        drop_taken_at,
        {},
        "snapshot 'main' has no valid taken_at: None",
        id="taken-at-missing",
    ),
    pytest.param(
        remove_bson,
        {},
        f"snapshot file {MAIN}/truebond/users.bson is missing",
        id="missing-file",
    ),
    pytest.param(
        truncate_rdb,
        {},
        f"snapshot file {CACHE}/dump.rdb has 9 bytes, the snapshot recorded "
        f"{len(SNAPSHOT_FILES['redis']['dump.rdb'])}",
        id="size-mismatch",
    ),
    pytest.param(
        flip_rdb_byte,
        {},
        f"snapshot file {CACHE}/dump.rdb does not match its recorded SHA-256 checksum",
        id="checksum-mismatch",
    ),
    pytest.param(
        list_escaping_file,
        {},
        f"snapshot.json lists '../x', outside {MAIN}",
        id="file-escapes-folder",
    ),
    pytest.param(
        list_absolute_file,
        {},
        f"snapshot.json lists '/etc/hostname', outside {MAIN}",
        id="file-absolute-path",
    ),
    pytest.param(
        list_file_with_nul,
        {},
        "snapshot.json lists a file name with a NUL byte: 'dump\\x00.rdb'",
        id="file-name-nul",
    ),
    pytest.param(
        lambda folder: None,
        {"exclude": ["{folder}"]},
        "excluded",
        id="excluded",
    ),
    pytest.param(
        lambda folder: None,
        {"exclude": ["{folder}/"]},
        "excluded",
        id="excluded-trailing-slash",
    ),
]


@pytest.mark.parametrize("breaker, overrides, reason", REJECTION_CASES)
@pytest.mark.parametrize("mode", ["path", "root"])
def test_select_rejects_folder(tmp_path, mode, breaker, overrides, reason):
    folder = make_backup(tmp_path, "backup-20261204T173000Z")
    breaker(folder)
    if "exclude" in overrides:
        overrides = dict(
            overrides,
            exclude=[item.format(folder=folder) for item in overrides["exclude"]],
        )
    location = {"path": str(folder)} if mode == "path" else {"root": str(tmp_path)}
    result, rejected = backup_select.select(select_params(**location, **overrides), NOW)
    assert result is None
    assert rejected == [{"path": str(folder), "reason": reason.format(folder=folder)}]


def test_select_checksum_ignored_without_verify(tmp_path):
    folder = make_backup(tmp_path, "backup-a")
    flip_rdb_byte(folder)
    result, rejected = backup_select.select(
        select_params(path=str(folder), verify_checksums=False), NOW
    )
    assert result["path"] == str(folder)
    assert rejected == []


def test_select_size_checked_without_verify(tmp_path):
    folder = make_backup(tmp_path, "backup-a")
    truncate_rdb(folder)
    result, rejected = backup_select.select(
        select_params(path=str(folder), verify_checksums=False), NOW
    )
    assert result is None
    assert rejected == [
        {
            "path": str(folder),
            "reason": f"snapshot file {folder}/datastores/cache/dump.rdb has 9 bytes, "
            f"the snapshot recorded {len(SNAPSHOT_FILES['redis']['dump.rdb'])}",
        }
    ]


@pytest.mark.parametrize(
    "overrides",
    [
        pytest.param({"version": "v0.9.5"}, id="matching-version"),
        pytest.param({"purpose": "backup"}, id="matching-purpose"),
        pytest.param({"version": "", "purpose": ""}, id="any-version-any-purpose"),
    ],
)
def test_select_accepts_matching_filters(tmp_path, overrides):
    folder = make_backup(tmp_path, "backup-a")
    result, rejected = backup_select.select(
        select_params(path=str(folder), **overrides), NOW
    )
    assert result["path"] == str(folder)
    assert result["version"] == "v0.9.5"
    assert rejected == []


def test_select_accepts_any_purpose_by_default(tmp_path):
    folder = make_backup(tmp_path, "incident-a", purpose="incident")
    result, _ = backup_select.select(select_params(path=str(folder)), NOW)
    assert result["path"] == str(folder)


def test_select_version_null_when_unknown(tmp_path):
    folder = make_backup(tmp_path, "backup-a")
    rewrite_metadata(folder, containers={})
    result, _ = backup_select.select(select_params(path=str(folder)), NOW)
    assert result["version"] is None


def test_select_path_mode_normalizes_path(tmp_path):
    folder = make_backup(tmp_path, "backup-a")
    result, _ = backup_select.select(select_params(path=f"{tmp_path}/./backup-a/"), NOW)
    assert result["path"] == str(folder)


def test_select_path_mode_checks_only_that_folder(tmp_path):
    make_backup(tmp_path, "backup-newer", taken_at="2026-12-04T17:35:00.000Z")
    older = make_backup(tmp_path, "backup-older", taken_at="2026-12-04T17:00:00.000Z")
    result, rejected = backup_select.select(select_params(path=str(older)), NOW)
    assert result["path"] == str(older)
    assert rejected == []


def test_select_missing_root_raises(tmp_path):
    root = tmp_path / "no-such-root"
    with pytest.raises(backup_select.Unusable) as caught:
        backup_select.select(select_params(root=str(root)), NOW)
    assert str(caught.value) == (
        f"cannot list the backup root {root}: [Errno 2] No such file or directory: "
        f"{str(root)!r}"
    )


def test_select_empty_root_returns_none(tmp_path):
    result, rejected = backup_select.select(select_params(root=str(tmp_path)), NOW)
    assert result is None
    assert rejected == []


# Age and the recovery point objective.


@pytest.mark.parametrize(
    "taken_at, objective, age, older",
    [
        pytest.param("2026-12-04T17:30:01.123Z", 5.0, 600.0, True, id="ten-min-vs-5"),
        pytest.param(
            "2026-12-04T17:30:01.123Z", 10.0, 600.0, False, id="exactly-at-10"
        ),
        pytest.param("2026-12-04T17:30:01.122Z", 10.0, 600.001, True, id="1ms-past-10"),
        pytest.param("2026-12-04T17:39:59.623Z", 5.0, 1.5, False, id="fresh"),
        pytest.param("2026-12-04T17:45:00.000Z", 5.0, -298.877, False, id="future"),
    ],
)
def test_select_age_against_objective(tmp_path, taken_at, objective, age, older):
    folder = make_backup(tmp_path, "backup-a", taken_at=taken_at)
    result, _ = backup_select.select(
        select_params(path=str(folder), rpo_objective_minutes=objective), NOW
    )
    assert result["age_seconds"] == age
    assert result["older_than_objective"] is older


# main() end to end.


def test_main_root_mode_result(tmp_path, capsys, fixed_now, managed_host_warnings):
    make_backup(tmp_path, "backup-a", taken_at="2026-12-04T17:00:00.000Z")
    chosen = make_backup(tmp_path, "backup-b", taken_at="2026-12-04T17:38:01.123Z")
    incident = make_backup(
        tmp_path, "incident-c", taken_at="2026-12-04T17:39:00.000Z", purpose="incident"
    )

    result = run_main(
        {
            "root": str(tmp_path),
            "stores": STORES,
            "version": "v0.9.5",
            "exclude": [str(incident)],
        },
        capsys,
    )

    assert "failed" not in result
    assert result["changed"] is False
    assert result["path"] == str(chosen)
    assert result["taken_at"] == "2026-12-04T17:38:01.123Z"
    assert result["age_seconds"] == 120.0
    assert result["older_than_objective"] is False
    assert result["version"] == "v0.9.5"
    assert result["snapshots"]["main"] == {
        "path": str(chosen / "datastores" / "main"),
        "kind": "mongodb",
        "taken_at": "2026-12-04T17:38:01.123Z",
    }
    assert result["rejected"] == [
        {"path": str(incident), "reason": "excluded"},
        {"path": str(tmp_path / "backup-a"), "reason": "a newer backup is usable"},
    ]
    assert warning_texts(result) == []


def test_main_warns_older_than_objective(
    tmp_path, capsys, fixed_now, managed_host_warnings
):
    folder = make_backup(tmp_path, "backup-a")
    result = run_main(
        {"path": str(folder), "stores": STORES, "rpo_objective_minutes": 2.5}, capsys
    )
    assert result["older_than_objective"] is True
    assert result["age_seconds"] == 600.0
    assert warning_texts(result) == [
        (
            f"The backup {folder} was taken at {TAKEN_AT}, 10.0 min ago, more than "
            "the RPO objective of 2.5 min: a full restore loses every write made "
            "since. To keep them, consider rollback_db with method=migration_undo."
        )
    ]


def test_main_default_objective_in_warning(
    tmp_path, capsys, fixed_now, managed_host_warnings
):
    folder = make_backup(tmp_path, "backup-a")
    result = run_main({"path": str(folder), "stores": STORES}, capsys)
    assert warning_texts(result) == [
        (
            f"The backup {folder} was taken at {TAKEN_AT}, 10.0 min ago, more than "
            "the RPO objective of 5 min: a full restore loses every write made "
            "since. To keep them, consider rollback_db with method=migration_undo."
        )
    ]


def test_main_no_usable_backup_message(tmp_path, capsys, fixed_now):
    wrong_version = make_backup(tmp_path, "backup-a", version="v1.0.0")
    incomplete = make_backup(tmp_path, "backup-b")
    rewrite_snapshot(incomplete, "main", complete=False)
    incident = make_backup(tmp_path, "incident-c", purpose="incident")
    result = run_main(
        {
            "root": str(tmp_path),
            "stores": STORES,
            "version": "v0.9.5",
            "purpose": "backup",
        },
        capsys,
    )
    assert result["failed"] is True
    assert result["msg"] == (
        f"No usable backup taken on v0.9.5 with mongodb 'main', redis 'cache' in "
        f"{tmp_path}. Checked: "
        f"{wrong_version}: taken while truebond-backend ran v1.0.0, not v0.9.5; "
        f"{incomplete}: snapshot 'main' is marked incomplete; "
        f"{incident}: its purpose is incident, not backup. " + NO_BACKUP_HINT
    )
    assert result["rejected"] == [
        {
            "path": str(wrong_version),
            "reason": "taken while truebond-backend ran v1.0.0, not v0.9.5",
        },
        {"path": str(incomplete), "reason": "snapshot 'main' is marked incomplete"},
        {"path": str(incident), "reason": "its purpose is incident, not backup"},
    ]


def test_main_no_usable_backup_any_version(tmp_path, capsys):
    folder = make_backup(tmp_path, "backup-a")
    remove_bson(folder)
    result = run_main(
        {"path": str(folder), "stores": [{"name": "main", "kind": "mongodb"}]}, capsys
    )
    assert result["msg"] == (
        f"No usable backup with mongodb 'main' in {folder}. Checked: {folder}: "
        f"snapshot file {folder}/datastores/main/truebond/users.bson is missing. "
        + NO_BACKUP_HINT
    )


def test_main_empty_root_message(tmp_path, capsys):
    result = run_main({"root": str(tmp_path), "stores": STORES}, capsys)
    assert result["msg"] == (
        f"No usable backup with mongodb 'main', redis 'cache' in {tmp_path}. "
        "Checked: none. " + NO_BACKUP_HINT
    )
    assert result["rejected"] == []


def test_main_missing_root_message(tmp_path, capsys):
    root = tmp_path / "no-such-root"
    result = run_main({"root": str(root), "stores": STORES}, capsys)
    assert result["failed"] is True
    assert result["msg"] == (
        f"cannot list the backup root {root}: [Errno 2] No such file or directory: "
        f"{str(root)!r}"
    )
    assert result["rejected"] == []


@pytest.mark.parametrize(
    "args, message",
    [
        pytest.param(
            {"root": "/backup", "stores": []},
            "stores is empty: name at least one snapshot to restore",
            id="empty-stores",
        ),
        pytest.param(
            {"stores": STORES},
            "one of the following is required: path, root",
            id="neither-path-nor-root",
        ),
        pytest.param(
            {"path": "/backup/a", "root": "/backup", "stores": STORES},
            "parameters are mutually exclusive: path|root",
            id="both-path-and-root",
        ),
        pytest.param(
            {"root": "/backup", "stores": [{"name": "main", "kind": "postgres"}]},
            "value of kind must be one of: mongodb, redis, atlas, got: postgres "
            "found in stores",
            id="unknown-kind",
        ),
        pytest.param(
            {
                "root": "/backup",
                "stores": [
                    {"name": "main", "kind": "mongodb"},
                    {"name": "../../backup-b/datastores/cache", "kind": "redis"},
                ],
            },
            "stores name '../../backup-b/datastores/cache' is not a valid snapshot"
            " name; use 1 to 64 letters, digits, '_', '.' or '-', starting with a"
            " letter, digit or '_', as the folder under datastores/ is named, for"
            " example 'cache'",
            id="store-name-with-slash",
        ),
        pytest.param(
            {"root": "/backup", "stores": [{"name": "..", "kind": "redis"}]},
            "stores name '..' is not a valid snapshot name; use 1 to 64 letters,"
            " digits, '_', '.' or '-', starting with a letter, digit or '_', as the"
            " folder under datastores/ is named, for example 'cache'",
            id="store-name-parent",
        ),
        pytest.param(
            {"root": "/backup", "stores": [{"name": "cache\n", "kind": "redis"}]},
            "stores name 'cache\\n' is not a valid snapshot name; use 1 to 64"
            " letters, digits, '_', '.' or '-', starting with a letter, digit or"
            " '_', as the folder under datastores/ is named, for example 'cache'",
            id="store-name-trailing-newline",
        ),
    ],
)
def test_main_rejects_bad_arguments(args, message, capsys):
    result = run_main(args, capsys)
    assert result["failed"] is True
    assert result["msg"] == message


@pytest.mark.parametrize(
    "setup, args, warned",
    [
        pytest.param(
            "usable",
            {"version": "v0.9.5", "rpo_objective_minutes": 60},
            False,
            id="usable-root",
        ),
        pytest.param(
            "usable", {"rpo_objective_minutes": 1}, True, id="usable-with-warning"
        ),
        pytest.param("unusable", {"version": "v0.9.5"}, False, id="no-usable-backup"),
        pytest.param("missing-root", {}, False, id="missing-root"),
    ],
)
def test_main_check_mode_same_answer(
    tmp_path, capsys, fixed_now, managed_host_warnings, setup, args, warned
):
    root = tmp_path / "backups"
    if setup != "missing-root":
        make_backup(root, "backup-a", taken_at="2026-12-04T17:00:00.000Z")
        make_backup(root, "backup-b", taken_at="2026-12-04T17:20:00.000Z")
    if setup == "unusable":
        rewrite_snapshot(root / "backup-a", "cache", complete=False)
        rewrite_snapshot(root / "backup-b", "main", kind="redis")
    args = dict(args, root=str(root), stores=STORES)
    normal = run_main(args, capsys)
    checked = run_main(args, capsys, check_mode=True)
    assert checked == normal
    assert bool(warning_texts(checked)) is warned


# Known gaps, each pinned by a test that fails until the module is fixed.


@pytest.mark.parametrize(
    "root_suffix",
    [
        pytest.param("/../backups", id="dotdot-in-root"),
        pytest.param("//", id="double-slash-root"),
        pytest.param("/.", id="dot-root"),
    ],
)
def test_select_unnormalized_root(tmp_path, root_suffix):
    root = tmp_path / "backups"
    make_backup(root, "backup-a")
    result, rejected = backup_select.select(
        select_params(root=str(root) + root_suffix), NOW
    )
    assert rejected == []
    assert result is not None


@pytest.mark.parametrize(
    "breaker",
    [
        pytest.param(
            lambda folder: write_json(folder / "manifest.json", []),
            id="manifest-is-list",
        ),
        pytest.param(
            lambda folder: rewrite_metadata(folder, containers=["truebond-backend"]),
            id="containers-is-list",
        ),
        pytest.param(
            lambda folder: write_json(
                folder / "datastores" / "main" / "snapshot.json", "complete"
            ),
            id="snapshot-json-is-string",
        ),
        pytest.param(
            set_snapshot("main", files={"truebond/users.bson": 22}),
            id="files-entry-is-number",
        ),
    ],
)
def test_select_malformed_folder_rejected(tmp_path, breaker):
    good = make_backup(tmp_path, "backup-a", taken_at="2026-12-04T17:00:00.000Z")
    bad = make_backup(tmp_path, "backup-b")
    breaker(bad)
    result, rejected = backup_select.select(
        select_params(root=str(tmp_path), version="v0.9.5"), NOW
    )
    assert result["path"] == str(good)
    assert [item["path"] for item in rejected] == [str(bad)]


def test_main_root_with_dotdot(tmp_path, capsys, fixed_now):
    root = tmp_path / "backups"
    make_backup(root, "backup-a")
    result = run_main({"root": f"{root}/../backups", "stores": STORES}, capsys)
    assert "failed" not in result
    assert result["taken_at"] == TAKEN_AT
