# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A SecantusDB server per test module, and data shared by the mongo_* tests.

SecantusDB (the secantusdb package, test-only) is a MongoDB-compatible server that
speaks the wire protocol, so pymongo talks to it as to mongod.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import re
import socket
import subprocess
import time
import uuid
from pathlib import Path

import bson
import pymongo
import pytest
from ansible.module_utils.testing import patch_module_args
from bson.binary import Binary, UuidRepresentation
from bson.decimal128 import Decimal128
from bson.int64 import Int64
from bson.max_key import MaxKey
from bson.min_key import MinKey
from bson.objectid import ObjectId
from bson.raw_bson import RawBSONDocument
from bson.regex import Regex
from bson.timestamp import Timestamp

REPO_ROOT = Path(__file__).resolve().parents[4]
SERVER_PROGRAM = REPO_ROOT / ".venv" / "bin" / "secantusd-py"
START_DEADLINE_SECONDS = 20
STOP_DEADLINE_SECONDS = 10


def _port_is_free(port):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


class MongoServer:
    """A SecantusDB process on 127.0.0.1 with its own storage folder."""

    def __init__(self, ports, storage):
        self.port = next((port for port in ports if _port_is_free(port)), None)
        if self.port is None:
            raise RuntimeError(f"no free port in {ports!r} for the test MongoDB server")
        self.storage = storage
        self.log_path = storage.parent / f"secantusd-{self.port}.log"
        self.uri = f"mongodb://127.0.0.1:{self.port}/"
        self.process = None

    def start(self):
        self.storage.mkdir(parents=True, exist_ok=True)
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(
                [
                    str(SERVER_PROGRAM),
                    "--host",
                    "127.0.0.1",
                    "--port",
                    str(self.port),
                    "--storage-path",
                    str(self.storage),
                    "--standalone",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + START_DEADLINE_SECONDS
        while True:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"secantusd-py exited with {self.process.returncode}: "
                    f"{self.log_path.read_text(errors='replace')[-2000:]}"
                )
            try:
                client = pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=300)
                client.admin.command("ping")
                client.close()
                return self
            except pymongo.errors.PyMongoError:
                if time.monotonic() > deadline:
                    self.stop()
                    raise RuntimeError(
                        f"secantusd-py on port {self.port} did not answer ping within "
                        f"{START_DEADLINE_SECONDS} s"
                    ) from None
                time.sleep(0.1)

    def stop(self):
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=STOP_DEADLINE_SECONDS)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=STOP_DEADLINE_SECONDS)

    def client(self):
        return pymongo.MongoClient(self.uri, serverSelectionTimeoutMS=3000)


def start_server(tmp_path_factory, ports):
    storage = tmp_path_factory.mktemp("secantus") / "data"
    return MongoServer(ports, storage).start()


def run_module(module, args, capsys):
    """Run a module's main() with args and return its parsed JSON result."""
    with patch_module_args(args), pytest.raises(SystemExit):
        module.main()
    return json.loads(capsys.readouterr().out)


# Data ---------------------------------------------------------------------------

FIXED_UUID = uuid.UUID("5ec3c2cf-6a2a-4b1b-a654-4c66a575e0eb")


def every_type_documents():
    """Documents holding every BSON type the restore must keep byte for byte."""
    return [
        {"_id": ObjectId("65a1b2c3d4e5f60718293a4b"), "kind": "objectid"},
        {"_id": 1, "decimal": Decimal128("1234567890.123456789012345678901234")},
        {
            "_id": 2,
            "before_1970": datetime.datetime(1912, 6, 23, 4, 5, 6, 789000),
            "epoch": datetime.datetime(1970, 1, 1),
            "negative_ms": datetime.datetime(1969, 12, 31, 23, 59, 59, 999000),
        },
        {"_id": 3, "int64": Int64(2**62 + 7), "int32": -(2**31), "double": -0.0},
        {
            "_id": 4,
            "generic": Binary(b"\x00\x01\xff", 0),
            "uuid": Binary.from_uuid(FIXED_UUID, UuidRepresentation.STANDARD),
            "md5": Binary(b"0123456789abcdef", 5),
            "user_defined": Binary(b"\xde\xad\xbe\xef", 128),
        },
        {
            "_id": 5,
            "nested": {"a": [1, [2, [3, {"b": [None, {"c": []}]}]]], "d": {}},
            "empty_list": [],
        },
        {"_id": 6, "regex": Regex("^a.*b$", "imsx")},
        {"_id": 7, "timestamp": Timestamp(1700000000, 42)},
        {"_id": 8, "min": MinKey(), "max": MaxKey()},
        {"_id": 9, "null": None, "bool": False, "string": "ünïcødé \u0000 end"},
        {"_id": "string-id", "value": 1},
        {"_id": Int64(-5), "value": 2},
    ]


def raw_documents(collection):
    """Return a collection's documents as raw BSON bytes sorted by _id."""
    raw = collection.with_options(
        codec_options=bson.CodecOptions(document_class=RawBSONDocument)
    )
    documents = list(raw.find())
    documents.sort(key=lambda document: bson.encode({"k": document["_id"]}))
    return [document.raw for document in documents]


def index_summary(collection):
    return sorted(
        (index["name"], list(index["key"].items()), bool(index.get("unique")))
        for index in collection.list_indexes()
    )


def database_state(client, name):
    """Return every collection's raw documents and indexes, to compare before/after."""
    database = client[name]
    return {
        collection: (
            raw_documents(database[collection]),
            index_summary(database[collection]),
        )
        for collection in sorted(database.list_collection_names())
    }


def unique_name(request):
    """Return a database name made from the test's name, unique per test."""
    name = re.sub(r"[^A-Za-z0-9]", "_", request.node.name)
    if len(name) <= 40:
        return name
    digest = hashlib.sha256(name.encode()).hexdigest()[:8]
    return f"{name[:31]}_{digest}"


def warning_texts(result):
    """Return the warning messages of a module result (ansible-core 2.19 shape)."""
    texts = []
    for warning in result.get("warnings", []):
        if isinstance(warning, dict):
            texts.append(warning.get("event", {}).get("msg", warning))
        else:
            texts.append(warning)
    return texts
