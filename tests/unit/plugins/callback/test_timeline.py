"""Exact-output tests of the timeline callback, with a fixed clock."""

import json
import os
import re
from typing import ClassVar

import pytest
from ansible_collections.truebond.rollback.plugins.callback import timeline

KEYS = re.compile(
    timeline.DOCUMENTATION.split("default: ")[-1].split("\n")[0], re.IGNORECASE
)
START = 1796395000.0  # 2026-12-04T14:36:40Z


class FakeClock:
    def __init__(self, start=START):
        self.now = start

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds


class FakeRole:
    def __init__(self, name):
        self.name = name

    def get_name(self):
        return self.name


class FakeTask:
    def __init__(self, name, action, role=None):
        self.name = name
        self.action = action
        self._uuid = "uuid-" + name
        self._role = FakeRole(role) if role else None

    def get_name(self):
        return self.name


class FakeHost:
    def __init__(self, name):
        self.name = name

    def get_name(self):
        return self.name


class FakeResult:
    def __init__(self, task, host, result):
        self._task = task
        self._host = host
        self._result = result


class FakePlaybook:
    _file_name = "playbooks/rollback_app.yml"


class FakeVariableManager:
    extra_vars: ClassVar[dict] = {
        "version": "v0.9.5",
        "statuspage_api_key": "sk-live-123",
        "mongodb_uri": "mongodb://admin:s3cret@127.0.0.1:27017/truebond",
        "nested": {"smtp_password": "pw", "port": 25},
    }


class FakePlay:
    def get_variable_manager(self):
        return FakeVariableManager()


class FakeStats:
    processed: ClassVar[dict] = {"drill-app": 1}

    def summarize(self, host):
        return {"ok": 3, "changed": 1, "failures": 1}


@pytest.fixture
def callback(tmp_path, monkeypatch):
    monkeypatch.setattr(timeline.getpass, "getuser", lambda: "oncall")
    monkeypatch.setattr(timeline.socket, "gethostname", lambda: "laptop")
    monkeypatch.setattr(timeline.os, "getpid", lambda: 4242)
    monkeypatch.setattr(
        timeline.sys,
        "argv",
        ["ansible-playbook", "rollback_app.yml", "-e", "version=v0.9.5 api_token=abc"],
    )
    monkeypatch.delenv("TRUEBOND_TIMELINE_FILE", raising=False)
    clock = FakeClock()
    plugin = timeline.CallbackModule(clock=clock)
    # Outside a run the plugin loader has not read the options from DOCUMENTATION.
    plugin._plugin_options = {"dir": str(tmp_path), "redact_keys": KEYS.pattern}
    plugin.clock = clock
    return plugin


def run_sample(plugin):
    host = FakeHost("drill-app")
    plugin.v2_playbook_on_start(FakePlaybook())
    plugin.v2_playbook_on_play_start(FakePlay())

    phase = FakeTask(
        "Timeline | Start phase capture", "ansible.builtin.set_fact", "rollback_log"
    )
    plugin.v2_playbook_on_task_start(phase, False)
    plugin.v2_runner_on_start(host, phase)
    plugin.clock.advance(0.25)
    plugin.v2_runner_on_ok(
        FakeResult(
            phase, host, {"ansible_facts": {"rollback_log_open": {"phase": "capture"}}}
        )
    )

    copy = FakeTask(
        "Capture | Write symptoms.md", "ansible.builtin.copy", "capture_state"
    )
    plugin.v2_playbook_on_task_start(copy, False)
    plugin.v2_runner_on_start(host, copy)
    plugin.clock.advance(0.5)
    plugin.v2_runner_on_ok(FakeResult(copy, host, {"changed": True}))

    probe = FakeTask(
        "Verify health | Probe", "truebond.rollback.health_probe", "verify_health"
    )
    plugin.v2_playbook_on_task_start(probe, False)
    plugin.v2_runner_on_start(host, probe)
    plugin.clock.advance(2.0)
    plugin.v2_runner_on_failed(
        FakeResult(probe, host, {"msg": "probe of mongodb://u:pw@127.0.0.1/x failed"})
    )
    plugin.clock.advance(0.1)
    plugin.v2_playbook_on_stats(FakeStats())


