# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The truebond-rollback command runs real ansible-runner jobs.

None of these runs touches the drill stack or any shared state: decide.yml reads a
Prometheus address where nothing listens, rollback_app.yml stops at its argument
validation, and a stand-in playbook in a temporary project opens the phases and
writes a rollback log into a temporary folder.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from drill_helpers import REPO, VENV_BIN

WRAPPER = REPO / "plugins" / "plugin_utils" / "truebond-rollback"

STAND_IN_PLAYBOOK = """\
---
- name: Stand-in procedure that opens the phases of a rollback
  hosts: all
  gather_facts: false
  tasks:
    - name: Start the preflight phase
      ansible.builtin.include_role:
        name: truebond.rollback.rollback_log
        tasks_from: phase
      vars:
        rollback_log_phase: preflight

    - name: Start the prepare phase
      ansible.builtin.include_role:
        name: truebond.rollback.rollback_log
        tasks_from: phase
      vars:
        rollback_log_phase: prepare
      when: false

    - name: Start the verify phase
      ansible.builtin.include_role:
        name: truebond.rollback.rollback_log
        tasks_from: phase
      vars:
        rollback_log_phase: verify

    - name: Write the rollback log
      ansible.builtin.include_role:
        name: truebond.rollback.rollback_log
      vars:
        rollback_log_dir: "{{ log_dir }}"
        rollback_log_chart: false
        rollback_log_to_version: "{{ version }}"
"""


# The confirmation steps of playbooks/tasks/confirm_data_rollback.yml, with the same
# task names and prompt, and nothing behind them.
CONFIRM_PLAYBOOK = """\
---
- name: Stand-in data rollback that asks for confirmation
  hosts: all
  gather_facts: false
  tasks:
    - name: Report the plan of this rollback
      ansible.builtin.debug:
        msg: ["Restore MongoDB main from /backup/backup-1", "Writes since then are lost"]

    - name: Ask for confirmation
      ansible.builtin.pause:
        prompt: |-
          Restore MongoDB main from /backup/backup-1
          Type yes to go on with the database rollback of {{ inventory_hostname }}
      register: rollback_data_answer
      when: confirm | default('') != 'yes'

    - name: Stop because the rollback was not confirmed
      ansible.builtin.fail:
        msg: "Not confirmed (the answer was {{ rollback_data_answer.user_input | to_json }})"
      when:
        - confirm | default('') != 'yes'
        - rollback_data_answer.user_input | trim | lower != 'yes'
"""


def local_inventory(path: Path, group: str = "truebond_app", **host_vars) -> Path:
    """Write an inventory with one host that runs on this machine."""
    host = {
        "ansible_connection": "local",
        "ansible_python_interpreter": str(VENV_BIN / "python"),
        **host_vars,
    }
    document = {"all": {"children": {group: {"hosts": {"test-host": host}}}}}
    path.write_text(json.dumps(document))
    return path


