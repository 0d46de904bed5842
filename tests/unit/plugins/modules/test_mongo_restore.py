# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for mongo_restore against a SecantusDB server."""

from __future__ import annotations

import hashlib
import json
import os
import textwrap

import bson
import pytest
from ansible_collections.truebond.rollback.plugins.module_utils import _mongo
from ansible_collections.truebond.rollback.plugins.modules import (
    mongo_restore,
    mongo_snapshot,
)

# pytest's default "prepend" import mode puts this folder on sys.path, because the
# test folders have no __init__.py.
from mongo_server import (
    database_state,
    every_type_documents,
    index_summary,
    raw_documents,
    run_module,
    start_server,
    unique_name,
    warning_texts,
)


@pytest.fixture
def database(client, request):
    """Override the conftest fixture to also drop the <name>_copy database."""
    name = unique_name(request)
    client.drop_database(name)
    client.drop_database(f"{name}_copy")
    yield client[name]
    client.drop_database(name)
    client.drop_database(f"{name}_copy")


def take_snapshot(server, database, folder, capsys, **overrides):
    args = {
        "path": str(folder),
        "uri": f"{server.uri}{database.name}",
        "method": "pymongo",
        "timeout": 5,
    }
    args.update(overrides)
    result = run_module(mongo_snapshot, args, capsys)
    assert result["snapshot"]["complete"] is True, result
    return result


def restore_args(server, folder, database_name, **overrides):
    args = {
        "src": str(folder),
        "uri": f"{server.uri}{database_name}",
        "method": "pymongo",
        "timeout": 5,
    }
    args.update(overrides)
    return args


def seed(database):
    database.create_collection("users", validator={"name": {"$type": "string"}})
    database.users.insert_many(
        [
            {"_id": index, "name": f"user{index}", "email": f"u{index}@x"}
            for index in range(20)
        ]
    )
    database.users.create_index([("email", 1)], name="email_1", unique=True)
    database.messages.insert_many([{"_id": index, "text": "hi"} for index in range(5)])
    database.types.insert_many(every_type_documents())


def migrate(database):
    """Do what the v1.0.0 migration does: a new field, a new collection, an index."""
    database.users.update_many({}, {"$set": {"email_verified": False}})
    database.users.insert_one({"_id": 100, "name": "new", "email": "new@x"})
    database.audit_log.insert_many([{"_id": 1, "event": "migrated"}])
    database.users.drop_index("email_1")
    database.users.create_index([("email", 1), ("name", -1)], name="email_1_name_-1")


def test_every_type_restored_byte_for_byte(server, database, tmp_path, capsys):
    database.types.insert_many(every_type_documents())
    before = raw_documents(database.types)
    take_snapshot(server, database, tmp_path / "snap", capsys)
    database.types.delete_many({"_id": {"$in": [1, 2, 4]}})
    database.types.update_many({}, {"$set": {"changed": True}})

    result = run_module(
        mongo_restore, restore_args(server, tmp_path / "snap", database.name), capsys
    )

    assert result["changed"] is True, result
    assert raw_documents(database.types) == before
    assert result["verification"]["ok"] is True
    assert result["restored"] == [
        {
            "namespace": f"{database.name}.types",
            "documents": len(before),
            "indexes": ["_id_"],
        }
    ]


def test_gzip_round_trip(server, database, tmp_path, capsys):
    seed(database)
    before = database_state(database.client, database.name)
    take_snapshot(server, database, tmp_path / "snap", capsys, gzip=True)
    migrate(database)

    result = run_module(
        mongo_restore,
        restore_args(
            server, tmp_path / "snap", database.name, drop_new_collections=True
        ),
        capsys,
    )

    assert result["verification"]["ok"] is True, result
    assert database_state(database.client, database.name) == before


