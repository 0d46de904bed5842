# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration tests of the drill stack's data stores and the app's critical paths.

The MongoDB stand-in (SecantusDB) and Redis run as processes that tests/stack/stack.sh
starts, and the backend reads and writes them. These tests check the stores
themselves (authentication, the seeded data set), v1.0.0's start-up migration, the
critical paths of v0.9.5 (sign up, log in, send a message, search, WebSocket), the
broken auth of v1.0.0, and the store checks of /api/health/detailed.

A module-scoped fixture leaves the stack at v1.0.0 with freshly seeded (and thus
migrated) data, as a cold `stack.sh up` does.
"""

from __future__ import annotations

import base64
import datetime
import hashlib
import json
import secrets
import socket
import stat
import struct
import urllib.error
import urllib.request
import uuid

import pymongo
import pytest
import redis
from bson import Binary, Decimal128, Int64, ObjectId
from bson.codec_options import CodecOptions
from bson.raw_bson import RawBSONDocument
from drill_helpers import (
    BACKEND_URL,
    DRILL_HOME,
    ENV_PRODUCTION,
    STACK_SCRIPT,
    fetch_json,
    reset_stack,
    run_checked,
)

DATASTORES_ENV = DRILL_HOME / "datastores.env"
SEED_PASSWORD = "drill-seed-password"
SEEDED_EMAIL = "user03@drill.truebond.test"
SESSION_TTL_SECONDS = 3600
V09_INDEXES = {
    "users": ["_id_", "email_1"],
    "messages": ["_id_", "room_1_created_at_-1", "sender_id_1"],
}
V10_INDEXES = {
    "users": ["_id_", "email_1"],
    "messages": ["_id_", "room_1_sender_id_1_created_at_-1", "sender_id_1"],
    "user_preferences": ["_id_", "user_id_1"],
}
MIGRATION_ID = "20261201-v1.0.0-user-preferences"
WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"


def stack(*arguments: str) -> str:
    return run_checked(["bash", str(STACK_SCRIPT), *arguments])


def datastore_settings() -> dict[str, str]:
    settings = {}
    for line in DATASTORES_ENV.read_text().splitlines():
        name, _, value = line.partition("=")
        settings[name] = value
    return settings


def admin_database() -> pymongo.database.Database:
    client = pymongo.MongoClient(
        datastore_settings()["MONGODB_ADMIN_URI"], serverSelectionTimeoutMS=5000
    )
    return client["truebond"]


def redis_client() -> redis.Redis:
    return redis.Redis.from_url(
        datastore_settings()["REDIS_URL"], socket_timeout=5, decode_responses=True
    )


def set_and_seed(version: str) -> None:
    """Put the backend on ``version`` and reseed, so that its start-up steps ran."""
    stack("start-stores")
    reset_stack(version)
    stack("seed")


def request_json(
    method: str, path: str, body: dict | None = None, token: str | None = None
) -> tuple[int, dict]:
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(BACKEND_URL + path, data=data, method=method)
    if data is not None:
        request.add_header("Content-Type", "application/json")
    if token is not None:
        request.add_header("Authorization", f"Bearer {token}")
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


class WebSocketClient:
    """Minimal RFC 6455 client: the handshake, reading text frames, a masked close."""

    def __init__(self, path: str):
        self.sock = socket.create_connection(("127.0.0.1", 18080), timeout=10)
        key = base64.b64encode(secrets.token_bytes(16)).decode()
        self.sock.sendall(
            (
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1:18080\r\n"
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n\r\n"
            ).encode()
        )
        self.buffer = b""
        head = self._read_until(b"\r\n\r\n").decode("latin-1")
        self.status = int(head.split(" ", 2)[1])
        self.headers = {}
        for line in head.split("\r\n")[1:]:
            name, _, value = line.partition(":")
            self.headers[name.strip().lower()] = value.strip()
        digest = hashlib.sha1((key + WEBSOCKET_GUID).encode()).digest()
        self.expected_accept = base64.b64encode(digest).decode()

    def _read_exact(self, count: int) -> bytes:
        while len(self.buffer) < count:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def _read_until(self, marker: bytes) -> bytes:
        while marker not in self.buffer:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise EOFError("the server closed the connection")
            self.buffer += chunk
        head, _, self.buffer = self.buffer.partition(marker)
        return head

    def read_frame(self) -> tuple[int, bytes]:
        first, second = self._read_exact(2)
        assert not second & 0x80, "server frames must not be masked"
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self._read_exact(2))
        elif length == 127:
            (length,) = struct.unpack("!Q", self._read_exact(8))
        return first & 0x0F, self._read_exact(length)

    def read_json(self) -> dict:
        opcode, payload = self.read_frame()
        assert opcode == 0x1, f"expected a text frame, got opcode {opcode:#x}"
        return json.loads(payload)

    def send_masked(self, opcode: int, payload: bytes) -> None:
        mask = secrets.token_bytes(4)
        masked = bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))
        self.sock.sendall(bytes([0x80 | opcode, 0x80 | len(payload)]) + mask + masked)

    def close(self) -> None:
        try:
            self.send_masked(0x8, struct.pack("!H", 1000))
            opcode, _ = self.read_frame()
            assert opcode == 0x8
        finally:
            self.sock.close()


@pytest.fixture(scope="module", autouse=True)
def leave_stack_seeded_on_v100(drill_stack):
    yield
    set_and_seed("v1.0.0")


def test_stores_reject_clients_without_credentials():
    settings = datastore_settings()
    anonymous = pymongo.MongoClient("127.0.0.1", 27017, serverSelectionTimeoutMS=5000)
    with pytest.raises(pymongo.errors.OperationFailure):
        anonymous["truebond"].users.count_documents({})
    with pytest.raises(redis.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=6379, socket_timeout=5).get("drill:seed")
    app = pymongo.MongoClient(settings["MONGODB_URI"], serverSelectionTimeoutMS=5000)
    assert app.get_default_database().command("ping")["ok"] == 1
    assert redis_client().ping() is True


def test_credential_files_are_private():
    for path in (
        DATASTORES_ENV,
        ENV_PRODUCTION,
        DRILL_HOME / "redis" / "redis.conf",
    ):
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
    for folder in (DRILL_HOME / "mongodb", DRILL_HOME / "redis"):
        assert stat.S_IMODE(folder.stat().st_mode) == 0o700, folder


def test_env_production_matches_datastores_env():
    settings = datastore_settings()
    env_lines = ENV_PRODUCTION.read_text().splitlines()
    assert f"MONGODB_URI={settings['MONGODB_URI']}" in env_lines
    assert f"REDIS_URL={settings['REDIS_URL']}" in env_lines
    assert "authSource=admin" in settings["MONGODB_URI"]


def test_redis_runs_with_the_drill_config():
    client = redis_client()
    settings = datastore_settings()
    assert client.config_get("dir")["dir"] == settings["REDIS_DATA_DIR"]
    assert client.config_get("dbfilename")["dbfilename"] == "dump.rdb"
    assert client.config_get("appendonly")["appendonly"] == "no"
    assert client.config_get("save")["save"] != ""
    assert client.config_get("bind")["bind"] == "127.0.0.1"


def test_seed_writes_mixed_bson_types():
    set_and_seed("v0.9.5")
    database = admin_database()
    assert database.users.count_documents({}) == 20
    assert database.messages.count_documents({}) == 120
    user = database.users.find_one({"email": "user00@drill.truebond.test"})
    assert isinstance(user["_id"], ObjectId)
    assert isinstance(user["balance"], Decimal128)
    assert isinstance(user["login_count"], Int64)
    assert user["birth_date"] < datetime.datetime(1970, 1, 1)
    assert isinstance(user["uuid"], Binary)
    assert user["uuid"].subtype == 4
    assert user["uuid"].as_uuid() == uuid.UUID(int=0x1000)
    assert user["profile"]["scores"] == [[0, 1], [0]]
    assert user["deleted_at"] is None
    message = database.messages.find_one({"_id": ObjectId("6a1f00000000000200000005")})
    assert message["checksum"].subtype == 5
    assert isinstance(message["seq"], Int64)
    assert message["sender_id"] == ObjectId("6a1f00000000000100000005")
    assert "profile_version" not in user
    assert "user_preferences" not in database.list_collection_names()
    assert "schema_migrations" not in database.list_collection_names()
    for collection, names in V09_INDEXES.items():
        assert sorted(database[collection].index_information()) == names


def test_seed_is_byte_identical_each_time():
    stack("seed")
    raw = admin_database().with_options(
        codec_options=CodecOptions(document_class=RawBSONDocument)
    )
    first = {
        name: [doc.raw for doc in raw[name].find().sort("_id")] for name in V09_INDEXES
    }
    stack("seed")
    second = {
        name: [doc.raw for doc in raw[name].find().sort("_id")] for name in V09_INDEXES
    }
    assert first == second


def test_seed_writes_redis_keys():
    stack("seed")
    client = redis_client()
    profiles = list(client.scan_iter("user:*:profile"))
    assert len(profiles) == 20
    assert all(client.ttl(key) == -1 for key in profiles)
    assert client.hget("user:6a1f00000000000100000000:profile", "email") == (
        "user00@drill.truebond.test"
    )
    assert client.get("counter:messages:general") == "40"
    assert client.get("stats:signups") == "20"
    assert client.type("leaderboard") == "zset"
    assert client.type("room:general:recent") == "list"
    sessions = list(client.scan_iter("session:seed-token-*"))
    assert len(sessions) == 5
    assert all(0 < client.ttl(key) <= SESSION_TTL_SECONDS for key in sessions)
    assert json.loads(client.get("drill:seed")) == {"seed_version": 1, "users": 20}
    assert client.ttl("drill:seed") == -1


def test_v100_migration_changes_data():
    set_and_seed("v0.9.5")
    database = admin_database()
    client = redis_client()
    assert client.get("app:schema_version") is None
    reset_stack("v1.0.0")
    users = list(database.users.find())
    assert len(users) == 20
    assert all(user["profile_version"] == 2 for user in users)
    preferences = list(database.user_preferences.find())
    assert sorted(item["user_id"] for item in preferences) == sorted(
        user["_id"] for user in users
    )
    assert preferences[0]["theme"] == "light"
    for collection, names in V10_INDEXES.items():
        assert sorted(database[collection].index_information()) == names
    record = database.schema_migrations.find_one({"_id": MIGRATION_ID})
    assert record["version"] == "v1.0.0"
    assert record["users_updated"] == 20
    assert client.get("app:schema_version") == "2"
    assert len(list(client.scan_iter("user:v2:*"))) == 20
    profile = json.loads(client.get(f"user:v2:{users[0]['_id']}"))
    assert profile["email"] == users[0]["email"]


def test_v100_migration_runs_once():
    set_and_seed("v1.0.0")
    database = admin_database()
    before = database.schema_migrations.find_one({"_id": MIGRATION_ID})
    run_checked(["docker", "restart", "-t", "10", "truebond-backend"])
    reset_stack("v1.0.0")
    records = list(database.schema_migrations.find())
    assert len(records) == 1
    assert records[0]["applied_at"] == before["applied_at"]
    assert database.user_preferences.count_documents({}) == 20


def test_v09_start_recreates_its_index():
    set_and_seed("v1.0.0")
    reset_stack("v0.9.5")
    names = sorted(admin_database().messages.index_information())
    assert "room_1_created_at_-1" in names
    assert "room_1_sender_id_1_created_at_-1" in names


def test_v095_signup_login_message_search_websocket():
    set_and_seed("v0.9.5")
    email = f"probe-{secrets.token_hex(4)}@drill.truebond.test"
    status, body = request_json(
        "POST",
        "/api/auth/signup",
        {"email": email, "password": "probe-password", "name": "Probe"},
    )
    assert status == 201, body
    assert body["status"] == "created"
    assert ObjectId.is_valid(body["user_id"])
    status, body = request_json(
        "POST",
        "/api/auth/signup",
        {"email": email, "password": "other", "name": "Again"},
    )
    assert status == 409, body
    status, body = request_json(
        "POST", "/api/auth/login", {"email": email, "password": "wrong"}
    )
    assert status == 401, body
    status, body = request_json(
        "POST", "/api/auth/login", {"email": email, "password": "probe-password"}
    )
    assert status == 200, body
    token = body["token"]
    assert 0 < redis_client().ttl(f"session:{token}") <= SESSION_TTL_SECONDS

    status, body = request_json(
        "POST", "/api/messages", {"room": "ops", "text": "no token"}
    )
    assert status == 401, body
    websocket = WebSocketClient(f"/api/ws?token={token}")
    try:
        assert websocket.status == 101
        assert websocket.headers["sec-websocket-accept"] == websocket.expected_accept
        assert websocket.read_json() == {"type": "hello", "version": "v0.9.5"}
        text = f"critical path {secrets.token_hex(4)}"
        status, body = request_json(
            "POST", "/api/messages", {"room": "ops", "text": text}, token=token
        )
        assert status == 201, body
        message_id = body["id"]
        assert websocket.read_json() == {
            "type": "message",
            "id": message_id,
            "room": "ops",
            "text": text,
            "sender": email,
        }
    finally:
        websocket.close()

    query = text.split()[-1].upper()
    status, body = request_json("GET", f"/api/search?q={query}&room=ops", token=token)
    assert status == 200, body
    assert body["results"] == [
        {"id": message_id, "room": "ops", "text": text, "sender": email}
    ]
    status, body = request_json(
        "GET", f"/api/search?q={query}&room=general", token=token
    )
    assert body["results"] == []
    status, body = request_json("GET", f"/api/search?q={query}")
    assert status == 401, body


def test_v095_seeded_user_logs_in():
    set_and_seed("v0.9.5")
    status, body = request_json(
        "POST", "/api/auth/login", {"email": SEEDED_EMAIL, "password": SEED_PASSWORD}
    )
    assert status == 200, body
    status, body = request_json(
        "GET", "/api/search?q=seed+message+003", token=body["token"]
    )
    assert status == 200, body
    assert [result["id"] for result in body["results"]] == ["6a1f00000000000200000003"]


def test_v095_websocket_rejects_bad_token():
    set_and_seed("v0.9.5")
    websocket = WebSocketClient("/api/ws?token=not-a-session")
    try:
        assert websocket.status == 401
    finally:
        websocket.sock.close()


def test_v095_rejects_invalid_bodies():
    set_and_seed("v0.9.5")
    status, body = request_json("POST", "/api/auth/signup", {"email": "x@y"})
    assert status == 400
    assert body["error"] == "password must be a non-empty string"


def test_v100_signup_and_login_fail():
    set_and_seed("v1.0.0")
    status, body = request_json(
        "POST",
        "/api/auth/signup",
        {"email": "new@drill.truebond.test", "password": "p", "name": "New"},
    )
    assert status == 500, body
    status, body = request_json(
        "POST", "/api/auth/login", {"email": SEEDED_EMAIL, "password": SEED_PASSWORD}
    )
    assert status == 500, body
    assert body["error"] == "token signing key could not be loaded"


def test_health_detailed_reports_stores_ok():
    set_and_seed("v0.9.5")
    status, body = fetch_json("/api/health/detailed")
    assert status == 200, body
    assert body["checks"] == {
        "http": "ok",
        "auth": "ok",
        "mongodb": "ok",
        "redis": "ok",
    }


def test_health_detailed_reports_redis_down():
    set_and_seed("v0.9.5")
    try:
        stack("stop-store", "redis")
        status, body = fetch_json("/api/health/detailed")
        assert status == 503, body
        assert body["status"] == "degraded"
        assert body["checks"]["redis"] == "failing"
        assert body["checks"]["mongodb"] == "ok"
        assert "redis" in body["errors"]
        status, body = fetch_json("/api/health")
        assert status == 200, body
    finally:
        stack("start-stores")
    status, body = fetch_json("/api/health/detailed")
    assert status == 200, body
    assert body["checks"]["redis"] == "ok"


def test_data_status_lists_collections():
    set_and_seed("v1.0.0")
    status = json.loads(stack("data-status"))
    collections = status["mongodb"]["collections"]
    assert collections["users"]["count"] == 20
    assert collections["user_preferences"]["indexes"] == V10_INDEXES["user_preferences"]
    assert status["mongodb"]["migrations"] == [
        {"id": MIGRATION_ID, "version": "v1.0.0"}
    ]
    assert status["redis"]["schema_version"] == "2"


def test_stack_up_keeps_running_stack():
    set_and_seed("v1.0.0")
    output = stack("up", "v1.0.0")
    assert "built truebond-" not in output
    assert "seeded" not in output
    assert "listening on" not in output
