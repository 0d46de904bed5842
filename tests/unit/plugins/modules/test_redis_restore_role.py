# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Runs of the restore_redis role with restore_redis_service_manager=direct.

Each test runs ansible-playbook against localhost and a redis-server that the
test started, so the role's real order (stop without saving, place the file, start,
verify, append-only back on) runs against a real Redis.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.truebond.rollback.plugins.modules import redis_snapshot

REPO = Path(__file__).resolve().parents[4]
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"

PLAYBOOK = """
- name: Restore Redis
  hosts: localhost
  gather_facts: false
  tasks:
    - name: Run the role
      ansible.builtin.include_role:
        name: truebond.rollback.restore_redis
    - name: Write the result
      ansible.builtin.copy:
        content: "{{ restore_redis_result | to_nice_json }}"
        dest: "{{ result_file }}"
        mode: "0600"
      when: not ansible_check_mode
"""


def take_snapshot(server, dest, capsys, password=None):
    args = {"port": server.port, "dest": str(dest), "password": password}
    with patch_module_args(args), pytest.raises(SystemExit):
        redis_snapshot.main()
    result = json.loads(capsys.readouterr().out)
    assert result["snapshot"]["complete"] is True, result
    return result["snapshot"]


def run_role(tmp_path, server, src, *options, **variables):
    playbook = tmp_path / "restore.yml"
    playbook.write_text(PLAYBOOK)
    config = tmp_path / "ansible.cfg"
    config.write_text("[defaults]\nretry_files_enabled = false\n")
    extra = {
        "ansible_python_interpreter": sys.executable,
        "result_file": str(tmp_path / "result.json"),
        "restore_redis_src": str(src),
        "restore_redis_port": server.port,
        "restore_redis_service_manager": "direct",
        "restore_redis_start_command": server.start_command(),
        "restore_redis_timeout": 20,
    }
    extra.update(variables)
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
            "localhost,",
            "-c",
            "local",
            "-e",
            json.dumps(extra),
            *options,
            str(playbook),
        ],
        capture_output=True,
        text=True,
        env=environment,
        timeout=120,
        check=False,
    )
    return completed


def read_result(tmp_path):
    return json.loads((tmp_path / "result.json").read_text())


def test_direct_restore_drops_later_writes(redis_server, tmp_path, capsys):
    # Save points on, so that a plain SHUTDOWN would write the later key to dump.rdb.
    server = redis_server("--save", "3600 1")
    client = server.client()
    client.mset({"user:1": "alice", "user:2": "bob"})
    client.set("session:1", "token", ex=3600)
    src = tmp_path / "snapshot"
    snapshot = take_snapshot(server, src, capsys)
    client.set("written:after-snapshot", "lost on purpose")
    client.delete("user:2")

    completed = run_role(tmp_path, server, src)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    after = server.client()
    assert after.get("written:after-snapshot") is None
    assert after.get("user:2") == b"bob"
    result = read_result(tmp_path)
    assert result["keyspace"] == snapshot["keyspace"]
    assert result["samples_checked"] == 2
    # SHUTDOWN NOSAVE: the file the restore replaced is still the snapshot's save,
    # without the key written afterwards.
    replaced = Path(result["replaced"])
    assert (
        hashlib.sha256(replaced.read_bytes()).hexdigest()
        == (snapshot["files"]["dump.rdb"]["sha256"])
    )


def test_direct_restore_appendonly_reload(redis_server, tmp_path, capsys):
    server = redis_server("--save", "3600 1", "--appendonly", "yes")
    client = server.client()
    client.mset({"user:1": "alice", "user:2": "bob"})
    src = tmp_path / "snapshot"
    take_snapshot(server, src, capsys)
    client.set("written:after-snapshot", "only in the AOF")

    completed = run_role(tmp_path, server, src)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    after = server.client()
    # Redis loaded the RDB file: the AOF, which has the later key, was moved aside.
    assert after.get("written:after-snapshot") is None
    assert after.get("user:1") == b"alice"
    assert after.config_get("appendonly") == {"appendonly": "yes"}
    info = after.info("persistence")
    assert info["aof_rewrite_in_progress"] == 0
    assert info["aof_last_bgrewrite_status"] == "ok"
    result = read_result(tmp_path)
    aside = list(result["aside"].values())
    assert len(aside) == 1
    assert Path(aside[0]).name.startswith("appendonlydir.")
    assert (server.data_dir / "appendonlydir" / "appendonly.aof.manifest").is_file()

    # The new append-only files contain the restored data, so a restart that loads
    # them (the start command has --appendonly yes) has the same keys.
    after.shutdown(nosave=True)
    subprocess.run(server.start_command(), shell=True, check=True)
    server.wait_ready()
    restarted = server.client()
    assert restarted.get("user:1") == b"alice"
    assert restarted.get("written:after-snapshot") is None


