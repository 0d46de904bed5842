# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Redis connections, INFO parsing and deadline-bound waits for the redis_* modules."""

from __future__ import annotations

import datetime
import hashlib
import socket
import time
import traceback

try:
    import redis
    import redis.backoff
    import redis.retry

    HAS_REDIS = True
    REDIS_IMPORT_ERROR = None
except ImportError:
    redis = None
    HAS_REDIS = False
    REDIS_IMPORT_ERROR = traceback.format_exc()

# Seconds a single connect or command may take. Waits for a save or a load have their
# own deadline (the modules' timeout option) on top of this.
SOCKET_TIMEOUT = 10.0
POLL_INTERVAL = 0.1

# The INFO persistence fields that show the state of a save or rewrite. Messages
# about a failed or timed-out wait quote them.
PERSISTENCE_FIELDS = (
    "loading",
    "rdb_bgsave_in_progress",
    "rdb_last_bgsave_status",
    "rdb_last_save_time",
    "rdb_saves",
    "rdb_changes_since_last_save",
    "aof_enabled",
    "aof_rewrite_in_progress",
    "aof_rewrite_scheduled",
    "aof_last_bgrewrite_status",
    "aof_last_write_status",
)


class RedisError(Exception):
    """A Redis step failed. The message is written for the operator, ready to show."""


class WaitTimeout(RedisError):
    """A wait reached its deadline before its condition held."""


def address(host, port) -> str:
    """Format host and port as host:port, with brackets around an IPv6 address."""
    if ":" in str(host):
        return f"[{host}]:{port}"
    return f"{host}:{port}"


def _without_secret(text: str, password) -> str:
    if password:
        text = text.replace(str(password), "********")
    return text


def make_client(
    host, port, password=None, username=None, db=0, socket_timeout=SOCKET_TIMEOUT
):
    """Return a redis-py client that does not retry failed commands.

    redis-py 6 and later retry a failed connection three times with a backoff of
    seconds by default, which would stretch every wait and error here.
    """
    return redis.Redis(
        host=host,
        port=port,
        db=db,
        password=password or None,
        username=username or None,
        socket_timeout=socket_timeout,
        socket_connect_timeout=socket_timeout,
        retry=redis.retry.Retry(redis.backoff.NoBackoff(), 0),
    )


def connect(host, port, password=None, username=None, socket_timeout=SOCKET_TIMEOUT):
    """Connect to Redis, check the connection with PING and return the client.

    Raises RedisError naming host:port and the cause. The password never appears in
    the message, even when a library error quotes it.
    """
    client = make_client(host, port, password, username, socket_timeout=socket_timeout)
    try:
        client.ping()
    except redis.exceptions.AuthenticationError as error:
        if not password:
            raise RedisError(
                f"Redis at {address(host, port)} requires a password and none was "
                "given. Set the password option."
            ) from None
        raise RedisError(
            f"Redis at {address(host, port)} rejected the credentials: "
            f"{_without_secret(str(error), password)}. Check the password (and the "
            "user name for an ACL user)."
        ) from None
    except redis.exceptions.ResponseError as error:
        text = _without_secret(str(error), password)
        if "NOAUTH" in text:
            raise RedisError(
                f"Redis at {address(host, port)} requires a password and none was "
                "given. Set the password option."
            ) from None
        raise RedisError(
            f"PING to Redis at {address(host, port)} failed: {text}"
        ) from None
    except redis.exceptions.BusyLoadingError:
        # BusyLoadingError is a ConnectionError, so it must come first.
        raise RedisError(
            f"Redis at {address(host, port)} is still loading its data set "
            "(-LOADING reply to PING). Wait until it has loaded, or raise the timeout."
        ) from None
    except (redis.exceptions.ConnectionError, redis.exceptions.TimeoutError) as error:
        raise RedisError(
            f"could not connect to Redis at {address(host, port)}: "
            f"{_without_secret(str(error), password)}. Check that Redis is running "
            "and that host and port are right."
        ) from None
    return client


