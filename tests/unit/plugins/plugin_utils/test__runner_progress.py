# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Progress lines and the rollback log summary from ansible-runner events."""

from __future__ import annotations

import io
import json

from ansible_collections.truebond.rollback.plugins.plugin_utils import _runner_progress


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now


def task_start(name: str, uuid: str) -> dict:
    return {
        "event": "playbook_on_task_start",
        "event_data": {"task": name, "task_uuid": uuid},
    }


def host_event(kind: str, name: str, uuid: str, **data) -> dict:
    return {
        "event": kind,
        "event_data": {"task": name, "task_uuid": uuid, "host": "app-01", **data},
    }


def test_progress_prints_one_line_per_phase():
    clock = FakeClock()
    stream = io.StringIO()
    printer = _runner_progress.ProgressPrinter(stream=stream, clock=clock)
    events = [
        (0.0, task_start("Start the preflight phase", "t1")),
        (0.1, host_event("playbook_on_include", "Start the preflight phase", "t1")),
        (2.0, task_start("Start the capture phase", "t2")),
        (2.1, task_start("Capture the state", "t3")),
        # A phase task skipped by its when condition opens no phase.
        (5.0, task_start("Start the prepare phase", "t4")),
        (5.0, host_event("runner_on_start", "Start the prepare phase", "t4")),
        (5.0, host_event("runner_on_skipped", "Start the prepare phase", "t4")),
        (5.5, task_start("Start the verify phase", "t5")),
        (5.6, task_start("Verify", "t6")),
        (9.5, task_start("Rollback log | Close the phase", "t7")),
    ]
    for moment, event in events:
        clock.now = 100.0 + moment
        assert printer.handle(event) is True
    clock.now = 110.0
    printer.finish("successful")

    assert stream.getvalue().splitlines() == [
        "[    0.0 s] preflight phase started",
        "[    2.0 s] capture phase started (preflight took 2.0 s)",
        "[    5.5 s] verify phase started (capture took 3.5 s)",
        "[    9.5 s] writing the rollback log (verify took 4.0 s)",
        "[   10.0 s] run successful",
    ]
    assert [phase for phase, _ in printer.phases] == ["preflight", "capture", "verify"]


def test_progress_records_log_paths_and_failure():
    printer = _runner_progress.ProgressPrinter(stream=io.StringIO())
    printer.handle(
        host_event(
            "runner_on_ok",
            _runner_progress.LOG_PATHS_TASK,
            "t1",
            res={
                "msg": [
                    "Rollback log (Markdown): /backup/incident-1/rollback-log.md",
                    "Rollback log (JSON): /backup/incident-1/rollback-log.json",
                    "RTO 14.2 s against the objective of 15 min: met",
                ]
            },
        )
    )
    printer.handle(
        host_event(
            "runner_on_failed", "Probe", "t2", ignore_errors=True, res={"msg": "x"}
        )
    )
    printer.handle(
        host_event(
            "runner_on_failed", "Verify", "t3", res={"msg": "health check failed\n"}
        )
    )

    log = printer.logs["app-01"]
    assert log.json_path == "/backup/incident-1/rollback-log.json"
    assert log.markdown_path == "/backup/incident-1/rollback-log.md"
    assert printer.failures == [
        _runner_progress.Failure(
            host="app-01", task="Verify", message="health check failed"
        )
    ]


def test_verbose_progress_echoes_output():
    stream = io.StringIO()
    printer = _runner_progress.ProgressPrinter(stream=stream, verbose=1)
    printer.handle({"event": "verbose", "stdout": "PLAY [x] ****", "event_data": {}})
    assert stream.getvalue() == "PLAY [x] ****\n"


def test_summary_of_rollback_log():
    document = {
        "result": "success",
        "procedure": "database",
        "rollback_type": 2,
        "from_version": "v1.0.0",
        "to_version": "v0.9.5",
        "rto": {"seconds": 42.25, "objective_seconds": 900.0, "met": True},
        "rpo": {"seconds": 400.0, "objective_seconds": 300.0, "met": False},
        "timeline": [
            {"phase": "preflight", "duration_seconds": 1.5, "status": "ok"},
            {"phase": "restore", "duration_seconds": 30.0, "status": "ok"},
        ],
    }
    assert _runner_progress.summarize_log(document) == [
        "  Result: success",
        "  Procedure: database (Type 2)",
        "  Versions: v1.0.0 -> v0.9.5",
        "  RTO: 42.2 s against the objective of 15 min: met",
        "  RPO: 400.0 s against the objective of 5 min: MISSED",
        "    preflight       1.5 s  ok",
        "    restore        30.0 s  ok",
    ]


def test_summary_without_measurements():
    document = {
        "result": "failed",
        "procedure": "application",
        "rollback_type": 1,
        "rto": {"seconds": None, "objective_seconds": 900.0, "met": None},
        "rpo": {"seconds": None, "objective_seconds": 300.0, "met": None},
    }
    lines = _runner_progress.summarize_log(document)
    assert "  RTO: not measured (the rollback was not verified)" in lines
    assert "  RPO: not measured (no data was restored)" in lines


def printer_with_log(
    json_path: str,
) -> tuple[_runner_progress.ProgressPrinter, io.StringIO]:
    stream = io.StringIO()
    printer = _runner_progress.ProgressPrinter(stream=stream)
    printer.logs["app-01"] = _runner_progress.HostLog(
        host="app-01",
        lines=[
            f"Rollback log (JSON): {json_path}",
            "RTO not measured: the rollback was not verified.",
        ],
        json_path=json_path,
        markdown_path=json_path.replace(".json", ".md"),
    )
    return printer, stream


def test_report_copies_local_log(tmp_path):
    incident = tmp_path / "incident"
    incident.mkdir()
    document = {
        "result": "success",
        "procedure": "application",
        "rollback_type": 1,
        "rto": {"seconds": 10.0, "objective_seconds": 900.0, "met": True},
        "rpo": {"seconds": None, "objective_seconds": 300.0, "met": None},
    }
    (incident / "rollback-log.json").write_text(json.dumps(document))
    (incident / "rollback-log.md").write_text("# Rollback log\n")
    printer, stream = printer_with_log(str(incident / "rollback-log.json"))

    _runner_progress.report_logs(printer, tmp_path / "artifacts")

    copies = tmp_path / "artifacts" / "rollback-log" / "app-01"
    assert json.loads((copies / "rollback-log.json").read_text()) == document
    assert (copies / "rollback-log.md").read_text() == "# Rollback log\n"
    output = stream.getvalue().splitlines()
    assert "  RTO: 10.0 s against the objective of 15 min: met" in output
    assert f"  Copy in the artifacts: {copies}" in output


def test_report_remote_log_prints_lines(tmp_path):
    printer, stream = printer_with_log("/backup/incident-1/rollback-log.json")

    _runner_progress.report_logs(printer, tmp_path / "artifacts")

    assert stream.getvalue().splitlines() == [
        "Rollback log of app-01:",
        "  Rollback log (JSON): /backup/incident-1/rollback-log.json",
        "  RTO not measured: the rollback was not verified.",
        "  (the files are on app-01)",
    ]
    assert not (tmp_path / "artifacts").exists()
