# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: redis_snapshot
short_description: Take a Redis snapshot with BGSAVE and copy its files into a folder
description:
  - Runs BGSAVE on a running Redis and waits, with a deadline, until that save has
    completed with C(rdb_last_bgsave_status:ok). Then copies the RDB file, and the
    append-only files when C(appendonly) is on, into O(dest) and writes
    C(snapshot.json) there last, atomically.
  - A save that is already running when the module starts is waited for, and then a
    fresh BGSAVE runs, so that the snapshot is never older than the task. While an
    AOF rewrite runs, Redis rejects BGSAVE, so the module sends C(BGSAVE SCHEDULE) and
    waits for the save that Redis starts after the rewrite.
  - A failed save (C(rdb_last_bgsave_status:err)) and a save that does not finish
    within O(timeout) are errors. Their messages quote the last INFO persistence
    fields.
  - C(snapshot.json) records the key count per database, a few persistent sample
    keys with the SHA-256 of their DUMP and of their type and value, and each copied
    file with its size and
    SHA-256. M(truebond.rollback.redis_restore) and
    M(truebond.rollback.redis_verify) check a restore against it.
  - When the disk fills up while copying, the task fails and C(snapshot.json) is
    written with C(complete) false, so the folder is never restored from.
version_added: 0.2.0
author: TrueBond SRE team (@truebond)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - truebond.rollback.redis
attributes:
  check_mode:
    support: full
    details:
      - Connects, reads the configuration and the key counts, reports the files that
        would be copied, and neither saves nor writes anything.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - redis (redis-py) on the host that runs the module.
options:
  dest:
    description:
      - Snapshot folder. It is created with mode 0700 when missing, and the copied
        files get mode 0600.
      - A folder that already contains C(snapshot.json) is rejected, so that an
        earlier snapshot is never overwritten.
    type: path
    required: true
  name:
    description: Name recorded in C(snapshot.json). Defaults to the last part of O(dest).
    type: str
  data_dir:
    description:
      - Folder that contains the RDB file as the module's host sees it.
      - Defaults to C(CONFIG GET dir). Set it when CONFIG is renamed or not permitted
        for the user, or when the folder has another path on this host.
    type: path
  timeout:
    description:
      - Seconds to wait for the save, including the wait for a save or AOF rewrite
        that is already running.
    type: int
    default: 300
  samples:
    description:
      - Maximum number of persistent sample keys per database that C(snapshot.json)
        records with the SHA-256 of their DUMP (C(dump_sha256)) and of their type and
        value (C(value_sha256), with set members and hash fields sorted, so that a
        reload from the RDB file keeps it).
      - Only keys whose value is the same before and after the save are kept, so each
        sample is known to be in the saved file with that value.
    type: int
    default: 5
notes:
  - C(taken_at) is C(rdb_last_save_time) of the save, which Redis sets when the save
    finishes and reports in whole seconds. The data itself is the state at the start
    of the save (the fork), up to C(rdb_last_bgsave_time_sec) earlier.
  - The key counts come from INFO keyspace right after the save, so writes during the
    save make them approximate on a busy server.
  - The append-only files are copied as they are at copy time, while Redis may still
    append to them. The RDB file is the consistent copy.
  - Redis 7 or later is assumed for the C(rdb_saves) counter. With older versions the
    module detects the end of its save from C(rdb_last_save_time), which fails to see
    a failed save that was scheduled behind an AOF rewrite until the timeout.
"""

EXAMPLES = r"""
- name: Snapshot the session store
  truebond.rollback.redis_snapshot:
    host: 127.0.0.1
    port: 6379
    password: "{{ vault_redis_password }}"
    dest: /var/backups/truebond/incident-20261204T173000Z/datastores/sessions
    timeout: 600
  register: redis_snapshot

- name: Show when the snapshot was taken
  ansible.builtin.debug:
    msg: "{{ redis_snapshot.snapshot.taken_at }} {{ redis_snapshot.snapshot.keyspace }}"
"""

RETURN = r"""
path:
  description: The snapshot folder, O(dest).
  type: str
  returned: always
  sample: /var/backups/truebond/incident-20261204T173000Z/datastores/sessions
