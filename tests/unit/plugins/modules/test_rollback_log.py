# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for the rollback_log module."""

from __future__ import annotations

import datetime
import json
import os
import stat

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.truebond.rollback.plugins.modules import rollback_log
from markdown_it import MarkdownIt

UTC = datetime.timezone.utc  # noqa: UP017 - matches the module under test

TIMELINE = [
    {
        "phase": "capture",
        "started": "2026-01-12T10:15:00Z",
        "ended": "2026-01-12T10:15:04.250Z",
        "status": "ok",
        "detail": "",
    },
    {
        "phase": "switch",
        "started": "2026-01-12T10:15:04.250Z",
        "ended": "2026-01-12T10:15:09Z",
        "status": "ok",
        "detail": "truebond-backend v1.0.0 -> v0.9.5",
    },
    {
        "phase": "verify",
        "started": "2026-01-12T10:15:09Z",
        "ended": "2026-01-12T10:15:12.400Z",
        "status": "ok",
        "detail": None,
    },
]


def make_params(**overrides):
    params = {
        "path": "/unused",
        "procedure": "application",
        "rollback_type": 1,
        "issue": "/api/auth/health answers 500",
        "severity": "high",
        "from_version": "v1.0.0",
        "to_version": "v0.9.5",
        "result": "success",
        "started_at": "2026-01-12T10:15:00Z",
        "verified_at": "2026-01-12T10:15:12.400Z",
        "timeline": [dict(phase) for phase in TIMELINE],
        "rto_objective_minutes": 15.0,
        "rpo_objective_minutes": 5.0,
        "data_loss": False,
        "users_affected": "unknown",
        "failure": None,
        "state": None,
        "next_steps": [],
        "operator": "sre",
        "host": "drill-host",
        "capture_dir": "/var/backups/truebond/incident-1",
        "extra": {},
    }
    params.update(overrides)
    return params


def module_args(folder, **overrides):
    args = make_params(path=str(folder), **overrides)
    return {key: value for key, value in args.items() if value is not None}


def run_main(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        rollback_log.main()
    return json.loads(capsys.readouterr().out)


def table_rows(markdown):
    """Return the cell texts of every row of the first table in markdown."""
    tokens = MarkdownIt("commonmark").enable("table").parse(markdown)
    rows = []
    current = None
    for index, token in enumerate(tokens):
        if token.type == "tr_open":
            current = []
        elif token.type in ("th_open", "td_open"):
            current.append(
                tokens[index + 1].content if tokens[index + 1].type == "inline" else ""
            )
        elif token.type == "tr_close":
            rows.append(current)
    return rows


def rendered_text(markdown_inline):
    """Return the plain text that markdown-it renders for one inline fragment."""
    html = MarkdownIt("commonmark").renderInline(markdown_inline)
    return html.replace("&amp;", "&").replace("&lt;", "<").replace("&gt;", ">")


@pytest.mark.parametrize(
    "value, expected",
    [
        pytest.param(
            "2026-01-12T10:15:00Z",
            datetime.datetime(2026, 1, 12, 10, 15, 0, tzinfo=UTC),
            id="zulu",
        ),
        pytest.param(
            "2026-01-12T10:15:00+00:00",
            datetime.datetime(2026, 1, 12, 10, 15, 0, tzinfo=UTC),
            id="offset-zero",
        ),
        pytest.param(
            "2026-01-12T10:15:00.4Z",
            datetime.datetime(2026, 1, 12, 10, 15, 0, 400000, tzinfo=UTC),
            id="one-fraction-digit",
        ),
        pytest.param(
            "2026-01-12T10:15:00.123456789Z",
            datetime.datetime(2026, 1, 12, 10, 15, 0, 123456, tzinfo=UTC),
            id="nanoseconds-cut",
        ),
    ],
)
def test_parse_timestamp_accepts(value, expected):
    assert rollback_log.parse_timestamp("started_at", value) == expected


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("2026-01-12T10:15:00", id="no-zone"),
        pytest.param("2026-01-12T10:15:00+02:00", id="other-offset"),
        pytest.param("2026-01-12 10:15:00Z", id="space-separator"),
        pytest.param("2026-01-12", id="date-only"),
        pytest.param("2026-01-12T10:15Z", id="no-seconds"),
        pytest.param("2026-01-12T10:15:00.Z", id="empty-fraction"),
        pytest.param("yesterday", id="words"),
    ],
)
def test_parse_timestamp_rejects_format(value):
    with pytest.raises(rollback_log.LogError) as error:
        rollback_log.parse_timestamp("verified_at", value)
    assert str(error.value) == (
        f"verified_at {value!r} is not an ISO 8601 UTC timestamp; use the form "
        "'2026-01-12T10:15:00Z' (with Z or +00:00, fraction optional)"
    )


