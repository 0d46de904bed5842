# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the Redis helpers, against a redis-server started for each test."""

from __future__ import annotations

import pytest
from ansible_collections.truebond.rollback.plugins.module_utils import _redis


class FakeClock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now

    def sleep(self, seconds):
        self.now += seconds


@pytest.mark.parametrize(
    "host, port, expected",
    [
        pytest.param("127.0.0.1", 6379, "127.0.0.1:6379", id="ipv4"),
        pytest.param("::1", 6379, "[::1]:6379", id="ipv6"),
        pytest.param("localhost", 16390, "localhost:16390", id="name"),
    ],
)
def test_address_formats(host, port, expected):
    assert _redis.address(host, port) == expected


@pytest.mark.parametrize(
    "seconds, expected",
    [
        pytest.param(0, "1970-01-01T00:00:00.000Z", id="epoch"),
        pytest.param(1796405059.5, "2026-12-04T17:24:19.500Z", id="milliseconds"),
    ],
)
def test_utc_timestamp_format(seconds, expected):
    assert _redis.utc_timestamp(seconds) == expected


def test_wait_until_returns_first_done_value():
    clock = FakeClock()
    values = iter([1, 2, 3])
    result = _redis.wait_until(
        lambda: next(values),
        lambda value: value == 2,
        10,
        str,
        clock=clock,
        sleep=clock.sleep,
    )
    assert result == 2


def test_wait_until_times_out_with_last_value():
    clock = FakeClock()
    with pytest.raises(_redis.WaitTimeout) as caught:
        _redis.wait_until(
            lambda: {"rdb_bgsave_in_progress": 1},
            lambda info: False,
            1,
            lambda info: f"gave up: {_redis.persistence_summary(info)}",
            clock=clock,
            sleep=clock.sleep,
        )
    assert str(caught.value) == "gave up: rdb_bgsave_in_progress=1"
    assert clock.now == pytest.approx(1.0, abs=_redis.POLL_INTERVAL + 0.01)


def test_wait_until_probes_once_with_zero_timeout():
    calls = []
    clock = FakeClock()
    with pytest.raises(_redis.WaitTimeout):
        _redis.wait_until(
            lambda: calls.append(1),
            lambda value: False,
            0,
            str,
            clock=clock,
            sleep=clock.sleep,
        )
    assert calls == [1]


def test_persistence_summary_keeps_field_order():
    info = {"rdb_last_bgsave_status": "err", "loading": 0, "other": 5}
    assert _redis.persistence_summary(info) == "loading=0, rdb_last_bgsave_status=err"


def test_connect_refused_names_address():
    with pytest.raises(_redis.RedisError) as caught:
        _redis.connect("127.0.0.1", 16419, socket_timeout=1)
    message = str(caught.value)
    assert message.startswith("could not connect to Redis at 127.0.0.1:16419: ")
    assert message.endswith(
        "Check that Redis is running and that host and port are right."
    )


def test_connect_wrong_password_hides_password(redis_server):
    server = redis_server("--requirepass", "right-secret")
    with pytest.raises(_redis.RedisError) as caught:
        _redis.connect("127.0.0.1", server.port, password="wrong-secret-value")
    message = str(caught.value)
    assert message.startswith(
        f"Redis at 127.0.0.1:{server.port} rejected the credentials: "
    )
    assert "wrong-secret-value" not in message


def test_connect_missing_password_says_so(redis_server):
    server = redis_server("--requirepass", "right-secret")
    with pytest.raises(_redis.RedisError) as caught:
        _redis.connect("127.0.0.1", server.port)
    assert str(caught.value) == (
        f"Redis at 127.0.0.1:{server.port} requires a password and none was given. "
        "Set the password option."
    )


def test_keyspace_lists_databases_in_order(redis_server):
    server = redis_server()
    server.client(db=10).set("x", 1)
    server.client(db=2).set("y", 1, ex=100)
    server.client(db=2).set("z", 1)
    client = _redis.connect("127.0.0.1", server.port)
    keyspace = _redis.keyspace(client)
    assert list(keyspace) == ["db2", "db10"]
    assert keyspace["db2"] == {"keys": 2, "expires": 1}
    assert keyspace["db10"] == {"keys": 1, "expires": 0}


