# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of redis_restore and redis_verify against Debian's redis-server."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.truebond.rollback.plugins.modules import (
    redis_restore,
    redis_snapshot,
    redis_verify,
)

STAMP = "20261204T174512Z"


def run_module(module, args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


def take_snapshot(server, dest, capsys):
    with (
        patch_module_args({"port": server.port, "dest": str(dest)}),
        pytest.raises(SystemExit),
    ):
        redis_snapshot.main()
    result = json.loads(capsys.readouterr().out)
    assert result["snapshot"]["complete"] is True, result
    return result["snapshot"]


@pytest.fixture
def snapshot_dir(redis_server, tmp_path, capsys):
    """A complete snapshot of a server with four keys, one of them with a TTL."""
    server = redis_server()
    client = server.client()
    client.mset({"user:1": "alice", "user:2": "bob", "user:3": "carol"})
    client.set("session:1", "token", ex=3600)
    dest = tmp_path / "snapshot"
    take_snapshot(server, dest, capsys)
    server.kill()
    return dest


def restore_params(src, data_dir, port, **overrides):
    params = {
        "src": str(src),
        "data_dir": str(data_dir),
        "dbfilename": "dump.rdb",
        "appenddirname": "appendonlydir",
        "appendfilename": "appendonly.aof",
        "host": "127.0.0.1",
        "port": port,
        "owner": None,
        "group": None,
        "mode": None,
        "check_rdb": True,
        "redis_check_rdb": "redis-check-rdb",
        "step": "place",
    }
    params.update(overrides)
    return params


def rewrite_manifest(src, change):
    manifest = src / "snapshot.json"
    snapshot = json.loads(manifest.read_text())
    change(snapshot)
    manifest.write_text(json.dumps(snapshot))


def test_restore_places_file_and_keeps_old(snapshot_dir, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "dump.rdb").write_bytes(b"old data")
    os.chmod(data_dir / "dump.rdb", 0o640)
    (data_dir / "appendonlydir").mkdir()
    (data_dir / "appendonlydir" / "appendonly.aof.manifest").write_text("old")
    warnings = []

    result = redis_restore.restore(
        restore_params(snapshot_dir, data_dir, 16419), False, warnings.append, STAMP
    )

    placed = data_dir / "dump.rdb"
    assert placed.read_bytes() == (snapshot_dir / "dump.rdb").read_bytes()
    assert stat.S_IMODE(placed.stat().st_mode) == 0o640
    kept = data_dir / f"dump.rdb.{STAMP}.replaced"
    assert kept.read_bytes() == b"old data"
    aside = data_dir / f"appendonlydir.{STAMP}.aside"
    assert (aside / "appendonly.aof.manifest").read_text() == "old"
    assert not (data_dir / "appendonlydir").exists()
    assert result["replaced"] == str(kept)
    assert result["aside"] == {str(data_dir / "appendonlydir"): str(aside)}
    assert "RDB looks OK" in result["check_rdb_output"]
    assert warnings == []
    leftovers = [name for name in os.listdir(data_dir) if name.endswith(".restore")]
    assert leftovers == []


def test_restore_sets_mode_and_owner(snapshot_dir, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    params = restore_params(
        snapshot_dir, data_dir, 16419, owner="0", group="0", mode="0660"
    )
    result = redis_restore.restore(params, False, print, STAMP)
    placed = data_dir / "dump.rdb"
    assert stat.S_IMODE(placed.stat().st_mode) == 0o660
    assert placed.stat().st_uid == 0
    assert result["replaced"] is None


def test_restore_check_mode_changes_nothing(snapshot_dir, tmp_path, capsys):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "dump.rdb").write_bytes(b"old data")
    args = {
        "src": str(snapshot_dir),
        "data_dir": str(data_dir),
        "port": 16419,
        "_ansible_check_mode": True,
    }
    result = run_module(redis_restore, args, capsys)
    assert result["changed"] is True
    assert result["actions"][0].startswith(f"keep {data_dir / 'dump.rdb'} as ")
    assert (data_dir / "dump.rdb").read_bytes() == b"old data"
    assert sorted(os.listdir(data_dir)) == ["dump.rdb"]


@pytest.mark.parametrize(
    "damage, expected",
    [
        pytest.param(
            lambda src: (src / "snapshot.json").unlink(),
            "{manifest!r} not found, so the snapshot in {src!r} is incomplete "
            "(snapshot.json is written last). Restore from another snapshot.",
            id="no-snapshot-json",
        ),
        pytest.param(
            lambda src: rewrite_manifest(src, lambda s: s.update(complete=False)),
            "{manifest!r} records an incomplete snapshot (complete: False), for "
            "example after a full disk. Restore from another snapshot.",
            id="incomplete",
        ),
        pytest.param(
            lambda src: rewrite_manifest(src, lambda s: s.update(kind="mongodb")),
            "{manifest!r} describes a snapshot of kind 'mongodb', expected 'redis'",
            id="other-kind",
        ),
        pytest.param(
            lambda src: (src / "dump.rdb").write_bytes(
                (src / "dump.rdb").read_bytes()[:-1] + b"\0"
            ),
            "SHA-256 of {rdb!r} is {sha}, snapshot.json records {recorded!r}. The "
            "snapshot is damaged.",
            id="checksum",
        ),
        pytest.param(
            lambda src: (src / "dump.rdb").write_bytes(b"short"),
            "{rdb!r} has 5 bytes, snapshot.json records {size!r}. The snapshot is "
            "damaged.",
            id="size",
        ),
    ],
)
def test_restore_rejects_bad_snapshot(snapshot_dir, tmp_path, capsys, damage, expected):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "dump.rdb").write_bytes(b"current data")
    recorded = json.loads((snapshot_dir / "snapshot.json").read_text())
    damage(snapshot_dir)
    rdb = snapshot_dir / "dump.rdb"
    args = {"src": str(snapshot_dir), "data_dir": str(data_dir), "port": 16419}

    result = run_module(redis_restore, args, capsys)

    message = expected.format(
        manifest=str(snapshot_dir / "snapshot.json"),
        src=str(snapshot_dir),
        rdb=str(rdb),
        sha=hashlib.sha256(rdb.read_bytes()).hexdigest(),
        recorded=recorded["files"]["dump.rdb"]["sha256"],
        size=recorded["files"]["dump.rdb"]["bytes"],
    )
    assert result["msg"] == (
        f"Redis restore of {str(snapshot_dir)!r} into {str(data_dir / 'dump.rdb')!r} "
        f"failed: {message}"
    )
    assert sorted(os.listdir(data_dir)) == ["dump.rdb"]
    assert (data_dir / "dump.rdb").read_bytes() == b"current data"


