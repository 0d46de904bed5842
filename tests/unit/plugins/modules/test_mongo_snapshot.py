# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for mongo_snapshot against a SecantusDB server."""

from __future__ import annotations

import errno
import gzip
import json
import os
import stat
import sys
import textwrap

import pytest
from ansible_collections.truebond.rollback.plugins.module_utils import _mongo
from ansible_collections.truebond.rollback.plugins.modules import mongo_snapshot

# pytest's default "prepend" import mode puts this folder on sys.path, because the
# test folders have no __init__.py.
from mongo_server import (
    every_type_documents,
    raw_documents,
    run_module,
    warning_texts,
)


def snapshot_args(server, database, path, **overrides):
    args = {
        "path": str(path),
        "uri": f"{server.uri}{database.name}",
        "method": "pymongo",
        "timeout": 5,
    }
    args.update(overrides)
    return args


def read_bson_file(path):
    return [document.raw for document in _mongo.iter_raw_documents(str(path))]


def test_snapshot_writes_raw_bytes_of_every_type(server, database, tmp_path, capsys):
    database.types.insert_many(every_type_documents())
    folder = tmp_path / "snap"

    result = run_module(mongo_snapshot, snapshot_args(server, database, folder), capsys)

    assert result["changed"] is True
    assert result["method"] == "pymongo"
    written = sorted(read_bson_file(folder / database.name / "types.bson"))
    assert written == sorted(raw_documents(database.types))
    entry = result["snapshot"]["databases"][database.name]["collections"]["types"]
    assert entry["count"] == len(every_type_documents())
    assert entry["bson"] == f"{database.name}/types.bson"
    assert entry["metadata"] == f"{database.name}/types.metadata.json"
    assert entry["indexes"] == ["_id_"]
    assert result["documents"] == len(every_type_documents())


def test_snapshot_metadata_in_mongodump_layout(server, database, tmp_path, capsys):
    database.create_collection("users", validator={"name": {"$type": "string"}})
    database.users.create_index(
        [("email", 1), ("created", -1)], name="email_created", unique=True
    )
    folder = tmp_path / "snap"

    run_module(mongo_snapshot, snapshot_args(server, database, folder), capsys)

    text = (folder / database.name / "users.metadata.json").read_text()
    metadata = json.loads(text)
    assert list(metadata) == ["options", "indexes", "uuid", "collectionName", "type"]
    assert metadata["options"] == {"validator": {"name": {"$type": "string"}}}
    assert metadata["collectionName"] == "users"
    assert metadata["type"] == "collection"
    assert len(metadata["uuid"]) == 32
    assert metadata["indexes"][1] == {
        "v": {"$numberInt": "2"},
        "key": {"email": {"$numberInt": "1"}, "created": {"$numberInt": "-1"}},
        "name": "email_created",
        "unique": True,
    }


def test_snapshot_json_complete_with_checksums(server, database, tmp_path, capsys):
    database.items.insert_many([{"_id": i} for i in range(5)])
    folder = tmp_path / "snap"

    result = run_module(
        mongo_snapshot, snapshot_args(server, database, folder, name="main"), capsys
    )

    manifest = json.loads((folder / "snapshot.json").read_text())
    assert manifest == result["snapshot"]
    assert manifest["complete"] is True
    assert manifest["kind"] == "mongodb"
    assert manifest["name"] == "main"
    assert manifest["format"] == 1
    assert manifest["server"]["address"] == f"127.0.0.1:{server.port}"
    assert manifest["taken_at"].endswith("Z")
    assert _mongo.verify_files(str(folder), manifest) == []
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    for relative in manifest["files"]:
        assert stat.S_IMODE(os.stat(folder / relative).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(folder / "snapshot.json").st_mode) == 0o600


def test_snapshot_gzip_files(server, database, tmp_path, capsys):
    database.types.insert_many(every_type_documents())
    folder = tmp_path / "snap"

    result = run_module(
        mongo_snapshot, snapshot_args(server, database, folder, gzip=True), capsys
    )

    assert result["snapshot"]["gzip"] is True
    names = sorted(os.listdir(folder / database.name))
    assert names == ["types.bson.gz", "types.metadata.json.gz"]
    with gzip.open(folder / database.name / "types.metadata.json.gz") as stream:
        assert json.loads(stream.read())["collectionName"] == "types"
    written = sorted(read_bson_file(folder / database.name / "types.bson.gz"))
    assert written == sorted(raw_documents(database.types))
    assert _mongo.verify_files(str(folder), result["snapshot"]) == []