def test_dump_sha256_of_missing_key_is_none(redis_server):
    server = redis_server()
    client = _redis.connect("127.0.0.1", server.port)
    assert _redis.dump_sha256(client, b"absent") is None
    client.set("present", "v")
    assert len(_redis.dump_sha256(client, b"present")) == 64


def test_wait_for_ping_times_out_on_closed_port():
    clock = FakeClock()
    with pytest.raises(_redis.WaitTimeout) as caught:
        _redis.wait_for_ping(
            "127.0.0.1", 16419, timeout=1, clock=clock, sleep=clock.sleep
        )
    message = str(caught.value)
    assert message.startswith(
        "Redis at 127.0.0.1:16419 was not ready within 1 s. Last error: could not "
        "connect to Redis at 127.0.0.1:16419: "
    )


def test_port_accepts_connections_follows_server(redis_server):
    server = redis_server()
    assert _redis.port_accepts_connections("127.0.0.1", server.port)
    server.kill()
    assert not _redis.port_accepts_connections("127.0.0.1", server.port)


def test_value_sha256_of_missing_key_is_none(redis_server):
    server = redis_server()
    client = _redis.connect("127.0.0.1", server.port)
    assert _redis.value_sha256(client, b"absent") is None


def reload_from_rdb(server):
    """Save, end the server and start it again on the same files."""
    server.client().save()
    server.kill()
    server.start()
    return _redis.connect("127.0.0.1", server.port)


def test_value_sha256_survives_reload_where_dump_does_not(redis_server):
    """Redis returns a set of strings in another order after loading the RDB."""
    server = redis_server()
    client = server.client()
    client.sadd("rooms", "general", "random", "ops")
    client.hset("user:1", mapping={"name": "Ada", "email": "ada@example.test"})
    client.zadd("scores", {"a": 1.5, "b": 2})
    client.rpush("queue", "x", "y")
    client.xadd("events", {"kind": "login"}, id="1-1")
    client.set("plain", b"\x00\xff")
    keys = [b"rooms", b"user:1", b"scores", b"queue", b"events", b"plain"]
    connection = _redis.connect("127.0.0.1", server.port)
    before = {key: _redis.value_sha256(connection, key) for key in keys}
    dump_before = _redis.dump_sha256(connection, b"rooms")

    reloaded = reload_from_rdb(server)

    assert {key: _redis.value_sha256(reloaded, key) for key in keys} == before
    # The reason for the value digest: on Redis 7.0 the DUMP of this set changes.
    assert _redis.dump_sha256(reloaded, b"rooms") != dump_before


@pytest.mark.parametrize(
    ("setup", "changed"),
    [
        (lambda c, k: c.sadd(k, "a", "b"), lambda c, k: c.sadd(k, "c")),
        (lambda c, k: c.hset(k, "f", "1"), lambda c, k: c.hset(k, "f", "2")),
        (lambda c, k: c.zadd(k, {"m": 1}), lambda c, k: c.zadd(k, {"m": 2})),
        (lambda c, k: c.rpush(k, "a", "b"), lambda c, k: c.lset(k, 0, "z")),
        (lambda c, k: c.set(k, "v"), lambda c, k: c.append(k, "w")),
    ],
    ids=["set", "hash", "zset", "list", "string"],
)
def test_value_sha256_changes_with_the_value(redis_server, setup, changed):
    server = redis_server()
    client = server.client()
    setup(client, "k")
    connection = _redis.connect("127.0.0.1", server.port)
    before = _redis.value_sha256(connection, b"k")

    changed(client, "k")

    assert _redis.value_sha256(connection, b"k") != before


def test_value_sha256_tells_types_apart(redis_server):
    server = redis_server()
    client = server.client()
    client.set("text", "a")
    client.rpush("list", "a")
    connection = _redis.connect("127.0.0.1", server.port)
    assert _redis.value_sha256(connection, b"text") != _redis.value_sha256(
        connection, b"list"
    )