def test_restore_rejects_corrupt_rdb_with_check_output(snapshot_dir, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    (data_dir / "dump.rdb").write_bytes(b"current data")
    rdb = snapshot_dir / "dump.rdb"
    data = bytearray(rdb.read_bytes())
    data[20:30] = b"\xff" * 10
    rdb.write_bytes(bytes(data))
    # Checksums that match, so that only redis-check-rdb can find the damage.
    rewrite_manifest(
        snapshot_dir,
        lambda s: s["files"]["dump.rdb"].update(
            sha256=hashlib.sha256(bytes(data)).hexdigest()
        ),
    )

    with pytest.raises(redis_restore.RestoreError) as caught:
        redis_restore.restore(
            restore_params(snapshot_dir, data_dir, 16419), False, print, STAMP
        )

    message = str(caught.value)
    program = shutil.which("redis-check-rdb")
    assert message.startswith(
        f"{program} rejected {str(rdb)!r} (exit status 1), so nothing was replaced. "
        "Its output: "
    )
    assert "RDB ERROR DETECTED" in message
    assert sorted(os.listdir(data_dir)) == ["dump.rdb"]
    assert (data_dir / "dump.rdb").read_bytes() == b"current data"


def test_restore_warns_without_check_program(snapshot_dir, tmp_path):
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    warnings = []
    params = restore_params(
        snapshot_dir, data_dir, 16419, redis_check_rdb="no-such-redis-check-rdb"
    )
    result = redis_restore.restore(params, False, warnings.append, STAMP)
    assert result["check_rdb_output"] is None
    expected = (
        f"no-such-redis-check-rdb not found, so {snapshot_dir / 'dump.rdb'} was "
        "checked against its SHA-256 only. Install redis-tools to check the RDB "
        "structure too."
    )
    assert warnings == [expected]


def test_restore_rejects_running_redis(snapshot_dir, redis_server):
    server = redis_server()
    server.client().set("live", "1")
    with pytest.raises(redis_restore.RestoreError) as caught:
        redis_restore.restore(
            restore_params(snapshot_dir, server.data_dir, server.port),
            False,
            print,
            STAMP,
        )
    assert str(caught.value) == (
        f"something still accepts connections on 127.0.0.1:{server.port}, so Redis "
        "looks running, and it would write its memory over the restored file when it "
        "stops. Stop it first with SHUTDOWN NOSAVE, or disable saving "
        "(CONFIG SET save '') and stop the service."
    )


def test_restore_check_step_allows_running_redis(snapshot_dir, redis_server):
    server = redis_server()
    result = redis_restore.restore(
        restore_params(snapshot_dir, server.data_dir, server.port, step="check"),
        False,
        print,
        STAMP,
    )
    assert result["changed"] is False
    assert os.listdir(server.data_dir) == []


def test_restore_then_verify_matches(snapshot_dir, redis_server, capsys):
    server = redis_server(start=False)
    redis_restore.restore(
        restore_params(snapshot_dir, server.data_dir, server.port), False, print, STAMP
    )
    server.start()

    result = run_module(
        redis_verify, {"src": str(snapshot_dir), "port": server.port}, capsys
    )

    assert result.get("failed") is not True, result
    assert result["keyspace"] == {"db0": {"keys": 4, "expires": 1}}
    assert result["expected"] == {"db0": {"min": 3, "max": 4}}
    # session:1 has a TTL, so only the three user keys are samples.
    assert result["samples_checked"] == 3
    assert result["problems"] == []
    assert result["rdb_last_load_keys_loaded"] == 4


def test_verify_compares_dump_for_snapshot_without_value_digest(
    snapshot_dir, redis_server, capsys
):
    """A snapshot of collection 0.2.0 has only dump_sha256, so DUMP is compared."""
    path = snapshot_dir / "snapshot.json"
    snapshot = json.loads(path.read_text())
    for sample in snapshot["samples"]:
        del sample["value_sha256"]
    path.write_text(json.dumps(snapshot))
    server = redis_server(start=False)
    redis_restore.restore(
        restore_params(snapshot_dir, server.data_dir, server.port), False, print, STAMP
    )
    server.start()
    server.client().set("user:1", "mallory")

    result = run_module(
        redis_verify, {"src": str(snapshot_dir), "port": server.port}, capsys
    )

    assert result["failed"] is True
    assert result["problems"][0].startswith(
        "sample key 'user:1' in db0 differs from the snapshot (DUMP SHA-256 "
    )


def test_verify_reports_changed_and_extra_keys(snapshot_dir, redis_server, capsys):
    server = redis_server(start=False)
    redis_restore.restore(
        restore_params(snapshot_dir, server.data_dir, server.port), False, print, STAMP
    )
    server.start()
    server.client().set("user:1", "mallory")
    server.client().set("extra", "1")

    result = run_module(
        redis_verify, {"src": str(snapshot_dir), "port": server.port}, capsys
    )

    snapshot = json.loads((snapshot_dir / "snapshot.json").read_text())
    recorded = next(s for s in snapshot["samples"] if s["key"] == "user:1")
    assert result["failed"] is True
    assert result["problems"][0] == "db0 has 5 keys, expected 3 to 4"
    assert result["problems"][1].startswith(
        "sample key 'user:1' in db0 differs from the snapshot (value SHA-256 "
    )
    assert result["problems"][1].endswith(f"expected {recorded['value_sha256']})")
    assert result["msg"].startswith(
        f"Redis at 127.0.0.1:{server.port} against the snapshot "
        f"{str(snapshot_dir)!r} does not match: db0 has 5 keys, expected 3 to 4; "
    )


@pytest.mark.parametrize(
    "actual, ranges, expected",
    [
        pytest.param(
            {"db0": {"keys": 8}},
            {"db0": {"min": 8, "max": 10}},
            [],
            id="ttl-keys-expired",
        ),
        pytest.param(
            {"db0": {"keys": 7}},
            {"db0": {"min": 8, "max": 10}},
            ["db0 has 7 keys, expected 8 to 10"],
            id="too-few",
        ),
        pytest.param(
            {},
            {"db1": {"min": 2, "max": 2}},
            ["db1 has 0 keys, expected 2"],
            id="database-missing",
        ),
        pytest.param(
            {"db0": {"keys": 1}, "db12": {"keys": 3}},
            {"db0": {"min": 1, "max": 1}},
            ["db12 has 3 keys, expected 0"],
            id="database-not-in-snapshot",
        ),
    ],
)
def test_compare_keyspace_ranges(actual, ranges, expected):
    assert redis_verify.compare_keyspace(actual, ranges) == expected


def test_expected_ranges_allow_expiring_keys():
    snapshot = {"keyspace": {"db0": {"keys": 10, "expires": 2}}}
    assert redis_verify.expected_ranges(snapshot) == {"db0": {"min": 8, "max": 10}}


def test_verify_times_out_when_redis_down(snapshot_dir, capsys):
    result = run_module(
        redis_verify,
        {"src": str(snapshot_dir), "port": 16419, "timeout": 0},
        capsys,
    )
    assert result["msg"].startswith(
        f"checking Redis at 127.0.0.1:16419 against the snapshot {str(snapshot_dir)!r}"
        " failed: Redis at 127.0.0.1:16419 was not ready within 0 s. Last error: "
        "could not connect to Redis at 127.0.0.1:16419: "
    )


def make_plain_snapshot(folder):
    """Write a Redis snapshot folder by hand, for tests that need no server."""
    data = b"REDIS0011"
    folder.mkdir()
    (folder / "dump.rdb").write_bytes(data)
    (folder / "snapshot.json").write_text(
        json.dumps(
            {
                "kind": "redis",
                "format": 1,
                "complete": True,
                "rdb_file": "dump.rdb",
                "files": {
                    "dump.rdb": {
                        "bytes": len(data),
                        "sha256": hashlib.sha256(data).hexdigest(),
                    }
                },
            }
        )
    )


def file_name_message(option, name):
    return (
        f"{option} {name!r} is not a plain file name in the data folder; give the"
        f" name as CONFIG GET {option} returns it, without '/' or a NUL byte and not"
        " '', '.' or '..'"
    )


@pytest.mark.parametrize("option", redis_restore.FILE_NAME_OPTIONS)
@pytest.mark.parametrize(
    "name",
    [
        pytest.param("", id="empty"),
        pytest.param(".", id="dot"),
        pytest.param("..", id="dot-dot"),
        pytest.param("/", id="root"),
        pytest.param("../dump.rdb", id="parent"),
        pytest.param("/var/lib/redis/dump.rdb", id="absolute"),
        pytest.param("a\x00b", id="nul"),
    ],
)
def test_plan_restore_rejects_file_name(tmp_path, option, name):
    params = restore_params(tmp_path, tmp_path, 9, **{option: name})
    with pytest.raises(redis_restore.RestoreError) as caught:
        redis_restore.plan_restore(params, {"rdb_file": "dump.rdb"}, STAMP)
    assert str(caught.value) == file_name_message(option, name)


def test_main_rejects_dbfilename_outside_data_dir(tmp_path, capsys):
    make_plain_snapshot(tmp_path / "snapshot")
    data_dir = tmp_path / "data"
    data_dir.mkdir()
    args = {
        "src": str(tmp_path / "snapshot"),
        "data_dir": str(data_dir),
        "dbfilename": "../dump.rdb",
        # Nothing listens on the discard port, so Redis counts as stopped.
        "port": 9,
        "check_rdb": False,
    }

    result = run_module(redis_restore, args, capsys)

    assert result["failed"] is True
    assert result["msg"] == (
        f"Redis restore of {str(tmp_path / 'snapshot')!r} into"
        f" {str(data_dir / '../dump.rdb')!r} failed: "
        + file_name_message("dbfilename", "../dump.rdb")
    )
    assert sorted(os.listdir(tmp_path)) == ["data", "snapshot"]
    assert os.listdir(data_dir) == []


@pytest.mark.parametrize(
    "mode, expected",
    [
        pytest.param(None, 0o640, id="unset"),
        pytest.param("", 0o640, id="empty"),
        pytest.param("0660", 0o660, id="string-with-zero"),
        pytest.param("600", 0o600, id="string-without-zero"),
        pytest.param("0000", 0, id="string-no-access"),
        pytest.param(0o644, 0o644, id="integer"),
        pytest.param(0o777, 0o777, id="integer-max"),
    ],
)
def test_parse_mode_accepts(mode, expected):
    assert redis_restore.parse_mode(mode, 0o640) == expected


MODE_FIX = "give a quoted octal string such as '0660'"


@pytest.mark.parametrize(
    "mode, message",
    [
        pytest.param(
            "-1",
            f"mode '-1' is not an octal permission mode from 0000 to 0777; {MODE_FIX}",
            id="negative-string",
        ),
        pytest.param(
            -1,
            "mode -1 is not an octal permission mode from 0000 to 0777 because it is"
            f" negative; {MODE_FIX}",
            id="negative-integer",
        ),
        pytest.param(
            "4755",
            "mode '4755' is not an octal permission mode from 0000 to 0777 because it"
            " is octal 4755, which sets setuid, setgid or the sticky bit or is larger"
            f" than 7777; {MODE_FIX}",
            id="setuid",
        ),
        pytest.param(
            0o1777,
            "mode 1023 is not an octal permission mode from 0000 to 0777 because it"
            " is octal 1777, which sets setuid, setgid or the sticky bit or is larger"
            f" than 7777; {MODE_FIX}",
            id="sticky-integer",
        ),
        pytest.param(
            True,
            f"mode True is not an octal permission mode from 0000 to 0777; {MODE_FIX}",
            id="boolean",
        ),
        pytest.param(
            "0o660",
            "mode '0o660' is not an octal permission mode from 0000 to 0777;"
            f" {MODE_FIX}",
            id="python-prefix",
        ),
        pytest.param(
            "0668",
            f"mode '0668' is not an octal permission mode from 0000 to 0777; {MODE_FIX}",
            id="digit-eight",
        ),
        pytest.param(
            "rw",
            f"mode 'rw' is not an octal permission mode from 0000 to 0777; {MODE_FIX}",
            id="symbolic",
        ),
        pytest.param(
            6.5,
            f"mode 6.5 is not an octal permission mode from 0000 to 0777; {MODE_FIX}",
            id="float",
        ),
    ],
)
def test_parse_mode_rejects(mode, message):
    with pytest.raises(redis_restore.RestoreError) as caught:
        redis_restore.parse_mode(mode, 0o600)
    assert str(caught.value) == message


EXISTING = os.stat_result((0o100600, 0, 0, 1, 1000, 1001, 0, 0, 0, 0))


@pytest.mark.parametrize(
    "owner, group, expected",
    [
        pytest.param(None, None, (1000, 1001), id="defaults"),
        pytest.param("0", "0", (0, 0), id="numeric"),
        pytest.param("root", "root", (0, 0), id="names"),
        pytest.param("4294967294", None, (4294967294, 1001), id="max-id"),
    ],
)
def test_resolve_owner_accepts(owner, group, expected):
    assert redis_restore.resolve_owner(owner, group, EXISTING) == expected


@pytest.mark.parametrize(
    "owner, group, message",
    [
        pytest.param(
            "99999999999999999999",
            None,
            "owner '99999999999999999999' is larger than the maximum ID 4294967294;"
            " give a user name or a numeric ID from 0 to 4294967294",
            id="owner-too-large",
        ),
        pytest.param(
            None,
            "4294967295",
            "group '4294967295' is larger than the maximum ID 4294967294; give a"
            " group name or a numeric ID from 0 to 4294967294",
            id="group-too-large",
        ),
        pytest.param(
            "\u0663",
            None,
            "owner '\u0663' not found on this host",
            id="owner-arabic-indic-digit",
        ),
        pytest.param(
            None,
            "\uff11",
            "group '\uff11' not found on this host",
            id="group-fullwidth-digit",
        ),
        pytest.param(
            "ro\x00ot",
            None,
            "owner 'ro\\x00ot' contains a NUL byte; give a user name or a numeric ID",
            id="owner-nul",
        ),
    ],
)
def test_resolve_owner_rejects(owner, group, message):
    with pytest.raises(redis_restore.RestoreError) as caught:
        redis_restore.resolve_owner(owner, group, EXISTING)
    assert str(caught.value) == message
