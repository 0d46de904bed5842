"""Record and compare the exact contents of the drill stack's MongoDB and Redis.

    datastate.py record ENV_FILE OUT.json    write the state to OUT.json
    datastate.py compare ENV_FILE REF.json [STORES]
                                             exit 1 and list the differences when the
                                             live state is not REF.json's; STORES is
                                             mongodb, redis or all (the default)

The connection strings come from MONGODB_URI and REDIS_URL in ENV_FILE (the drill's
.env.production). The state of MongoDB is, for each collection of the URI's database,
the SHA-256 of every document's raw BSON bytes by _id, plus the indexes (name, key,
unique). The state of Redis is, for each key, its type and the SHA-256 of its DUMP
payload. Comparing bytes means that a restore that changed a type (an Int64 that
came back as a double, a UUID that came back as a generic binary) is caught.

After a rollback, the verification's critical-path probe has written a probe account,
its messages and its session. Documents and keys whose bytes contain PROBE_MARKER are
therefore allowed as additions, and only as additions, apart from the Redis keys in
PROBE_CHANGED_KEYS.
"""

import hashlib
import json
import sys

import bson
import pymongo
import redis
from bson.raw_bson import RawBSONDocument

PROBE_MARKER = b"rollback-probe"
# Keys the probe changes without leaving its marker in them: its signup increments
# the signup counter, and its message adds its room to the set of rooms. Their bytes
# may differ; every other key must match.
PROBE_CHANGED_KEYS = {"stats:signups", "rooms"}


def read_env(path):
    values = {}
    with open(path, encoding="utf-8") as handle:
        for line in handle:
            line = line.strip()
            if line and not line.startswith("#") and "=" in line:
                key, _, value = line.partition("=")
                values[key.strip()] = value.strip()
    return values


def mongo_state(uri):
    client = pymongo.MongoClient(
        uri, serverSelectionTimeoutMS=5000, document_class=RawBSONDocument
    )
    try:
        database = client.get_default_database()
        state = {}
        for name in sorted(database.list_collection_names()):
            collection = database[name]
            documents = {}
            for document in collection.find({}):
                raw = document.raw
                # The _id's own BSON encoding names the document, whatever its type.
                key = bson.encode({"_id": document["_id"]}).hex()
                documents[key] = {
                    "sha256": hashlib.sha256(raw).hexdigest(),
                    "probe": PROBE_MARKER in raw,
                }
            indexes = sorted(
                (
                    {
                        "name": index["name"],
                        "key": [list(item) for item in index["key"].items()],
                        "unique": bool(index.get("unique", False)),
                    }
                    for index in collection.list_indexes()
                ),
                key=lambda index: index["name"],
            )
            state[name] = {"documents": documents, "indexes": indexes}
        return state
    finally:
        client.close()


def redis_state(url):
    client = redis.Redis.from_url(url, socket_timeout=5)
    try:
        state = {}
        for key in client.scan_iter(count=1000):
            payload = client.dump(key)
            if payload is None:
                continue
            name = key.decode("utf-8", errors="backslashreplace")
            state[name] = {
                "type": client.type(key).decode(),
                "sha256": hashlib.sha256(payload).hexdigest(),
                "probe": PROBE_MARKER in payload or PROBE_MARKER in key,
            }
        return state
    finally:
        client.close()


def record(env):
    return {
        "mongodb": mongo_state(env["MONGODB_URI"]),
        "redis": redis_state(env["REDIS_URL"]),
    }


def compare_items(label, reference, live, problems, may_change=()):
    for key, expected in reference.items():
        found = live.get(key)
        if found is None:
            problems.append(f"{label} {key}: missing")
        elif found["sha256"] != expected["sha256"] and key not in may_change:
            problems.append(f"{label} {key}: bytes differ")
    for key, found in live.items():
        if key not in reference and not found["probe"]:
            problems.append(f"{label} {key}: not in the reference")


def compare(reference, live, stores="all"):
    problems = []
    if stores in ("all", "redis"):
        compare_items(
            "redis key",
            reference["redis"],
            live["redis"],
            problems,
            may_change=PROBE_CHANGED_KEYS,
        )
    if stores not in ("all", "mongodb"):
        return problems
    for name in sorted(set(reference["mongodb"]) | set(live["mongodb"])):
        expected = reference["mongodb"].get(name)
        found = live["mongodb"].get(name)
        if expected is None:
            problems.append(f"collection {name}: not in the reference")
            continue
        if found is None:
            problems.append(f"collection {name}: missing")
            continue
        compare_items(
            f"document in {name}", expected["documents"], found["documents"], problems
        )
        if found["indexes"] != expected["indexes"]:
            problems.append(
                f"indexes of {name}: {found['indexes']} instead of {expected['indexes']}"
            )
    return problems


def main(argv):
    if len(argv) not in (4, 5) or argv[1] not in ("record", "compare"):
        sys.exit(__doc__)
    command, env_file, path = argv[1:4]
    stores = argv[4] if len(argv) == 5 else "all"
    if stores not in ("all", "mongodb", "redis"):
        sys.exit(f"STORES must be mongodb, redis or all, got {stores!r}")
    env = read_env(env_file)
    live = record(env)
    if command == "record":
        with open(path, "w", encoding="utf-8") as handle:
            json.dump(live, handle, indent=1, sort_keys=True)
        counts = {
            name: len(item["documents"]) for name, item in live["mongodb"].items()
        }
        print(json.dumps({"mongodb": counts, "redis_keys": len(live["redis"])}))
        return 0
    with open(path, encoding="utf-8") as handle:
        reference = json.load(handle)
    problems = compare(reference, live, stores)
    for problem in problems[:50]:
        print(problem)
    if len(problems) > 50:
        print(f"... and {len(problems) - 50} more")
    if problems:
        return 1
    print("live data matches the reference byte for byte")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv))
