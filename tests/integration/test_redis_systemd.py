# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Snapshot and restore of Debian's redis-server under systemd, in a systemd test host.

The test host is a container with systemd as PID 1 (tests/stack/systemd-host/), whose
redis-server unit listens on 127.0.0.1:16390. The playbooks reach it through the
community.docker.docker connection and run the collection's modules with the
container's own Python and python3-redis. The checks run inside the container with
docker exec.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

# The systemd container shares the network and the cgroup tree of the machine with the
# drill stack's containers, so it runs one at a time with the drill stack tests.
pytestmark = pytest.mark.drill_machine

REPO = Path(__file__).resolve().parents[2]
HOST_DIR = REPO / "tests" / "stack" / "systemd-host"
CONTAINER = "truebond-systemd-redis"
REDIS_PORT = 16390
REDIS_CONF = "/etc/redis/redis.conf"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
BACKUP_ROOT = "/var/backups/truebond/systemd-test"

INVENTORY = f"""
all:
  hosts:
    {CONTAINER}:
      ansible_connection: community.docker.docker
      ansible_python_interpreter: /usr/bin/python3
"""

CAPTURE_PLAYBOOK = """
- name: Capture the Redis snapshot
  hosts: all
  gather_facts: false
  tasks:
    # The tasks file that capture_state runs for each redis item, without the rest of
    # the capture (containers, compose files, logs), which this host does not have.
    - name: Take the snapshot with capture_state's Redis tasks
      ansible.builtin.include_role:
        name: truebond.rollback.capture_state
        tasks_from: snapshot_redis.yml
      vars:
        capture_state_snapshots: []
        __capture_state_datastore:
          type: redis
          name: sessions
          port: 16390
        __capture_state_snapshot_dir: "{{ snapshot_dir }}"
        # capture_state's main.yml sets these two loop variables the same way.
        __capture_state_snapshot_failed: >-
          {{ (__capture_state_snapshot.snapshot.complete | default(false)) is not sameas true }}
"""

RESTORE_PLAYBOOK = """
- name: Restore Redis under systemd
  hosts: all
  gather_facts: false
  tasks:
    - name: Run restore_redis
      ansible.builtin.include_role:
        name: truebond.rollback.restore_redis
      vars:
        restore_redis_src: "{{ snapshot_dir }}"
        restore_redis_port: 16390
        restore_redis_service_manager: systemd
        restore_redis_service: redis-server
        restore_redis_owner: redis
        restore_redis_group: redis
        restore_redis_mode: "0660"
        restore_redis_timeout: 30
    - name: Show the result
      ansible.builtin.debug:
        msg: "RESULT {{ restore_redis_result | to_json }}"
"""

STOP_PLAYBOOK = """
- name: Stop Redis with stop_services
  hosts: all
  gather_facts: false
  tasks:
    - name: Run stop_services for Redis only
      ansible.builtin.include_role:
        name: truebond.rollback.stop_services
      vars:
        stop_services_compose: false
        stop_services_redis_service: redis-server
        stop_services_redis_port: 16390
"""


