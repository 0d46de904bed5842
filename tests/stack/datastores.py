# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Provision, seed and inspect the drill stack's MongoDB stand-in and Redis.

stack.sh runs this with the repository's virtualenv Python, which has pymongo and
redis-py. The connection strings come from the environment that stack.sh sets:

- MONGODB_ADMIN_URI: the drill's root user (authSource=admin).
- MONGODB_URI: the app's user, the same value as in .env.production.
- REDIS_URL: redis://:PASSWORD@127.0.0.1:6379/0, the same value as in .env.production.

Commands:

- provision-mongodb: create the admin and app users on a server that runs without
  --auth. Users that exist already are kept.
- wait-mongodb SECONDS LOG: poll until the server accepts the admin user's ping, or
  exit with an error that names LOG.
- seed [--if-empty]: replace the data of both stores with the drill data set. With
  --if-empty, only a store that contains no data is seeded.
- data-status: print a JSON summary of both stores (counts, indexes, migrations, keys).

The data set is deterministic: fixed ObjectIds, dates and binary values, so that two
seeds produce the same documents byte for byte. Only the session TTLs depend on the
time of the seed.
"""

from __future__ import annotations

import datetime
import hashlib
import json
import os
import sys
import time
import uuid
from urllib.parse import unquote, urlsplit

import pymongo
import redis
from bson import Binary, Decimal128, Int64, ObjectId
from bson.binary import UuidRepresentation

DATABASE = "truebond"
ROOMS = ("general", "random", "ops")
USER_COUNT = 20
MESSAGE_COUNT = 120
SESSION_COUNT = 5
SESSION_TTL_SECONDS = 3600
# Every seeded user logs in with this password.
SEED_PASSWORD = "drill-seed-password"
# Drill-only hashing cost: enough to be a real PBKDF2 hash, low enough to seed fast.
PASSWORD_ITERATIONS = 20000
SEED_MARKER_KEY = "drill:seed"
SEED_VERSION = 1

# The indexes that v0.9.x of the app create at start, with their MongoDB names. The
# app (server.py) defines the same list, because the image carries only server.py.
INDEXES_V09 = {
    "users": [("email_1", [("email", 1)], {"unique": True})],
    "messages": [
        ("room_1_created_at_-1", [("room", 1), ("created_at", -1)], {}),
        ("sender_id_1", [("sender_id", 1)], {}),
    ],
}

BASE_TIME = datetime.datetime(2026, 11, 2, 9, 30, 0, 125000)


def fail(message: str) -> None:
    print(f"datastores.py: {message}", file=sys.stderr)
    sys.exit(1)


def mongo_client(uri: str, timeout_ms: int = 3000) -> pymongo.MongoClient:
    return pymongo.MongoClient(
        uri,
        serverSelectionTimeoutMS=timeout_ms,
        connectTimeoutMS=timeout_ms,
        uuidRepresentation="standard",
    )


def redis_client(url: str) -> redis.Redis:
    return redis.Redis.from_url(
        url, socket_timeout=3, socket_connect_timeout=3, decode_responses=True
    )


def environment(name: str) -> str:
    value = os.environ.get(name, "")
    if not value:
        fail(f"the environment variable {name} is missing; run this through stack.sh")
    return value


def credentials(uri: str) -> tuple[str, str]:
    """Return the user name and password of a mongodb:// URI."""
    parts = urlsplit(uri)
    if not parts.username or not parts.password:
        fail(
            f"the MongoDB URI for {parts.hostname}:{parts.port} has no user or password"
        )
    return unquote(parts.username), unquote(parts.password)


def provision_mongodb() -> None:
    """Create the drill's admin user and the app's user on a server without --auth."""
    admin_user, admin_password = credentials(environment("MONGODB_ADMIN_URI"))
    app_user, app_password = credentials(environment("MONGODB_URI"))
    parts = urlsplit(environment("MONGODB_URI"))
    client = mongo_client(f"mongodb://{parts.hostname}:{parts.port}/")
    users_to_create = {
        admin_user: (admin_password, [{"role": "root", "db": "admin"}]),
        app_user: (
            app_password,
            [
                {"role": "readWrite", "db": DATABASE},
                {"role": "dbAdmin", "db": DATABASE},
            ],
        ),
    }
    existing = {user["user"] for user in client.admin.command("usersInfo")["users"]}
    for name, (password, roles) in users_to_create.items():
        if name in existing:
            continue
        client.admin.command("createUser", name, pwd=password, roles=roles)
        print(f"created MongoDB user {name} (authSource=admin)")