snapshot:
  description:
    - The content of C(snapshot.json). In check mode, the plan with C(complete) false
      and no C(files). Empty when the task failed before anything was copied.
    - Keys are C(format), C(kind) (C(redis)), C(name), C(complete), C(taken_at),
      C(finished_at), C(files) (relative path to C(bytes) and C(sha256)),
      C(redis_version), C(appendonly), C(rdb_file), C(aof_dir), C(keyspace) and
      C(samples).
  type: dict
  returned: always
  sample:
    format: 1
    kind: redis
    name: sessions
    complete: true
    taken_at: "2026-12-04T17:30:01.000Z"
    finished_at: "2026-12-04T17:30:01.412Z"
    files:
      dump.rdb: {bytes: 10485, sha256: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08}
    redis_version: 7.0.15
    appendonly: false
    rdb_file: dump.rdb
    aof_dir: null
    keyspace: {db0: {keys: 120, expires: 20}}
    samples:
      - db: 0
        key: "user:1"
        type: hash
        dump_sha256: 2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae
        value_sha256: 5feceb66ffc86f38d952786c6d696c79c2dbc239dd4e91b46729d73a27fb57e9
waited_for_running_save:
  description: Whether a save that was already running had to finish first.
  type: bool
  returned: success
  sample: false
scheduled:
  description: Whether the save was scheduled behind a running AOF rewrite.
  type: bool
  returned: success
  sample: false
save_seconds:
  description: Seconds from the start of the task until the save had finished.
  type: float
  returned: success
  sample: 0.31
would_copy:
  description: In check mode, the files that would be copied with their current sizes.
  type: dict
  returned: check mode
  sample: {dump.rdb: 10485}
