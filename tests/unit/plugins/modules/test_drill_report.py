# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for the drill_report module."""

from __future__ import annotations

import datetime
import json
import stat
import sys

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.truebond.rollback.plugins.modules import drill_report

PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"

DECISION = {
    "decision": "immediate_rollback",
    "severity": "critical",
    "metrics": {"error_rate": 0.35, "uptime": 1.0, "response_time": 0.0},
    "reasons": [
        (
            "error_rate is 35%, which is above the immediate rollback threshold of "
            "10% (critical)."
        )
    ],
    # Keys of the registered result that the record leaves out.
    "changed": False,
    "msg": "Decision immediate_rollback ...",
}

MEASUREMENT = {
    "requests": 20,
    "errors_5xx": 7,
    "no_response": 0,
    "endpoints": {
        "/api/health": {"requests": 7, "errors_5xx": 0},
        "/api/auth/health": {"requests": 6, "errors_5xx": 6},
    },
}


def write_rollback_log(incident_dir, rto_seconds=21.4, result="success"):
    """Write a rollback-log.json with the keys that the rollback_log module writes."""
    incident_dir.mkdir(parents=True, exist_ok=True)
    document = {
        "format": 1,
        "procedure": "application",
        "result": result,
        "timeline": [
            {
                "phase": "preflight",
                "started": "2026-12-04T18:00:10.000000Z",
                "ended": "2026-12-04T18:00:14.200000Z",
                "duration_seconds": 4.2,
                "status": "ok",
                "detail": None,
            },
            {
                "phase": "verify",
                "started": "2026-12-04T18:00:14.200000Z",
                "ended": "2026-12-04T18:00:31.400000Z",
                "duration_seconds": 17.2,
                "status": "ok" if result == "success" else "failed",
                "detail": None,
            },
        ],
        "rto": {
            "seconds": rto_seconds,
            "objective_seconds": 900.0,
            "met": None if rto_seconds is None else rto_seconds <= 900,
        },
        "capture_dir": str(incident_dir),
    }
    path = incident_dir / "rollback-log.json"
    path.write_text(json.dumps(document), encoding="utf-8")
    return path


def module_args(tmp_path, drill_id="drill-20261204T180000Z", **overrides):
    day = drill_id[6:14]
    started_at = (
        f"{day[:4]}-{day[4:6]}-{day[6:]}T{drill_id[15:17]}:{drill_id[17:19]}:00.000000Z"
    )
    args = {
        "history_file": str(tmp_path / "drills" / "history.jsonl"),
        "rollback_log": str(
            write_rollback_log(tmp_path / f"incident-{drill_id[6:]}", **_log(overrides))
        ),
        "drill_id": drill_id,
        "started_at": started_at,
        "from_version": "v1.0.0",
        "to_version": "v0.9.5",
        "decision": DECISION,
        "measurement": MEASUREMENT,
        "environment": "drill",
        "host": "drill-app",
    }
    args.update(overrides)
    return {key: value for key, value in args.items() if value is not None}


def _log(overrides):
    """Pop the rollback log settings out of ``overrides``."""
    settings = {}
    for key in ("rto_seconds", "result_in_log"):
        if key in overrides:
            settings["result" if key == "result_in_log" else key] = overrides.pop(key)
    return settings


def run_main(args, capsys, check_mode=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args), pytest.raises(SystemExit):
        drill_report.main()
    return json.loads(capsys.readouterr().out)


def warnings_of(result):
    return [warning["event"]["msg"] for warning in result.get("warnings", [])]


def history_lines(tmp_path):
    return (tmp_path / "drills" / "history.jsonl").read_bytes().splitlines()


def mode_of(path):
    return stat.S_IMODE(path.stat().st_mode)


# ---------------------------------------------------------------------------
# Reading the history


@pytest.mark.parametrize(
    ("line", "error"),
    [
        pytest.param(
            b"{trunc", "invalid JSON at column 2: Expecting property name", id="json"
        ),
        pytest.param(b"[1, 2]", "a JSON list, not an object", id="list"),
        pytest.param(b'{"result": "success"}', "no drill_id string", id="no-id"),
        pytest.param(b'{"drill_id": 7}', "no drill_id string", id="id-number"),
        pytest.param(b'"\xff"', "not UTF-8: invalid start byte", id="utf8"),
    ],
)
def test_read_history_reports_corrupt_line(line, error):
    data = b'{"drill_id": "a"}\n' + line + b'\n{"drill_id": "b"}\n'
    records, corrupt = drill_report.read_history(data)
    assert [record["drill_id"] for record in records] == ["a", "b"]
    assert len(corrupt) == 1
    assert corrupt[0]["line"] == 2
    assert corrupt[0]["error"].startswith(error)