def test_migrated_database_replaced(server, database, tmp_path, capsys):
    seed(database)
    before = database_state(database.client, database.name)
    options_before = database.users.options()
    take_snapshot(server, database, tmp_path / "snap", capsys)
    migrate(database)

    kept = run_module(
        mongo_restore, restore_args(server, tmp_path / "snap", database.name), capsys
    )
    assert kept["new_collections"] == [
        {"namespace": f"{database.name}.audit_log", "documents": 1, "dropped": False}
    ]
    assert "audit_log" in database.list_collection_names()
    assert database.users.count_documents({"email_verified": {"$exists": True}}) == 0
    assert index_summary(database.users) == before["users"][1]
    assert raw_documents(database.users) == before["users"][0]
    assert database.users.options() == options_before
    assert warning_texts(kept) == [
        (
            f"collections not in the snapshot are kept: {database.name}.audit_log. "
            "Set drop_new_collections: true to drop them."
        )
    ]

    dropped = run_module(
        mongo_restore,
        restore_args(
            server, tmp_path / "snap", database.name, drop_new_collections=True
        ),
        capsys,
    )
    assert dropped["new_collections"][0]["dropped"] is True
    assert database_state(database.client, database.name) == before


def test_plan_lists_drop_and_restore(server, database, tmp_path, capsys):
    seed(database)
    take_snapshot(server, database, tmp_path / "snap", capsys)
    migrate(database)
    database.drop_collection("messages")

    result = run_module(
        mongo_restore,
        restore_args(
            server, tmp_path / "snap", database.name, _ansible_check_mode=True
        ),
        capsys,
    )

    plan = {item["namespace"].split(".", 1)[1]: item for item in result["plan"]}
    assert plan["users"]["action"] == "drop and restore"
    assert plan["users"]["documents"] == 20
    assert plan["users"]["current_documents"] == 21
    assert plan["messages"]["action"] == "restore"
    assert plan["messages"]["current_documents"] is None


def test_restore_into_different_database(server, database, tmp_path, capsys):
    seed(database)
    before = database_state(database.client, database.name)
    take_snapshot(server, database, tmp_path / "snap", capsys)
    target = f"{database.name}_copy"

    result = run_module(
        mongo_restore,
        restore_args(server, tmp_path / "snap", target, database=target),
        capsys,
    )

    assert result["databases"] == {database.name: target}
    assert database_state(database.client, target) == before
    assert database_state(database.client, database.name) == before


@pytest.mark.parametrize(
    "include, exclude, restored",
    [
        pytest.param(["{db}.users"], [], ["users"], id="include-one"),
        pytest.param(["{db}.*s"], [], ["messages", "types", "users"], id="wildcard"),
        pytest.param([], ["{db}.types"], ["messages", "users"], id="exclude-one"),
        pytest.param(["{db}.*"], ["*.m*"], ["types", "users"], id="include-exclude"),
    ],
)
def test_include_exclude(
    server, database, tmp_path, capsys, include, exclude, restored
):
    seed(database)
    take_snapshot(server, database, tmp_path / "snap", capsys)
    for name in ("users", "messages", "types"):
        database[name].insert_one({"_id": "added later", "name": "later"})

    result = run_module(
        mongo_restore,
        restore_args(
            server,
            tmp_path / "snap",
            database.name,
            include=[p.format(db=database.name) for p in include],
            exclude=[p.format(db=database.name) for p in exclude],
        ),
        capsys,
    )

    names = sorted(item["namespace"].split(".", 1)[1] for item in result["restored"])
    assert names == restored
    for name in ("users", "messages", "types"):
        has_later = database[name].count_documents({"_id": "added later"}) == 1
        assert has_later is (name not in restored), name


def corrupt_byte(path):
    data = bytearray(path.read_bytes())
    data[-3] ^= 0x01
    path.write_bytes(bytes(data))


def mark_incomplete(folder):
    manifest = json.loads((folder / "snapshot.json").read_text())
    manifest["complete"] = False
    (folder / "snapshot.json").write_text(json.dumps(manifest))