def test_parse_timestamp_rejects_impossible_date():
    with pytest.raises(rollback_log.LogError) as error:
        rollback_log.parse_timestamp("started_at", "2026-02-30T10:15:00Z")
    assert str(error.value) == (
        "started_at '2026-02-30T10:15:00Z' is not a valid date and time: day is out "
        "of range for month"
    )


def test_build_timeline_computes_durations():
    timeline = rollback_log.build_timeline(TIMELINE)
    assert [phase["duration_seconds"] for phase in timeline] == [4.25, 4.75, 3.4]
    assert [phase["detail"] for phase in timeline] == [
        None,
        "truebond-backend v1.0.0 -> v0.9.5",
        None,
    ]


def test_build_timeline_allows_skipped_without_times():
    timeline = rollback_log.build_timeline([{"phase": "verify", "status": "skipped"}])
    assert timeline == [
        {
            "phase": "verify",
            "started": None,
            "ended": None,
            "duration_seconds": None,
            "status": "skipped",
            "detail": None,
        }
    ]


def test_build_timeline_requires_end_of_phase():
    phases = [
        {"phase": "switch", "started": "2026-01-12T10:15:04Z", "status": "failed"}
    ]
    with pytest.raises(rollback_log.LogError) as error:
        rollback_log.build_timeline(phases)
    assert str(error.value) == (
        "timeline[0].ended is missing for phase 'switch' with status 'failed'; set "
        "it, or mark the phase skipped"
    )


def test_build_timeline_rejects_end_before_start():
    phases = [
        {
            "phase": "switch",
            "started": "2026-01-12T10:15:04Z",
            "ended": "2026-01-12T10:15:03Z",
            "status": "ok",
        }
    ]
    with pytest.raises(rollback_log.LogError) as error:
        rollback_log.build_timeline(phases)
    assert str(error.value) == (
        "timeline[0].ended '2026-01-12T10:15:03Z' is before timeline[0].started "
        "'2026-01-12T10:15:04Z' in phase 'switch'"
    )


def test_build_timeline_names_bad_timestamp():
    phases = [dict(TIMELINE[0]), dict(TIMELINE[1], ended="10:15:09")]
    with pytest.raises(rollback_log.LogError) as error:
        rollback_log.build_timeline(phases)
    assert str(error.value).startswith(
        "timeline[1].ended '10:15:09' is not an ISO 8601"
    )


@pytest.mark.parametrize(
    "verified_at, objective, seconds, met",
    [
        pytest.param("2026-01-12T10:15:12.400Z", 15.0, 12.4, True, id="met"),
        pytest.param("2026-01-12T10:30:00Z", 15.0, 900.0, True, id="exactly-objective"),
        pytest.param("2026-01-12T10:31:40Z", 15.0, 1000.0, False, id="missed"),
        pytest.param(
            "2026-01-12T10:15:12.400Z", 0.1, 12.4, False, id="tight-objective"
        ),
        pytest.param(None, 15.0, None, None, id="not-verified"),
    ],
)
def test_build_log_rto(verified_at, objective, seconds, met):
    log = rollback_log.build_log(
        make_params(verified_at=verified_at, rto_objective_minutes=objective)
    )
    assert log["rto"]["seconds"] == seconds
    assert log["rto"]["met"] is met
    assert log["rto"]["objective_seconds"] == round(objective * 60, 3)
    assert log["impact"]["duration_seconds"] == seconds


def test_build_log_fields():
    log = rollback_log.build_log(make_params(from_version="", operator=""))
    assert log["format"] == 1
    assert log["date"] == "2026-01-12"
    assert log["time_started"] == "10:15:00Z"
    assert log["from_version"] is None
    assert log["to_version"] == "v0.9.5"
    assert log["operator"] is None
    assert log["rpo"] == {"objective_seconds": 300.0, "seconds": None, "met": None}
    assert list(log) == [
        "format",
        "procedure",
        "rollback_type",
        "date",
        "time_started",
        "started_at",
        "verified_at",
        "issue",
        "severity",
        "from_version",
        "to_version",
        "result",
        "timeline",
        "rto",
        "rpo",
        "impact",
        "failure",
        "state",
        "next_steps",
        "operator",
        "host",
        "capture_dir",
        "extra",
        "run",
        "tasks",
        "chart",
    ]


