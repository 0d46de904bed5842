# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for the _mongo module_utils: URIs, patterns, dump files and snapshot.json."""

from __future__ import annotations

import gzip
import json
import time

import bson
import pytest
import yaml
from ansible_collections.truebond.rollback.plugins.module_utils import _mongo


@pytest.mark.parametrize(
    "uri, address, database",
    [
        pytest.param(
            "mongodb://app:s3cret@db1:27017,db2:27018/truebond?authSource=admin",
            "db1:27017,db2:27018",
            "truebond",
            id="credentials-and-query",
        ),
        pytest.param("mongodb://127.0.0.1:27017/", "127.0.0.1:27017", None, id="no-db"),
        pytest.param("mongodb://127.0.0.1", "127.0.0.1", None, id="no-slash"),
        pytest.param(
            "mongodb+srv://u:p@cluster0.example.net/app%2Dx",
            "cluster0.example.net (DNS seed list)",
            "app-x",
            id="srv-escaped-db",
        ),
        pytest.param(
            "http://127.0.0.1/",
            "(a URI that does not start with mongodb:// or mongodb+srv://)",
            None,
            id="not-mongodb",
        ),
    ],
)
def test_uri_address_and_database(uri, address, database):
    assert _mongo.describe_uri(uri) == address
    assert _mongo.uri_database(uri) == database


def test_redact_removes_user_and_password():
    uri = "mongodb://backup:p%40ss@127.0.0.1/x"

    text = _mongo.redact("auth failed for backup:p@ss and p@ss", uri)

    assert "p@ss" not in text
    assert "p%40ss" not in text


@pytest.mark.parametrize(
    "uri, expected",
    [
        pytest.param(
            "mongodb://u:p@h:1/app",
            "mongodb://u:p@h:1/?authSource=app",
            id="db-becomes-authsource",
        ),
        pytest.param(
            "mongodb://u:p@h:1/app?authSource=admin&tls=true",
            "mongodb://u:p@h:1/?authSource=admin&tls=true",
            id="authsource-kept",
        ),
        pytest.param("mongodb://h:1/app", "mongodb://h:1/", id="no-credentials"),
        pytest.param("mongodb://h:1/", "mongodb://h:1/", id="no-db"),
    ],
)
def test_uri_for_tools(uri, expected):
    assert _mongo.uri_for_tools(uri) == expected


@pytest.mark.parametrize(
    "pattern, namespace, matches",
    [
        pytest.param("app.users", "app.users", True, id="exact"),
        pytest.param("app.users", "app.users2", False, id="exact-longer"),
        pytest.param("app.*", "app.users", True, id="db-wildcard"),
        pytest.param("app.*", "apps.users", False, id="db-wildcard-other-db"),
        pytest.param("*.users", "x.users", True, id="any-db"),
        pytest.param("app.user*", "app.users.archive", True, id="star-crosses-dots"),
        pytest.param("app.a\\*b", "app.a*b", True, id="escaped-star"),
        pytest.param("app.a\\*b", "app.axb", False, id="escaped-star-literal"),
        pytest.param("app.u?ers", "app.users", False, id="question-mark-literal"),
        pytest.param("app.users", "app.users\n", False, id="exact-trailing-newline"),
        pytest.param("app.*", "app.a\nb", True, id="star-crosses-line-break"),
    ],
)
def test_namespace_pattern(pattern, namespace, matches):
    assert bool(_mongo.compile_namespace_pattern(pattern).match(namespace)) is matches


@pytest.mark.parametrize(
    "include, exclude, selected",
    [
        pytest.param([], [], True, id="no-patterns"),
        pytest.param(["app.*"], [], True, id="included"),
        pytest.param(["other.*"], [], False, id="not-included"),
        pytest.param(["app.*"], ["app.users"], False, id="excluded-wins"),
    ],
)
def test_namespace_selected(include, exclude, selected):
    assert _mongo.namespace_selected("app.users", include, exclude) is selected


def test_namespace_selected_rejects_trailing_newline():
    assert _mongo.namespace_selected("app.users\n", include=["app.users"]) is False


def test_uri_with_trailing_newline_kept_for_tools():
    uri = "mongodb://u:p@127.0.0.1/app?x=1\n"
    assert _mongo.uri_for_tools(uri) == uri


@pytest.mark.parametrize(
    "uri, written",
    [
        pytest.param(
            "mongodb://u:p\U00010000@127.0.0.1/app",
            'uri: "mongodb://u:p\U00010000@127.0.0.1/?authSource=app"\n',
            id="outside-bmp-as-utf8",
        ),
        pytest.param(
            "mongodb://u:p\u00e9\u0085\u2028\x9f@127.0.0.1/",
            'uri: "mongodb://u:p\u00e9\\u0085\\u2028\\u009f@127.0.0.1/"\n',
            id="yaml-unsafe-escaped",
        ),
        pytest.param(
            'mongodb://u:"\nuri: x@127.0.0.1/',
            'uri: "mongodb://u:\\"\\nuri: x@127.0.0.1/"\n',
            id="quote-and-newline-escaped",
        ),
    ],
)
def test_write_tools_config_round_trip(tmp_path, uri, written):
    path = _mongo.write_tools_config(str(tmp_path), uri)
    data = (tmp_path / "config.yml").read_bytes()
    assert path == str(tmp_path / "config.yml")
    assert data.decode("utf-8") == written
    assert yaml.safe_load(data.decode("utf-8")) == {"uri": _mongo.uri_for_tools(uri)}