@pytest.mark.parametrize(
    "damage, expected",
    [
        pytest.param(
            lambda folder, db: os.rename(folder, f"{folder}.gone"),
            "snapshot folder {folder!r} does not exist or is not a directory. Give the "
            "datastores/<name> folder of a capture.",
            id="missing-folder",
        ),
        pytest.param(
            lambda folder, db: (folder / "snapshot.json").unlink(),
            "snapshot folder {folder!r} has no snapshot.json, so the snapshot never "
            "finished and is not restored from. Use another capture.",
            id="no-snapshot-json",
        ),
        pytest.param(
            lambda folder, db: mark_incomplete(folder),
            "{folder}/snapshot.json is marked incomplete (complete: False), so the "
            "snapshot did not finish. Reason recorded: none. Use another capture.",
            id="incomplete",
        ),
        pytest.param(
            lambda folder, db: corrupt_byte(folder / db / "users.bson"),
            "snapshot folder {folder!r} fails its checksums: {db}/users.bson: SHA-256 ",
            id="changed-byte",
        ),
    ],
)
def test_bad_snapshot_rejected_before_changes(
    server, database, tmp_path, capsys, damage, expected
):
    seed(database)
    folder = tmp_path / "snap"
    take_snapshot(server, database, folder, capsys)
    migrate(database)
    state = database_state(database.client, database.name)
    damage(folder, database.name)

    result = run_module(
        mongo_restore,
        restore_args(server, folder, database.name, drop_new_collections=True),
        capsys,
    )

    assert result["failed"] is True
    assert result["msg"].startswith(
        expected.format(folder=str(folder), db=database.name)
    )
    assert database_state(database.client, database.name) == state


def test_snapshot_of_other_database_rejected(server, database, tmp_path, capsys):
    seed(database)
    folder = tmp_path / "snap"
    take_snapshot(server, database, folder, capsys)
    other = database.client[f"{database.name}_copy"]
    other.users.insert_one({"_id": "keep"})
    state = database_state(database.client, other.name)

    result = run_module(mongo_restore, restore_args(server, folder, other.name), capsys)

    assert result["msg"] == (
        f"the snapshot is of database {database.name} but the target database from "
        f"the URI for 127.0.0.1:{server.port} is {other.name!r}. Nothing was changed. "
        f"To restore into a different database, set database: {other.name} "
        "explicitly."
    )
    assert database_state(database.client, other.name) == state


# Ports of the server that test_server_stopped_part_way_then_rerun stops and starts
# again, outside the range of the shared server (conftest.py).
OWN_SERVER_PORTS = range(27121, 27140)


def folder_digests(folder):
    """Return the SHA-256 of every file under folder, by relative path."""
    return {
        str(path.relative_to(folder)): hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.rglob("*"))
        if path.is_file()
    }


@pytest.fixture
def own_server(tmp_path_factory):
    """Start a SecantusDB server that only this test uses, so that it may stop it."""
    server = start_server(tmp_path_factory, OWN_SERVER_PORTS)
    yield server
    server.stop()


def test_server_stopped_part_way_then_rerun(own_server, tmp_path, capsys, monkeypatch):
    """MongoDB stops after the first collection: the error names the state of each."""
    server = own_server
    client = server.client()
    database = client["partway"]
    seed(database)
    before = database_state(client, "partway")
    folder = tmp_path / "snap"
    take_snapshot(server, database, folder, capsys)
    snapshot_files = folder_digests(folder)
    migrate(database)
    client.close()

    restore_collection = mongo_restore.restore_collection

    def restore_then_stop_server(*args):
        inserted = restore_collection(*args)
        server.stop()
        return inserted

    monkeypatch.setattr(mongo_restore, "restore_collection", restore_then_stop_server)
    args = restore_args(server, folder, "partway", timeout=1, drop_new_collections=True)
    result = run_module(mongo_restore, args, capsys)
    monkeypatch.undo()

    assert result.get("failed") is True, result
    namespaces = [f"partway.{name}" for name in ("messages", "types", "users")]
    first = result["restored"][0]["namespace"]
    assert [item["namespace"] for item in result["restored"]] == [first]
    failed = result["failed_collection"]
    untouched = result["not_restored"]
    assert sorted([first, failed, *untouched]) == namespaces
    assert len(untouched) == 1
    message = result["msg"]
    assert f"failed at collection {failed}:" in message
    assert f"Restored before the failure: {first}." in message
    assert f"Not started: {untouched[0]}." in message
    assert "run the restore again" in message
    # The snapshot is the only copy of the data from before: it must not change.
    assert folder_digests(folder) == snapshot_files

    # Same port and storage; the port may still have connections in TIME_WAIT.
    server.start()
    rerun = run_module(mongo_restore, args, capsys)

    assert rerun.get("failed") is not True, rerun
    assert rerun["verification"]["ok"] is True
    with server.client() as check:
        assert database_state(check, "partway") == before