def test_build_log_rejects_verification_before_start():
    with pytest.raises(rollback_log.LogError) as error:
        rollback_log.build_log(make_params(verified_at="2026-01-12T10:14:00Z"))
    assert str(error.value) == (
        "verified_at '2026-01-12T10:14:00Z' is before started_at '2026-01-12T10:15:00Z'"
    )


@pytest.mark.parametrize(
    ("taken_at", "seconds", "met"),
    [
        pytest.param("2026-01-12T10:14:00Z", 72.0, True, id="within-objective"),
        pytest.param("2026-01-12T10:05:00Z", 612.0, False, id="older-than-objective"),
    ],
)
def test_build_log_measures_rpo_from_the_restored_snapshot(taken_at, seconds, met):
    restore = {
        "snapshot_taken_at": taken_at,
        "restored_at": "2026-01-12T10:15:12Z",
        "source": "/backup/predeploy/datastores/main",
        "stores": ["mongodb main"],
    }
    log = rollback_log.build_log(make_params(restore=restore))
    assert log["rpo"] == {
        "objective_seconds": 300.0,
        "seconds": seconds,
        "met": met,
        "snapshot_taken_at": taken_at,
        "restored_at": "2026-01-12T10:15:12Z",
        "source": "/backup/predeploy/datastores/main",
        "stores": ["mongodb main"],
    }
    verdict = "met" if met else "missed"
    assert f"(objective 5 min): {verdict}; writes to mongodb main after {taken_at}" in (
        rollback_log.render_markdown(log)
    )


@pytest.mark.parametrize(
    ("restore", "message"),
    [
        pytest.param(
            {"snapshot_taken_at": "2026-01-12T10:16:00Z", "restored_at": None},
            "restore.snapshot_taken_at '2026-01-12T10:16:00Z' is after started_at "
            "'2026-01-12T10:15:00Z': the restored snapshot must be older than the run",
            id="snapshot-after-start",
        ),
        pytest.param(
            {
                "snapshot_taken_at": "2026-01-12T10:14:00Z",
                "restored_at": "2026-01-12T10:13:00Z",
            },
            "restore.restored_at '2026-01-12T10:13:00Z' is before "
            "restore.snapshot_taken_at '2026-01-12T10:14:00Z'",
            id="restored-before-taken",
        ),
    ],
)
def test_build_log_rejects_impossible_restore_times(restore, message):
    with pytest.raises(rollback_log.LogError) as error:
        rollback_log.build_log(make_params(restore=restore))
    assert str(error.value) == message


@pytest.mark.parametrize("name", ["rto_objective_minutes", "rpo_objective_minutes"])
def test_build_log_rejects_zero_objective(name):
    with pytest.raises(rollback_log.LogError) as error:
        rollback_log.build_log(make_params(**{name: 0.0}))
    assert str(error.value) == f"{name} must be greater than 0, got 0.0"


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("a | b", id="pipe"),
        pytest.param("`docker ps` failed", id="backticks"),
        pytest.param("*not* _emphasis_ ~~struck~~", id="emphasis"),
        pytest.param("[link](http://127.0.0.1) <b>html</b>", id="link-and-html"),
        pytest.param("R&D &amp; ops", id="entities"),
        pytest.param("back\\slash \\| mixed", id="backslash"),
        pytest.param("- looks like a list", id="leading-dash"),
        pytest.param("1. looks ordered", id="leading-number"),
        pytest.param("# heading", id="leading-hash"),
    ],
)
def test_escape_markdown_renders_literally(text):
    assert rendered_text(rollback_log.escape_markdown(text)) == text


def test_escape_markdown_joins_lines():
    assert rollback_log.escape_markdown("first\r\nsecond\nthird") == (
        "first<br>second<br>third"
    )


def test_timeline_table_survives_special_characters():
    phases = [
        dict(TIMELINE[0], phase="capture | logs", detail="exit `1` | stderr:\nboom"),
        dict(TIMELINE[1], detail="a|b|c"),
    ]
    log = rollback_log.build_log(make_params(timeline=phases))
    rows = table_rows(rollback_log.render_markdown(log))
    assert rows[0] == ["Phase", "Started", "Ended", "Duration", "Status", "Detail"]
    assert [len(row) for row in rows] == [6, 6, 6]
    # The table parser removes the backslash of an escaped pipe inside a cell.
    assert rows[1][0] == "capture | logs"
    assert rows[1][1:5] == ["10:15:00", "10:15:04", "4.2 s", "ok"]
    assert rows[1][5] == "exit \\`1\\` | stderr:<br>boom"
    assert rows[2][5] == "a|b|c"