def docker_exec(*argv: str, check: bool = True) -> str:
    completed = subprocess.run(
        ["docker", "exec", CONTAINER, *argv],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if check and completed.returncode != 0:
        raise AssertionError(
            f"docker exec {' '.join(argv)} failed ({completed.returncode}): "
            f"{completed.stdout}{completed.stderr}"
        )
    return completed.stdout.strip()


def redis_cli(*argv: str) -> str:
    return docker_exec("redis-cli", "-h", "127.0.0.1", "-p", str(REDIS_PORT), *argv)


def unit_state() -> str:
    return docker_exec("systemctl", "is-active", "redis-server", check=False)


@pytest.fixture(scope="module")
def systemd_host():
    """Build the image when missing, start the container and remove it at the end."""
    build = subprocess.run(
        [str(HOST_DIR / "build.sh")],
        capture_output=True,
        text=True,
        timeout=900,
        check=False,
    )
    if build.returncode != 0:
        output = (build.stdout + build.stderr).strip().splitlines()[-5:]
        pytest.skip(
            "the systemd test host image could not be built (tests/stack/systemd-host/"
            "build.sh needs root, Docker, debootstrap and Debian's archive): "
            + " | ".join(output)
        )
    subprocess.run(
        [str(HOST_DIR / "run.sh"), "start"],
        capture_output=True,
        text=True,
        timeout=120,
        check=True,
    )
    yield CONTAINER
    subprocess.run(["docker", "rm", "-f", CONTAINER], capture_output=True, check=False)


@pytest.fixture
def redis_unit(systemd_host):
    """Leave the unit running with Debian's configuration and an empty data set."""
    docker_exec("sed", "-i", "-E", "s/^appendonly .*/appendonly no/", REDIS_CONF)
    docker_exec("systemctl", "restart", "redis-server")
    docker_exec("sh", "-c", f"until redis-cli -p {REDIS_PORT} ping; do sleep 0.1; done")
    redis_cli("flushall")
    docker_exec("rm", "-rf", BACKUP_ROOT)
    yield
    docker_exec("sed", "-i", "-E", "s/^appendonly .*/appendonly no/", REDIS_CONF)


def run_playbook(tmp_path, text, **extra):
    playbook = tmp_path / "playbook.yml"
    playbook.write_text(text)
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(INVENTORY)
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\nretry_files_enabled = false\n")
    environment = {
        "PATH": f"{Path(sys.executable).parent}:/usr/local/bin:/usr/bin:/bin:/usr/sbin",
        "HOME": str(tmp_path),
        "ANSIBLE_CONFIG": str(config),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections"),
        "ANSIBLE_LOCAL_TEMP": str(tmp_path / "ansible-tmp"),
        "ANSIBLE_NOCOLOR": "1",
    }
    completed = subprocess.run(
        [
            str(ANSIBLE_PLAYBOOK),
            "-i",
            str(inventory),
            "-e",
            json.dumps(extra),
            str(playbook),
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=300,
        check=False,
    )
    assert completed.returncode == 0, completed.stdout[-4000:] + completed.stderr
    return completed.stdout


def read_snapshot(snapshot_dir):
    return json.loads(docker_exec("cat", f"{snapshot_dir}/snapshot.json"))


def fill_keys():
    redis_cli("mset", "user:1", "alice", "user:2", "bob", "user:3", "carol")
    redis_cli("set", "session:1", "token", "ex", "3600")
    redis_cli("-n", "2", "hset", "room:1", "name", "general")


def restore_result(stdout):
    for line in stdout.splitlines():
        if '"msg": "RESULT ' in line:
            text = line.split('"msg": "RESULT ', 1)[1].rsplit('"', 1)[0]
            return json.loads(text.encode().decode("unicode_escape"))
    raise AssertionError(f"no RESULT line in the output:\n{stdout[-3000:]}")


def test_systemd_restore_matches_snapshot(redis_unit, tmp_path):
    fill_keys()
    snapshot_dir = f"{BACKUP_ROOT}/datastores/sessions"
    run_playbook(tmp_path, CAPTURE_PLAYBOOK, snapshot_dir=snapshot_dir)
    snapshot = read_snapshot(snapshot_dir)
    assert snapshot["complete"] is True
    save_before = redis_cli("config", "get", "save")
    redis_cli("set", "written:after-snapshot", "must be gone")
    redis_cli("set", "user:1", "changed after the snapshot")

    stdout = run_playbook(tmp_path, RESTORE_PLAYBOOK, snapshot_dir=snapshot_dir)

    assert unit_state() == "active"
    assert redis_cli("exists", "written:after-snapshot") == "0"
    assert redis_cli("get", "user:1") == "alice"
    assert redis_cli("-n", "2", "hget", "room:1", "name") == "general"
    assert redis_cli("dbsize") == "4"
    # Saving was disabled only in memory: the restart has the configured save points.
    assert redis_cli("config", "get", "save") == save_before
    owner = docker_exec("stat", "-c", "%U:%G %a", "/var/lib/redis/dump.rdb")
    assert owner == "redis:redis 660"
    result = restore_result(stdout)
    assert result["keyspace"] == snapshot["keyspace"]
    assert result["samples_checked"] == len(snapshot["samples"])
    assert result["replaced"].startswith("/var/lib/redis/dump.rdb.")


def test_systemd_restore_appendonly_reload(redis_unit, tmp_path):
    docker_exec("sed", "-i", "-E", "s/^appendonly .*/appendonly yes/", REDIS_CONF)
    docker_exec("systemctl", "restart", "redis-server")
    docker_exec("sh", "-c", f"until redis-cli -p {REDIS_PORT} ping; do sleep 0.1; done")
    fill_keys()
    snapshot_dir = f"{BACKUP_ROOT}/datastores/sessions"
    run_playbook(tmp_path, CAPTURE_PLAYBOOK, snapshot_dir=snapshot_dir)
    conf_before = docker_exec("cat", REDIS_CONF)
    redis_cli("set", "written:after-snapshot", "only in the AOF")

    run_playbook(tmp_path, RESTORE_PLAYBOOK, snapshot_dir=snapshot_dir)

    assert unit_state() == "active"
    assert redis_cli("exists", "written:after-snapshot") == "0"
    assert redis_cli("get", "user:1") == "alice"
    assert redis_cli("config", "get", "appendonly").splitlines() == [
        "appendonly",
        "yes",
    ]
    # The temporary "appendonly no" lines are gone again.
    assert docker_exec("cat", REDIS_CONF) == conf_before
    listing = docker_exec("ls", "/var/lib/redis").split()
    assert "appendonlydir" in listing
    assert any(name.startswith("appendonlydir.") for name in listing)

    # A restart loads the new append-only files, which hold the restored data.
    docker_exec("systemctl", "restart", "redis-server")
    docker_exec("sh", "-c", f"until redis-cli -p {REDIS_PORT} ping; do sleep 0.1; done")
    assert redis_cli("get", "user:1") == "alice"
    assert redis_cli("exists", "written:after-snapshot") == "0"


def test_stop_services_then_restore(redis_unit, tmp_path):
    """The full-system order: capture, stop_services, then restore_redis."""
    fill_keys()
    snapshot_dir = f"{BACKUP_ROOT}/datastores/sessions"
    run_playbook(tmp_path, CAPTURE_PLAYBOOK, snapshot_dir=snapshot_dir)
    snapshot = read_snapshot(snapshot_dir)
    redis_cli("set", "written:before-stop", "not saved")

    run_playbook(tmp_path, STOP_PLAYBOOK)

    assert unit_state() == "inactive"
    # The unit stopped without saving: dump.rdb is still the snapshot's save.
    rdb_sha256 = docker_exec("sha256sum", "/var/lib/redis/dump.rdb").split()[0]
    assert rdb_sha256 == snapshot["files"]["dump.rdb"]["sha256"]

    run_playbook(tmp_path, RESTORE_PLAYBOOK, snapshot_dir=snapshot_dir)

    assert unit_state() == "active"
    assert redis_cli("exists", "written:before-stop") == "0"
    assert redis_cli("get", "user:1") == "alice"