def test_appendonly_refuse_stops_nothing(redis_server, tmp_path, capsys):
    server = redis_server("--appendonly", "yes")
    client = server.client()
    client.set("user:1", "alice")
    src = tmp_path / "snapshot"
    take_snapshot(server, src, capsys)
    client.set("written:after-snapshot", "kept")

    completed = run_role(tmp_path, server, src, restore_redis_appendonly="refuse")

    assert completed.returncode != 0
    output = " ".join(completed.stdout.split())
    assert (
        f"Redis at 127.0.0.1:{server.port} has appendonly yes, so it loads its "
        "append-only files at start and would ignore the restored RDB file, and "
        "restore_redis_appendonly is 'refuse'. Nothing was stopped or changed."
    ) in output
    assert server.client().get("written:after-snapshot") == b"kept"
    assert sorted(p.name for p in server.data_dir.iterdir()) == [
        "appendonlydir",
        "dump.rdb",
    ]


def test_role_check_mode_changes_nothing(redis_server, tmp_path, capsys):
    server = redis_server()
    client = server.client()
    client.set("user:1", "alice")
    src = tmp_path / "snapshot"
    take_snapshot(server, src, capsys)
    client.set("written:after-snapshot", "kept")

    completed = run_role(tmp_path, server, src, "--check")

    assert completed.returncode == 0, completed.stdout + completed.stderr
    output = " ".join(completed.stdout.split())
    assert f"Check mode: would stop Redis at 127.0.0.1:{server.port} (direct)" in output
    assert server.client().get("written:after-snapshot") == b"kept"
    assert sorted(p.name for p in server.data_dir.iterdir()) == ["dump.rdb"]


def test_role_rejects_damaged_snapshot_before_stopping(redis_server, tmp_path, capsys):
    server = redis_server()
    server.client().set("user:1", "alice")
    src = tmp_path / "snapshot"
    take_snapshot(server, src, capsys)
    (src / "dump.rdb").write_bytes(b"damaged")

    completed = run_role(tmp_path, server, src)

    assert completed.returncode != 0
    assert "The snapshot is damaged." in completed.stdout
    assert server.client().ping()


def test_direct_restore_with_password(redis_server, tmp_path, capsys):
    password = "drill-redis-secret"
    server = redis_server("--requirepass", password, "--appendonly", "yes")
    client = server.client(password=password)
    client.mset({"user:1": "alice", "user:2": "bob"})
    src = tmp_path / "snapshot"
    take_snapshot(server, src, capsys, password=password)
    client.set("written:after-snapshot", "lost on purpose")

    completed = run_role(tmp_path, server, src, restore_redis_password=password)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert password not in completed.stdout
    after = server.client(password=password)
    assert after.get("written:after-snapshot") is None
    assert after.get("user:1") == b"alice"
    assert after.config_get("appendonly") == {"appendonly": "yes"}


def test_direct_restore_starts_stopped_redis(redis_server, tmp_path, capsys):
    server = redis_server("--save", "3600 1")
    client = server.client()
    client.mset({"user:1": "alice", "user:2": "bob"})
    src = tmp_path / "snapshot"
    take_snapshot(server, src, capsys)
    client.set("written:after-snapshot", "lost on purpose")
    client.shutdown(nosave=True)

    completed = run_role(tmp_path, server, src)

    assert completed.returncode == 0, completed.stdout + completed.stderr
    assert "Start Redis to read its settings (direct)" in completed.stdout
    after = server.client()
    assert after.get("written:after-snapshot") is None
    assert after.get("user:1") == b"alice"