def test_unreachable_server_hides_password(server, database, tmp_path, capsys):
    seed(database)
    folder = tmp_path / "snap"
    take_snapshot(server, database, folder, capsys)

    result = run_module(
        mongo_restore,
        {
            "src": str(folder),
            "uri": f"mongodb://admin:secretpw@127.0.0.1:27100/{database.name}",
            "method": "pymongo",
            "timeout": 0.3,
        },
        capsys,
    )

    assert result["msg"].startswith("MongoDB at 127.0.0.1:27100 is unreachable: ")
    assert "secretpw" not in json.dumps(result)


def write_dump_by_hand(folder, db_name, documents):
    """Write a folder as mongodump 100.x lays it out, then describe it."""
    db_dir = folder / db_name
    db_dir.mkdir(parents=True)
    with open(db_dir / "people.bson", "wb") as stream:
        stream.writelines(bson.encode(document) for document in documents)
    metadata = textwrap.dedent(
        """\
        {"indexes":[{"v":{"$numberInt":"2"},"key":{"_id":{"$numberInt":"1"}},"name":"_id_"},
        {"v":{"$numberInt":"2"},"key":{"age":{"$numberInt":"-1"}},"name":"age_-1",
        "sparse":true}],"uuid":"0123456789abcdef0123456789abcdef",
        "collectionName":"people","type":"collection",
        "options":{"validator":{"age":{"$gte":{"$numberInt":"0"}}}}}
        """
    )
    (db_dir / "people.metadata.json").write_text(metadata)
    described, files, compressed = _mongo.scan_dump(str(folder))
    snapshot = mongo_snapshot.new_manifest("hand", "mongodump", compressed, {})
    snapshot.update(databases=described, files=files, complete=True)
    _mongo.write_snapshot_json(str(folder), snapshot)


def test_hand_made_dump_restores(server, database, tmp_path, capsys):
    documents = [{"_id": index, "age": index * 3} for index in range(7)]
    documents.append({"_id": 99, "age": -1})
    folder = tmp_path / "dump"
    write_dump_by_hand(folder, database.name, documents)

    result = run_module(
        mongo_restore, restore_args(server, folder, database.name), capsys
    )

    assert result["verification"]["ok"] is True, result
    assert raw_documents(database.people) == sorted(
        (bson.encode(d) for d in documents),
        key=lambda raw: bson.encode({"k": bson.decode(raw)["_id"]}),
    )
    assert database.people.options() == {"validator": {"age": {"$gte": 0}}}
    assert ("age_-1", [("age", -1)], False) in index_summary(database.people)


def test_failed_document_fails_restore(server, database, tmp_path, capsys):
    documents = [{"_id": 1, "age": 1}, {"_id": 1, "age": 2}, {"_id": 2, "age": 3}]
    folder = tmp_path / "dump"
    write_dump_by_hand(folder, database.name, documents)

    result = run_module(
        mongo_restore, restore_args(server, folder, database.name), capsys
    )

    assert result["failed"] is True
    assert result["msg"].startswith(
        f"restoring {database.name}.people failed for 1 document(s) (2 inserted); "
        "first error: "
    )


