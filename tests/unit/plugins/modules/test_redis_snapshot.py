# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of redis_snapshot against Debian's redis-server run directly."""

from __future__ import annotations

import errno
import hashlib
import json
import os
import re
import stat
import threading

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.truebond.rollback.plugins.module_utils import _redis
from ansible_collections.truebond.rollback.plugins.modules import redis_snapshot


def run_main(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        redis_snapshot.main()
    return json.loads(capsys.readouterr().out)


def connect(server):
    return _redis.connect("127.0.0.1", server.port)


def fill(server, count, prefix="k", db=0):
    client = server.client(db=db)
    pipe = client.pipeline()
    for index in range(count):
        pipe.set(f"{prefix}{index}", "x" * 32)
    pipe.execute()


def slow_saves(server, keys=200, microseconds_per_key=2000):
    """Make each save or AOF rewrite take about keys * delay (0.4 s by default)."""
    fill(server, keys, prefix="slow")
    server.client().config_set("rdb-key-save-delay", microseconds_per_key)


def test_snapshot_copies_rdb_and_records_keys(redis_server, tmp_path, capsys):
    server = redis_server()
    client = server.client()
    client.mset({"user:1": "alice", "user:2": "bob"})
    client.set("session:1", "token", ex=600)
    server.client(db=3).hset("room:1", mapping={"name": "general"})
    dest = tmp_path / "backup" / "sessions"

    result = run_main({"port": server.port, "dest": str(dest), "samples": 2}, capsys)

    assert result["changed"] is True
    snapshot = result["snapshot"]
    assert snapshot["complete"] is True
    assert snapshot["kind"] == "redis"
    assert snapshot["name"] == "sessions"
    assert snapshot["redis_version"].startswith("7.")
    assert snapshot["appendonly"] is False
    assert snapshot["aof_dir"] is None
    assert snapshot["keyspace"] == {
        "db0": {"keys": 3, "expires": 1},
        "db3": {"keys": 1, "expires": 0},
    }
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", snapshot["taken_at"])
    sampled = {(sample["db"], sample["key"]) for sample in snapshot["samples"]}
    assert (0, "session:1") not in sampled
    assert len([key for db, key in sampled if db == 0]) == 2
    assert (3, "room:1") in sampled
    for sample in snapshot["samples"]:
        dump = server.client(db=sample["db"]).dump(sample["key"])
        assert sample["dump_sha256"] == hashlib.sha256(dump).hexdigest()
    rdb = dest / "dump.rdb"
    assert snapshot["files"] == {
        "dump.rdb": {
            "bytes": rdb.stat().st_size,
            "sha256": hashlib.sha256(rdb.read_bytes()).hexdigest(),
        }
    }
    assert json.loads((dest / "snapshot.json").read_text()) == snapshot
    assert stat.S_IMODE(dest.stat().st_mode) == 0o700
    assert stat.S_IMODE(rdb.stat().st_mode) == 0o600
    assert stat.S_IMODE((dest / "snapshot.json").stat().st_mode) == 0o600


def test_snapshot_taken_at_is_last_save_time(redis_server, tmp_path):
    server = redis_server()
    client = connect(server)
    params = {
        "port": server.port,
        "host": "127.0.0.1",
        "password": None,
        "username": None,
        "data_dir": None,
        "timeout": 10,
        "samples": 1,
        "dest": str(tmp_path / "s"),
    }
    os.makedirs(params["dest"])
    result = redis_snapshot.take_snapshot(client, params, "s")
    last_save = int(client.info("persistence")["rdb_last_save_time"])
    assert result["snapshot"]["taken_at"] == _redis.utc_timestamp(last_save)


def test_bgsave_waits_for_running_save(redis_server):
    server = redis_server()
    slow_saves(server)
    client = connect(server)
    client.execute_command("BGSAVE")
    saves_before = int(client.info("persistence")["rdb_saves"])

    saved = redis_snapshot.run_bgsave(client, timeout=20)

    assert saved["waited_for_running_save"] is True
    assert saved["scheduled"] is False
    assert saved["info"]["rdb_last_bgsave_status"] == "ok"
    # The running save and then a fresh one, so the snapshot is not older than the call.
    assert int(saved["info"]["rdb_saves"]) == saves_before + 1


def test_bgsave_started_by_other_client_meanwhile(redis_server):
    server = redis_server()
    slow_saves(server, keys=100)
    client = connect(server)
    real_execute = client.execute_command
    calls = []

    def execute(*args, **options):
        # Another client wins the race between INFO and our BGSAVE once.
        if args == ("BGSAVE",) and not calls:
            calls.append(args)
            server.client().bgsave()
        return real_execute(*args, **options)

    client.execute_command = execute
    saved = redis_snapshot.run_bgsave(client, timeout=20)
    assert saved["waited_for_running_save"] is True
    assert saved["info"]["rdb_last_bgsave_status"] == "ok"


def test_bgsave_scheduled_behind_aof_rewrite(redis_server):
    server = redis_server("--appendonly", "yes")
    # Wait for the initial AOF rewrite that appendonly yes starts.
    client = connect(server)
    _redis.wait_until(
        lambda: client.info("persistence"),
        lambda info: not int(info["aof_rewrite_in_progress"]),
        10,
        str,
    )
    slow_saves(server, keys=100)
    client.execute_command("BGREWRITEAOF")

    saved = redis_snapshot.run_bgsave(client, timeout=20)

    assert saved["scheduled"] is True
    assert saved["info"]["rdb_last_bgsave_status"] == "ok"
    assert int(saved["info"]["aof_rewrite_in_progress"]) == 0


def test_bgsave_failure_is_error(redis_server):
    server = redis_server()
    server.client().set("a", 1)
    # Redis writes its temporary RDB file into its working folder, so the save fails
    # once that folder is gone. Mode 0500 would not do, because root ignores it.
    os.rmdir(server.data_dir)
    client = connect(server)
    with pytest.raises(redis_snapshot.SnapshotError) as caught:
        redis_snapshot.run_bgsave(client, timeout=10)
    message = str(caught.value)
    assert message.startswith(
        "BGSAVE failed: Redis reports rdb_last_bgsave_status='err'. Last INFO "
        "persistence: loading=0, rdb_bgsave_in_progress=0, rdb_last_bgsave_status=err"
    )
    assert message.endswith(
        "See the Redis log, usually a full disk or a data folder Redis cannot write."
    )


def test_bgsave_timeout_quotes_persistence(redis_server):
    server = redis_server()
    slow_saves(server, keys=100, microseconds_per_key=100000)
    client = connect(server)
    with pytest.raises(_redis.WaitTimeout) as caught:
        redis_snapshot.run_bgsave(client, timeout=0.3)
    message = str(caught.value)
    assert message.startswith(
        "timed out after 0.3 s waiting for BGSAVE to finish. Last INFO persistence: "
        "loading=0, rdb_bgsave_in_progress=1, rdb_last_bgsave_status=ok"
    )
    assert message.endswith("Raise timeout or check the Redis log.")


def test_snapshot_timeout_fails_task(redis_server, tmp_path, capsys):
    server = redis_server()
    slow_saves(server, keys=100, microseconds_per_key=100000)
    dest = tmp_path / "snap"
    result = run_main({"port": server.port, "dest": str(dest), "timeout": 0}, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith(
        f"Redis snapshot 'snap' of 127.0.0.1:{server.port} failed: timed out after "
        "0 s waiting for BGSAVE to finish."
    )
    assert not (dest / "snapshot.json").exists()


def test_snapshot_copies_appendonly_files(redis_server, tmp_path, capsys):
    server = redis_server("--appendonly", "yes")
    server.client().set("a", 1)
    dest = tmp_path / "snap"

    result = run_main({"port": server.port, "dest": str(dest)}, capsys)

    snapshot = result["snapshot"]
    assert snapshot["appendonly"] is True
    assert snapshot["aof_dir"] == "appendonlydir"
    copied = sorted(snapshot["files"])
    assert copied[0] == "appendonlydir/appendonly.aof.1.base.rdb"
    assert "appendonlydir/appendonly.aof.manifest" in copied
    assert "dump.rdb" in copied
    for relative, record in snapshot["files"].items():
        data = (dest / relative).read_bytes()
        assert record["sha256"] == hashlib.sha256(data).hexdigest()
    assert stat.S_IMODE((dest / "appendonlydir").stat().st_mode) == 0o700


def test_snapshot_disk_full_marks_incomplete(
    redis_server, tmp_path, capsys, monkeypatch
):
    server = redis_server()
    server.client().set("a", 1)
    dest = tmp_path / "snap"

    def full_disk(source, target):
        raise OSError(errno.ENOSPC, "No space left on device", target)

    monkeypatch.setattr(redis_snapshot, "copy_file", full_disk)
    result = run_main({"port": server.port, "dest": str(dest)}, capsys)

    assert result["failed"] is True
    message = result["msg"]
    assert message.startswith(
        f"Redis snapshot 'snap' of 127.0.0.1:{server.port} failed: no space left in "
        f"{str(dest)!r} while copying {str(server.data_dir / 'dump.rdb')!r}: [Errno 28] "
        f"No space left on device: {str(dest / 'dump.rdb')!r}. "
    )
    assert f"bytes) free on the filesystem of {dest}." in message
    assert message.endswith(
        ". The snapshot is marked incomplete and is never restored from. Free space "
        "or choose another backup folder, then capture again."
    )
    assert result["snapshot"]["complete"] is False
    on_disk = json.loads((dest / "snapshot.json").read_text())
    assert on_disk["complete"] is False
    assert on_disk["files"] == {}


def test_snapshot_disk_already_full_says_so(
    redis_server, tmp_path, capsys, monkeypatch
):
    server = redis_server()
    server.client().set("a", 1)
    dest = tmp_path / "snap"

    def full_disk(dest):
        raise OSError(errno.ENOSPC, "No space left on device", dest)

    monkeypatch.setattr(redis_snapshot, "prepare_dest", full_disk)
    result = run_main({"port": server.port, "dest": str(dest)}, capsys)

    assert result["failed"] is True
    assert result["msg"] == (
        f"Redis snapshot 'snap' of 127.0.0.1:{server.port} failed on a file: "
        f"[Errno 28] No space left on device: {str(dest)!r}. The disk of dest is "
        "full: free space or choose another folder."
    )
    assert "exception" not in result


def test_snapshot_check_mode_writes_nothing(redis_server, tmp_path, capsys):
    server = redis_server()
    server.client().set("a", 1)
    saves_before = int(server.client().info("persistence")["rdb_saves"])
    dest = tmp_path / "snap"

    result = run_main(
        {"port": server.port, "dest": str(dest), "_ansible_check_mode": True}, capsys
    )

    assert result["changed"] is True
    assert result["snapshot"]["keyspace"] == {"db0": {"keys": 1, "expires": 0}}
    assert result["snapshot"]["complete"] is False
    assert list(result["would_copy"]) == ["dump.rdb"]
    assert not dest.exists()
    assert int(server.client().info("persistence")["rdb_saves"]) == saves_before


def test_snapshot_rejects_existing_snapshot(redis_server, tmp_path, capsys):
    server = redis_server()
    dest = tmp_path / "snap"
    dest.mkdir()
    (dest / "snapshot.json").write_text("{}")
    result = run_main({"port": server.port, "dest": str(dest)}, capsys)
    assert result["msg"] == (
        f"Redis snapshot 'snap' of 127.0.0.1:{server.port} failed: {str(dest)!r} "
        "already contains snapshot.json. Choose a new folder, so that the earlier "
        "snapshot stays as it is."
    )


def test_snapshot_unreachable_names_address(tmp_path, capsys):
    result = run_main({"port": 16419, "dest": str(tmp_path / "snap")}, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith(
        "Redis snapshot 'snap' of 127.0.0.1:16419 failed: could not connect to Redis "
        "at 127.0.0.1:16419: "
    )
    assert result["snapshot"] == {}


def test_snapshot_password_not_in_output(redis_server, tmp_path, capsys):
    server = redis_server("--requirepass", "s3cret-pass")
    server.client(password="s3cret-pass").set("a", 1)
    result = run_main(
        {
            "port": server.port,
            "dest": str(tmp_path / "snap"),
            "password": "s3cret-pass",
        },
        capsys,
    )
    assert result["snapshot"]["complete"] is True
    assert "s3cret-pass" not in json.dumps(result)


def test_samples_skip_keys_changed_during_save(redis_server):
    server = redis_server()
    fill(server, 3, prefix="stable")
    params = {
        "host": "127.0.0.1",
        "port": server.port,
        "password": None,
        "username": None,
    }
    samples = redis_snapshot.pick_samples(params, {"db0": {}}, 3)
    changed_key = samples[0]["key"]
    server.client().set(changed_key, "changed after the sample")
    kept = redis_snapshot.keep_unchanged_samples(params, samples)
    assert [sample["key"] for sample in kept] == [s["key"] for s in samples[1:]]


def test_concurrent_writes_do_not_break_wait(redis_server):
    server = redis_server()
    slow_saves(server, keys=100)
    client = connect(server)
    stop = threading.Event()

    def writer():
        other = server.client()
        index = 0
        while not stop.is_set():
            other.set(f"w{index}", index)
            index += 1

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        saved = redis_snapshot.run_bgsave(client, timeout=20)
    finally:
        stop.set()
        thread.join()
    assert saved["info"]["rdb_last_bgsave_status"] == "ok"