@pytest.mark.parametrize(
    "name, bson_name, metadata_name",
    [
        pytest.param("users", "users.bson", "users.metadata.json", id="plain"),
        pytest.param(
            "a/b%c", "a%2Fb%25c.bson", "a%2Fb%25c.metadata.json", id="escaped"
        ),
    ],
)
def test_dump_file_names(name, bson_name, metadata_name):
    assert _mongo.bson_file_name(name, False) == bson_name
    assert _mongo.metadata_file_name(name, False) == metadata_name
    assert _mongo.bson_file_name(name, True) == bson_name + ".gz"


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_hashing_writer_records_disk_bytes(tmp_path, compressed):
    path = tmp_path / ("d.bson.gz" if compressed else "d.bson")
    documents = [bson.encode({"_id": index, "x": "y" * index}) for index in range(50)]

    writer = _mongo.HashingWriter(str(path), compressed)
    for document in documents:
        writer.write(document)
    writer.close()

    assert writer.bytes == path.stat().st_size
    assert writer.sha256 == _mongo.sha256_file(str(path))
    read_back = [document.raw for document in _mongo.iter_raw_documents(str(path))]
    assert read_back == documents
    assert _mongo.count_documents_in_file(str(path)) == 50
    assert path.stat().st_mode & 0o777 == 0o600


@pytest.mark.parametrize(
    "data, message",
    [
        pytest.param(b"\x10\x00\x00", "ends inside a document", id="short-header"),
        pytest.param(b"\x02\x00\x00\x00", "invalid document length 2", id="bad-length"),
        pytest.param(bson.encode({"a": 1})[:-2], "ends inside a document", id="cut"),
    ],
)
def test_damaged_bson_file_rejected(tmp_path, data, message):
    path = tmp_path / "bad.bson"
    path.write_bytes(data)

    with pytest.raises(_mongo.MongoSnapshotError, match=message):
        list(_mongo.iter_raw_documents(str(path)))
    with pytest.raises(_mongo.MongoSnapshotError, match=message):
        _mongo.count_documents_in_file(str(path))


def test_metadata_round_trip_canonical_json():
    info = {
        "name": "users",
        "type": "collection",
        "options": {"capped": True, "size": bson.int64.Int64(4096)},
        "info": {"uuid": bson.binary.Binary(bytes(range(16)), 4)},
    }
    indexes = [{"v": 2, "key": {"_id": 1}, "name": "_id_", "ns": "app.users"}]

    encoded = _mongo.encode_metadata(_mongo.build_metadata(info, indexes))
    decoded = _mongo.decode_metadata(encoded, "users.metadata.json")

    assert json.loads(encoded) == {
        "options": {"capped": True, "size": {"$numberLong": "4096"}},
        "indexes": [
            {
                "v": {"$numberInt": "2"},
                "key": {"_id": {"$numberInt": "1"}},
                "name": "_id_",
            }
        ],
        "uuid": "000102030405060708090a0b0c0d0e0f",
        "collectionName": "users",
        "type": "collection",
    }
    assert decoded["options"]["size"] == 4096
    assert _mongo.index_keys(decoded["indexes"][0]) == [["_id", 1]]


def test_invalid_metadata_rejected():
    with pytest.raises(_mongo.MongoSnapshotError) as raised:
        _mongo.decode_metadata(b"{not json", "app/users.metadata.json")

    assert str(raised.value).startswith(
        "metadata file app/users.metadata.json is not valid extended JSON: "
    )


def write_dump(folder, compressed=False):
    db_dir = folder / "app"
    db_dir.mkdir(parents=True)
    opener = gzip.open if compressed else open
    suffix = ".gz" if compressed else ""
    with opener(db_dir / f"users.bson{suffix}", "wb") as stream:
        for index in range(3):
            stream.write(bson.encode({"_id": index}))
    metadata = {
        "indexes": [
            {
                "v": {"$numberInt": "2"},
                "key": {"_id": {"$numberInt": "1"}},
                "name": "_id_",
            }
        ],
        "uuid": "ab" * 16,
        "collectionName": "users",
        "type": "collection",
    }
    with opener(db_dir / f"users.metadata.json{suffix}", "wb") as stream:
        stream.write(json.dumps(metadata).encode())


