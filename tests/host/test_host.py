# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""State of this machine after a drill rollback, read with pytest-testinfra.

Run with: .venv/bin/pytest tests/host --hosts=local://

The incident folder checks read the newest folder under the drill backup root. If
there is none yet, the module fixture runs one rollback from v1.0.0 to v0.9.5 and
resets the stack to v1.0.0 afterwards.
"""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DRILL_HOME = Path(os.environ.get("TRUEBOND_DRILL_HOME", "/var/tmp/truebond-drill"))
BACKUP_ROOT = DRILL_HOME / "backup"
COMPOSE_PLUGIN = "/usr/local/lib/docker/cli-plugins/docker-compose"


def list_incident_folders() -> list[Path]:
    """Return the incident folders under the backup root, oldest first."""
    if not BACKUP_ROOT.is_dir():
        return []
    return sorted(
        entry
        for entry in BACKUP_ROOT.iterdir()
        if entry.is_dir() and entry.name.startswith("incident-")
    )


def run_drill_rollback() -> None:
    """Roll the drill stack from v1.0.0 back to v0.9.5, then reset it to v1.0.0."""
    environment = dict(os.environ)
    search_path = environment.get("PATH", "/usr/bin:/bin")
    environment.update(
        {
            "PATH": f"{REPO / '.venv' / 'bin'}:{search_path}",
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
        }
    )
    stack = ["bash", str(REPO / "tests" / "stack" / "stack.sh"), "set"]
    subprocess.run([*stack, "v1.0.0"], check=True, capture_output=True)
    try:
        completed = subprocess.run(
            [
                str(REPO / ".venv" / "bin" / "ansible-playbook"),
                "playbooks/rollback_app.yml",
                "-e",
                "version=v0.9.5",
            ],
            cwd=REPO,
            env=environment,
            capture_output=True,
            text=True,
            check=False,
            timeout=300,
        )
        assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr
    finally:
        subprocess.run([*stack, "v1.0.0"], check=True, capture_output=True)


@pytest.fixture(scope="module")
def newest_incident_dir() -> str:
    if not list_incident_folders():
        run_drill_rollback()
    folders = list_incident_folders()
    assert folders, f"no incident folder under {BACKUP_ROOT}"
    return str(folders[-1])


def incident_files(host, incident_dir: str) -> list[str]:
    """Return every file under ``incident_dir``, as the host lists them."""
    listing = host.check_output(f"find {incident_dir} -type f")
    return sorted(listing.splitlines())


# --- Docker and the drill stack -------------------------------------------------


def check_dockerd_running(host):
    assert host.process.filter(comm="dockerd"), "no dockerd process"


def check_compose_v2_or_later(host):
    version = host.check_output("docker compose version --short").strip()

    assert int(version.lstrip("v").split(".")[0]) >= 2, version


def check_compose_plugin_executable(host):
    plugin = host.file(COMPOSE_PLUGIN)

    assert plugin.exists
    assert plugin.is_file
    assert plugin.mode & 0o111 == 0o111, oct(plugin.mode)


def check_backend_listening(host):
    assert host.socket("tcp://127.0.0.1:18080").is_listening


def check_frontend_listening(host):
    assert host.socket("tcp://127.0.0.1:18081").is_listening


def check_no_docker_bridge(host):
    assert host.interface("docker0").exists is False


HOST_CHECKS = [
    pytest.param(check_dockerd_running, id="dockerd-running"),
    pytest.param(check_compose_v2_or_later, id="compose-v2-or-later"),
    pytest.param(check_compose_plugin_executable, id="compose-plugin-executable"),
    pytest.param(check_backend_listening, id="backend-listens-18080"),
    pytest.param(check_frontend_listening, id="frontend-listens-18081"),
    pytest.param(check_no_docker_bridge, id="no-docker0-bridge"),
]


@pytest.mark.parametrize("check", HOST_CHECKS)
def test_host_state(host, check):
    check(host)


# --- The newest incident folder ---------------------------------------------------


def check_folder_private(host, incident_dir):
    folder = host.file(incident_dir)

    assert folder.is_directory
    assert folder.mode == 0o700, oct(folder.mode)
    assert folder.user == "root"


def check_files_private(host, incident_dir):
    files = incident_files(host, incident_dir)
    modes = {path: host.file(path).mode for path in files}

    assert files, f"{incident_dir} has no files"
    assert {path: oct(mode) for path, mode in modes.items() if mode != 0o600} == {}


INCIDENT_CHECKS = [
    pytest.param(check_folder_private, id="folder-0700-root"),
    pytest.param(check_files_private, id="files-0600"),
]


@pytest.mark.parametrize("check", INCIDENT_CHECKS)
def test_incident_folder(host, newest_incident_dir, check):
    check(host, newest_incident_dir)
