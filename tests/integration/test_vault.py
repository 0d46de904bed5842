# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A Redis backup whose password comes from Ansible Vault, as in the production inventory.

The test inventory copies inventories/production/group_vars/truebond_app.yml, whose
truebond_redis.password and truebond_mongodb.uri refer to vault_truebond_redis_password
and vault_truebond_mongodb_uri, and defines those two in a vaulted file beside it,
group_vars/all/vault.yml. A file inside a group_vars/truebond_app/ folder would not
work there, because ansible-core 2.19 loads either that folder or truebond_app.yml,
never both.

The playbook tests/integration/vault/snapshot_redis.yml takes the rollback lock and
the Redis snapshot the way playbooks/snapshot.yml does, without snapshot.yml's Docker
steps. Each test starts its own redis-server on a free 127.0.0.1 port with a
generated requirepass, so the shared drill stack and its lock file are not touched.
"""

from __future__ import annotations

import json
import os
import secrets
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
import yaml

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
PLAYBOOK = REPO / "tests" / "integration" / "vault" / "snapshot_redis.yml"
PRODUCTION_GROUP_VARS = REPO / "inventories" / "production" / "group_vars"
REDIS_SERVER = Path("/usr/bin/redis-server")
HOST = "vault-test-host"
# Seconds a redis-server may take to reply to PING after it starts.
REDIS_START_TIMEOUT = 10

# The keys written before the snapshot, by database number.
KEYS_BY_DB = {
    0: {"user:1": "alice", "user:2": "bob", "session:1": "token", "room:1": "general"},
    3: {"queue:jobs": "job-1"},
}


@dataclass
class RedisServer:
    """A redis-server that this module started, and the password it requires."""

    process: subprocess.Popen
    port: int
    password: str | None
    data_dir: Path

    def client(self, db: int = 0) -> redis.Redis:
        return redis.Redis(
            host="127.0.0.1", port=self.port, password=self.password, db=db
        )


@dataclass
class VaultSetup:
    """The paths of one test's inventory, vault and run outputs."""

    inventory: Path
    vault_file: Path
    vault_password_file: Path
    backup_root: Path
    lock_path: Path
    timeline_dir: Path
    log_path: Path
    home: Path
    config: Path
    secrets: tuple[str, ...]


def free_port() -> int:
    # NOTE: another process could take the port between this check and the bind of
    # redis-server, so the start would then fail with "Address already in use".
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_redis(data_dir: Path, password: str | None, dbfilename: str) -> RedisServer:
    """Start redis-server on a free port, without save points, and wait for PING."""
    port = free_port()
    argv = [
        str(REDIS_SERVER),
        "--bind",
        "127.0.0.1",
        "--port",
        str(port),
        "--dir",
        str(data_dir),
        "--dbfilename",
        dbfilename,
        "--save",
        "",
        "--appendonly",
        "no",
        "--daemonize",
        "no",
    ]
    if password is not None:
        argv += ["--requirepass", password]
    process = subprocess.Popen(
        argv,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    server = RedisServer(process, port, password, data_dir)
    deadline = time.monotonic() + REDIS_START_TIMEOUT
    while True:
        try:
            server.client().ping()
            return server
        except redis.exceptions.ConnectionError:
            if process.poll() is not None or time.monotonic() > deadline:
                stop_redis(server)
                raise AssertionError(
                    f"redis-server on 127.0.0.1:{port} did not reply to PING within "
                    f"{REDIS_START_TIMEOUT} s (exit code {process.poll()})"
                ) from None
            time.sleep(0.05)


def stop_redis(server: RedisServer) -> None:
    """Stop the redis-server by the PID of its Popen object."""
    if server.process.poll() is None:
        server.process.terminate()
        try:
            server.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.process.kill()
            server.process.wait(timeout=10)


def keyspace_counts(server: RedisServer) -> dict[int, int]:
    """Return the number of keys of each non-empty database, from INFO keyspace."""
    info = server.client().info("keyspace")
    return {int(name.removeprefix("db")): entry["keys"] for name, entry in info.items()}


@pytest.fixture
def vault_redis(tmp_path):
    """Start a password-protected redis-server with the keys of KEYS_BY_DB."""
    data_dir = tmp_path / "redis-data"
    data_dir.mkdir()
    password = "vault-redis-" + secrets.token_urlsafe(24)
    server = start_redis(data_dir, password, "dump.rdb")
    try:
        for db, keys in KEYS_BY_DB.items():
            server.client(db).mset(keys)
        server.client().expire("session:1", 3600)
        yield server
    finally:
        stop_redis(server)


def ansible_environment(setup: VaultSetup) -> dict[str, str]:
    """Return an environment that keeps every Ansible file of the run in tmp_path."""
    return {
        "PATH": f"{VENV_BIN}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
        "HOME": str(setup.home),
        # The lock records USER as its holder.
        "USER": os.environ.get("USER", "root"),
        "ANSIBLE_CONFIG": str(setup.config),
        "ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections"),
        "ANSIBLE_LOCAL_TEMP": str(setup.home / ".ansible" / "tmp"),
        # An absolute path, because ~ would expand to the remote user's home.
        "ANSIBLE_REMOTE_TEMP": str(setup.home / ".ansible" / "remote-tmp"),
        "ANSIBLE_LOG_PATH": str(setup.log_path),
        "ANSIBLE_NOCOLOR": "1",
        "TRUEBOND_TIMELINE_DIR": str(setup.timeline_dir),
    }


