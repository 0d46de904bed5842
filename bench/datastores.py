"""Measure the capture and restore throughput of the MongoDB and Redis modules.

MongoDB (through the SecantusDB stand-in server and pymongo), at each document count:

- ``snapshot``: the mongo_snapshot module with method pymongo;
- ``restore``: the mongo_restore module with method pymongo (drop, insert, index
  build, verification of counts and indexes);
- ``raw_read``: pymongo reading every collection with ``find`` into RawBSONDocument;
- ``raw_write``: pymongo ``insert_many`` of the same raw documents, already in
  memory, in batches of 1000 into an empty database, then ``createIndexes`` there;
- ``copy``: ``shutil.copyfile`` of the snapshot's .bson files, then an fsync of each.

Redis (Debian's redis-server), at each RDB size:

- ``snapshot``: the redis_snapshot module (BGSAVE and its wait, copy, SHA-256);
- ``restore``: the steps of the restore_redis role, run without Ansible. First
  redis_restore with step check (sizes, SHA-256, redis-check-rdb), then SHUTDOWN
  NOSAVE and redis_restore with step place (copy into the data folder, fsync,
  rename). Then redis-server starts, and redis_verify waits for the load and
  compares the key counts and the sample keys' DUMP;
- ``raw_bgsave``: BGSAVE through redis-py until INFO persistence reports it done;
- ``raw_load``: SHUTDOWN NOSAVE, start redis-server on the same RDB file, wait until
  it has loaded;
- ``copy``: ``shutil.copyfile`` of dump.rdb, then an fsync.

Each module runs as Ansible runs it on the target, as
``python -m ansible_collections.truebond.rollback.plugins.modules.<name> ARGS.json``,
so its times include the start of a Python interpreter and the module's imports, but
not Ansible's connection and task overhead. The script starts its own SecantusDB and
redis-server on 127.0.0.1, in a temporary folder, and ends them by PID.

Usage: python bench/datastores.py [--runs 3] [--large-runs 1] [--output bench/results]
"""

import argparse
import contextlib
import datetime
import importlib.metadata
import json
import os
import platform
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid

import bson
import pymongo
import redis
from bson.binary import Binary
from bson.decimal128 import Decimal128
from bson.objectid import ObjectId
from bson.raw_bson import RawBSONDocument

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
COLLECTIONS_PATH = os.path.join(REPO, ".collections")
MODULE_PACKAGE = "ansible_collections.truebond.rollback.plugins.modules"
HOST = "127.0.0.1"
DATABASE = "bench"
RAW_DATABASE = "bench_raw"
BATCH = 1000
MB = 1_000_000
REDIS_VALUE_BYTES = 1000
# Bytes of RDB per key for a 1000-byte incompressible value and a 12-byte key,
# measured with Redis 7.0.15. Used only to choose the key count for a target size.
REDIS_BYTES_PER_KEY = 1016
RAW_OPTIONS = bson.CodecOptions(document_class=RawBSONDocument)

WORDS = [
    "deploy", "rollback", "broke", "login", "for", "users", "in", "room", "general",
    "while", "search", "and", "messages", "kept", "working", "so", "we", "paged", "the",
    "on-call", "engineer", "who", "checked", "sessions", "indexes", "health", "probes",
    "release", "notes", "before", "restoring", "snapshot", "taken", "minutes", "ago",
]  # fmt: skip


class BenchError(Exception):
    """A module or a server failed during the benchmark."""


def utc_now() -> str:
    """Return the current UTC time with milliseconds, as 2026-12-04T17:30:01.123Z."""
    now = datetime.datetime.now(datetime.UTC)
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


def log(message: str) -> None:
    print(f"{time.strftime('%H:%M:%S')} {message}", flush=True)


# Servers ------------------------------------------------------------------------


def wait_until(check, timeout, description):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.02)
    raise BenchError(f"timed out after {timeout} s waiting for {description}")