def test_check_mode_writes_nothing(server, database, tmp_path, capsys):
    database.a.insert_many([{"_id": i} for i in range(3)])
    database.b.insert_one({"_id": 1})
    folder = tmp_path / "snap"

    result = run_module(
        mongo_snapshot,
        snapshot_args(server, database, folder, _ansible_check_mode=True),
        capsys,
    )

    assert not folder.exists()
    assert result["changed"] is True
    assert result["documents"] == 4
    collections = result["snapshot"]["databases"][database.name]["collections"]
    assert collections == {
        "a": {"count": 3, "type": "collection"},
        "b": {"count": 1, "type": "collection"},
    }


def test_disk_full_marks_snapshot_incomplete(
    server, database, tmp_path, capsys, monkeypatch
):
    database.items.insert_many([{"_id": i} for i in range(3)])
    folder = tmp_path / "snap"

    def full_disk(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_mongo._DigestFile, "write", full_disk)
    result = run_module(mongo_snapshot, snapshot_args(server, database, folder), capsys)

    assert result["failed"] is True
    assert result["msg"].startswith(
        f"MongoDB snapshot 'snap' into {str(folder)!r}: the disk is full: "
        "[Errno 28] No space left on device. "
    )
    assert "MiB (" in result["msg"]
    assert "free on the filesystem of " in result["msg"]
    assert (
        "The folder is marked incomplete and is never restored from." in result["msg"]
    )
    manifest = json.loads((folder / "snapshot.json").read_text())
    assert manifest["complete"] is False
    assert manifest["error"] == result["msg"]
    with pytest.raises(_mongo.MongoSnapshotError, match="is marked incomplete"):
        _mongo.load_snapshot(str(folder))


def test_disk_already_full_fails_before_writing(
    server, database, tmp_path, capsys, monkeypatch
):
    """A disk full before the first byte gives the disk-full message, no traceback."""
    database.items.insert_one({"_id": 1})
    folder = tmp_path / "snap"

    def full_disk(path, data, mode):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_mongo, "atomic_write", full_disk)
    result = run_module(mongo_snapshot, snapshot_args(server, database, folder), capsys)

    assert result["failed"] is True
    assert result["msg"].startswith(
        f"MongoDB snapshot 'snap' into {str(folder)!r} could not start: the disk is "
        "full: [Errno 28] No space left on device. "
    )
    assert "Nothing of the snapshot was written." in result["msg"]
    assert "exception" not in result
    assert not (folder / "snapshot.json").exists()


def test_disk_full_keeps_first_manifest(
    server, database, tmp_path, capsys, monkeypatch
):
    """When even the error record cannot be written, the first manifest stays."""
    database.items.insert_one({"_id": 1})
    folder = tmp_path / "snap"
    real_write = _mongo.write_snapshot_json
    calls = []

    def write_once(path, snapshot):
        calls.append(snapshot["complete"])
        if len(calls) > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        real_write(path, snapshot)

    def full_disk(self, data):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(_mongo, "write_snapshot_json", write_once)
    monkeypatch.setattr(_mongo._DigestFile, "write", full_disk)
    result = run_module(mongo_snapshot, snapshot_args(server, database, folder), capsys)

    assert result["failed"] is True
    assert json.loads((folder / "snapshot.json").read_text())["complete"] is False


def test_unreachable_server_names_address_only(tmp_path, capsys):
    folder = tmp_path / "snap"
    args = {
        "path": str(folder),
        "uri": "mongodb://backup:secretpw@127.0.0.1:27100/truebond?authSource=admin",
        "method": "pymongo",
        "timeout": 0.3,
        "name": "main",
    }

    result = run_module(mongo_snapshot, args, capsys)

    assert result["failed"] is True
    assert result["msg"].startswith(
        "MongoDB data store 'main' at 127.0.0.1:27100 is unreachable: "
    )
    assert "secretpw" not in json.dumps(result)
    assert "backup:" not in result["msg"]
    assert not folder.exists()


def test_existing_snapshot_rejected_without_force(server, database, tmp_path, capsys):
    database.items.insert_one({"_id": 1})
    folder = tmp_path / "snap"
    run_module(mongo_snapshot, snapshot_args(server, database, folder), capsys)

    again = run_module(mongo_snapshot, snapshot_args(server, database, folder), capsys)
    forced = run_module(
        mongo_snapshot, snapshot_args(server, database, folder, force=True), capsys
    )

    assert again["failed"] is True
    assert again["msg"] == (
        f"snapshot folder {str(folder)!r} already contains snapshot.json. Choose a new "
        "folder, or set force: true to replace that snapshot."
    )
    assert forced["changed"] is True
    assert forced["snapshot"]["complete"] is True


def test_no_database_is_an_error(server, tmp_path, capsys):
    result = run_module(
        mongo_snapshot,
        {"path": str(tmp_path / "s"), "uri": server.uri, "method": "pymongo"},
        capsys,
    )

    assert result["msg"] == (
        "no database to dump: databases is empty and the URI for "
        f"127.0.0.1:{server.port} names none. Set databases, for example "
        "databases: [truebond]."
    )