def test_timeline_shows_date_of_other_day():
    phases = [
        dict(
            TIMELINE[0],
            started="2026-01-12T23:59:58Z",
            ended="2026-01-13T00:00:01Z",
        )
    ]
    log = rollback_log.build_log(make_params(timeline=phases, verified_at=None))
    rows = table_rows(rollback_log.render_markdown(log))
    assert rows[1][1:3] == ["23:59:58", "2026-01-13 00:00:01"]


@pytest.mark.parametrize(
    "overrides, line",
    [
        pytest.param({}, "- RTO: 12.4 s (objective 15 min): met", id="met"),
        pytest.param(
            {"verified_at": "2026-01-12T10:31:40Z"},
            "- RTO: 1000 s (16.7 min) (objective 15 min): missed",
            id="missed",
        ),
        pytest.param(
            {"verified_at": None, "rto_objective_minutes": 2.5},
            "- RTO: not measured, the rollback was not verified (objective 2.5 min)",
            id="not-verified",
        ),
    ],
)
def test_markdown_rto_line(overrides, line):
    log = rollback_log.build_log(make_params(**overrides))
    assert line in rollback_log.render_markdown(log).splitlines()


def test_markdown_follows_template():
    log = rollback_log.build_log(make_params())
    lines = rollback_log.render_markdown(log).splitlines()
    assert lines[0] == "# Rollback log: application (2026-01-12)"
    assert lines[2:12] == [
        "- Date: 2026-01-12",
        "- Time Started: 10:15:00 UTC",
        "- Issue: /api/auth/health answers 500",
        "- Severity: High",
        "- Rollback Type: Type 1 (Application Rollback)",
        "- Previous Version: v1.0.0 (running when the rollback started)",
        "- Current Version: v0.9.5 (rollback target, reached)",
        "- Result: success",
        "- RTO: 12.4 s (objective 15 min): met",
        "- RPO: not measured, no data was restored (objective 5 min)",
    ]
    headings = [line for line in lines if line.startswith("## ")]
    assert headings == [
        "## Timeline",
        "## Impact",
        "## Root Cause",
        "## Prevention",
        "## Sign-off",
    ]
    assert "- Data loss: No" in lines
    assert "- Duration: 12.4 s (rollback window)" in lines
    assert lines[-1] == "Lead: [Name] - [Time]"


def test_markdown_failure_and_state_sections():
    log = rollback_log.build_log(
        make_params(
            result="failed",
            verified_at=None,
            failure={"task": "Switch the image", "message": "No such image\n```\nx"},
            state={
                "containers": [
                    {"name": "truebond-backend", "image": "truebond-backend:v1.0.0"}
                ],
                "files_changed": [],
                "backups": ["/srv/compose.yml.20260112T101504Z.bak"],
            },
            next_steps=["Load the image", "Run the rollback again"],
        )
    )
    markdown = rollback_log.render_markdown(log)
    failure = markdown.split("## Failure\n\n")[1].split("\n\n## ")[0]
    assert failure.splitlines() == [
        "- Task: Switch the image",
        "- Message:",
        "",
        "````text",
        "No such image",
        "```",
        "x",
        "````",
    ]
    state = markdown.split("## State left behind\n\n")[1].split("\n\n## ")[0]
    assert state.splitlines() == [
        "- containers:",
        "  - name: truebond-backend, image: truebond-backend:v1.0.0",
        "- files\\_changed: none",
        "- backups:",
        "  - /srv/compose.yml.20260112T101504Z.bak",
    ]
    steps = markdown.split("## Next steps\n\n")[1].split("\n\n## ")[0]
    assert steps.splitlines() == ["1. Load the image", "2. Run the rollback again"]
    assert "- Current Version: v0.9.5 (rollback target, not reached)" in markdown