def test_check_mode_changes_nothing(server, database, tmp_path, capsys):
    seed(database)
    folder = tmp_path / "snap"
    take_snapshot(server, database, folder, capsys)
    migrate(database)
    state = database_state(database.client, database.name)

    result = run_module(
        mongo_restore,
        restore_args(
            server,
            folder,
            database.name,
            drop_new_collections=True,
            _ansible_check_mode=True,
            _ansible_diff=True,
        ),
        capsys,
    )

    assert result["changed"] is True
    assert database_state(database.client, database.name) == state
    before = result["diff"]["before"]["collections"]
    after = result["diff"]["after"]["collections"]
    assert before[f"{database.name}.users"] == 21
    assert after[f"{database.name}.users"] == 20
    assert before[f"{database.name}.audit_log"] == 1
    assert after[f"{database.name}.audit_log"] is None
    assert "restored" not in result


@pytest.mark.parametrize(
    "mapping, include, exclude, compressed, expected_tail",
    [
        pytest.param(
            {"app": "app"},
            [],
            [],
            False,
            ["--nsInclude=app.*"],
            id="same-database",
        ),
        pytest.param(
            {"app": "app_copy"},
            [],
            ["app.audit*"],
            True,
            [
                "--gzip",
                "--nsInclude=app.*",
                "--nsExclude=app.audit*",
                "--nsFrom=app.*",
                "--nsTo=app_copy.*",
            ],
            id="renamed-gzip-exclude",
        ),
        pytest.param(
            {"app": "app"},
            ["*.user*"],
            [],
            False,
            ["--nsInclude=app.users", "--nsInclude=app.user\\*s"],
            id="include-lists-namespaces",
        ),
    ],
)
def test_mongorestore_command_line(
    mapping, include, exclude, compressed, expected_tail
):
    selected = ["app.users", "app.user*s"]

    command = mongo_restore.build_mongorestore_command(
        "mongorestore",
        "/t/c.yml",
        "/snap",
        mapping,
        include,
        exclude,
        compressed,
        selected,
    )

    assert command[:6] == [
        "mongorestore",
        "--config=/t/c.yml",
        "--dir=/snap",
        "--drop",
        "--bypassDocumentValidation",
        "--stopOnError",
    ]
    assert command[6:] == expected_tail


@pytest.mark.parametrize(
    "output, failed",
    [
        pytest.param(
            "20 document(s) restored successfully. 0 document(s) failed to restore.",
            0,
            id="none",
        ),
        pytest.param(
            "18 document(s) restored successfully. 2 document(s) failed to restore.",
            2,
            id="two",
        ),
        pytest.param("", 0, id="empty"),
    ],
)
def test_mongorestore_failed_count(output, failed):
    assert mongo_restore.parse_failed_documents(output) == failed


def test_mongorestore_path_verifies_after(
    server, database, tmp_path, capsys, monkeypatch
):
    """A mongorestore that restores nothing fails the verification."""
    seed(database)
    folder = tmp_path / "snap"
    take_snapshot(server, database, folder, capsys)
    database.users.delete_many({})
    tools = tmp_path / "tools"
    tools.mkdir()
    program = tools / "mongorestore"
    program.write_text(
        "#!/bin/sh\necho '0 document(s) restored successfully. 0 document(s) "
        "failed to restore.' >&2\n"
    )
    program.chmod(0o755)
    monkeypatch.setenv("PATH", f"{tools}{os.pathsep}{os.environ['PATH']}")

    result = run_module(
        mongo_restore,
        restore_args(server, folder, database.name, method="auto"),
        capsys,
    )

    assert result["failed"] is True
    assert result["method"] == "mongorestore"
    assert result["command"][0] == "mongorestore"
    assert result["msg"].startswith(
        "the restored data does not match the snapshot: "
        f"{database.name}.users: 0 documents, the snapshot has 20"
    )