def encrypt_vault(setup: VaultSetup, plaintext: str) -> None:
    """Encrypt ``plaintext`` into the vault file, passing it on stdin, not on disk."""
    subprocess.run(
        [
            str(VENV_BIN / "ansible-vault"),
            "encrypt",
            "--vault-password-file",
            str(setup.vault_password_file),
            "--output",
            str(setup.vault_file),
            "-",
        ],
        input=plaintext,
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
        env=ansible_environment(setup),
    )


def write_inventory(tmp_path: Path, server: RedisServer) -> VaultSetup:
    """Write the production inventory's layout for one local host and vault it."""
    mongodb_password = "vault-mongodb-" + secrets.token_urlsafe(24)
    setup = VaultSetup(
        inventory=tmp_path / "inventory",
        vault_file=tmp_path / "inventory" / "group_vars" / "all" / "vault.yml",
        vault_password_file=tmp_path / "vault-password",
        backup_root=tmp_path / "backup",
        lock_path=tmp_path / "lock" / "truebond-rollback.lock",
        timeline_dir=tmp_path / "timelines",
        log_path=tmp_path / "ansible.log",
        home=tmp_path / "home",
        config=tmp_path / "home" / "ansible.cfg",
        secrets=(server.password, mongodb_password),
    )
    setup.vault_file.parent.mkdir(parents=True)
    setup.home.mkdir()
    setup.config.write_text(
        "[defaults]\n"
        "retry_files_enabled = false\n"
        "stdout_callback = ansible.builtin.default\n"
        "callbacks_enabled = truebond.rollback.timeline\n"
        "callback_result_format = yaml\n"
    )
    setup.vault_password_file.write_text(secrets.token_urlsafe(24) + "\n")
    setup.vault_password_file.chmod(0o600)

    hosts = {
        "all": {
            "children": {
                "truebond_app": {
                    "hosts": {
                        HOST: {
                            "ansible_connection": "local",
                            "ansible_python_interpreter": sys.executable,
                        }
                    }
                }
            }
        }
    }
    (setup.inventory / "hosts.yml").write_text(yaml.safe_dump(hosts))

    # The production file as it is, except where this host's Redis and backups are.
    group_vars = yaml.safe_load(
        (PRODUCTION_GROUP_VARS / "truebond_app.yml").read_text()
    )
    assert group_vars["truebond_redis"]["password"] == (
        "{{ vault_truebond_redis_password }}"
    )
    group_vars["truebond_redis"]["port"] = server.port
    group_vars["truebond_backup_root"] = str(setup.backup_root)
    (setup.inventory / "group_vars" / "truebond_app.yml").write_text(
        yaml.safe_dump(group_vars, sort_keys=False)
    )

    vault_vars = {
        "vault_truebond_redis_password": server.password,
        "vault_truebond_mongodb_uri": (
            f"mongodb://truebond:{mongodb_password}@127.0.0.1:27017/truebond"
        ),
    }
    encrypt_vault(setup, yaml.safe_dump(vault_vars))
    return setup


def run_snapshot(setup: VaultSetup, vault_password_file: Path):
    """Run the test playbook with ``vault_password_file`` and return the result."""
    return subprocess.run(
        [
            str(VENV_BIN / "ansible-playbook"),
            "-i",
            str(setup.inventory),
            "--vault-password-file",
            str(vault_password_file),
            "-e",
            json.dumps({"rollback_lock_path": str(setup.lock_path)}),
            # -vvv prints module arguments and results, so a leak would show.
            "-vvv",
            str(PLAYBOOK),
        ],
        capture_output=True,
        cwd=setup.home,
        env=ansible_environment(setup),
        timeout=120,
        check=False,
    )