@pytest.mark.parametrize("compressed", [False, True], ids=["plain", "gzip"])
def test_scan_dump_describes_layout(tmp_path, compressed):
    write_dump(tmp_path, compressed)

    databases, files, found_compressed = _mongo.scan_dump(str(tmp_path))

    suffix = ".gz" if compressed else ""
    assert found_compressed is compressed
    assert databases == {
        "app": {
            "collections": {
                "users": {
                    "count": 3,
                    "bson": f"app/users.bson{suffix}",
                    "metadata": f"app/users.metadata.json{suffix}",
                    "indexes": ["_id_"],
                    "uuid": "ab" * 16,
                    "type": "collection",
                }
            }
        }
    }
    assert sorted(files) == [
        f"app/users.bson{suffix}",
        f"app/users.metadata.json{suffix}",
    ]


def test_scan_dump_needs_bson_file(tmp_path):
    write_dump(tmp_path)
    (tmp_path / "app" / "users.bson").unlink()

    with pytest.raises(_mongo.MongoSnapshotError) as raised:
        _mongo.scan_dump(str(tmp_path))

    assert str(raised.value) == (
        f"dump folder {tmp_path} has app/users.metadata.json but no users.bson. "
        "Take a new snapshot."
    )


def complete_snapshot(folder):
    write_dump(folder)
    databases, files, _ = _mongo.scan_dump(str(folder))
    snapshot = {
        "format": 1,
        "kind": "mongodb",
        "complete": True,
        "databases": databases,
        "files": files,
    }
    _mongo.write_snapshot_json(str(folder), snapshot)
    return snapshot


def test_load_snapshot_accepts_complete(tmp_path):
    snapshot = complete_snapshot(tmp_path)

    assert _mongo.load_snapshot(str(tmp_path)) == snapshot
    assert _mongo.verify_files(str(tmp_path), snapshot) == []


@pytest.mark.parametrize(
    "content, message",
    [
        pytest.param(b"{", "cannot be read as JSON", id="invalid-json"),
        pytest.param(b"[]", "is not a JSON object", id="not-object"),
        pytest.param(
            b'{"kind": "redis", "complete": true}',
            "describes a 'redis' snapshot, not 'mongodb'",
            id="other-kind",
        ),
        pytest.param(
            b'{"kind": "mongodb", "complete": false, "error": "disk full"}',
            "is marked incomplete (complete: False), so the snapshot did not finish. "
            "Reason recorded: disk full.",
            id="incomplete",
        ),
        pytest.param(
            b'{"kind": "mongodb", "complete": true}',
            "lacks the 'databases' or 'files' mapping",
            id="no-databases",
        ),
    ],
)
def test_load_snapshot_rejects(tmp_path, content, message):
    (tmp_path / "snapshot.json").write_bytes(content)

    with pytest.raises(_mongo.MongoSnapshotError) as raised:
        _mongo.load_snapshot(str(tmp_path))

    assert message in str(raised.value)


def test_verify_files_reports_each_problem(tmp_path):
    snapshot = complete_snapshot(tmp_path)
    with open(tmp_path / "app" / "users.bson", "ab") as stream:
        stream.write(b"x")
    snapshot["files"]["app/extra.bson"] = {"bytes": 1, "sha256": "0"}
    snapshot["files"]["../outside"] = {"bytes": 1, "sha256": "0"}

    problems = _mongo.verify_files(str(tmp_path), snapshot)

    assert problems[0] == "../outside: path leaves the snapshot folder"
    assert problems[1] == "app/extra.bson: missing"
    assert problems[2].startswith("app/users.bson: 43 bytes, snapshot.json records 42")


def test_connect_unreachable_names_address():
    uri = "mongodb://admin:topsecret@127.0.0.1:27100/app"

    with pytest.raises(_mongo.MongoSnapshotError) as raised:
        _mongo.connect(uri, 0.2, "main")

    message = str(raised.value)
    assert message.startswith(
        "MongoDB data store 'main' at 127.0.0.1:27100 is unreachable: "
    )
    assert message.endswith(
        "Check that the server is running, the address and port are right and the "
        "credentials are valid (waited 0.2 s)."
    )
    assert "topsecret" not in message


def test_connect_unreachable_waits_connect_timeout():
    """A server that is down fails after connect_timeout, not the longer timeout."""
    uri = "mongodb://127.0.0.1:27100/app"
    started = time.monotonic()

    with pytest.raises(_mongo.MongoSnapshotError) as raised:
        _mongo.connect(uri, 30, "main", connect_timeout=0.2)

    assert time.monotonic() - started < 10
    assert str(raised.value).endswith("(waited 0.2 s).")


def test_connect_timeout_above_timeout_waits_timeout():
    uri = "mongodb://127.0.0.1:27100/app"

    with pytest.raises(_mongo.MongoSnapshotError) as raised:
        _mongo.connect(uri, 0.2, "main", connect_timeout=10)

    assert str(raised.value).endswith("(waited 0.2 s).")