def port_accepts_connections(host, port, timeout=1.0) -> bool:
    """Return whether something accepts TCP connections on host:port."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return True
    except OSError:
        return False


def decode(value):
    """Decode bytes from redis-py as UTF-8, leaving other values as they are."""
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    return value


def config_get(client, name):
    """Return one CONFIG GET value as str, or None when Redis does not know it.

    Raises redis.exceptions.ResponseError when CONFIG is renamed or not permitted.
    """
    reply = client.config_get(name)
    for key, value in reply.items():
        if decode(key) == name:
            return decode(value)
    return None


def persistence_info(client) -> dict:
    """Return INFO persistence as a dict of field name to value."""
    return client.info("persistence")


def persistence_summary(info: dict) -> str:
    """Format the INFO persistence fields that explain a save as name=value pairs."""
    parts = [f"{name}={info[name]}" for name in PERSISTENCE_FIELDS if name in info]
    return ", ".join(parts) or "no INFO persistence fields"


def keyspace(client) -> dict:
    """Return INFO keyspace as {"db0": {"keys": N, "expires": M}}, databases sorted."""
    info = client.info("keyspace")
    result = {}
    for name in sorted(info, key=lambda db: int(db[2:]) if db[2:].isdigit() else 0):
        if not name.startswith("db"):
            continue
        entry = info[name]
        result[name] = {
            "keys": int(entry.get("keys", 0)),
            "expires": int(entry.get("expires", 0)),
        }
    return result


def dump_sha256(client, key: bytes):
    """Return the SHA-256 hex digest of DUMP key, or None when the key is gone."""
    payload = client.dump(key)
    if payload is None:
        return None
    return hashlib.sha256(payload).hexdigest()


def _value_parts(client, key: bytes, kind: str):
    """Return the parts of a key's value in an order that does not depend on Redis.

    Sets and hashes come back in hash-table order, which changes when Redis loads
    the same data from an RDB file, so they are sorted. None for a type without a
    fixed reading (a module type), or when the key is gone.
    """
    if kind == "string":
        value = client.get(key)
        return None if value is None else [value]
    if kind == "list":
        return client.lrange(key, 0, -1)
    if kind == "set":
        return sorted(client.smembers(key))
    if kind == "zset":
        return [
            part
            for member, score in client.zrange(key, 0, -1, withscores=True)
            for part in (member, repr(float(score)).encode())
        ]
    if kind == "hash":
        return [part for item in sorted(client.hgetall(key).items()) for part in item]
    if kind == "stream":
        return [
            part
            for entry_id, fields in client.xrange(key)
            for part in (entry_id, *(x for item in fields.items() for x in item))
        ]
    return None


def value_sha256(client, key: bytes):
    """Return the SHA-256 hex digest of a key's type and value, or None when gone.

    Unlike DUMP, the digest stays the same when Redis reloads the key from an RDB
    file. A type without a fixed reading falls back to the digest of DUMP.
    """
    kind = decode(client.type(key))
    if kind == "none":
        return None
    parts = _value_parts(client, key, kind)
    if parts is None:
        return dump_sha256(client, key)
    digest = hashlib.sha256(kind.encode() + b"\0")
    for part in parts:
        if not isinstance(part, bytes):
            part = str(part).encode()
        digest.update(len(part).to_bytes(8, "big") + part)
    return digest.hexdigest()


def utc_timestamp(seconds: float) -> str:
    """Format Unix seconds as UTC ISO 8601 with milliseconds and Z."""
    # datetime.UTC needs Python 3.11, and managed hosts may run an older Python.
    utc = datetime.timezone.utc  # noqa: UP017
    moment = datetime.datetime.fromtimestamp(seconds, tz=utc)
    return moment.strftime("%Y-%m-%dT%H:%M:%S.") + f"{moment.microsecond // 1000:03d}Z"


def wait_until(
    probe,
    done,
    timeout,
    describe,
    interval=POLL_INTERVAL,
    clock=time.monotonic,
    sleep=time.sleep,
):
    """Call probe() until done(value) is true and return that value.

    Raises WaitTimeout after timeout seconds. Its message is describe(last value),
    so it can quote the last INFO fields seen. probe() runs at least once, even with
    a timeout of 0.
    """
    deadline = clock() + timeout
    while True:
        value = probe()
        if done(value):
            return value
        if clock() >= deadline:
            raise WaitTimeout(describe(value))
        sleep(interval)


def wait_for_ping(
    host,
    port,
    password=None,
    username=None,
    timeout=60,
    clock=time.monotonic,
    sleep=time.sleep,
):
    """Wait until Redis accepts connections and has loaded its data, return the client.

    Redis replies -LOADING while it reads its RDB or AOF at start, and that counts as
    not ready. Raises WaitTimeout with the last error after timeout seconds, and
    RedisError at once for rejected credentials.
    """
    deadline = clock() + timeout
    last_error = "no attempt made"
    while True:
        try:
            client = connect(host, port, password, username)
            if int(persistence_info(client).get("loading", 0)) == 0:
                return client
            last_error = "Redis is still loading its data set (INFO loading:1)"
        except RedisError as error:
            text = str(error)
            if "credentials" in text or "requires a password" in text:
                raise
            last_error = text
        if clock() >= deadline:
            raise WaitTimeout(
                f"Redis at {address(host, port)} was not ready within {timeout} s. "
                f"Last error: {last_error}"
            )
        sleep(POLL_INTERVAL * 2)
