# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: rollback_log
short_description: Write the rollback log of one run as JSON and Markdown
description:
  - Writes C(rollback-log.json) and C(rollback-log.md) into the incident folder
    O(path). The Markdown file follows the fields of the TrueBond rollback plan's
    log template (date, time started, issue, severity, rollback type, versions,
    timeline, impact, root cause, prevention and sign-off), and adds the measured
    recovery time, a timeline table, and the failure and the state left behind when
    they are given.
  - The recovery time (RTO) is the time from O(started_at) to O(verified_at). It is
    compared with O(rto_objective_minutes). Without O(verified_at), the RTO is not
    measured and is written as null.
  - The data loss window (RPO) is measured when data was restored from a
    snapshot. It is the time from the snapshot's O(restore.snapshot_taken_at) to
    O(restore.restored_at), since writes made in between are replaced by the
    snapshot. It is compared with O(rpo_objective_minutes). Without O(restore),
    nothing was restored, so the RPO is written as null.
  - Root cause, prevention and sign-off are written as placeholders for the
    operator to fill in.
version_added: 0.1.0
author: TrueBond SRE team (@truebond)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Reports whether the files would change and writes nothing.
  diff_mode:
    support: full
    details:
      - The diff shows the Markdown file before and after.
  platform:
    platforms: posix
options:
  path:
    description:
      - Incident folder that receives the two files. It is created with mode 0700 if
        it does not exist.
    type: path
    required: true
  procedure:
    description:
      - Name of the rollback procedure that ran, for example V(application).
    type: str
    required: true
  rollback_type:
    description:
      - Rollback type of the plan. V(1) application, V(2) database schema, V(3) full
        system, V(4) partial feature (feature flags).
    type: int
    choices: [1, 2, 3, 4]
  issue:
    description:
      - Short description of the issue that caused the rollback.
    type: str
    default: ""
  severity:
    description:
      - Severity of the issue.
    type: str
    choices: [critical, high, medium, low, unknown]
    default: unknown
  from_version:
    description:
      - Version that was running when the rollback started. An empty string counts as
        unknown.
    type: str
  to_version:
    description:
      - Version that the rollback switched to, or tried to. An empty string counts as
        unknown.
    type: str
  result:
    description:
      - Outcome of the run. V(no_change) means that the target version was already
        running.
    type: str
    choices: [success, failed, no_change]
    required: true
  started_at:
    description:
      - Start of the rollback, as an ISO 8601 UTC timestamp with C(Z) or C(+00:00),
        for example V(2026-01-12T10:15:00Z). Up to 9 fractional digits are accepted
        and cut to microseconds.
    type: str
    required: true
  verified_at:
    description:
      - Time at which verification passed, in the format of O(started_at). Leave it
        unset when the rollback was not verified.
    type: str
  timeline:
    description:
      - Phases of the run in the order they ran.
    type: list
    elements: dict
    default: []
    suboptions:
      phase:
        description: Name of the phase.
        type: str
        required: true
      started:
        description:
          - Start of the phase, in the format of O(started_at). Required unless
            O(timeline[].status=skipped).
        type: str
      ended:
        description:
          - End of the phase, in the format of O(started_at). Required unless
            O(timeline[].status=skipped).
        type: str
      status:
        description: Outcome of the phase.
        type: str
        choices: [ok, failed, skipped]
        required: true
      detail:
        description: Free text about the phase. An empty string counts as unset.
        type: str
  rto_objective_minutes:
    description: Recovery time objective in minutes. Must be greater than 0.
    type: float
    default: 15
  rpo_objective_minutes:
    description: Recovery point objective in minutes. Must be greater than 0.
    type: float
    default: 5
  restore:
    description:
      - The data restore of this run, for the RPO. Leave it unset when the run
        restored no data.
    type: dict
    suboptions:
      snapshot_taken_at:
        description:
          - UTC time the snapshot that was restored was taken, in the same format as
            O(started_at).
        type: str
        required: true
      restored_at:
        description:
          - UTC time the restored data replaced the live data. Defaults to the time
            the log is written.
        type: str
      source:
        description: Path or identifier of the snapshot, for the log.
        type: str
      stores:
        description: Data stores that were restored, for example C(mongodb main).
        type: list
        elements: str
        default: []
  data_loss:
    description: Whether data was lost.
    type: bool
    default: false
  users_affected:
    description: Number or share of users affected, as free text.
    type: str
    default: unknown
  failure:
    description:
      - The task that failed and its message, for a failed run.
    type: dict
    suboptions:
      task:
        description: Name of the task that failed.
        type: str
      message:
        description: Error message of the task. It may span several lines.
        type: str
  state:
    description:
      - Account of the state that the run left behind, for example the containers
        with their images, the files changed and the backups written.
      - Keys become list items in the Markdown file and values are nested below them.
    type: dict
  next_steps:
    description: What the operator should do next, one item per step.
    type: list
    elements: str
    default: []
  operator:
    description: Person or account that ran the rollback.
    type: str
  host:
    description: Host that the rollback ran on.
    type: str
  capture_dir:
    description: Folder with the state captured before the rollback.
    type: str
  extra:
    description:
      - Further values to keep with the log. They are written to the JSON file and
        listed in the Markdown file under "Additional details".
    type: dict
    default: {}
  run:
    description:
      - Who ran the rollback and how, as the truebond.rollback.timeline callback records
        it (keys such as C(operator), C(controller), C(command_line), C(extra_vars),
        C(run_id)). Secrets must already be redacted. Written to the JSON file and
        summarised in the Markdown file.
    type: dict
  tasks:
    description:
      - Every task of the run with C(task), C(phase), C(status), C(started), C(ended) and
        C(duration_seconds), as the truebond.rollback.timeline callback records them.
        Written to the JSON file; the Markdown file lists the five slowest.
    type: list
    elements: dict
    default: []
  chart:
    description:
      - File name of the timeline chart (a PNG) in O(path), linked from the Markdown file.
    type: str