def test_main_writes_both_files(tmp_path, capsys):
    folder = tmp_path / "incident"
    result = run_main(module_args(folder), capsys)
    assert result["changed"] is True
    assert result["json_path"] == str(folder / "rollback-log.json")
    assert result["markdown_path"] == str(folder / "rollback-log.md")
    assert result["rto_seconds"] == 12.4
    assert result["rto_met"] is True
    assert result["result"] == "success"
    assert stat.S_IMODE(os.stat(folder).st_mode) == 0o700
    for name in ("rollback-log.json", "rollback-log.md"):
        assert stat.S_IMODE(os.stat(folder / name).st_mode) == 0o600
    written = json.loads((folder / "rollback-log.json").read_text())
    assert written["timeline"][2]["duration_seconds"] == 3.4
    assert written["rto"] == {"seconds": 12.4, "objective_seconds": 900.0, "met": True}


def test_main_is_idempotent(tmp_path, capsys):
    run_main(module_args(tmp_path), capsys)
    inode = os.stat(tmp_path / "rollback-log.md").st_ino
    result = run_main(module_args(tmp_path), capsys)
    assert result["changed"] is False
    assert os.stat(tmp_path / "rollback-log.md").st_ino == inode


def test_main_rewrites_changed_content(tmp_path, capsys):
    run_main(module_args(tmp_path), capsys)
    result = run_main(module_args(tmp_path, result="failed"), capsys)
    assert result["changed"] is True
    assert (
        json.loads((tmp_path / "rollback-log.json").read_text())["result"] == "failed"
    )


def test_main_check_mode_writes_nothing(tmp_path, capsys):
    folder = tmp_path / "incident"
    args = module_args(folder)
    args["_ansible_check_mode"] = True
    result = run_main(args, capsys)
    assert result["changed"] is True
    assert result["rto_seconds"] == 12.4
    assert not folder.exists()


def test_main_diff_shows_markdown(tmp_path, capsys):
    run_main(module_args(tmp_path), capsys)
    before = (tmp_path / "rollback-log.md").read_text()
    args = module_args(tmp_path, severity="critical")
    args["_ansible_diff"] = True
    result = run_main(args, capsys)
    assert result["diff"]["before"] == before
    assert "- Severity: Critical" in result["diff"]["after"]


def test_main_rejects_bad_timestamp(tmp_path, capsys):
    result = run_main(
        module_args(tmp_path, started_at="2026-01-12T10:15:00+01:00"), capsys
    )
    assert result["failed"] is True
    assert result["msg"] == (
        "started_at '2026-01-12T10:15:00+01:00' is not an ISO 8601 UTC timestamp; use "
        "the form '2026-01-12T10:15:00Z' (with Z or +00:00, fraction optional)"
    )
    assert not (tmp_path / "rollback-log.json").exists()


def test_main_rejects_unknown_timeline_key(tmp_path, capsys):
    phases = [dict(TIMELINE[0], end="2026-01-12T10:15:04Z")]
    result = run_main(module_args(tmp_path, timeline=phases), capsys)
    assert result["failed"] is True
    assert "end" in result["msg"]
    assert "timeline" in result["msg"]


def test_main_rejects_symlinked_log(tmp_path, capsys):
    os.symlink(tmp_path / "elsewhere.md", tmp_path / "rollback-log.md")
    result = run_main(module_args(tmp_path), capsys)
    assert result["msg"] == (
        f"{tmp_path / 'rollback-log.md'} is a symlink; remove it so that the log is "
        "written inside the folder"
    )


def test_main_rejects_file_as_folder(tmp_path, capsys):
    target = tmp_path / "file"
    target.write_text("x")
    result = run_main(module_args(target), capsys)
    assert result["msg"] == f"path {str(target)!r} exists but is not a directory"


def test_markdown_chart_and_slowest_tasks():
    tasks = [
        {"task": f"Task {n}", "phase": "capture", "status": "ok", "duration_seconds": n}
        for n in range(1, 8)
    ]
    run = {
        "operator": "oncall",
        "controller": "laptop",
        "command_line": ["ansible-playbook", "x.yml", "-e", "api_key=<redacted>"],
    }
    log = rollback_log.build_log(
        make_params(chart="timeline.png", tasks=tasks, run=run)
    )

    markdown = rollback_log.render_markdown(log)

    assert "![Timeline of the rollback](timeline.png)" in markdown
    assert "| Task 7 | capture | 7.0 s | ok |" in markdown
    assert "| Task 2 |" not in markdown
    assert "- Operator: oncall" in markdown
    assert "ansible-playbook x.yml -e api_key=<redacted>" in markdown
    assert log["tasks"] == tasks