def stop_process(process, timeout=30):
    """End a process that this script started, by its PID."""
    if process.poll() is not None:
        return
    os.kill(process.pid, signal.SIGTERM)
    try:
        process.wait(timeout)
    except subprocess.TimeoutExpired:
        os.kill(process.pid, signal.SIGKILL)
        process.wait()


def start_secantus(port, storage, log_path):
    executable = os.path.join(os.path.dirname(sys.executable), "secantusd-py")
    command = [
        executable,
        "--host",
        HOST,
        "--port",
        str(port),
        "--storage-path",
        storage,
        "--standalone",
    ]
    with open(log_path, "ab") as log_file:
        process = subprocess.Popen(command, stdout=log_file, stderr=subprocess.STDOUT)
    client = pymongo.MongoClient(HOST, port, serverSelectionTimeoutMS=500)

    def ready():
        if process.poll() is not None:
            raise BenchError(f"secantusd-py exited with {process.returncode}")
        try:
            client.admin.command("ping")
            return True
        except pymongo.errors.PyMongoError:
            return False

    wait_until(ready, 60, f"SecantusDB listening on {HOST}:{port}")
    client.close()
    return process, command


def redis_client(port, socket_timeout):
    """Return a redis-py client that does not retry, so SHUTDOWN returns at once.

    redis-py 6 and later retry a failed command three times with a backoff by
    default, and SHUTDOWN always ends with a closed connection.
    """
    return redis.Redis(
        host=HOST,
        port=port,
        socket_timeout=socket_timeout,
        retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
    )


def redis_command(port, data_dir):
    return [
        "redis-server",
        "--port",
        str(port),
        "--bind",
        HOST,
        "--dir",
        data_dir,
        "--dbfilename",
        "dump.rdb",
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
    ]


def start_redis(port, data_dir, log_path):
    """Start redis-server and return (process, seconds until it has loaded its RDB)."""
    client = redis_client(port, 5)
    with open(log_path, "ab") as log_file:
        started = time.monotonic()
        process = subprocess.Popen(
            redis_command(port, data_dir), stdout=log_file, stderr=subprocess.STDOUT
        )

    def loaded():
        if process.poll() is not None:
            raise BenchError(f"redis-server exited with {process.returncode}")
        try:
            return client.info("persistence")["loading"] == 0
        except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError):
            return False

    wait_until(loaded, 600, f"redis-server loaded on {HOST}:{port}")
    seconds = time.monotonic() - started
    client.close()
    return process, seconds


def shutdown_redis(client, process):
    """Send SHUTDOWN NOSAVE, wait for the process to exit and return the seconds."""
    started = time.monotonic()
    with contextlib.suppress(redis.exceptions.ConnectionError):
        client.shutdown(nosave=True)
    process.wait(60)
    return time.monotonic() - started


# Modules ------------------------------------------------------------------------