def unused_port() -> int:
    """Return a loopback port that nothing listens on at the moment."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def run_cli(
    *argv: str,
    command: list[str] | None = None,
    extra_env: dict[str, str] | None = None,
    timeout: float = 120,
):
    """Run the CLI as a module of the checkout, outside the repository folder."""
    environment = dict(os.environ)
    environment["PYTHONPATH"] = str(REPO / ".collections")
    environment.pop("ANSIBLE_CONFIG", None)
    environment.update(extra_env or {})
    base = command or [
        sys.executable,
        "-m",
        "ansible_collections.truebond.rollback.plugins.plugin_utils.runner_cli",
    ]
    return subprocess.run(
        [*base, *argv],
        cwd="/",
        env=environment,
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def artifact_dir(private_data_dir: Path, command: str) -> Path:
    folders = sorted((private_data_dir / "artifacts").glob(f"{command}-*"))
    assert len(folders) == 1, folders
    return folders[0]


def job_events(folder: Path) -> list[dict]:
    """Return the events of job_events/ in the order of their counter."""
    events = [
        json.loads(path.read_text()) for path in (folder / "job_events").glob("*.json")
    ]
    return sorted(events, key=lambda event: event["counter"])


def test_decide_unreachable_prometheus_exits_2(tmp_path):
    private = tmp_path / "private"
    url = f"http://127.0.0.1:{unused_port()}"
    completed = run_cli(
        "decide", "--prometheus-url", url, "--private-data-dir", str(private)
    )

    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert (
        "playbooks/decide.yml failed (ansible-playbook exit code 2" in completed.stdout
    )
    assert (
        'Failed task "Stop because a person has to act" on localhost:'
        in completed.stdout
    )
    assert "The decision is unknown" in completed.stdout

    folder = artifact_dir(private, "decide")
    assert f"Artifacts: {folder} (job_events/, stdout)" in completed.stdout
    assert (folder / "rc").read_text().strip() == "2"
    assert (folder / "status").read_text().strip() == "failed"
    stdout = (folder / "stdout").read_text()
    assert f"Prometheus at {url} refused the connection" in stdout
    kinds = {event["event"] for event in job_events(folder)}
    assert {"playbook_on_start", "runner_on_failed", "playbook_on_stats"} <= kinds

    extravars = json.loads((private / "env" / "extravars").read_text())
    assert extravars == {"prometheus_url": url, "decide_interactive": False}
    command = json.loads((folder / "command").read_text())["command"]
    assert command[:3] == ["ansible-playbook", "-e", f"@{private}/env/extravars"]


# The real rollback_app.yml takes the host's rollback lock before its input check.
@pytest.mark.drill_machine
def test_app_invalid_severity_fails_validation(tmp_path):
    """A value outside the choices fails at the playbook, as on the command line."""
    private = tmp_path / "private"
    inventory = local_inventory(
        tmp_path / "hosts.json", truebond_project_dir=str(tmp_path / "no-project")
    )
    completed = run_cli(
        "app",
        "--version",
        "v0.9.5",
        "-i",
        str(inventory),
        "-e",
        "severity=bogus",
        "--private-data-dir",
        str(private),
    )

    assert completed.returncode == 2, completed.stdout + completed.stderr
    lines = completed.stdout.splitlines()
    assert any(line.endswith("] preflight phase started") for line in lines), lines
    assert 'Failed task "Validate the input" on test-host:' in completed.stdout
    assert (
        "value of severity must be one of: critical, high, medium, low, unknown, "
        "got: bogus" in completed.stdout
    )
    folder = artifact_dir(private, "app")
    failed = [e for e in job_events(folder) if e["event"] == "runner_on_failed"]
    assert [e["event_data"]["task"] for e in failed] == ["Validate the input"]
    assert "Validation of arguments failed" in (folder / "stdout").read_text()


@pytest.mark.drill_machine
def test_check_mode_reaches_ansible_playbook(tmp_path):
    private = tmp_path / "private"
    inventory = local_inventory(
        tmp_path / "hosts.json", truebond_project_dir=str(tmp_path / "no-project")
    )
    completed = run_cli(
        "app",
        "-i",
        str(inventory),
        "-e",
        "severity=bogus",
        "--check",
        "--private-data-dir",
        str(private),
    )
    assert completed.returncode == 2, completed.stdout + completed.stderr
    assert "running playbooks/rollback_app.yml with ansible-runner in check mode" in (
        completed.stdout
    )
    command = json.loads((artifact_dir(private, "app") / "command").read_text())
    assert "--check" in command["command"]


@pytest.fixture
def stand_in_project(tmp_path) -> Path:
    project = tmp_path / "project"
    (project / "playbooks").mkdir(parents=True)
    (project / "playbooks" / "rollback_app.yml").write_text(STAND_IN_PLAYBOOK)
    return project


def test_phases_and_log_summary_printed(tmp_path, stand_in_project):
    """A successful run prints each phase, the log summary and copies the log."""
    private = tmp_path / "private"
    log_dir = tmp_path / "incident"
    log_dir.mkdir()
    inventory = local_inventory(tmp_path / "hosts.json")
    completed = run_cli(
        "app",
        "--version",
        "v0.9.5",
        "--project-dir",
        str(stand_in_project),
        "-i",
        str(inventory),
        "-e",
        f"log_dir={log_dir}",
        "--private-data-dir",
        str(private),
        # Through the wrapper script, which finds the collection from its own path.
        command=[str(VENV_BIN / "python"), str(WRAPPER)],
        # The stand-in project has no ansible.cfg that would find the collection.
        extra_env={"ANSIBLE_COLLECTIONS_PATH": str(REPO / ".collections")},
    )

    assert completed.returncode == 0, completed.stdout + completed.stderr
    lines = completed.stdout.splitlines()
    progress = [line.split("] ", 1)[1] for line in lines if line.startswith("[")]
    assert progress[0] == "preflight phase started"
    assert progress[1].startswith("verify phase started (preflight took ")
    assert progress[2].startswith("writing the rollback log (verify took ")
    assert progress[3].startswith("run successful")
    assert len(progress) == 4, "the skipped prepare phase must not be printed"

    assert "Rollback log of test-host:" in lines
    assert "  Result: success" in lines
    assert "  Versions: unknown -> v0.9.5" in lines
    rto = [line for line in lines if line.startswith("  RTO: ")]
    assert len(rto) == 1
    assert rto[0].endswith("against the objective of 15 min: met")
    assert "  RPO: not measured (no data was restored)" in lines
    assert f"  Log (JSON): {log_dir}/rollback-log.json" in lines
    assert completed.stdout.rstrip().endswith("playbooks/rollback_app.yml succeeded.")

    folder = artifact_dir(private, "app")
    copied = folder / "rollback-log" / "test-host" / "rollback-log.json"
    assert json.loads(copied.read_text())["result"] == "success"
    assert (folder / "rollback-log" / "test-host" / "rollback-log.md").is_file()
    phases = [
        e["event_data"]["task"]
        for e in job_events(folder)
        if e["event"] == "playbook_on_task_start"
        and e["event_data"]["task"].startswith("Start the ")
    ]
    assert phases == [
        "Start the preflight phase",
        "Start the prepare phase",
        "Start the verify phase",
    ]


@pytest.mark.parametrize(
    ("options", "rc"),
    [pytest.param([], 2, id="without-yes"), pytest.param(["--yes"], 0, id="with-yes")],
)
def test_db_confirmation_prompt(tmp_path, options, rc):
    """Without --yes the prompt gets "no" at once, so the run stops unchanged."""
    project = tmp_path / "project"
    (project / "playbooks").mkdir(parents=True)
    (project / "playbooks" / "rollback_db.yml").write_text(CONFIRM_PLAYBOOK)
    private = tmp_path / "private"
    completed = run_cli(
        "db",
        *options,
        "--project-dir",
        str(project),
        "-i",
        str(local_inventory(tmp_path / "hosts.json")),
        "--private-data-dir",
        str(private),
        timeout=60,
    )

    assert completed.returncode == rc, completed.stdout + completed.stderr
    if rc == 0:
        assert json.loads((private / "env" / "extravars").read_text()) == {
            "confirm": "yes"
        }
        return
    lines = completed.stdout.splitlines()
    assert "The rollback of test-host was not confirmed, so nothing changed." in lines
    assert "  Restore MongoDB main from /backup/backup-1" in lines
    assert "Read the plan above, then run the same command again with --yes." in lines
    stdout = (artifact_dir(private, "db") / "stdout").read_text()
    assert 'Not confirmed (the answer was "no")' in stdout