def test_read_history_skips_empty_lines():
    records, corrupt = drill_report.read_history(b'\n{"drill_id": "a"}\n\n  \n')
    assert [record["drill_id"] for record in records] == ["a"]
    assert corrupt == []


@pytest.mark.parametrize(
    ("before", "expected_prefix"),
    [
        pytest.param(b"", b"", id="empty"),
        pytest.param(b'{"drill_id": "a"}\n', b'{"drill_id": "a"}\n', id="newline"),
        pytest.param(b"{trunc", b"{trunc\n", id="no-newline"),
    ],
)
def test_append_line_keeps_earlier_bytes(before, expected_prefix):
    data = drill_report.append_line(before, {"drill_id": "new"})
    assert data.startswith(expected_prefix)
    assert data[len(expected_prefix) :] == b'{"drill_id":"new"}\n'


# ---------------------------------------------------------------------------
# The record


def test_build_record_takes_rto_from_log(tmp_path):
    args = module_args(tmp_path, rto_seconds=950.0)
    params = dict.fromkeys(("report_dir", "incident_dir", "result"))
    params.update(args, rto_objective_minutes=1.0, removed_backups=["/x.bak"])
    log = drill_report.read_rollback_log(args["rollback_log"])
    now = datetime.datetime(2026, 12, 4, 18, 1, tzinfo=datetime.UTC)
    record = drill_report.build_record(params, log, now)
    assert record["rto_seconds"] == 950.0
    # The log's objective (900 s) takes precedence over rto_objective_minutes.
    assert record["rto_objective_seconds"] == 900.0
    assert record["rto_met"] is False
    assert record["result"] == "success"
    assert record["date"] == "2026-12-04"
    assert record["recorded_at"] == "2026-12-04T18:01:00.000000Z"
    assert record["incident_dir"] == str(tmp_path / "incident-20261204T180000Z")
    assert record["decision"] == {
        key: DECISION[key] for key in drill_report.DECISION_KEYS
    }
    assert record["timeline"][0] == {
        "phase": "preflight",
        "duration_seconds": 4.2,
        "status": "ok",
    }
    assert record["removed_backups"] == ["/x.bak"]


# ---------------------------------------------------------------------------
# The module end to end


def test_main_writes_history_report_and_chart(tmp_path, capsys):
    result = run_main(module_args(tmp_path), capsys)
    drills = tmp_path / "drills"
    incident = tmp_path / "incident-20261204T180000Z"
    assert result["changed"] is True
    assert result["appended"] is True
    assert result["history_records"] == 1
    assert result["rto_seconds"] == 21.4
    assert result["rto_met"] is True
    assert result["report_paths"] == [
        str(drills / "drill-report.md"),
        str(incident / "drill-report.md"),
    ]
    assert result["chart_paths"] == [
        str(drills / "rto-trend.png"),
        str(incident / "rto-trend.png"),
    ]
    assert mode_of(drills) == 0o700
    for path in (
        drills / "history.jsonl",
        drills / "drill-report.md",
        drills / "rto-trend.png",
        incident / "drill-report.md",
        incident / "rto-trend.png",
    ):
        assert mode_of(path) == 0o600, path
    lines = history_lines(tmp_path)
    assert len(lines) == 1
    assert json.loads(lines[0]) == result["record"]


def test_main_chart_is_png(tmp_path, capsys):
    result = run_main(module_args(tmp_path), capsys)
    for path in result["chart_paths"]:
        with open(path, "rb") as stream:
            assert stream.read(8) == PNG_SIGNATURE


def test_main_report_shows_rto_and_chart(tmp_path, capsys):
    run_main(module_args(tmp_path), capsys)
    report = (tmp_path / "drills" / "drill-report.md").read_text()
    assert report.startswith("# Rollback drill drill-20261204T180000Z\n")
    assert "| RTO | 21.4 s against the objective of 15 min: met |" in report
    assert "Decision **immediate_rollback** (severity critical)" in report
    assert "- error rate (5xx responses): 35.0%" in report
    assert "- requests sent: 20, 5xx responses: 7, no response: 0" in report
    assert "| /api/auth/health | 6 | 6 |" in report
    assert "| verify | 17.2 s | ok |" in report
    assert "![RTO of every drill over time](rto-trend.png)" in report