def run_module(name, args, work_dir):
    """Run a module as Ansible does on the target and return (seconds, result)."""
    args_path = os.path.join(work_dir, f"{name}-args.json")
    with open(args_path, "w", encoding="utf-8") as handle:
        json.dump({"ANSIBLE_MODULE_ARGS": args}, handle)
    env = dict(os.environ, PYTHONPATH=COLLECTIONS_PATH)
    started = time.monotonic()
    completed = subprocess.run(
        [sys.executable, "-m", f"{MODULE_PACKAGE}.{name}", args_path],
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    seconds = time.monotonic() - started
    try:
        result = json.loads(completed.stdout)
    except ValueError:
        raise BenchError(
            f"module {name} printed no JSON result (exit code {completed.returncode}): "
            f"{completed.stdout[-2000:]} {completed.stderr[-2000:]}"
        ) from None
    if result.get("failed"):
        raise BenchError(f"module {name} failed: {result.get('msg')}")
    return seconds, result


def module_argv(name):
    return [
        "PYTHONPATH=" + COLLECTIONS_PATH,
        sys.executable,
        "-m",
        f"{MODULE_PACKAGE}.{name}",
        "ARGS.json",
    ]


# Shared measurements ------------------------------------------------------------


def copy_with_fsync(pairs):
    """Copy each (source, target) with shutil.copyfile, then fsync the targets.

    Returns (copy seconds, fsync seconds).
    """
    started = time.monotonic()
    for source, target in pairs:
        shutil.copyfile(source, target)
    copied = time.monotonic()
    for _, target in pairs:
        fd = os.open(target, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
    return copied - started, time.monotonic() - copied


def rate(amount, seconds):
    return round(amount / seconds, 1) if seconds > 0 else None


def median_of(runs, key):
    values = [run[key] for run in runs if run.get(key) is not None]
    return round(statistics.median(values), 3) if values else None


# MongoDB ------------------------------------------------------------------------


def make_user(rnd, number):
    created = datetime.datetime(1965, 1, 1) + datetime.timedelta(
        seconds=rnd.randrange(2_000_000_000)
    )
    return {
        "_id": ObjectId(rnd.randbytes(12)),
        "email": f"user{number}@example.com",
        "name": f"User {number}",
        "created_at": created,
        "balance": Decimal128(f"{rnd.randrange(10**7)}.{rnd.randrange(100):02d}"),
        "api_key": Binary.from_uuid(uuid.UUID(bytes=rnd.randbytes(16))),
        "login_count": rnd.randrange(2**40),
        "roles": rnd.sample(["member", "moderator", "admin", "bot"], 2),
        "addresses": [
            {"kind": "home", "city": "Lisbon", "lines": ["Rua 1", str(number)]},
            {"kind": "work", "city": "Porto", "lines": ["Av 2", "floor 3"]},
        ],
        "logins": [
            [
                created + datetime.timedelta(days=day),
                f"127.0.0.{rnd.randrange(256)}",
            ]
            for day in range(rnd.randrange(2, 6))
        ],
        "bio": " ".join(rnd.choices(WORDS, k=rnd.randrange(30, 90))),
    }


def make_message(rnd, number, users):
    sent = datetime.datetime(2026, 1, 1) + datetime.timedelta(seconds=number)
    return {
        "_id": ObjectId(rnd.randbytes(12)),
        "room": f"room-{rnd.randrange(200)}",
        "sender": {"id": ObjectId(rnd.randbytes(12)), "name": f"User {users}"},
        "text": " ".join(rnd.choices(WORDS, k=rnd.randrange(40, 120))),
        "sent_at": sent,
        "sequence": number,
        "cost": Decimal128(f"0.{rnd.randrange(10**6):06d}"),
        "attachment": Binary.from_uuid(uuid.UUID(bytes=rnd.randbytes(16))),
        "reactions": [
            {"emoji": "+1", "users": [ObjectId(rnd.randbytes(12)) for _ in range(3)]},
            {"emoji": "eyes", "users": [ObjectId(rnd.randbytes(12))]},
        ],
        "edits": [
            [sent + datetime.timedelta(minutes=1), "fixed a typo"],
            [sent + datetime.timedelta(minutes=5), ["link", "removed"]],
        ],
    }


INDEXES = {
    "users": [
        pymongo.IndexModel([("email", 1)], unique=True),
        pymongo.IndexModel([("created_at", -1)]),
    ],
    "messages": [
        pymongo.IndexModel([("room", 1), ("sent_at", -1)]),
        pymongo.IndexModel([("sender.id", 1)]),
    ],
}


def fill_mongo(client, documents, seed=3):
    """Replace the bench database with users (a tenth) and messages, with indexes."""
    client.drop_database(DATABASE)
    database = client[DATABASE]
    rnd = random.Random(seed)
    users = max(1, documents // 10)
    counts = {"users": users, "messages": documents - users}
    total_bytes = 0
    for name, count in counts.items():
        collection = database[name]
        batch = []
        for number in range(count):
            if name == "users":
                document = make_user(rnd, number)
            else:
                document = make_message(rnd, number, number % users)
            batch.append(RawBSONDocument(bson.encode(document)))
            if len(batch) == BATCH:
                total_bytes += sum(len(item.raw) for item in batch)
                collection.insert_many(batch, ordered=False)
                batch = []
        if batch:
            total_bytes += sum(len(item.raw) for item in batch)
            collection.insert_many(batch, ordered=False)
        collection.create_indexes(INDEXES[name])
    return {"documents": documents, "bson_bytes": total_bytes, "counts": counts}


def raw_read(client):
    documents = 0
    size = 0
    started = time.monotonic()
    database = client[DATABASE]
    for name in ("users", "messages"):
        collection = database.get_collection(name, codec_options=RAW_OPTIONS)
        for document in collection.find({}, batch_size=BATCH):
            documents += 1
            size += len(document.raw)
    return time.monotonic() - started, documents, size


def load_dump(snapshot_dir):
    """Read the snapshot's .bson files into memory as RawBSONDocument lists."""
    loaded = {}
    for name in ("users", "messages"):
        path = os.path.join(snapshot_dir, DATABASE, f"{name}.bson")
        documents = []
        with open(path, "rb") as stream:
            data = stream.read()
        offset = 0
        while offset < len(data):
            length = int.from_bytes(data[offset : offset + 4], "little")
            documents.append(RawBSONDocument(data[offset : offset + length]))
            offset += length
        loaded[name] = documents
    return loaded


def raw_write(client, loaded):
    """Insert the in-memory documents into an empty database, then build indexes."""
    client.drop_database(RAW_DATABASE)
    database = client[RAW_DATABASE]
    started = time.monotonic()
    for name, documents in loaded.items():
        collection = database[name]
        for start in range(0, len(documents), BATCH):
            collection.insert_many(documents[start : start + BATCH], ordered=False)
    inserted = time.monotonic()
    for name in loaded:
        database[name].create_indexes(INDEXES[name])
    indexed = time.monotonic()
    client.drop_database(RAW_DATABASE)
    return inserted - started, indexed - inserted


def mongo_run(client, uri, work_dir, compressed, with_raw):
    """Measure one run: raw read, snapshot, copy, raw write, restore."""
    run = {"started_at": utc_now()}
    if with_raw:
        run["raw_read_seconds"], documents, _ = raw_read(client)
        run["raw_read_documents"] = documents
    snapshot_dir = os.path.join(work_dir, "mongo-snapshot")
    shutil.rmtree(snapshot_dir, ignore_errors=True)
    seconds, result = run_module(
        "mongo_snapshot",
        {"path": snapshot_dir, "uri": uri, "gzip": compressed, "method": "pymongo"},
        work_dir,
    )
    run["snapshot_seconds"] = seconds
    run["documents"] = result["documents"]
    run["file_bytes"] = result["bytes"]
    bson_files = [
        os.path.join(snapshot_dir, relative)
        for relative in result["snapshot"]["files"]
        if ".bson" in relative
    ]
    run["snapshot_file_bytes_bson"] = sum(os.path.getsize(path) for path in bson_files)

    if with_raw:
        copy_dir = os.path.join(work_dir, "mongo-copy")
        os.makedirs(copy_dir, exist_ok=True)
        pairs = [
            (path, os.path.join(copy_dir, os.path.basename(path)))
            for path in bson_files
        ]
        run["copy_seconds"], run["copy_fsync_seconds"] = copy_with_fsync(pairs)
        shutil.rmtree(copy_dir)
        loaded = load_dump(snapshot_dir)
        run["bson_bytes"] = sum(
            len(document.raw) for documents in loaded.values() for document in documents
        )
        run["raw_write_seconds"], run["raw_index_seconds"] = raw_write(client, loaded)
        del loaded

    seconds, result = run_module(
        "mongo_restore",
        {"src": snapshot_dir, "uri": uri, "method": "pymongo"},
        work_dir,
    )
    if not result["verification"]["ok"]:
        raise BenchError(f"mongo_restore verification failed: {result['verification']}")
    run["restore_seconds"] = seconds
    run["restored_documents"] = result["verification"]["documents"]
    shutil.rmtree(snapshot_dir)
    return run


def summarize_mongo(runs, documents, bson_bytes):
    summary = {"runs": len(runs)}
    for key in (
        "snapshot_seconds",
        "restore_seconds",
        "raw_read_seconds",
        "raw_write_seconds",
        "raw_index_seconds",
        "copy_seconds",
        "copy_fsync_seconds",
    ):
        summary[f"median_{key}"] = median_of(runs, key)
    for step in ("snapshot", "restore", "raw_read", "raw_write"):
        seconds = summary[f"median_{step}_seconds"]
        if seconds:
            summary[f"{step}_documents_per_second"] = rate(documents, seconds)
            summary[f"{step}_mb_per_second"] = rate(bson_bytes / MB, seconds)
    # The cost per document at each size shows how the cost grows with size.
    for step in ("snapshot", "restore", "raw_read", "raw_write"):
        seconds = summary[f"median_{step}_seconds"]
        if seconds:
            summary[f"{step}_microseconds_per_document"] = round(
                seconds / documents * 1e6, 1
            )
    if summary["median_copy_seconds"]:
        copy_total = (
            summary["median_copy_seconds"] + summary["median_copy_fsync_seconds"]
        )
        summary["copy_mb_per_second"] = rate(bson_bytes / MB, copy_total)
    if summary["median_raw_read_seconds"]:
        summary["snapshot_to_raw_read"] = round(
            summary["median_snapshot_seconds"] / summary["median_raw_read_seconds"], 2
        )
        raw_restore = summary["median_raw_write_seconds"] + (
            summary["median_raw_index_seconds"] or 0
        )
        summary["restore_to_raw_write_and_index"] = round(
            summary["median_restore_seconds"] / raw_restore, 2
        )
    return summary


def bench_mongo(args, work_dir, results):
    storage = os.path.join(work_dir, "secantus")
    os.makedirs(storage)
    process, command = start_secantus(
        args.mongo_port, storage, os.path.join(work_dir, "secantus.log")
    )
    uri = f"mongodb://{HOST}:{args.mongo_port}/{DATABASE}"
    client = pymongo.MongoClient(uri, serverSelectionTimeoutMS=5000)
    section = {
        "server_command": command,
        "server_version": client.server_info()["version"],
        "snapshot_command": module_argv("mongo_snapshot"),
        "restore_command": module_argv("mongo_restore"),
        "sizes": [],
    }
    results["mongodb"] = section
    try:
        for documents in args.mongo_sizes:
            started = time.monotonic()
            filled = fill_mongo(client, documents)
            log(
                f"mongodb {documents} documents, {filled['bson_bytes'] / MB:.1f} MB "
                f"BSON filled in {time.monotonic() - started:.1f} s"
            )
            run_count = (
                args.large_runs if documents == max(args.mongo_sizes) else args.runs
            )
            runs = []
            for number in range(run_count):
                runs.append(mongo_run(client, uri, work_dir, False, True))
                log(f"  run {number + 1}: {json.dumps(runs[-1])}")
            entry = {
                "documents": documents,
                "counts": filled["counts"],
                "bson_bytes": filled["bson_bytes"],
                "mean_document_bytes": round(filled["bson_bytes"] / documents, 1),
                "gzip": False,
                "run_details": runs,
                **summarize_mongo(runs, documents, filled["bson_bytes"]),
            }
            section["sizes"].append(entry)
            if documents == args.gzip_size:
                runs = []
                for number in range(args.runs):
                    runs.append(mongo_run(client, uri, work_dir, True, False))
                    log(f"  gzip run {number + 1}: {json.dumps(runs[-1])}")
                section["gzip"] = {
                    "documents": documents,
                    "bson_bytes": filled["bson_bytes"],
                    "gzip": True,
                    "run_details": runs,
                    **summarize_mongo(runs, documents, filled["bson_bytes"]),
                }
        client.drop_database(DATABASE)
    finally:
        client.close()
        stop_process(process)


# Redis --------------------------------------------------------------------------


def fill_redis(client, target_bytes, seed=5):
    """Empty Redis, then SET 1000-byte random values until the RDB is near target."""
    client.flushall()
    keys = max(1, target_bytes // REDIS_BYTES_PER_KEY)
    rnd = random.Random(seed)
    pipeline = client.pipeline(transaction=False)
    for number in range(keys):
        key = f"key:{number:08d}"
        value = rnd.randbytes(REDIS_VALUE_BYTES)
        # One key in a hundred has a TTL of a day, like sessions next to data.
        if number % 100 == 0:
            pipeline.set(key, value, ex=86400)
        else:
            pipeline.set(key, value)
        if number % BATCH == BATCH - 1:
            pipeline.execute()
    pipeline.execute()
    return keys


def raw_bgsave(client):
    """Run BGSAVE, wait until INFO persistence reports it finished, return seconds."""
    before = int(client.info("persistence")["rdb_saves"])
    started = time.monotonic()
    client.bgsave()

    def done():
        info = client.info("persistence")
        return info["rdb_bgsave_in_progress"] == 0 and int(info["rdb_saves"]) > before

    wait_until(done, 600, "BGSAVE")
    seconds = time.monotonic() - started
    status = client.info("persistence")["rdb_last_bgsave_status"]
    if status != "ok":
        raise BenchError(f"BGSAVE finished with status {status!r}")
    return seconds


def remove_replaced(data_dir):
    for name in os.listdir(data_dir):
        if name.endswith((".replaced", ".aside")):
            path = os.path.join(data_dir, name)
            if os.path.isdir(path):
                shutil.rmtree(path)
            else:
                os.remove(path)


def redis_run(state, args, work_dir, data_dir):
    """Measure one run: raw BGSAVE, copy, snapshot, raw load, restore."""
    port = args.redis_port
    client = redis_client(port, 600)
    run = {"started_at": utc_now()}
    run["raw_bgsave_seconds"] = raw_bgsave(client)
    rdb = os.path.join(data_dir, "dump.rdb")
    run["rdb_bytes"] = os.path.getsize(rdb)
    copy_target = os.path.join(work_dir, "copy.rdb")
    run["copy_seconds"], run["copy_fsync_seconds"] = copy_with_fsync(
        [(rdb, copy_target)]
    )
    os.remove(copy_target)

    snapshot_dir = os.path.join(work_dir, "redis-snapshot")
    shutil.rmtree(snapshot_dir, ignore_errors=True)
    seconds, result = run_module(
        "redis_snapshot",
        {"host": HOST, "port": port, "dest": snapshot_dir, "data_dir": data_dir},
        work_dir,
    )
    run["snapshot_seconds"] = seconds
    run["snapshot_save_seconds"] = result["save_seconds"]
    run["snapshot_keys"] = result["snapshot"]["keyspace"]["db0"]["keys"]
    run["snapshot_rdb_bytes"] = result["snapshot"]["files"]["dump.rdb"]["bytes"]

    shutdown_redis(client, state["process"])
    state["process"], run["raw_load_seconds"] = start_redis(
        port, data_dir, state["log"]
    )

    restore_args = {
        "src": snapshot_dir,
        "data_dir": data_dir,
        "dbfilename": "dump.rdb",
        "host": HOST,
        "port": port,
    }
    started = time.monotonic()
    run["restore_check_seconds"], _ = run_module(
        "redis_restore", {**restore_args, "step": "check", "check_rdb": True}, work_dir
    )
    run["restore_stop_seconds"] = shutdown_redis(client, state["process"])
    run["restore_place_seconds"], _ = run_module(
        "redis_restore", {**restore_args, "step": "place", "check_rdb": False}, work_dir
    )
    state["process"], run["restore_start_seconds"] = start_redis(
        port, data_dir, state["log"]
    )
    run["restore_verify_seconds"], verified = run_module(
        "redis_verify", {"src": snapshot_dir, "host": HOST, "port": port}, work_dir
    )
    run["restore_seconds"] = time.monotonic() - started
    run["restore_samples_checked"] = verified["samples_checked"]
    client.close()
    remove_replaced(data_dir)
    shutil.rmtree(snapshot_dir)
    return run


REDIS_STEPS = (
    "snapshot_seconds",
    "snapshot_save_seconds",
    "restore_seconds",
    "restore_check_seconds",
    "restore_stop_seconds",
    "restore_place_seconds",
    "restore_start_seconds",
    "restore_verify_seconds",
    "raw_bgsave_seconds",
    "raw_load_seconds",
    "copy_seconds",
    "copy_fsync_seconds",
)


def summarize_redis(runs, rdb_bytes):
    summary = {"runs": len(runs)}
    for key in REDIS_STEPS:
        summary[f"median_{key}"] = median_of(runs, key)
    megabytes = rdb_bytes / MB
    copy_total = summary["median_copy_seconds"] + summary["median_copy_fsync_seconds"]
    summary["snapshot_mb_per_second"] = rate(
        megabytes, summary["median_snapshot_seconds"]
    )
    summary["restore_mb_per_second"] = rate(
        megabytes, summary["median_restore_seconds"]
    )
    summary["raw_bgsave_mb_per_second"] = rate(
        megabytes, summary["median_raw_bgsave_seconds"]
    )
    summary["raw_load_mb_per_second"] = rate(
        megabytes, summary["median_raw_load_seconds"]
    )
    summary["copy_mb_per_second"] = rate(megabytes, copy_total)
    for step in ("snapshot", "restore", "raw_bgsave", "raw_load"):
        summary[f"{step}_seconds_per_100_mb"] = round(
            summary[f"median_{step}_seconds"] / megabytes * 100, 3
        )
    summary["snapshot_to_bgsave_and_copy"] = round(
        summary["median_snapshot_seconds"]
        / (summary["median_raw_bgsave_seconds"] + copy_total),
        2,
    )
    summary["restore_to_copy_and_load"] = round(
        summary["median_restore_seconds"]
        / (copy_total + summary["median_raw_load_seconds"]),
        2,
    )
    return summary


def bench_redis(args, work_dir, results):
    data_dir = os.path.join(work_dir, "redis")
    os.makedirs(data_dir)
    state = {"log": os.path.join(work_dir, "redis.log")}
    state["process"], _ = start_redis(args.redis_port, data_dir, state["log"])
    client = redis_client(args.redis_port, 600)
    section = {
        "server_command": redis_command(args.redis_port, data_dir),
        "server_version": client.info("server")["redis_version"],
        "snapshot_command": module_argv("redis_snapshot"),
        "restore_commands": [
            module_argv("redis_restore") + ["(step check, check_rdb true)"],
            ["SHUTDOWN NOSAVE"],
            module_argv("redis_restore") + ["(step place, check_rdb false)"],
            redis_command(args.redis_port, data_dir),
            module_argv("redis_verify"),
        ],
        "value_bytes": REDIS_VALUE_BYTES,
        "sizes": [],
    }
    results["redis"] = section
    try:
        for megabytes in args.redis_sizes:
            started = time.monotonic()
            keys = fill_redis(client, megabytes * MB)
            log(
                f"redis {megabytes} MB: {keys} keys set in {time.monotonic() - started:.1f} s"
            )
            run_count = (
                args.large_runs if megabytes == max(args.redis_sizes) else args.runs
            )
            runs = []
            for number in range(run_count):
                runs.append(redis_run(state, args, work_dir, data_dir))
                log(f"  run {number + 1}: {json.dumps(runs[-1])}")
                client.close()
                client = redis_client(args.redis_port, 600)
            rdb_bytes = runs[-1]["rdb_bytes"]
            section["sizes"].append(
                {
                    "target_mb": megabytes,
                    "keys": keys,
                    "rdb_bytes": rdb_bytes,
                    "run_details": runs,
                    **summarize_redis(runs, rdb_bytes),
                }
            )
        client.flushall()
    finally:
        client.close()
        stop_process(state["process"])


# Machine and versions -----------------------------------------------------------


def machine_facts(work_dir):
    with open("/proc/meminfo", encoding="utf-8") as handle:
        memory_kb = int(handle.readline().split()[1])
    cpu = platform.processor()
    with (
        contextlib.suppress(OSError),
        open("/proc/cpuinfo", encoding="utf-8") as cpuinfo,
    ):
        for line in cpuinfo:
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    disk = shutil.disk_usage(work_dir)
    mount = subprocess.run(
        ["df", "--output=source,fstype,target", work_dir],
        capture_output=True,
        text=True,
        check=False,
    ).stdout.splitlines()[-1:]
    return {
        "nproc": os.cpu_count(),
        "cpu": cpu,
        "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "work_dir": work_dir,
        "disk": mount[0].split() if mount else None,
        "disk_total_gb": round(disk.total / 1e9, 1),
        "disk_free_gb": round(disk.free / 1e9, 1),
        "load_average_at_start": os.getloadavg(),
        "kernel": platform.release(),
    }


def versions():
    redis_server = subprocess.run(
        ["redis-server", "--version"], capture_output=True, text=True, check=False
    ).stdout.strip()
    return {
        "python": platform.python_version(),
        "pymongo": pymongo.version,
        "redis_py": redis.__version__,
        "secantusdb": importlib.metadata.version("secantusdb"),
        "ansible_core": importlib.metadata.version("ansible-core"),
        "redis_server": redis_server,
    }


def parse_sizes(text):
    return [int(item) for item in text.split(",") if item]


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3, help="runs per size (default 3)")
    parser.add_argument(
        "--large-runs",
        type=int,
        default=1,
        help="runs for the largest size of each data store (default 1)",
    )
    parser.add_argument(
        "--mongo-sizes",
        type=parse_sizes,
        default=[10_000, 100_000, 1_000_000],
        help="comma-separated document counts (default 10000,100000,1000000)",
    )
    parser.add_argument(
        "--redis-sizes",
        type=parse_sizes,
        default=[10, 100, 1000],
        help="comma-separated RDB sizes in MB (default 10,100,1000)",
    )
    parser.add_argument(
        "--gzip-size",
        type=int,
        default=100_000,
        help="document count that also gets runs with gzip on (0: none)",
    )
    parser.add_argument("--only", choices=["mongodb", "redis"], help="one data store")
    parser.add_argument("--mongo-port", type=int, default=27131)
    parser.add_argument("--redis-port", type=int, default=16431)
    parser.add_argument(
        "--output",
        default=os.path.join(REPO, "bench", "results"),
        help="folder for the JSON results (default bench/results)",
    )
    parser.add_argument(
        "--work-dir",
        default="/var/tmp",
        help="parent of the temporary folder for the data and snapshots",
    )
    args = parser.parse_args()

    work_dir = tempfile.mkdtemp(prefix="truebond-bench-", dir=args.work_dir)
    results = {
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "command": [sys.executable, *sys.argv],
        "machine": machine_facts(work_dir),
        "versions": versions(),
        "megabyte": MB,
    }
    started = time.monotonic()
    try:
        if args.only in (None, "mongodb"):
            bench_mongo(args, work_dir, results)
        if args.only in (None, "redis"):
            bench_redis(args, work_dir, results)
    except BaseException as error:
        # The results so far are still written, marked with the error.
        results["error"] = f"{type(error).__name__}: {error}"
        raise
    finally:
        shutil.rmtree(work_dir, ignore_errors=True)
        results["total_seconds"] = round(time.monotonic() - started, 1)
        results["machine"]["load_average_at_end"] = os.getloadavg()
        write_results(args.output, results)
    return 0


def write_results(folder, results):
    os.makedirs(folder, exist_ok=True)
    path = os.path.join(
        folder, "datastores-{}.json".format(results["measured_at"].replace(":", ""))
    )
    with open(path, "w", encoding="utf-8") as handle:
        json.dump(results, handle, indent=2)
    log(f"results written to {path} after {results['total_seconds']} s")


if __name__ == "__main__":
    sys.exit(main())