def files_under(*folders: Path) -> list[Path]:
    files = []
    for folder in folders:
        if folder.is_dir():
            files += [path for path in folder.rglob("*") if path.is_file()]
    return sorted(files)


def find_secrets(setup: VaultSetup, named: dict[str, bytes]) -> list[str]:
    """Return "<secret> in <where>" for each secret found in the named byte strings."""
    found = []
    for where, data in named.items():
        for secret in setup.secrets:
            if secret.encode() in data:
                found.append(f"{secret} in {where}")
    return found


def test_vaulted_password_takes_snapshot(vault_redis, tmp_path):
    setup = write_inventory(tmp_path, vault_redis)
    vault_bytes = setup.vault_file.read_bytes()
    assert vault_bytes.startswith(b"$ANSIBLE_VAULT;1.1;AES256")
    assert find_secrets(setup, {"the vault file": vault_bytes}) == []
    # The server rejects a client without the password.
    with pytest.raises(redis.exceptions.AuthenticationError):
        redis.Redis(host="127.0.0.1", port=vault_redis.port).ping()

    completed = run_snapshot(setup, setup.vault_password_file)

    output = completed.stdout.decode() + completed.stderr.decode()
    assert completed.returncode == 0, output[-6000:]
    assert "failed=0" in completed.stdout.decode()
    assert str(setup.lock_path) in output
    assert not setup.lock_path.exists()

    backups = sorted(setup.backup_root.glob("backup-*"))
    assert len(backups) == 1
    snapshot_dir = backups[0] / "datastores" / "cache"
    rdb_file = snapshot_dir / "dump.rdb"
    assert rdb_file.is_file()
    snapshot = json.loads((snapshot_dir / "snapshot.json").read_text())
    assert snapshot["complete"] is True
    expected_counts = {db: len(keys) for db, keys in KEYS_BY_DB.items()}
    assert {
        int(name.removeprefix("db")): entry["keys"]
        for name, entry in snapshot["keyspace"].items()
    } == expected_counts

    # Load the copied RDB file into a second server to count what it really holds.
    check_dir = tmp_path / "rdb-check"
    check_dir.mkdir()
    shutil.copyfile(rdb_file, check_dir / "dump.rdb")
    check_server = start_redis(check_dir, None, "dump.rdb")
    try:
        assert keyspace_counts(check_server) == expected_counts
        assert check_server.client(3).get("queue:jobs") == b"job-1"
    finally:
        stop_redis(check_server)

    timelines = files_under(setup.timeline_dir)
    assert timelines != []
    written = files_under(setup.backup_root, setup.timeline_dir, setup.home)
    assert rdb_file in written
    assert setup.log_path.stat().st_size > 0
    searched = {
        "stdout": completed.stdout,
        "stderr": completed.stderr,
        str(setup.log_path): setup.log_path.read_bytes(),
    }
    searched.update({str(path): path.read_bytes() for path in written})
    assert find_secrets(setup, searched) == []


def test_wrong_vault_password_writes_nothing(vault_redis, tmp_path):
    setup = write_inventory(tmp_path, vault_redis)
    wrong_password_file = tmp_path / "wrong-vault-password"
    wrong_password_file.write_text("not-the-vault-password\n")
    data_files_before = sorted(path.name for path in vault_redis.data_dir.iterdir())

    completed = run_snapshot(setup, wrong_password_file)

    output = completed.stdout.decode() + completed.stderr.decode()
    assert completed.returncode == 4, output[-4000:]
    # ansible-core 2.19 does not name the file that it could not decrypt.
    assert (
        "[ERROR]: Decryption failed (no vault secrets were found that could decrypt)."
        in output
    )
    assert "TASK [" not in output
    assert not setup.backup_root.exists()
    assert not setup.lock_path.parent.exists()
    assert sorted(path.name for path in vault_redis.data_dir.iterdir()) == (
        data_files_before
    )
    # The timeline callback opens its record when the playbook starts, and the run
    # stops before the first task.
    timelines = files_under(setup.timeline_dir)
    assert len(timelines) == 1
    assert json.loads(timelines[0].read_text())["tasks"] == []
    searched = {
        "stdout": completed.stdout,
        "stderr": completed.stderr,
        str(setup.log_path): setup.log_path.read_bytes(),
        str(timelines[0]): timelines[0].read_bytes(),
    }
    assert find_secrets(setup, searched) == []