def wait_mongodb(seconds: float, log_file: str) -> None:
    """Ping the server as the admin user until it responds or the deadline passes."""
    deadline = time.monotonic() + seconds
    client = mongo_client(environment("MONGODB_ADMIN_URI"), timeout_ms=500)
    last_error = None
    while time.monotonic() < deadline:
        try:
            client.admin.command("ping")
            return
        except pymongo.errors.PyMongoError as error:
            last_error = error
            time.sleep(0.1)
    fail(
        f"the MongoDB stand-in did not answer a ping within {seconds:g} s"
        f" (last error: {last_error}); see its log {log_file}"
    )


def fixed_object_id(kind: int, index: int) -> ObjectId:
    """Return a deterministic ObjectId: a fixed timestamp, the kind and the index."""
    return ObjectId(f"6a1f0000{kind:08x}{index:08x}")


def password_document(email: str, password: str) -> dict:
    salt = hashlib.sha256(("salt:" + email).encode()).digest()[:16]
    digest = hashlib.pbkdf2_hmac("sha256", password.encode(), salt, PASSWORD_ITERATIONS)
    return {
        "algorithm": "pbkdf2_sha256",
        "iterations": PASSWORD_ITERATIONS,
        "salt": Binary(salt),
        "hash": Binary(digest),
    }


def seed_users() -> list[dict]:
    users = []
    for index in range(USER_COUNT):
        email = f"user{index:02d}@drill.truebond.test"
        # The first five users are born before 1970, so negative dates are in the set.
        birth_year = 1955 + index * 3
        users.append(
            {
                "_id": fixed_object_id(1, index),
                "email": email,
                "name": f"Drill User {index:02d}",
                "password": password_document(email, SEED_PASSWORD),
                "uuid": Binary.from_uuid(
                    uuid.UUID(int=0x1000 + index), UuidRepresentation.STANDARD
                ),
                "created_at": BASE_TIME + datetime.timedelta(days=index, seconds=index),
                "birth_date": datetime.datetime(birth_year, 1 + index % 12, 1 + index),
                "balance": Decimal128(f"{index * 12.5:.2f}"),
                "login_count": Int64(2**40 + index),
                "avatar": Binary(bytes(range(index, index + 8))),
                "tags": ["drill", ROOMS[index % len(ROOMS)]],
                "profile": {
                    "bio": f"Seeded user {index}",
                    "links": [["site", f"https://drill.truebond.test/u/{index}"]],
                    "scores": [[index, index + 1], [index * 2]],
                },
                "deleted_at": None,
                "verified": index % 2 == 0,
            }
        )
    return users


def seed_messages(users: list[dict]) -> list[dict]:
    messages = []
    for index in range(MESSAGE_COUNT):
        sender = users[index % len(users)]
        room = ROOMS[index % len(ROOMS)]
        messages.append(
            {
                "_id": fixed_object_id(2, index),
                "room": room,
                "text": f"seed message {index:03d} in {room} – ünïcödé ✓",
                "sender": sender["email"],
                "sender_id": sender["_id"],
                "created_at": BASE_TIME + datetime.timedelta(minutes=index),
                "seq": Int64(2**33 + index),
                "score": index / 7,
                "price": Decimal128(f"{index}.{index % 100:02d}"),
                "checksum": Binary(hashlib.md5(str(index).encode()).digest(), 5),
                "attachment": Binary(bytes([index % 256]) * 4, 0),
                "reactions": [["+1", index % 3], ["tada", [index, {"by": "seed"}]]],
                "edited": index % 5 == 0,
            }
        )
    return messages


def create_v09_indexes(database) -> None:
    for collection, indexes in INDEXES_V09.items():
        for name, keys, options in indexes:
            database[collection].create_index(keys, name=name, **options)


def seed_mongodb(client: pymongo.MongoClient) -> dict:
    client.drop_database(DATABASE)
    database = client[DATABASE]
    users = seed_users()
    messages = seed_messages(users)
    database.users.insert_many(users)
    database.messages.insert_many(messages)
    create_v09_indexes(database)
    return {"users": len(users), "messages": len(messages)}


