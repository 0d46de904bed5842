# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: redis_verify
short_description: Check a restored Redis against its snapshot
description:
  - Waits until Redis replies to PING and has finished loading its data, then compares
    it with C(snapshot.json) in O(src) as written by
    M(truebond.rollback.redis_snapshot).
  - Key count per database. A database may hold fewer keys than recorded, because
    keys with a TTL can expire between the snapshot and the check (Redis drops
    expired keys while it loads the RDB file, and later). So the check accepts from
    C(keys - expires) up to C(keys) keys, where C(keys) and C(expires) are the
    recorded counts. More keys than recorded, or a database that the snapshot does
    not have, fail the check.
  - Sample keys. Every recorded sample key (a key without a TTL) must exist, and the
    SHA-256 of its type and value must equal the recorded C(value_sha256). Members
    of sets and fields of hashes are sorted first, because Redis returns them in
    another order after it loads the RDB file. A snapshot without C(value_sha256)
    (taken by collection 0.2.0) is compared by the SHA-256 of DUMP instead.
version_added: 0.2.0
author: TrueBond SRE team (@truebond)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - truebond.rollback.redis
attributes:
  check_mode:
    support: full
    details:
      - The module only reads, so it runs in check mode as in a normal run.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - redis (redis-py) on the host that runs the module.
options:
  src:
    description: Snapshot folder that contains C(snapshot.json).
    type: path
    required: true
  timeout:
    description: Seconds to wait for Redis to accept connections and finish loading.
    type: int
    default: 120
notes:
  - The key counts in the snapshot come from INFO keyspace right after the save, so on
    a server that took writes during the save they are approximate, and the count
    check can then fail although the file was restored correctly.
  - Writes that reach Redis after it started, before this check, also change the
    counts. Keep the clients stopped until the check has passed.
"""

EXAMPLES = r"""
- name: Check the restored Redis against the snapshot
  truebond.rollback.redis_verify:
    src: /var/backups/truebond/incident-20261204T173000Z/datastores/sessions
    port: 6379
    password: "{{ vault_redis_password }}"
    timeout: 300
"""

RETURN = r"""
keyspace:
  description: Keys and keys with a TTL per database after the restore.
  type: dict
  returned: when Redis replied to PING
  sample: {db0: {keys: 118, expires: 18}}
expected:
  description: The accepted key count range per database, from the snapshot.
  type: dict
  returned: when snapshot.json could be read
  sample: {db0: {min: 100, max: 120}}
samples_checked:
  description: Number of sample keys whose digest matched.
  type: int
  returned: when Redis replied to PING
  sample: 5
problems:
  description: Each difference from the snapshot. The task fails when it is not empty.
  type: list
  elements: str
  returned: when Redis replied to PING
  sample: ["db0 has 0 keys, expected 100 to 120"]
rdb_last_load_keys_loaded:
  description: Keys Redis loaded from its file at start (INFO persistence, Redis 7+).
  type: int
  returned: when Redis reports it
  sample: 120