"""

import hashlib
import json
import os
import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.truebond.rollback.plugins.module_utils import _redis
from ansible_collections.truebond.rollback.plugins.module_utils._files import (
    atomic_write,
    free_space_text,
    is_disk_full,
)

COPY_CHUNK = 4 * 1024 * 1024


class SnapshotError(Exception):
    """The snapshot failed. The message names the data store and the fix."""


class DiskFullError(SnapshotError):
    """The disk filled up while the files were copied."""


def read_server(client, data_dir=None) -> dict:
    """Read the version and the persistence settings that decide which files to copy."""
    server_info = client.info("server")
    version = str(server_info.get("redis_version", "unknown"))
    aof_enabled = bool(int(_redis.persistence_info(client).get("aof_enabled", 0)))
    settings = {
        "redis_version": version,
        "config_file": server_info.get("config_file") or "",
        "dir": data_dir,
        "dbfilename": "dump.rdb",
        "appendonly": aof_enabled,
        "appenddirname": "appendonlydir" if _major(version) >= 7 else None,
        "appendfilename": "appendonly.aof",
    }
    try:
        settings["dbfilename"] = _redis.config_get(client, "dbfilename") or "dump.rdb"
        settings["appendfilename"] = (
            _redis.config_get(client, "appendfilename") or "appendonly.aof"
        )
        if _major(version) >= 7:
            settings["appenddirname"] = (
                _redis.config_get(client, "appenddirname") or "appendonlydir"
            )
        if data_dir is None:
            settings["dir"] = _redis.config_get(client, "dir")
    except _redis.redis.exceptions.ResponseError as error:
        if data_dir is None:
            raise SnapshotError(
                f"CONFIG GET dir failed: {error}. Set data_dir to the folder that "
                "contains the RDB file."
            ) from None
    return settings


def _major(version: str) -> int:
    head = version.split(".", 1)[0]
    return int(head) if head.isdigit() else 0


def _save_finished(info: dict, baseline: dict, scheduled: bool) -> bool:
    if int(info.get("rdb_bgsave_in_progress", 0)):
        return False
    if "rdb_saves" in info and "rdb_saves" in baseline:
        # rdb_saves counts every BGSAVE fork, failed or not (checked with Redis
        # 7.0.15), so an increase followed by no save in progress means ours ended.
        return int(info["rdb_saves"]) > int(baseline["rdb_saves"])
    if int(info.get("rdb_last_save_time", 0)) > int(
        baseline.get("rdb_last_save_time", 0)
    ):
        return True
    return not scheduled and info.get("rdb_last_bgsave_status") == "err"


def run_bgsave(client, timeout, clock=time.monotonic, sleep=time.sleep) -> dict:
    """Run a fresh BGSAVE, wait for it and return the final INFO persistence.

    Raises SnapshotError when the save fails and _redis.WaitTimeout when the deadline
    passes first.
    """
    started = clock()
    deadline = started + timeout
    waited_for_running = False
    scheduled = False

    def remaining():
        return max(0.0, deadline - clock())

    def describe_wait(what):
        def describe(info):
            return (
                f"timed out after {timeout} s waiting for {what}. Last INFO "
                f"persistence: {_redis.persistence_summary(info)}. Raise timeout or "
                "check the Redis log."
            )

        return describe

    attempt = 0
    while True:
        baseline = _redis.persistence_info(client)
        # Each retry follows a save that another client started, so the loop ends
        # at the deadline even if other clients keep starting saves.
        if attempt and clock() >= deadline:
            raise _redis.WaitTimeout(
                describe_wait("a chance to start BGSAVE")(baseline)
            )
        attempt += 1
        if int(baseline.get("rdb_bgsave_in_progress", 0)):
            waited_for_running = True
            _redis.wait_until(
                lambda: _redis.persistence_info(client),
                lambda info: not int(info.get("rdb_bgsave_in_progress", 0)),
                remaining(),
                describe_wait("the save that was already running"),
                clock=clock,
                sleep=sleep,
            )
            continue
        try:
            client.execute_command("BGSAVE")
        except _redis.redis.exceptions.ResponseError as error:
            text = str(error)
            if "already in progress" in text:
                # Another client started a save between INFO and BGSAVE.
                waited_for_running = True
                continue
            if "child process" in text or "AOF" in text:
                client.execute_command("BGSAVE", "SCHEDULE")
                scheduled = True
            else:
                raise SnapshotError(f"BGSAVE failed: {text}") from None
        break

    what = (
        "the BGSAVE scheduled behind the running AOF rewrite"
        if scheduled
        else "BGSAVE to finish"
    )
    info = _redis.wait_until(
        lambda: _redis.persistence_info(client),
        lambda current: _save_finished(current, baseline, scheduled),
        remaining(),
        describe_wait(what),
        clock=clock,
        sleep=sleep,
    )
    if info.get("rdb_last_bgsave_status") != "ok":
        raise SnapshotError(
            "BGSAVE failed: Redis reports rdb_last_bgsave_status="
            f"{info.get('rdb_last_bgsave_status')!r}. Last INFO persistence: "
            f"{_redis.persistence_summary(info)}. See the Redis log, usually a full "
            "disk or a data folder Redis cannot write."
        )
    return {
        "info": info,
        "waited_for_running_save": waited_for_running,
        "scheduled": scheduled,
        "save_seconds": round(clock() - started, 3),
    }


def _db_client(params, db):
    return _redis.make_client(
        params["host"],
        params["port"],
        params.get("password"),
        params.get("username"),
        db=db,
    )


def pick_samples(params, key_counts, per_db) -> list:
    """Pick up to per_db persistent keys per database with their digests."""
    samples = []
    if per_db <= 0:
        return samples
    for db_name in key_counts:
        db = int(db_name[2:])
        client = _db_client(params, db)
        found = 0
        for key in client.scan_iter(count=200):
            try:
                text = key.decode("utf-8")
            except UnicodeDecodeError:
                continue
            if client.ttl(key) != -1:
                continue
            digest = _redis.dump_sha256(client, key)
            value_digest = _redis.value_sha256(client, key)
            if digest is None or value_digest is None:
                continue
            samples.append(
                {
                    "db": db,
                    "key": text,
                    "type": _redis.decode(client.type(key)),
                    "dump_sha256": digest,
                    "value_sha256": value_digest,
                }
            )
            found += 1
            if found >= per_db:
                break
        client.close()
    return samples


def keep_unchanged_samples(params, samples) -> list:
    """Keep the samples whose value is unchanged, so they are in the saved file."""
    kept = []
    clients = {}
    for sample in samples:
        client = clients.get(sample["db"])
        if client is None:
            client = clients[sample["db"]] = _db_client(params, sample["db"])
        key = sample["key"].encode("utf-8")
        if client.ttl(key) != -1:
            continue
        if _redis.value_sha256(client, key) == sample["value_sha256"]:
            kept.append(sample)
    for client in clients.values():
        client.close()
    return kept


def source_files(settings) -> dict:
    """Map each relative path in the snapshot to the file to copy from the data dir."""
    data_dir = settings["dir"]
    files = {settings["dbfilename"]: os.path.join(data_dir, settings["dbfilename"])}
    if not settings["appendonly"]:
        return files
    aof_dir_name = settings.get("appenddirname")
    if aof_dir_name and os.path.isdir(os.path.join(data_dir, aof_dir_name)):
        aof_dir = os.path.join(data_dir, aof_dir_name)
        for entry in sorted(os.listdir(aof_dir)):
            full = os.path.join(aof_dir, entry)
            if os.path.isfile(full):
                files[f"{aof_dir_name}/{entry}"] = full
    else:
        single = os.path.join(data_dir, settings["appendfilename"])
        if os.path.isfile(single):
            files[settings["appendfilename"]] = single
    return files


def copy_file(source, target) -> dict:
    """Copy source to target (mode 0600) and return its size and SHA-256.

    The SHA-256 is of the bytes written, computed while copying, so it describes the
    copy even if Redis replaces the source meanwhile.
    """
    digest = hashlib.sha256()
    size = 0
    fd = os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
        for chunk in iter(lambda: src.read(COPY_CHUNK), b""):
            out.write(chunk)
            digest.update(chunk)
            size += len(chunk)
        out.flush()
        os.fsync(out.fileno())
    os.chmod(target, 0o600)
    return {"bytes": size, "sha256": digest.hexdigest()}


def copy_files(files, dest) -> dict:
    """Copy each file into dest and return the files entry of snapshot.json.

    Raises DiskFullError on ENOSPC or EDQUOT, with the files copied so far attached.
    """
    copied = {}
    for relative, source in files.items():
        target = os.path.join(dest, relative)
        os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
        try:
            copied[relative] = copy_file(source, target)
        except OSError as error:
            if is_disk_full(error):
                exc = DiskFullError(
                    f"no space left in {dest!r} while copying {source!r}: {error}. "
                    f"{free_space_text(dest)}. The snapshot is marked incomplete and is never restored from. "
                    "Free space or choose another backup folder, then capture again."
                )
                exc.copied = copied
                raise exc from None
            raise
    return copied


def write_manifest(dest, snapshot) -> None:
    data = json.dumps(snapshot, indent=2, sort_keys=True).encode("utf-8") + b"\n"
    atomic_write(os.path.join(dest, "snapshot.json"), data, mode=0o600)


def base_snapshot(name, settings) -> dict:
    aof_dir = None
    if settings["appendonly"] and settings.get("appenddirname"):
        aof_dir = settings["appenddirname"]
    return {
        "format": 1,
        "kind": "redis",
        "name": name,
        "complete": False,
        "taken_at": None,
        "finished_at": None,
        "files": {},
        "redis_version": settings["redis_version"],
        "appendonly": settings["appendonly"],
        "rdb_file": settings["dbfilename"],
        "aof_dir": aof_dir,
        "keyspace": {},
        "samples": [],
    }


def plan_snapshot(client, params, name) -> dict:
    """Describe in check mode what a snapshot would copy, without saving."""
    settings = read_server(client, params["data_dir"])
    snapshot = base_snapshot(name, settings)
    snapshot["keyspace"] = _redis.keyspace(client)
    sizes = {}
    for relative, source in source_files(settings).items():
        try:
            sizes[relative] = os.path.getsize(source)
        except OSError:
            sizes[relative] = None
    return {"snapshot": snapshot, "would_copy": sizes, "data_dir": settings["dir"]}


def take_snapshot(client, params, name, clock=time.monotonic, sleep=time.sleep):
    """Save, copy the files and write snapshot.json. Return the module result."""
    dest = params["dest"]
    settings = read_server(client, params["data_dir"])
    snapshot = base_snapshot(name, settings)

    before = _redis.keyspace(client)
    candidates = pick_samples(params, before, params["samples"])
    saved = run_bgsave(client, params["timeout"], clock=clock, sleep=sleep)
    snapshot["taken_at"] = _redis.utc_timestamp(
        int(saved["info"]["rdb_last_save_time"])
    )
    snapshot["keyspace"] = _redis.keyspace(client)
    snapshot["samples"] = keep_unchanged_samples(params, candidates)

    files = source_files(settings)
    missing = [path for path in files.values() if not os.path.isfile(path)]
    if missing:
        raise SnapshotError(
            f"the saved file {missing[0]!r} is not readable on this host. Set "
            "data_dir to the Redis data folder as this host sees it."
        )
    try:
        snapshot["files"] = copy_files(files, dest)
    except DiskFullError as error:
        snapshot["files"] = error.copied
        snapshot["finished_at"] = _redis.utc_timestamp(time.time())
        try:
            write_manifest(dest, snapshot)
        except OSError:
            # NOTE: with the disk full even this may fail. A folder without
            # snapshot.json is never restored from either.
            pass
        error.snapshot = snapshot
        raise
    snapshot["complete"] = True
    snapshot["finished_at"] = _redis.utc_timestamp(time.time())
    write_manifest(dest, snapshot)
    return {
        "changed": True,
        "path": dest,
        "snapshot": snapshot,
        "waited_for_running_save": saved["waited_for_running_save"],
        "scheduled": saved["scheduled"],
        "save_seconds": saved["save_seconds"],
    }


def prepare_dest(dest) -> None:
    if os.path.exists(os.path.join(dest, "snapshot.json")):
        raise SnapshotError(
            f"{dest!r} already contains snapshot.json. Choose a new folder, so that "
            "the earlier snapshot stays as it is."
        )
    os.makedirs(dest, mode=0o700, exist_ok=True)
    os.chmod(dest, 0o700)


def main():
    module = AnsibleModule(
        argument_spec={
            "host": {"type": "str", "default": "127.0.0.1"},
            "port": {"type": "int", "default": 6379},
            "username": {"type": "str"},
            "password": {"type": "str", "no_log": True},
            "dest": {"type": "path", "required": True},
            "name": {"type": "str"},
            "data_dir": {"type": "path"},
            "timeout": {"type": "int", "default": 300},
            "samples": {"type": "int", "default": 5},
        },
        supports_check_mode=True,
    )
    params = module.params
    if not _redis.HAS_REDIS:
        module.fail_json(
            msg=missing_required_lib("redis"),
            exception=_redis.REDIS_IMPORT_ERROR,
            path=params["dest"],
            snapshot={},
        )
    name = params["name"] or os.path.basename(params["dest"].rstrip("/"))
    where = (
        f"Redis snapshot {name!r} of {_redis.address(params['host'], params['port'])}"
    )
    if params["timeout"] < 0:
        module.fail_json(
            msg=f"{where}: timeout must not be negative, got {params['timeout']!r}",
            path=params["dest"],
            snapshot={},
        )

    try:
        client = _redis.connect(
            params["host"], params["port"], params["password"], params["username"]
        )
        if module.check_mode:
            plan = plan_snapshot(client, params, name)
            module.exit_json(changed=True, path=params["dest"], **plan)
        prepare_dest(params["dest"])
        result = take_snapshot(client, params, name)
    except DiskFullError as error:
        module.fail_json(
            msg=f"{where} failed: {error}",
            path=params["dest"],
            snapshot=getattr(error, "snapshot", {}),
        )
    except (SnapshotError, _redis.RedisError) as error:
        module.fail_json(
            msg=f"{where} failed: {error}", path=params["dest"], snapshot={}
        )
    except _redis.redis.exceptions.RedisError as error:
        module.fail_json(
            msg=f"{where} failed: Redis returned an error: {error}",
            path=params["dest"],
            snapshot={},
        )
    except OSError as error:
        advice = (
            "The disk of dest is full: free space or choose another folder"
            if is_disk_full(error)
            else "Check the permissions of dest and of the Redis data folder"
        )
        module.fail_json(
            msg=f"{where} failed on a file: {error}. {advice}.",
            path=params["dest"],
            snapshot={},
        )
    except Exception as error:  # noqa: BLE001 - report any bug with its traceback
        module.fail_json(
            msg=f"{where} failed unexpectedly: {error}",
            exception=traceback.format_exc(),
            path=params["dest"],
            snapshot={},
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