def test_mongodump_missing_is_an_error(server, database, tmp_path, capsys):
    result = run_module(
        mongo_snapshot,
        snapshot_args(
            server,
            database,
            tmp_path / "s",
            method="mongodump",
            mongodump_executable="mongodump-not-installed",
        ),
        capsys,
    )

    assert result["msg"] == (
        "method mongodump: 'mongodump-not-installed' was not found on PATH. Install "
        "the MongoDB Database Tools, set mongodump_executable, or use method: pymongo."
    )


@pytest.mark.parametrize(
    "compressed, expected",
    [
        pytest.param(
            False,
            ["mongodump", "--config=/t/c.yml", "--db=app", "--out=/snap"],
            id="plain",
        ),
        pytest.param(
            True,
            ["mongodump", "--config=/t/c.yml", "--db=app", "--out=/snap", "--gzip"],
            id="gzip",
        ),
    ],
)
def test_mongodump_command_line(compressed, expected):
    command = mongo_snapshot.build_mongodump_command(
        "mongodump", "/t/c.yml", "app", "/snap", compressed
    )

    assert command == expected


def write_fake_mongodump(directory, documents_by_collection):
    """Write a mongodump stand-in that writes a dump of fixed documents.

    It records its arguments and the config file's content, then writes
    <out>/<db>/<collection>.bson and .metadata.json as mongodump does.
    """
    program = directory / "mongodump"
    payload = {
        name: [document.hex() for document in documents]
        for name, documents in documents_by_collection.items()
    }
    program.write_text(
        textwrap.dedent(
            f"""\
            #!{sys.executable}
            import json, os, sys
            args = dict(a[2:].split("=", 1) for a in sys.argv[1:] if "=" in a)
            with open(os.path.join({str(directory)!r}, "calls.json"), "a") as log:
                log.write(json.dumps({{"argv": sys.argv[1:],
                    "config": open(args["config"]).read()}}) + "\\n")
            folder = os.path.join(args["out"], args["db"])
            os.makedirs(folder, exist_ok=True)
            for name, documents in {payload!r}.items():
                with open(os.path.join(folder, name + ".bson"), "wb") as out:
                    for document in documents:
                        out.write(bytes.fromhex(document))
                metadata = {{"indexes": [{{"v": {{"$numberInt": "2"}},
                    "key": {{"_id": {{"$numberInt": "1"}}}}, "name": "_id_"}}],
                    "uuid": "00112233445566778899aabbccddeeff",
                    "collectionName": name, "type": "collection"}}
                with open(os.path.join(folder, name + ".metadata.json"), "w") as out:
                    out.write(json.dumps(metadata))
            print("done dumping", file=sys.stderr)
            """
        )
    )
    program.chmod(0o755)
    return program


def test_mongodump_path_describes_dump(server, database, tmp_path, capsys, monkeypatch):
    import bson

    database.items.insert_one({"_id": 1})
    database.command("createUser", "backup", pwd="secretpw", roles=["read"])
    tools = tmp_path / "tools"
    tools.mkdir()
    documents = [bson.encode({"_id": index, "n": index * 2}) for index in range(4)]
    write_fake_mongodump(tools, {"items": documents})
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")
    folder = tmp_path / "snap"
    uri = f"mongodb://backup:secretpw@127.0.0.1:{server.port}/{database.name}"

    result = run_module(
        mongo_snapshot,
        {"path": str(folder), "uri": uri, "method": "auto", "timeout": 5},
        capsys,
    )

    assert result.get("method") == "mongodump", result
    entry = result["snapshot"]["databases"][database.name]["collections"]["items"]
    assert entry["count"] == 4
    assert entry["uuid"] == "00112233445566778899aabbccddeeff"
    assert result["snapshot"]["complete"] is True
    assert _mongo.verify_files(str(folder), result["snapshot"]) == []
    call = json.loads((tools / "calls.json").read_text())
    assert call["argv"][1:] == [f"--db={database.name}", f"--out={folder}"]
    assert call["config"] == (
        f'uri: "mongodb://backup:secretpw@127.0.0.1:{server.port}/'
        f'?authSource={database.name}"\n'
    )
    assert "secretpw" not in json.dumps(result)
    assert not os.path.exists(call["argv"][0].split("=", 1)[1])


def test_empty_database_warns(server, database, tmp_path, capsys):
    result = run_module(
        mongo_snapshot, snapshot_args(server, database, tmp_path / "snap"), capsys
    )

    assert result["snapshot"]["complete"] is True
    assert result["snapshot"]["databases"] == {database.name: {"collections": {}}}
    expected = (
        f"database {database.name!r} has no collections, so its snapshot is empty. "
        "Check the database name."
    )
    assert warning_texts(result) == [expected]