"""

import json
import os
import time
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib
from ansible_collections.truebond.rollback.plugins.module_utils import _redis


def expected_ranges(snapshot) -> dict:
    """Return the accepted key count range per database of a snapshot."""
    ranges = {}
    for db, counts in (snapshot.get("keyspace") or {}).items():
        keys = int(counts.get("keys", 0))
        expires = int(counts.get("expires", 0))
        ranges[db] = {"min": max(0, keys - expires), "max": keys}
    return ranges


def compare_keyspace(actual, ranges) -> list:
    """List the databases whose key count lies outside the accepted range."""
    problems = []
    for db in sorted(set(actual) | set(ranges), key=lambda name: int(name[2:])):
        keys = actual.get(db, {}).get("keys", 0)
        expected = ranges.get(db, {"min": 0, "max": 0})
        if not expected["min"] <= keys <= expected["max"]:
            if expected["min"] == expected["max"]:
                accepted = f"{expected['max']}"
            else:
                accepted = f"{expected['min']} to {expected['max']}"
            problems.append(f"{db} has {keys} keys, expected {accepted}")
    return problems


def compare_samples(params, samples) -> tuple:
    """Check each sample key's digest and return (matched count, problems)."""
    problems = []
    matched = 0
    clients = {}
    for sample in samples:
        db = int(sample["db"])
        client = clients.get(db)
        if client is None:
            client = clients[db] = _redis.make_client(
                params["host"],
                params["port"],
                params["password"],
                params["username"],
                db=db,
            )
        key = sample["key"].encode("utf-8")
        # Snapshots of this version record the digest of the value, which a reload
        # from the RDB file keeps; older ones only the digest of DUMP.
        if "value_sha256" in sample:
            label, expected = "value", sample["value_sha256"]
            digest = _redis.value_sha256(client, key)
        else:
            label, expected = "DUMP", sample["dump_sha256"]
            digest = _redis.dump_sha256(client, key)
        if digest is None:
            problems.append(f"sample key {sample['key']!r} in db{db} is missing")
        elif digest != expected:
            problems.append(
                f"sample key {sample['key']!r} in db{db} differs from the snapshot "
                f"({label} SHA-256 {digest}, expected {expected})"
            )
        else:
            matched += 1
    for client in clients.values():
        client.close()
    return matched, problems


def read_snapshot(src) -> dict:
    path = os.path.join(src, "snapshot.json")
    try:
        with open(path, "rb") as stream:
            snapshot = json.load(stream)
    except FileNotFoundError:
        raise _redis.RedisError(f"{path!r} not found") from None
    except ValueError as error:
        raise _redis.RedisError(f"{path!r} is not valid JSON: {error}") from None
    if snapshot.get("kind") != "redis":
        raise _redis.RedisError(
            f"{path!r} describes a snapshot of kind {snapshot.get('kind')!r}, "
            "expected 'redis'"
        )
    return snapshot


def verify(params, clock=time.monotonic, sleep=time.sleep) -> dict:
    """Wait for Redis and compare it with the snapshot. Return the module result."""
    snapshot = read_snapshot(params["src"])
    client = _redis.wait_for_ping(
        params["host"],
        params["port"],
        params["password"],
        params["username"],
        timeout=params["timeout"],
        clock=clock,
        sleep=sleep,
    )
    actual = _redis.keyspace(client)
    ranges = expected_ranges(snapshot)
    problems = compare_keyspace(actual, ranges)
    matched, sample_problems = compare_samples(params, snapshot.get("samples") or [])
    problems.extend(sample_problems)
    result = {
        "changed": False,
        "keyspace": actual,
        "expected": ranges,
        "samples_checked": matched,
        "problems": problems,
    }
    loaded = _redis.persistence_info(client).get("rdb_last_load_keys_loaded")
    if loaded is not None:
        result["rdb_last_load_keys_loaded"] = int(loaded)
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "path", "required": True},
            "host": {"type": "str", "default": "127.0.0.1"},
            "port": {"type": "int", "default": 6379},
            "username": {"type": "str"},
            "password": {"type": "str", "no_log": True},
            "timeout": {"type": "int", "default": 120},
        },
        supports_check_mode=True,
    )
    params = module.params
    if not _redis.HAS_REDIS:
        module.fail_json(
            msg=missing_required_lib("redis"), exception=_redis.REDIS_IMPORT_ERROR
        )
    where = (
        f"Redis at {_redis.address(params['host'], params['port'])} against the "
        f"snapshot {params['src']!r}"
    )
    try:
        result = verify(params)
    except _redis.RedisError as error:
        module.fail_json(msg=f"checking {where} failed: {error}")
    except _redis.redis.exceptions.RedisError as error:
        module.fail_json(msg=f"checking {where} failed: Redis returned: {error}")
    except Exception as error:  # noqa: BLE001 - report any bug with its traceback
        module.fail_json(
            msg=f"checking {where} failed unexpectedly: {error}",
            exception=traceback.format_exc(),
        )
    if result["problems"]:
        module.fail_json(
            msg=f"{where} does not match: " + "; ".join(result["problems"]),
            **result,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
