"""MongoDB and Redis access of the TrueBond-like backend.

Users and messages live in MongoDB, sessions, profiles and counters in Redis. The
clients connect lazily on first use, so that a store that is down makes requests and
health checks fail instead of stopping the app. pymongo and redis-py are imported only
when MONGODB_URI or REDIS_URL is set, so that the app runs without them otherwise.

Schema by release:

- Every release creates the indexes of its INDEXES list at start when they are missing.
- A release with "migrates": true in release.json (v1.0.0) runs MIGRATION_ID once at
  start: it sets users.profile_version, fills the new collection user_preferences,
  replaces the messages index room_1_created_at_-1 by
  room_1_sender_id_1_created_at_-1, writes Redis keys user:v2:<id> and
  app:schema_version, and records itself in schema_migrations.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import re
import secrets
import threading
import uuid
from contextlib import contextmanager

SESSION_TTL_SECONDS = 3600
PASSWORD_ITERATIONS = 20000
DEFAULT_DATABASE = "truebond"
SEARCH_LIMIT = 50
HEALTH_CHECK_SECONDS = 1.0
MIGRATION_ID = "20261201-v1.0.0-user-preferences"
PROFILE_VERSION = 2

# (collection, index name, keys, options). The v0.9.x list matches the indexes that
# tests/stack/datastores.py seeds.
INDEXES_V09 = [
    ("users", "email_1", [("email", 1)], {"unique": True}),
    ("messages", "room_1_created_at_-1", [("room", 1), ("created_at", -1)], {}),
    ("messages", "sender_id_1", [("sender_id", 1)], {}),
]
INDEXES_V10 = [
    ("users", "email_1", [("email", 1)], {"unique": True}),
    ("messages", "sender_id_1", [("sender_id", 1)], {}),
    (
        "messages",
        "room_1_sender_id_1_created_at_-1",
        [("room", 1), ("sender_id", 1), ("created_at", -1)],
        {},
    ),
    ("user_preferences", "user_id_1", [("user_id", 1)], {"unique": True}),
]
DROPPED_BY_MIGRATION = ("messages", "room_1_created_at_-1")


class StoreError(Exception):
    """A MongoDB or Redis operation failed, or the store is not configured."""

    def __init__(self, store: str, detail: str):
        super().__init__(f"{store}: {detail}")
        self.store = store
        self.detail = detail


class EmailTaken(Exception):
    """A signup used an email address that another user has."""


def utc_now() -> datetime.datetime:
    # BSON dates have millisecond precision, so round here to return what is stored.
    now = datetime.datetime.now(datetime.UTC)
    return now.replace(microsecond=now.microsecond // 1000 * 1000)


def hash_password(password: str, salt: bytes, iterations: int) -> bytes:
    return hashlib.pbkdf2_hmac("sha256", password.encode(), salt, iterations)


class Stores:
    """Lazy MongoDB and Redis clients and the app's operations on them."""

    def __init__(self, mongodb_uri: str | None, redis_url: str | None, version: str):
        self.mongodb_uri = mongodb_uri
        self.redis_url = redis_url
        self.version = version
        self._lock = threading.Lock()
        self._mongo_client = None
        self._redis_client = None

    # Connections

    def database(self):
        if not self.mongodb_uri:
            raise StoreError("mongodb", "not configured (MONGODB_URI is not set)")
        with self._lock:
            if self._mongo_client is None:
                import pymongo

                self._mongo_client = pymongo.MongoClient(
                    self.mongodb_uri,
                    connect=False,
                    serverSelectionTimeoutMS=2000,
                    connectTimeoutMS=2000,
                    socketTimeoutMS=5000,
                    uuidRepresentation="standard",
                    tz_aware=True,
                )
        return self._mongo_client.get_default_database(DEFAULT_DATABASE)

    def cache(self):
        if not self.redis_url:
            raise StoreError("redis", "not configured (REDIS_URL is not set)")
        with self._lock:
            if self._redis_client is None:
                import redis

                self._redis_client = redis.Redis.from_url(
                    self.redis_url,
                    socket_timeout=2,
                    socket_connect_timeout=2,
                    decode_responses=True,
                )
        return self._redis_client

    @contextmanager
    def errors_as_store_error(self):
        """Turn pymongo and redis-py errors inside the block into StoreError."""
        try:
            yield
        except StoreError:
            raise
        except Exception as error:
            store = error_store(error)
            if store is None:
                raise
            raise StoreError(store, f"{type(error).__name__}: {error}") from error

    # Health

    def check(self, store: str) -> tuple[str, str | None]:
        """Return ("ok" | "failing" | "not configured", error text or None)."""
        configured = self.mongodb_uri if store == "mongodb" else self.redis_url
        if not configured:
            return "not configured", None
        try:
            with self.errors_as_store_error():
                if store == "mongodb":
                    import pymongo

                    # A short deadline, so that a server that is down fails the
                    # check within HEALTH_CHECK_SECONDS, not serverSelectionTimeoutMS.
                    with pymongo.timeout(HEALTH_CHECK_SECONDS):
                        self.database().command("ping")
                else:
                    self.cache().ping()
        except StoreError as error:
            return "failing", error.detail
        return "ok", None

    # Users and sessions

    def create_user(self, email: str, password: str, name: str) -> str:
        database = self.database()
        import pymongo.errors
        from bson import Binary
        from bson.binary import UuidRepresentation

        salt = secrets.token_bytes(16)

        document = {
            "email": email,
            "name": name,
            "password": {
                "algorithm": "pbkdf2_sha256",
                "iterations": PASSWORD_ITERATIONS,
                "salt": Binary(salt),
                "hash": Binary(hash_password(password, salt, PASSWORD_ITERATIONS)),
            },
            "uuid": Binary.from_uuid(uuid.uuid4(), UuidRepresentation.STANDARD),
            "created_at": utc_now(),
        }
        with self.errors_as_store_error():
            try:
                user_id = str(database.users.insert_one(document).inserted_id)
            except pymongo.errors.DuplicateKeyError as error:
                raise EmailTaken(email) from error
            cache = self.cache()
            cache.hset(
                f"user:{user_id}:profile",
                mapping={
                    "email": email,
                    "name": name,
                    "created_at": document["created_at"].isoformat(),
                },
            )
            cache.incr("stats:signups")
        return user_id

    def authenticate(self, email: str, password: str) -> dict | None:
        """Return the user whose email and password match, or None."""
        with self.errors_as_store_error():
            user = self.database().users.find_one({"email": email})
        if user is None or not isinstance(user.get("password"), dict):
            return None
        stored = user["password"]
        candidate = hash_password(
            password, bytes(stored["salt"]), int(stored["iterations"])
        )
        if not hmac.compare_digest(candidate, bytes(stored["hash"])):
            return None
        return user

    def create_session(self, user: dict) -> str:
        token = secrets.token_urlsafe(32)
        session = {"user_id": str(user["_id"]), "email": user["email"]}
        session["name"] = user.get("name", "")
        with self.errors_as_store_error():
            self.cache().set(
                f"session:{token}", json.dumps(session), ex=SESSION_TTL_SECONDS
            )
        return token

    def session(self, token: str) -> dict | None:
        """Return the session of token, or None when it is unknown or expired."""
        if not token:
            return None
        with self.errors_as_store_error():
            text = self.cache().get(f"session:{token}")
        return json.loads(text) if text else None

    # Messages

    def add_message(self, session: dict, room: str, text: str) -> dict:
        from bson import ObjectId

        document = {
            "room": room,
            "text": text,
            "sender": session["email"],
            "sender_id": ObjectId(session["user_id"]),
            "created_at": utc_now(),
        }
        with self.errors_as_store_error():
            self.database().messages.insert_one(document)
            self.cache().incr(f"counter:messages:{room}")
        return message_view(document)

    def search(self, query: str, room: str | None) -> list[dict]:
        selector = {"text": {"$regex": re.escape(query), "$options": "i"}}
        if room:
            selector["room"] = room
        with self.errors_as_store_error():
            cursor = (
                self.database()
                .messages.find(selector)
                .sort("created_at", -1)
                .limit(SEARCH_LIMIT)
            )
            return [message_view(document) for document in cursor]

    # Start-up

    def prepare(self, migrates: bool) -> list[str]:
        """Run the release's start-up steps and return what they changed.

        Steps that find their work done change nothing, so that a restart is safe.
        """
        if not self.mongodb_uri:
            return []
        changes = []
        with self.errors_as_store_error():
            if migrates:
                changes += self.migrate()
            changes += self.ensure_indexes(INDEXES_V10 if migrates else INDEXES_V09)
        return changes

    def ensure_indexes(self, indexes) -> list[str]:
        database = self.database()
        created = []
        for collection, name, keys, options in indexes:
            if name not in database[collection].index_information():
                database[collection].create_index(keys, name=name, **options)
                created.append(f"created index {collection}.{name}")
        return created

    def migrate(self) -> list[str]:
        """Run MIGRATION_ID unless schema_migrations records it as applied."""
        database = self.database()
        if database.schema_migrations.find_one({"_id": MIGRATION_ID}) is not None:
            return []
        started_at = utc_now()

        updated = database.users.update_many(
            {"profile_version": {"$exists": False}},
            {"$set": {"profile_version": PROFILE_VERSION}},
        ).modified_count
        users = list(database.users.find({}, {"_id": 1, "email": 1, "name": 1}))
        for user in users:
            database.user_preferences.update_one(
                {"user_id": user["_id"]},
                {
                    "$setOnInsert": {
                        "user_id": user["_id"],
                        "theme": "light",
                        "language": "en",
                        "notifications": {"email": True, "push": False},
                        "created_at": started_at,
                    }
                },
                upsert=True,
            )

        collection, index = DROPPED_BY_MIGRATION
        if index in database[collection].index_information():
            database[collection].drop_index(index)
        self.ensure_indexes(INDEXES_V10)

        if self.redis_url:
            pipeline = self.cache().pipeline(transaction=False)
            for user in users:
                profile = {"email": user.get("email"), "name": user.get("name")}
                profile["profile_version"] = PROFILE_VERSION
                pipeline.set(f"user:v2:{user['_id']}", json.dumps(profile))
            pipeline.set("app:schema_version", str(PROFILE_VERSION))
            pipeline.execute()

        # The record comes last, so that a migration that failed half-way runs again.
        database.schema_migrations.insert_one(
            {
                "_id": MIGRATION_ID,
                "version": self.version,
                "started_at": started_at,
                "applied_at": utc_now(),
                "users_updated": updated,
                "steps": [
                    "users: $set profile_version",
                    "user_preferences: one document per user",
                    f"{collection}: drop index {index}",
                    "messages: create index room_1_sender_id_1_created_at_-1",
                    "redis: user:v2:<id> and app:schema_version",
                ],
            }
        )
        summary = (
            f"migration {MIGRATION_ID}: profile_version set on {updated} users,"
            f" {len(users)} user_preferences, index {collection}.{index} replaced"
        )
        return [summary]


def message_view(document: dict) -> dict:
    return {
        "id": str(document["_id"]),
        "room": document["room"],
        "text": document["text"],
        "sender": document.get("sender", ""),
    }


def error_store(error: Exception) -> str | None:
    """Return "mongodb" or "redis" for an error of pymongo or redis-py, else None."""
    module = type(error).__module__ or ""
    if module.startswith(("pymongo", "bson")):
        return "mongodb"
    if module.startswith("redis"):
        return "redis"
    return None