def test_timeline_exact_record(callback, tmp_path):
    run_sample(callback)

    path = tmp_path / "rollback_app-20261204T143640.000000Z-4242.json"
    assert json.loads(path.read_text()) == {
        "format": 1,
        "run_id": "rollback_app-20261204T143640.000000Z-4242",
        "playbook": "playbooks/rollback_app.yml",
        "started": "2026-12-04T14:36:40.000000Z",
        "ended": "2026-12-04T14:36:42.850000Z",
        "operator": "oncall",
        "controller": "laptop",
        "command_line": [
            "ansible-playbook",
            "rollback_app.yml",
            "-e",
            "version=v0.9.5 api_token=<redacted>",
        ],
        "extra_vars": {
            "version": "v0.9.5",
            "statuspage_api_key": "<redacted>",
            "mongodb_uri": "mongodb://admin:<redacted>@127.0.0.1:27017/truebond",
            "nested": {"smtp_password": "<redacted>", "port": 25},
        },
        "tasks": [
            {
                "task": "Timeline | Start phase capture",
                "action": "ansible.builtin.set_fact",
                "role": "rollback_log",
                "host": "drill-app",
                "phase": None,
                "status": "ok",
                "started": "2026-12-04T14:36:40.000000Z",
                "ended": "2026-12-04T14:36:40.250000Z",
                "duration_seconds": 0.25,
            },
            {
                "task": "Capture | Write symptoms.md",
                "action": "ansible.builtin.copy",
                "role": "capture_state",
                "host": "drill-app",
                "phase": "capture",
                "status": "changed",
                "started": "2026-12-04T14:36:40.250000Z",
                "ended": "2026-12-04T14:36:40.750000Z",
                "duration_seconds": 0.5,
            },
            {
                "task": "Verify health | Probe",
                "action": "truebond.rollback.health_probe",
                "role": "verify_health",
                "host": "drill-app",
                "phase": "capture",
                "status": "failed",
                "started": "2026-12-04T14:36:40.750000Z",
                "ended": "2026-12-04T14:36:42.750000Z",
                "duration_seconds": 2.0,
                "message": "probe of mongodb://u:<redacted>@127.0.0.1/x failed",
            },
        ],
        "stats": {"drill-app": {"ok": 3, "changed": 1, "failures": 1}},
    }


def test_timeline_file_private(callback, tmp_path):
    run_sample(callback)

    (path,) = tmp_path.glob("*.json")
    assert oct(path.stat().st_mode & 0o777) == "0o600"


def test_timeline_path_exported(callback, tmp_path):
    callback.v2_playbook_on_start(FakePlaybook())

    assert os.environ["TRUEBOND_TIMELINE_FILE"] == str(
        tmp_path / "rollback_app-20261204T143640.000000Z-4242.json"
    )


def test_timeline_written_before_end(callback, tmp_path):
    host = FakeHost("drill-app")
    callback.v2_playbook_on_start(FakePlaybook())
    task = FakeTask(
        "Preflight | List", "community.docker.docker_host_info", "preflight"
    )
    callback.v2_runner_on_start(host, task)
    callback.v2_runner_on_ok(FakeResult(task, host, {}))

    (path,) = tmp_path.glob("*.json")
    record = json.loads(path.read_text())
    assert record["ended"] is None
    assert [entry["task"] for entry in record["tasks"]] == ["Preflight | List"]


@pytest.mark.parametrize(
    ("key", "value", "expected"),
    [
        ("db_password", "hunter2", "<redacted>"),
        ("API_KEY", "k", "<redacted>"),
        (
            "endpoint",
            "https://user:pw@127.0.0.1/hook",
            "https://user:<redacted>@127.0.0.1/hook",
        ),
        ("version", "v0.9.5", "v0.9.5"),
        ("hosts", ["a", "b"], ["a", "b"]),
    ],
    ids=["password-key", "upper-case-key", "url-password", "plain", "list"],
)
def test_redact_values(key, value, expected):
    assert timeline.redact({key: value}, KEYS) == {key: expected}


@pytest.mark.parametrize(
    ("arg", "expected"),
    [
        (
            '{"version": "v0.9.5", "statuspage_api_key": "k"}',
            '{"statuspage_api_key": "<redacted>", "version": "v0.9.5"}',
        ),
        (
            "{smtp_password: pw, port: 25}",
            '{"port": 25, "smtp_password": "<redacted>"}',
        ),
        ("version=v0.9.5 db_token=abc", "version=v0.9.5 db_token=<redacted>"),
        ("{not yaml", "{not yaml"),
    ],
    ids=["json", "yaml-flow", "key-value", "unparsable"],
)
def test_redact_argv_documents(arg, expected):
    assert timeline.redact_argv(["-e", arg], KEYS) == ["-e", expected]