def test_main_appends_and_keeps_earlier_lines(tmp_path, capsys):
    run_main(module_args(tmp_path), capsys)
    first = (tmp_path / "drills" / "history.jsonl").read_bytes()
    result = run_main(
        module_args(tmp_path, drill_id="drill-20261211T180000Z", rto_seconds=30.0),
        capsys,
    )
    data = (tmp_path / "drills" / "history.jsonl").read_bytes()
    assert data.startswith(first)
    assert len(data.splitlines()) == 2
    assert result["history_records"] == 2
    assert json.loads(data.splitlines()[1])["rto_seconds"] == 30.0


def test_main_keeps_and_reports_corrupt_line(tmp_path, capsys):
    history = tmp_path / "drills" / "history.jsonl"
    history.parent.mkdir()
    earlier = (
        b'{"drill_id": "drill-20261127T180000Z", "started_at": '
        b'"2026-11-27T18:00:00Z", "rto_seconds": 25.0, "result": "success"}\n'
        b'{"drill_id": "drill-2026112\n'
    )
    history.write_bytes(earlier)
    result = run_main(module_args(tmp_path), capsys)
    data = history.read_bytes()
    assert data.startswith(earlier)
    assert len(data.splitlines()) == 3
    assert result["history_records"] == 2
    assert result["corrupt_lines"] == [
        {
            "line": 2,
            "error": "invalid JSON at column 14: Unterminated string starting at",
            "text": '{"drill_id": "drill-2026112',
        }
    ]
    assert warnings_of(result) == [
        (
            f"{history} line 2 is not a valid drill record (invalid JSON at column "
            "14: Unterminated string starting at); it stays in the file and is left "
            "out of the report"
        )
    ]
    report = (tmp_path / "drills" / "drill-report.md").read_text()
    assert "- line 2: invalid JSON at column 14: Unterminated string" in report


def test_main_same_drill_id_appends_once(tmp_path, capsys):
    args = module_args(tmp_path)
    run_main(args, capsys)
    result = run_main(args, capsys)
    assert result["appended"] is False
    assert result["history_records"] == 1
    assert len(history_lines(tmp_path)) == 1
    assert warnings_of(result) == [
        (
            f"drill 'drill-20261204T180000Z' is already in {args['history_file']}, "
            "so no second record was appended"
        )
    ]


def test_main_check_mode_writes_nothing(tmp_path, capsys):
    args = module_args(tmp_path)
    incident = tmp_path / "incident-20261204T180000Z"
    files_before = sorted(incident.iterdir())
    result = run_main(args, capsys, check_mode=True)
    assert result["appended"] is True
    assert result["record"]["rto_seconds"] == 21.4
    assert not (tmp_path / "drills").exists()
    assert sorted(incident.iterdir()) == files_before


def test_main_check_mode_keeps_history(tmp_path, capsys):
    run_main(module_args(tmp_path), capsys)
    data = (tmp_path / "drills" / "history.jsonl").read_bytes()
    report = (tmp_path / "drills" / "drill-report.md").read_bytes()
    second = module_args(tmp_path, drill_id="drill-20261211T180000Z")
    result = run_main(second, capsys, check_mode=True)
    assert result["history_records"] == 2
    assert (tmp_path / "drills" / "history.jsonl").read_bytes() == data
    assert (tmp_path / "drills" / "drill-report.md").read_bytes() == report


def test_main_records_not_detected_without_log(tmp_path, capsys):
    args = module_args(tmp_path, rollback_log=None, result="not_detected")
    args["decision"] = dict(DECISION, decision="continue", severity="low")
    result = run_main(args, capsys)
    assert result["result"] == "not_detected"
    assert result["rto_seconds"] is None
    assert result["rto_met"] is None
    assert result["record"]["incident_dir"] is None
    assert result["report_paths"] == [str(tmp_path / "drills" / "drill-report.md")]
    report = (tmp_path / "drills" / "drill-report.md").read_text()
    assert "| RTO | not measured (objective 15 min) |" in report
    assert "History: " in report
    assert "(1 drill, newest first below)." in report