notes:
  - User-provided text is escaped in the Markdown file, so that characters such as
    C(|), C(`), C(*) or C(<) cannot break the timeline table or add formatting.
    The failure message is shown in a fenced code block instead.
  - The impact duration is the time from O(started_at) to O(verified_at). The outage
    itself usually began earlier, when the issue started.
  - The content depends only on the options, so the same options give the same files
    and C(changed=false).
"""

EXAMPLES = r"""
- name: Write the rollback log of a verified application rollback
  truebond.rollback.rollback_log:
    path: /var/backups/truebond/incident-20260112T101500Z
    procedure: application
    rollback_type: 1
    issue: "/api/auth/health answers 500: token signing key could not be loaded"
    severity: high
    from_version: v1.0.0
    to_version: v0.9.5
    result: success
    started_at: "2026-01-12T10:15:00Z"
    verified_at: "2026-01-12T10:15:12.400Z"
    timeline:
      - phase: capture
        started: "2026-01-12T10:15:00Z"
        ended: "2026-01-12T10:15:04Z"
        status: ok
      - phase: switch
        started: "2026-01-12T10:15:04Z"
        ended: "2026-01-12T10:15:09Z"
        status: ok
        detail: truebond-backend v1.0.0 -> v0.9.5
      - phase: verify
        started: "2026-01-12T10:15:09Z"
        ended: "2026-01-12T10:15:12.400Z"
        status: ok
    operator: "{{ lookup('ansible.builtin.env', 'USER') }}"
    host: "{{ inventory_hostname }}"
  register: rollback_log_written

- name: Write the log of a failed run with the state it left behind
  truebond.rollback.rollback_log:
    path: /var/backups/truebond/incident-20260112T101500Z
    procedure: application
    rollback_type: 1
    from_version: v1.0.0
    to_version: v0.9.5
    result: failed
    started_at: "2026-01-12T10:15:00Z"
    failure:
      task: Switch the backend image
      message: "No such image: truebond-backend:v0.9.5"
    state:
      containers:
        - name: truebond-backend
          image: truebond-backend:v1.0.0
      backups:
        - /home/truebond/truebond/docker-compose.production.yml.20260112T101504Z.bak
    next_steps:
      - Build or load the image truebond-backend:v0.9.5, then run the rollback again
"""

RETURN = r"""
json_path:
  description: Path of C(rollback-log.json).
  type: str
  returned: always
  sample: /var/backups/truebond/incident-20260112T101500Z/rollback-log.json
markdown_path:
  description: Path of C(rollback-log.md).
  type: str
  returned: always
  sample: /var/backups/truebond/incident-20260112T101500Z/rollback-log.md
rto_seconds:
  description: Seconds from O(started_at) to O(verified_at), or null without O(verified_at).
  type: float
  returned: always
  sample: 12.4
rto_met:
  description:
    - Whether RV(rto_seconds) is within O(rto_objective_minutes), or null when the
      RTO was not measured.
  type: bool
  returned: always
  sample: true
rpo_seconds:
  description:
    - Seconds from O(restore.snapshot_taken_at) to O(restore.restored_at), or null
      when nothing was restored.
  type: float
  returned: always
  sample: 95.2
rpo_met:
  description:
    - Whether RV(rpo_seconds) is within O(rpo_objective_minutes), or null when the
      RPO was not measured.
  type: bool
  returned: always
  sample: true
result:
  description: The O(result) that was written.
  type: str
  returned: always
  sample: success
"""

import datetime
import json
import os
import re
import stat
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.truebond.rollback.plugins.module_utils._files import (
    atomic_write,
)

LOG_FORMAT = 1
JSON_NAME = "rollback-log.json"
MARKDOWN_NAME = "rollback-log.md"
FILE_MODE = 0o600
FOLDER_MODE = 0o700

ROLLBACK_TYPE_NAMES = {
    1: "Application Rollback",
    2: "Database Schema Rollback",
    3: "Full System Rollback",
    4: "Partial Feature Rollback",
}

TIMESTAMP_PATTERN = re.compile(
    r"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(?:Z|\+00:00)"
)

# Characters that start inline Markdown constructs (code, emphasis, links, HTML,
# tables, strikethrough, entities). CommonMark lets a backslash escape any ASCII
# punctuation character, and the unit tests check the rendering with markdown-it-py.
MARKDOWN_SPECIAL = re.compile(r"([\\`*_\[\]<>|~&#])")
# Text at the start of a line that would begin a list, quote or heading.
MARKDOWN_LINE_START = re.compile(r"^(\s*)([-+=]|\d+(?=[.)]))")


class LogError(Exception):
    """Invalid input that the caller must correct."""


def parse_timestamp(field, value):
    """Parse a strict ISO 8601 UTC timestamp, raising LogError naming the field."""
    match = TIMESTAMP_PATTERN.fullmatch(value) if isinstance(value, str) else None
    if match is None:
        raise LogError(
            f"{field} {value!r} is not an ISO 8601 UTC timestamp; use the form "
            "'2026-01-12T10:15:00Z' (with Z or +00:00, fraction optional)"
        )
    seconds, fraction = match.groups()
    try:
        parsed = datetime.datetime.strptime(seconds, "%Y-%m-%dT%H:%M:%S")
    except ValueError as error:
        raise LogError(
            f"{field} {value!r} is not a valid date and time: {error}"
        ) from error
    microseconds = int((fraction or "0")[:6].ljust(6, "0"))
    # datetime.UTC needs Python 3.11, and managed hosts may run an older Python.
    return parsed.replace(
        microsecond=microseconds,
        tzinfo=datetime.timezone.utc,  # noqa: UP017
    )


def seconds_between(start, end):
    return round((end - start).total_seconds(), 3)


def empty_to_none(value):
    return value if value not in ("", None) else None


def build_timeline(phases):
    """Validate the timeline entries and return them with their durations."""
    timeline = []
    for index, phase in enumerate(phases):
        field = f"timeline[{index}]"
        started = ended = None
        if phase.get("started"):
            started = parse_timestamp(f"{field}.started", phase["started"])
        if phase.get("ended"):
            ended = parse_timestamp(f"{field}.ended", phase["ended"])
        if phase["status"] != "skipped":
            for name, value in (("started", started), ("ended", ended)):
                if value is None:
                    raise LogError(
                        f"{field}.{name} is missing for phase {phase['phase']!r} with "
                        f"status {phase['status']!r}; set it, or mark the phase skipped"
                    )
        duration = None
        if started is not None and ended is not None:
            duration = seconds_between(started, ended)
            if duration < 0:
                raise LogError(
                    f"{field}.ended {phase['ended']!r} is before {field}.started "
                    f"{phase['started']!r} in phase {phase['phase']!r}"
                )
        timeline.append(
            {
                "phase": phase["phase"],
                "started": empty_to_none(phase.get("started")),
                "ended": empty_to_none(phase.get("ended")),
                "duration_seconds": duration,
                "status": phase["status"],
                "detail": empty_to_none(phase.get("detail")),
            }
        )
    return timeline


def build_rpo(params, started_at):
    """Return the rpo section: the objective and, after a restore, the measured window."""
    objective = round(params["rpo_objective_minutes"] * 60, 3)
    restore = params.get("restore")
    if not restore:
        return {"objective_seconds": objective, "seconds": None, "met": None}
    taken_at = parse_timestamp(
        "restore.snapshot_taken_at", restore["snapshot_taken_at"]
    )
    restored_text = restore.get("restored_at") or utc_now_text()
    restored_at = parse_timestamp("restore.restored_at", restored_text)
    seconds = seconds_between(taken_at, restored_at)
    if seconds < 0:
        raise LogError(
            f"restore.restored_at {restored_text!r} is before "
            f"restore.snapshot_taken_at {restore['snapshot_taken_at']!r}"
        )
    if seconds_between(taken_at, started_at) < 0:
        raise LogError(
            f"restore.snapshot_taken_at {restore['snapshot_taken_at']!r} is after "
            f"started_at {params['started_at']!r}: the restored snapshot must be "
            "older than the run"
        )
    return {
        "objective_seconds": objective,
        "seconds": seconds,
        "met": seconds <= objective,
        "snapshot_taken_at": restore["snapshot_taken_at"],
        "restored_at": restored_text,
        "source": empty_to_none(restore.get("source")),
        "stores": restore.get("stores") or [],
    }


def utc_now_text():
    """Return the current UTC time in the format of started_at."""
    now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017 - Python < 3.11
    return now.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def build_log(params):
    """Return the log document for the module options, validating them."""
    for name in ("rto_objective_minutes", "rpo_objective_minutes"):
        if params[name] <= 0:
            raise LogError(f"{name} must be greater than 0, got {params[name]!r}")

    started_at = parse_timestamp("started_at", params["started_at"])
    rto_seconds = None
    if params["verified_at"]:
        verified_at = parse_timestamp("verified_at", params["verified_at"])
        rto_seconds = seconds_between(started_at, verified_at)
        if rto_seconds < 0:
            raise LogError(
                f"verified_at {params['verified_at']!r} is before started_at "
                f"{params['started_at']!r}"
            )
    rto_objective_seconds = round(params["rto_objective_minutes"] * 60, 3)
    rto_met = None if rto_seconds is None else rto_seconds <= rto_objective_seconds

    rpo = build_rpo(params, started_at)

    failure = params["failure"]
    if failure is not None:
        failure = {"task": failure.get("task"), "message": failure.get("message")}

    return {
        "format": LOG_FORMAT,
        "procedure": params["procedure"],
        "rollback_type": params["rollback_type"],
        "date": started_at.strftime("%Y-%m-%d"),
        "time_started": started_at.strftime("%H:%M:%SZ"),
        "started_at": params["started_at"],
        "verified_at": empty_to_none(params["verified_at"]),
        "issue": params["issue"],
        "severity": params["severity"],
        "from_version": empty_to_none(params["from_version"]),
        "to_version": empty_to_none(params["to_version"]),
        "result": params["result"],
        "timeline": build_timeline(params["timeline"]),
        "rto": {
            "seconds": rto_seconds,
            "objective_seconds": rto_objective_seconds,
            "met": rto_met,
        },
        "rpo": rpo,
        "impact": {
            "users_affected": params["users_affected"],
            "duration_seconds": rto_seconds,
            "data_loss": params["data_loss"],
        },
        "failure": failure,
        "state": params["state"],
        "next_steps": params["next_steps"],
        "operator": empty_to_none(params["operator"]),
        "host": empty_to_none(params["host"]),
        "capture_dir": empty_to_none(params["capture_dir"]),
        "extra": params["extra"],
        "run": params.get("run"),
        "tasks": params.get("tasks") or [],
        "chart": empty_to_none(params.get("chart")),
    }


def escape_line_start(match):
    """Escape a list marker (-, +, 1. or 1)) or a setext underline (=) at line start.

    A digit is not ASCII punctuation, so for "1." the backslash goes before the dot.
    """
    indent, marker = match.groups()
    if marker.isdigit():
        return indent + marker + "\\"
    return indent + "\\" + marker


def escape_markdown(value):
    """Return value as Markdown text that renders literally on one line.

    Line breaks become <br>, which GitHub-flavoured Markdown renders inside table
    cells and list items.
    """
    lines = str(value).replace("\r\n", "\n").replace("\r", "\n").split("\n")
    escaped = []
    for line in lines:
        line = MARKDOWN_SPECIAL.sub(r"\\\1", line)
        line = MARKDOWN_LINE_START.sub(escape_line_start, line)
        escaped.append(line)
    return "<br>".join(escaped)


def format_seconds(seconds):
    if seconds < 120:
        return f"{seconds:.1f} s"
    return f"{seconds:.0f} s ({seconds / 60:.1f} min)"


def format_minutes(minutes):
    return f"{minutes:g} min"


def format_clock(value, log_date):
    """Return HH:MM:SS for a timestamp on the log's date, else the date as well."""
    if value is None:
        return ""
    parsed = parse_timestamp("timestamp", value)
    if parsed.strftime("%Y-%m-%d") == log_date:
        return parsed.strftime("%H:%M:%S")
    return parsed.strftime("%Y-%m-%d %H:%M:%S")


def format_scalar(value):
    if value is None:
        return "none"
    if isinstance(value, bool):
        return "yes" if value else "no"
    return escape_markdown(value)


def is_scalar(value):
    return not isinstance(value, (dict, list))


def render_nested(value, indent=0):
    """Render dicts and lists as nested Markdown list items."""
    pad = "  " * indent
    lines = []
    if isinstance(value, dict):
        for key, item in value.items():
            label = escape_markdown(key)
            if is_scalar(item):
                lines.append(f"{pad}- {label}: {format_scalar(item)}")
            elif not item:
                lines.append(f"{pad}- {label}: none")
            else:
                lines.append(f"{pad}- {label}:")
                lines.extend(render_nested(item, indent + 1))
    elif isinstance(value, list):
        for item in value:
            if isinstance(item, dict) and item and all(map(is_scalar, item.values())):
                # A flat dict, such as one container, reads best on one line.
                pairs = ", ".join(
                    f"{escape_markdown(key)}: {format_scalar(field)}"
                    for key, field in item.items()
                )
                lines.append(f"{pad}- {pairs}")
            elif is_scalar(item):
                lines.append(f"{pad}- {format_scalar(item)}")
            else:
                lines.append(f"{pad}-")
                lines.extend(render_nested(item, indent + 1))
    else:
        lines.append(f"{pad}- {format_scalar(value)}")
    return lines


def fenced_block(text):
    """Return text in a code fence longer than any backtick run inside it."""
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return [fence + "text", text.rstrip("\n"), fence]


def describe_target(log):
    target = escape_markdown(log["to_version"] or "unknown")
    notes = {
        "success": "rollback target, reached",
        "failed": "rollback target, not reached",
        "no_change": "rollback target, already running",
    }
    return f"{target} ({notes[log['result']]})"


def describe_rto(log):
    rto = log["rto"]
    objective = format_minutes(rto["objective_seconds"] / 60)
    if rto["seconds"] is None:
        return f"not measured, the rollback was not verified (objective {objective})"
    verdict = "met" if rto["met"] else "missed"
    return f"{format_seconds(rto['seconds'])} (objective {objective}): {verdict}"


def describe_rpo(log):
    rpo = log["rpo"]
    objective = format_minutes(rpo["objective_seconds"] / 60)
    if rpo["seconds"] is None:
        return f"not measured, no data was restored (objective {objective})"
    verdict = "met" if rpo["met"] else "missed"
    stores = ", ".join(rpo["stores"]) or "the data stores"
    return (
        f"{format_seconds(rpo['seconds'])} (objective {objective}): {verdict}; "
        f"writes to {escape_markdown(stores)} after {rpo['snapshot_taken_at']} "
        "were replaced by the snapshot"
    )


def render_summary(log):
    rollback_type = "unknown"
    if log["rollback_type"] is not None:
        rollback_type = (
            f"Type {log['rollback_type']} ({ROLLBACK_TYPE_NAMES[log['rollback_type']]})"
        )
    previous = escape_markdown(log["from_version"] or "unknown")
    lines = [
        f"- Date: {log['date']}",
        f"- Time Started: {log['time_started'][:-1]} UTC",
        f"- Issue: {escape_markdown(log['issue']) or 'not given'}",
        f"- Severity: {log['severity'].capitalize()}",
        f"- Rollback Type: {rollback_type}",
        f"- Previous Version: {previous} (running when the rollback started)",
        f"- Current Version: {describe_target(log)}",
        f"- Result: {log['result']}",
        f"- RTO: {describe_rto(log)}",
        f"- RPO: {describe_rpo(log)}",
    ]
    for key, label in (
        ("operator", "Operator"),
        ("host", "Host"),
        ("capture_dir", "Captured state"),
    ):
        if log[key]:
            lines.append(f"- {label}: {escape_markdown(log[key])}")
    return lines


def render_timeline(log):
    if not log["timeline"]:
        return ["No phases were recorded."]
    lines = [
        "| Phase | Started | Ended | Duration | Status | Detail |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for phase in log["timeline"]:
        duration = phase["duration_seconds"]
        cells = [
            escape_markdown(phase["phase"]),
            format_clock(phase["started"], log["date"]),
            format_clock(phase["ended"], log["date"]),
            "" if duration is None else format_seconds(duration),
            phase["status"],
            escape_markdown(phase["detail"] or ""),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_impact(log):
    impact = log["impact"]
    duration = "not measured"
    if impact["duration_seconds"] is not None:
        duration = format_seconds(impact["duration_seconds"]) + " (rollback window)"
    return [
        f"- Users affected: {escape_markdown(impact['users_affected'])}",
        f"- Duration: {duration}",
        f"- Data loss: {'Yes' if impact['data_loss'] else 'No'}",
    ]


def render_failure(failure):
    lines = [f"- Task: {escape_markdown(failure['task'] or 'unknown')}"]
    if failure["message"]:
        lines += ["- Message:", ""]
        lines += fenced_block(failure["message"])
    return lines


def render_slowest(tasks, count=5):
    timed = [
        task for task in tasks if isinstance(task.get("duration_seconds"), (int, float))
    ]
    slowest = sorted(timed, key=lambda task: -task["duration_seconds"])[:count]
    lines = ["| Task | Phase | Duration | Status |", "| --- | --- | --- | --- |"]
    for task in slowest:
        cells = [
            escape_markdown(str(task.get("task", ""))),
            escape_markdown(str(task.get("phase") or "")),
            format_seconds(task["duration_seconds"]),
            escape_markdown(str(task.get("status", ""))),
        ]
        lines.append("| " + " | ".join(cells) + " |")
    return lines


def render_run(run):
    lines = []
    for key, label in (
        ("operator", "Operator"),
        ("controller", "Controller"),
        ("run_id", "Run"),
    ):
        if run.get(key):
            lines.append(f"- {label}: {escape_markdown(str(run[key]))}")
    if run.get("command_line"):
        command = " ".join(str(word) for word in run["command_line"])
        lines += ["- Command line:", "", *fenced_block(command)]
    if run.get("extra_vars"):
        lines += ["- Extra variables:", *render_nested(run["extra_vars"], indent=1)]
    return lines


def render_markdown(log):
    """Return the Markdown rollback log for a log document."""
    title = f"# Rollback log: {escape_markdown(log['procedure'])} ({log['date']})"
    sections = [[title], render_summary(log)]
    sections.append(["## Timeline", "", *render_timeline(log)])
    if log["chart"]:
        chart = escape_markdown(log["chart"])
        sections.append(
            ["## Timeline chart", "", f"![Timeline of the rollback]({chart})"]
        )
    if log["tasks"]:
        sections.append(["## Slowest tasks", "", *render_slowest(log["tasks"])])
    sections.append(["## Impact", "", *render_impact(log)])
    if log["run"]:
        sections.append(["## Run", "", *render_run(log["run"])])
    if log["failure"]:
        sections.append(["## Failure", "", *render_failure(log["failure"])])
    if log["state"]:
        sections.append(["## State left behind", "", *render_nested(log["state"])])
    if log["next_steps"]:
        steps = [
            f"{number}. {escape_markdown(step)}"
            for number, step in enumerate(log["next_steps"], start=1)
        ]
        sections.append(["## Next steps", "", *steps])
    if log["extra"]:
        sections.append(["## Additional details", "", *render_nested(log["extra"])])
    sections.append(["## Root Cause", "", "[Brief description]"])
    sections.append(["## Prevention", "", "[Action items]"])
    sections.append(["## Sign-off", "", "Lead: [Name] - [Time]"])
    return "\n\n".join("\n".join(section) for section in sections) + "\n"


def render_json(log):
    return (json.dumps(log, indent=2) + "\n").encode("utf-8")


def read_existing(path):
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except FileNotFoundError:
        return None


def plan_writes(contents):
    """Return (files to write, files whose mode to fix) for the wanted contents."""
    writes = {}
    chmods = []
    for path, data in contents.items():
        if os.path.islink(path):
            raise LogError(
                f"{path} is a symlink; remove it so that the log is written inside "
                "the folder"
            )
        if read_existing(path) != data:
            writes[path] = data
        elif stat.S_IMODE(os.stat(path).st_mode) != FILE_MODE:
            chmods.append(path)
    return writes, chmods


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "procedure": {"type": "str", "required": True},
            "rollback_type": {"type": "int", "choices": [1, 2, 3, 4]},
            "issue": {"type": "str", "default": ""},
            "severity": {
                "type": "str",
                "choices": ["critical", "high", "medium", "low", "unknown"],
                "default": "unknown",
            },
            "from_version": {"type": "str"},
            "to_version": {"type": "str"},
            "result": {
                "type": "str",
                "choices": ["success", "failed", "no_change"],
                "required": True,
            },
            "started_at": {"type": "str", "required": True},
            "verified_at": {"type": "str"},
            "timeline": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "phase": {"type": "str", "required": True},
                    "started": {"type": "str"},
                    "ended": {"type": "str"},
                    "status": {
                        "type": "str",
                        "choices": ["ok", "failed", "skipped"],
                        "required": True,
                    },
                    "detail": {"type": "str"},
                },
            },
            "rto_objective_minutes": {"type": "float", "default": 15.0},
            "rpo_objective_minutes": {"type": "float", "default": 5.0},
            "restore": {
                "type": "dict",
                "options": {
                    "snapshot_taken_at": {"type": "str", "required": True},
                    "restored_at": {"type": "str"},
                    "source": {"type": "str"},
                    "stores": {"type": "list", "elements": "str", "default": []},
                },
            },
            "data_loss": {"type": "bool", "default": False},
            "users_affected": {"type": "str", "default": "unknown"},
            "failure": {
                "type": "dict",
                "options": {
                    "task": {"type": "str"},
                    "message": {"type": "str"},
                },
            },
            "state": {"type": "dict"},
            "next_steps": {"type": "list", "elements": "str", "default": []},
            "operator": {"type": "str"},
            "host": {"type": "str"},
            "capture_dir": {"type": "str"},
            "extra": {"type": "dict", "default": {}},
            "run": {"type": "dict"},
            "tasks": {"type": "list", "elements": "dict", "default": []},
            "chart": {"type": "str"},
        },
        supports_check_mode=True,
    )
    folder = module.params["path"]
    json_path = os.path.join(folder, JSON_NAME)
    markdown_path = os.path.join(folder, MARKDOWN_NAME)

    try:
        log = build_log(module.params)
        markdown = render_markdown(log).encode("utf-8")
        if os.path.exists(folder) and not os.path.isdir(folder):
            raise LogError(f"path {folder!r} exists but is not a directory")
        create_folder = not os.path.exists(folder)
        writes = {json_path: render_json(log), markdown_path: markdown}
        chmods = []
        markdown_before = b""
        if not create_folder:
            writes, chmods = plan_writes(writes)
            markdown_before = read_existing(markdown_path) or b""
        changed = bool(create_folder or writes or chmods)

        if changed and not module.check_mode:
            if create_folder:
                os.makedirs(folder, mode=FOLDER_MODE)
            for path, data in writes.items():
                atomic_write(path, data, backup=False, mode=FILE_MODE)
            for path in chmods:
                os.chmod(path, FILE_MODE)
    except LogError as error:
        module.fail_json(msg=str(error))
    except OSError as error:
        module.fail_json(
            msg=f"writing the rollback log to {folder!r} failed: {error}; check that "
            "the folder is writable by the remote user"
        )
    except Exception as error:  # noqa: BLE001 - report any bug with its traceback
        module.fail_json(
            msg=f"rollback_log failed unexpectedly on {folder!r}: {error}",
            exception=traceback.format_exc(),
        )

    result = {
        "changed": changed,
        "json_path": json_path,
        "markdown_path": markdown_path,
        "rto_seconds": log["rto"]["seconds"],
        "rto_met": log["rto"]["met"],
        "rpo_seconds": log["rpo"]["seconds"],
        "rpo_met": log["rpo"]["met"],
        "result": log["result"],
    }
    if module._diff:
        result["diff"] = {
            "before": markdown_before.decode("utf-8", errors="replace"),
            "after": markdown.decode("utf-8"),
            "before_header": markdown_path,
            "after_header": markdown_path,
        }
    module.exit_json(**result)


if __name__ == "__main__":
    main()