def seed_redis(client: redis.Redis) -> dict:
    client.flushdb()
    users = seed_users()
    pipe = client.pipeline(transaction=False)
    for user in users:
        user_id = str(user["_id"])
        pipe.hset(
            f"user:{user_id}:profile",
            mapping={
                "email": user["email"],
                "name": user["name"],
                "created_at": user["created_at"].isoformat() + "Z",
            },
        )

    for index, room in enumerate(ROOMS):
        room_messages = len(range(index, MESSAGE_COUNT, len(ROOMS)))
        pipe.set(f"counter:messages:{room}", room_messages)
        pipe.rpush(f"room:{room}:recent", *[f"seed message {n:03d}" for n in range(3)])
    pipe.set("stats:signups", len(users))
    pipe.zadd(
        "leaderboard", {str(user["_id"]): index for index, user in enumerate(users)}
    )
    pipe.sadd("rooms", *ROOMS)

    for index in range(SESSION_COUNT):
        user = users[index]
        session = {
            "user_id": str(user["_id"]),
            "email": user["email"],
            "name": user["name"],
        }
        pipe.set(
            f"session:seed-token-{index:02d}",
            json.dumps(session),
            ex=SESSION_TTL_SECONDS,
        )

    pipe.set(
        SEED_MARKER_KEY,
        json.dumps({"seed_version": SEED_VERSION, "users": len(users)}, sort_keys=True),
    )
    pipe.execute()
    # Write dump.rdb now, so that the file on disk contains the seed as well. A
    # background save that a save point or a snapshot started makes SAVE fail, so
    # wait for it to end first (at most 30 s).
    deadline = time.monotonic() + 30
    while client.info("persistence").get("rdb_bgsave_in_progress"):
        if time.monotonic() > deadline:
            raise RuntimeError("a background save of Redis did not end within 30 s")
        time.sleep(0.1)
    try:
        client.save()
    except redis.exceptions.ResponseError as error:
        if "in progress" not in str(error):
            raise
        # A save started between the check and SAVE; the scheduled one also writes the seed.
        client.bgsave(schedule=True)
    return {"keys": client.dbsize(), "sessions": SESSION_COUNT}


def mongodb_is_empty(client: pymongo.MongoClient) -> bool:
    return not client[DATABASE].list_collection_names()


def seed(if_empty: bool) -> None:
    mongo = mongo_client(environment("MONGODB_ADMIN_URI"))
    cache = redis_client(environment("REDIS_URL"))
    try:
        if not if_empty or mongodb_is_empty(mongo):
            counts = seed_mongodb(mongo)
            print(
                f"seeded MongoDB database {DATABASE}: {counts['users']} users,"
                f" {counts['messages']} messages"
            )
    except pymongo.errors.PyMongoError as error:
        fail(f"seeding MongoDB at {mongo.address} failed: {error}")
    try:
        if not if_empty or cache.dbsize() == 0:
            counts = seed_redis(cache)
            print(
                f"seeded Redis db 0: {counts['keys']} keys, {counts['sessions']}"
                f" sessions with a {SESSION_TTL_SECONDS} s TTL"
            )
    except redis.RedisError as error:
        fail(f"seeding Redis failed: {error}")


def mongodb_status(client: pymongo.MongoClient) -> dict:
    database = client[DATABASE]
    collections = {}
    for name in sorted(database.list_collection_names()):
        collections[name] = {
            "count": database[name].count_documents({}),
            "indexes": sorted(database[name].index_information()),
        }
    migrations = []
    if "schema_migrations" in collections:
        for record in database.schema_migrations.find({}, {"_id": 1, "version": 1}):
            migrations.append({"id": record["_id"], "version": record.get("version")})
    return {"database": DATABASE, "collections": collections, "migrations": migrations}


def redis_status(client: redis.Redis) -> dict:
    prefixes: dict[str, int] = {}
    for key in client.scan_iter(count=1000):
        prefix = key.split(":", 1)[0]
        prefixes[prefix] = prefixes.get(prefix, 0) + 1
    info = client.info("keyspace").get("db0", {"keys": 0, "expires": 0})
    return {
        "keys": info["keys"],
        "expires": info["expires"],
        "prefixes": dict(sorted(prefixes.items())),
        "seed": client.get(SEED_MARKER_KEY),
        "schema_version": client.get("app:schema_version"),
    }


def data_status() -> None:
    status = {}
    try:
        status["mongodb"] = mongodb_status(
            mongo_client(environment("MONGODB_ADMIN_URI"))
        )
    except pymongo.errors.PyMongoError as error:
        status["mongodb"] = {"error": str(error)}
    try:
        status["redis"] = redis_status(redis_client(environment("REDIS_URL")))
    except redis.RedisError as error:
        status["redis"] = {"error": str(error)}
    print(json.dumps(status, indent=2, sort_keys=True))
    if any("error" in part for part in status.values()):
        sys.exit(1)


def main(argv: list[str]) -> None:
    usage = (
        "usage: datastores.py provision-mongodb | wait-mongodb SECONDS LOG"
        " | seed [--if-empty] | data-status"
    )
    if not argv:
        fail(usage)
    command, arguments = argv[0], argv[1:]
    if command == "provision-mongodb" and not arguments:
        provision_mongodb()
    elif command == "wait-mongodb" and len(arguments) == 2:
        wait_mongodb(float(arguments[0]), arguments[1])
    elif command == "seed" and arguments in ([], ["--if-empty"]):
        seed(if_empty=bool(arguments))
    elif command == "data-status" and not arguments:
        data_status()
    else:
        fail(usage)


if __name__ == "__main__":
    main(sys.argv[1:])