def test_main_trend_over_several_records(tmp_path, capsys):
    drills = [
        ("drill-20261106T180000Z", 40.0),
        ("drill-20261113T180000Z", None),
        ("drill-20261120T180000Z", 31.5),
        ("drill-20261127T180000Z", 950.0),
    ]
    for drill_id, rto in drills:
        if rto is None:
            args = module_args(tmp_path, drill_id, rollback_log=None)
            args["result"] = "not_detected"
        else:
            args = module_args(tmp_path, drill_id, rto_seconds=rto)
        result = run_main(args, capsys)
    assert result["history_records"] == 4
    records, corrupt = drill_report.read_history(
        (tmp_path / "drills" / "history.jsonl").read_bytes()
    )
    assert corrupt == []
    points = drill_report.trend_points(list(reversed(records)))
    assert [point[1] for point in points] == [40.0, None, 31.5, 950.0]
    assert [point[2] for point in points] == [True, None, True, False]
    report = (tmp_path / "drills" / "drill-report.md").read_text()
    rows = [line for line in report.splitlines() if line.startswith("| 2026-11-")]
    assert [row.split(" | ")[1] for row in rows] == [
        "drill-20261127T180000Z",
        "drill-20261120T180000Z",
        "drill-20261113T180000Z",
        "drill-20261106T180000Z",
    ]
    assert "| 950.0 s | MISSED | success |" in rows[0]
    assert "| not measured | not measured | not_detected |" in rows[2]
    with open(tmp_path / "drills" / "rto-trend.png", "rb") as stream:
        assert stream.read(8) == PNG_SIGNATURE


def test_draw_trend_returns_png():
    records = [
        {"drill_id": "a", "started_at": "2026-11-06T18:00:00Z", "rto_seconds": 40.0},
        {"drill_id": "b", "started_at": "not a time", "rto_seconds": 10.0},
    ]
    for record in records:
        record.update(rto_met=True, result="success")
    assert drill_report.draw_trend(records, 900.0).startswith(PNG_SIGNATURE)


def test_main_without_matplotlib_skips_chart(tmp_path, capsys, monkeypatch):
    monkeypatch.setattr(drill_report, "MATPLOTLIB_ERROR", "ImportError: matplotlib")
    result = run_main(module_args(tmp_path), capsys)
    assert result["chart_paths"] == []
    assert not (tmp_path / "drills" / "rto-trend.png").exists()
    assert warnings_of(result) == [
        (
            "rto-trend.png is not drawn because matplotlib is not installed for "
            f"{sys.executable}; install it for that Python (python3-matplotlib on "
            "Debian)"
        )
    ]
    report = (tmp_path / "drills" / "drill-report.md").read_text()
    assert "The chart was not drawn (see the module's warning)." in report


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        pytest.param(
            {"rollback_log": None},
            "rollback_log is required unless result is not_detected; give the "
            "rollback-log.json of the drill's rollback",
            id="no-log",
        ),
        pytest.param(
            {"rollback_log": "/nonexistent/rollback-log.json"},
            "rollback_log '/nonexistent/rollback-log.json' not found; give the "
            "rollback-log.json that the rollback wrote into its incident folder",
            id="log-missing",
        ),
        pytest.param(
            {"started_at": "2026-12-04T19:00:00+01:00"},
            "started_at '2026-12-04T19:00:00+01:00' must be in UTC; end it with Z "
            "or +00:00",
            id="not-utc",
        ),
        pytest.param(
            {"decision": {"decision": "continue"}},
            "decision is missing severity, metrics, reasons; pass the registered "
            "result of truebond.rollback.rollback_decision",
            id="decision-keys",
        ),
        pytest.param(
            {"incident_dir": "/nonexistent/incident"},
            "incident folder '/nonexistent/incident' not found; give incident_dir, "
            "or check the capture_dir of the rollback log",
            id="incident-missing",
        ),
    ],
)
def test_main_rejects_bad_input(tmp_path, capsys, overrides, message):
    result = run_main(module_args(tmp_path, **overrides), capsys)
    assert result["failed"] is True
    assert result["msg"] == message
    assert not (tmp_path / "drills" / "history.jsonl").exists()


def test_main_rejects_invalid_log_json(tmp_path, capsys):
    args = module_args(tmp_path)
    with open(args["rollback_log"], "w") as stream:
        stream.write("{")
    result = run_main(args, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith(
        f"rollback_log {args['rollback_log']!r} is not valid JSON ("
    )


def test_main_rejects_history_folder(tmp_path, capsys):
    args = module_args(tmp_path, history_file=str(tmp_path))
    result = run_main(args, capsys)
    assert result["failed"] is True
    assert result["msg"] == (
        f"history_file {str(tmp_path)!r} is a folder; give the path of a file such "
        f"as {str(tmp_path / 'history.jsonl')!r}"
    )
