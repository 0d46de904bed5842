# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: drill_report
short_description: Record a rollback drill in the drill history and write its report
version_added: 0.1.0
description:
  - Reads the rollback log (C(rollback-log.json)) that the drill's rollback wrote,
    and appends one record for the drill to a drill history in JSON Lines format
    (one JSON object per line). The record has the UTC date, the drill ID, the
    release versions, the decision with its metrics, the RTO, whether the RTO met
    its objective, the result and the incident folder.
  - Writes C(drill-report.md) and draws C(rto-trend.png), the RTO of every drill
    in the history over time with the objective as a line. Both go to
    O(report_dir), where they always describe the latest drill, and to
    O(incident_dir) when it is given.
  - The history is only ever appended to. Every earlier line is kept byte for byte,
    including a line that is not a valid record. Such a line is listed in
    RV(corrupt_lines) with a warning and left out of the chart and the table.
  - A drill ID that the history already contains is not appended again, so running
    the task twice for one drill keeps one record.
  - Every file is written atomically (a temporary file renamed over the target)
    with mode 0600. A missing O(report_dir) is created with mode 0700.
  - A drill without a rollback log, such as one where the decision matrix did not
    detect the bad release, is recorded with O(result) and no RTO.
author: TrueBond SRE team (@truebond)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - In check mode the module reads the history and the rollback log and returns
        the record it would append, but writes and draws nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  history_file:
    description:
      - The drill history, a JSON Lines file. It is created when it does not exist.
    type: path
    required: true
  report_dir:
    description:
      - Folder for the latest C(drill-report.md) and C(rto-trend.png).
      - Default is the folder of O(history_file).
    type: path
  incident_dir:
    description:
      - Incident folder of the drill's rollback, which gets a copy of
        C(drill-report.md) and C(rto-trend.png). It must exist.
      - Default is the C(capture_dir) of the rollback log, or no copy when there is
        no rollback log.
    type: path
  rollback_log:
    description:
      - Path of the C(rollback-log.json) that the rollback wrote. The RTO, its
        objective, the result and the timeline come from it.
      - Required unless O(result) is V(not_detected).
    type: path
  drill_id:
    description: Unique ID of the drill, such as C(drill-20261204T180000Z).
    type: str
    required: true
  started_at:
    description: When the drill started, ISO 8601 UTC ending in C(Z).
    type: str
    required: true
  from_version:
    description: The bad release that the drill deployed.
    type: str
    required: true
  to_version:
    description: The good release that the drill rolled back to.
    type: str
    required: true
  decision:
    description:
      - The result of M(truebond.rollback.rollback_decision) for the bad release.
        The keys C(decision), C(severity), C(metrics) and C(reasons) are recorded.
    type: dict
    required: true
  measurement:
    description:
      - How the metrics were measured, recorded as given. The report reads the keys
        C(requests), C(errors_5xx), C(no_response) and C(endpoints) (a mapping from
        the endpoint to its C(requests) and C(errors_5xx)) when they are present.
    type: dict
    default: {}
  result:
    description:
      - The result of the drill. Default is the C(result) of the rollback log
        (V(success) or V(failed)).
      - V(not_detected) records a drill where the decision matrix did not call for
        a rollback, which needs no rollback log.
    type: str
    choices: [success, failed, not_detected]
  rto_objective_minutes:
    description:
      - Recovery time objective in minutes, for the record of a drill without a
        rollback log. A rollback log's own objective takes precedence.
    type: float
    default: 15
  environment:
    description: The inventory's C(truebond_environment), recorded as given.
    type: str
    default: unknown
  host:
    description: The host that was drilled, recorded as given.
    type: str
    default: unknown
  removed_backups:
    description: Compose file backups that the drill removed, recorded as given.
    type: list
    elements: str
    default: []
  chart:
    description:
      - Draw C(rto-trend.png). Needs matplotlib on the host that runs the module.
        Without matplotlib the chart is skipped with a warning, and the report
        states that it was not drawn.
    type: bool
    default: true
requirements:
  - matplotlib on the host that runs the module, for the chart
notes:
  - The history is locked with flock on its folder while the module reads and
    rewrites it, so two drills that finish at the same moment both keep their
    records. A writer that does not take that lock can still lose a line.
  - The report and the chart are rewritten on every call, so the module always
    reports C(changed), in check mode too.
  - The playbook C(playbooks/drill.yml) runs the drill and calls this module.
seealso:
  - module: truebond.rollback.rollback_decision
"""

EXAMPLES = r"""
- name: Record the drill and write its report
  truebond.rollback.drill_report:
    history_file: /backup/drills/history.jsonl
    rollback_log: /backup/incident-20261204T180012Z/rollback-log.json
    drill_id: drill-20261204T180000Z
    started_at: "2026-12-04T18:00:00.000000Z"
    from_version: v1.0.0
    to_version: v0.9.5
    decision: "{{ drill_decision }}"
    measurement:
      requests: 20
      errors_5xx: 6
      no_response: 0
    environment: staging
    host: "{{ inventory_hostname }}"
  register: drill_report

- name: Record a drill where the bad release was not detected
  truebond.rollback.drill_report:
    history_file: /backup/drills/history.jsonl
    drill_id: drill-20261211T180000Z
    started_at: "2026-12-11T18:00:00.000000Z"
    from_version: v1.0.0
    to_version: v0.9.5
    decision:
      decision: continue
      severity: low
      metrics: {error_rate: 0.0, uptime: 1.0, response_time: 0.0}
      reasons: []
    result: not_detected
"""

RETURN = r"""
record:
  description: The record of this drill, as appended to the history.
  type: dict
  returned: always
  sample:
    format: 1
    drill_id: drill-20261204T180000Z
    date: "2026-12-04"
    started_at: "2026-12-04T18:00:00.000000Z"
    recorded_at: "2026-12-04T18:00:41.118000Z"
    environment: drill
    host: drill-app
    from_version: v1.0.0
    to_version: v0.9.5
    decision:
      decision: immediate_rollback
      severity: critical
      metrics: {error_rate: 0.35, uptime: 1.0, response_time: 0.0}
      reasons: ["error_rate is 35%, which is above the immediate rollback threshold of 10% (critical)."]
    measurement: {requests: 20, errors_5xx: 7, no_response: 0}
    rto_seconds: 21.4
    rto_objective_seconds: 900.0
    rto_met: true
    result: success
    incident_dir: /backup/incident-20261204T180012Z
    timeline: [{phase: preflight, duration_seconds: 4.2, status: ok}]
    removed_backups: []
appended:
  description: Whether the record was appended (or would be, in check mode).
  type: bool
  returned: always
  sample: true
history_file:
  description: The O(history_file).
  type: str
  returned: always
  sample: /backup/drills/history.jsonl
history_records:
  description: Number of valid records in the history, this drill's included.
  type: int
  returned: always
  sample: 12
corrupt_lines:
  description:
    - Lines of the history that are not valid records. They stay in the file.
    - C(line) is the 1-based line number, C(error) describes the problem, and C(text)
      is the start of the line.
  type: list
  elements: dict
  returned: always
  sample: [{line: 3, error: "invalid JSON at column 2: Expecting property name enclosed in double quotes", text: "{trunc"}]
report_paths:
  description: The C(drill-report.md) files written (or that would be written).
  type: list
  elements: str
  returned: always
  sample: [/backup/drills/drill-report.md, /backup/incident-20261204T180012Z/drill-report.md]
chart_paths:
  description: The C(rto-trend.png) files written. Empty when the chart was not drawn.
  type: list
  elements: str
  returned: always
  sample: [/backup/drills/rto-trend.png, /backup/incident-20261204T180012Z/rto-trend.png]
rto_seconds:
  description: RTO of this drill in seconds, null when the rollback was not verified.
  type: float
  returned: always
  sample: 21.4
rto_met:
  description: Whether the RTO met its objective, null when it was not measured.
  type: bool
  returned: always
  sample: true
result:
  description: The result recorded for this drill.
  type: str
  returned: always
  sample: success
msg:
  description: One line on the drill and where its report is.
  type: str
  returned: always
  sample: >-
    Drill drill-20261204T180000Z: success, RTO 21.4 s (objective 15 min, met);
    record 12 of /backup/drills/history.jsonl; report /backup/drills/drill-report.md
"""

import contextlib
import datetime
import errno
import fcntl
import io
import json
import os
import sys
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.truebond.rollback.plugins.module_utils._files import (
    atomic_write,
)

try:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    MATPLOTLIB_ERROR = None
except ImportError:
    MATPLOTLIB_ERROR = traceback.format_exc()

RECORD_FORMAT = 1
REPORT_NAME = "drill-report.md"
CHART_NAME = "rto-trend.png"
FILE_MODE = 0o600
FOLDER_MODE = 0o700
# Drills listed in the report's history table, newest first.
REPORT_HISTORY_ROWS = 20
# Newest measured drills whose RTO is written next to its point in the chart.
CHART_LABELLED_POINTS = 30
# Characters of a corrupt line returned in corrupt_lines.
CORRUPT_TEXT_LENGTH = 80
DECISION_KEYS = ("decision", "severity", "metrics", "reasons")


class DrillReportError(ValueError):
    """An input that the module cannot use. The message names the value and the fix."""


# ---------------------------------------------------------------------------
# Reading


def parse_utc(field, value):
    """Parse an ISO 8601 UTC timestamp and return an aware datetime."""
    text = str(value).strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise DrillReportError(
            f"{field} {value!r} is not an ISO 8601 timestamp; "
            "use a form such as 2026-12-04T18:00:00.000000Z"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() != datetime.timedelta(0):
        raise DrillReportError(
            f"{field} {value!r} must be in UTC; end it with Z or +00:00"
        )
    return moment


def read_history(data):
    """Split the history bytes into records and corrupt lines.

    Returns (records, corrupt_lines). A line is corrupt when it is not UTF-8, not
    JSON, not a JSON object, or has no string drill_id. Empty lines are neither.
    """
    records = []
    corrupt = []
    for number, raw in enumerate(data.split(b"\n"), start=1):
        if not raw.strip():
            continue
        error = None
        document = None
        try:
            document = json.loads(raw.decode("utf-8"))
        except UnicodeDecodeError as exc:
            error = f"not UTF-8: {exc.reason} at byte {exc.start}"
        except json.JSONDecodeError as exc:
            error = f"invalid JSON at column {exc.colno}: {exc.msg}"
        if error is None and not isinstance(document, dict):
            error = f"a JSON {type(document).__name__}, not an object"
        if error is None and not isinstance(document.get("drill_id"), str):
            error = "no drill_id string"
        if error is not None:
            text = raw.decode("utf-8", errors="replace")[:CORRUPT_TEXT_LENGTH]
            corrupt.append({"line": number, "error": error, "text": text})
            continue
        records.append(document)
    return records, corrupt


def read_history_file(path):
    """Return the bytes of the history, or b"" when it does not exist yet."""
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except FileNotFoundError:
        return b""
    except IsADirectoryError:
        raise DrillReportError(
            f"history_file {path!r} is a folder; give the path of a file such as "
            f"{os.path.join(path, 'history.jsonl')!r}"
        ) from None


def read_rollback_log(path):
    """Read rollback-log.json and return it as a dict."""
    try:
        with open(path, encoding="utf-8") as stream:
            document = json.load(stream)
    except FileNotFoundError:
        raise DrillReportError(
            f"rollback_log {path!r} not found; give the rollback-log.json that the "
            "rollback wrote into its incident folder"
        ) from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise DrillReportError(
            f"rollback_log {path!r} is not valid JSON ({exc}); "
            "the rollback_log module writes it, so check whether it was edited"
        ) from None
    if not isinstance(document, dict) or not isinstance(document.get("rto"), dict):
        raise DrillReportError(
            f"rollback_log {path!r} has no rto section, so it is not a "
            "rollback-log.json that the rollback_log module wrote"
        )
    return document


def validate_decision(decision):
    missing = [key for key in DECISION_KEYS if key not in decision]
    if missing:
        raise DrillReportError(
            f"decision is missing {', '.join(missing)}; pass the registered result "
            "of truebond.rollback.rollback_decision"
        )
    if not isinstance(decision["metrics"], dict):
        raise DrillReportError(
            f"decision.metrics must be a mapping, got {decision['metrics']!r}"
        )


# ---------------------------------------------------------------------------
# The record


def build_record(params, log, now):
    """Return the history record of this drill from the options and the rollback log."""
    validate_decision(params["decision"])
    started = parse_utc("started_at", params["started_at"])
    objective_seconds = params["rto_objective_minutes"] * 60

    if log is None:
        if params["result"] != "not_detected":
            raise DrillReportError(
                "rollback_log is required unless result is not_detected; give the "
                "rollback-log.json of the drill's rollback"
            )
        rto_seconds = None
        result = "not_detected"
        incident_dir = params["incident_dir"]
        timeline = []
    else:
        rto = log["rto"]
        rto_seconds = rto.get("seconds")
        if rto.get("objective_seconds") is not None:
            objective_seconds = float(rto["objective_seconds"])
        result = params["result"] or log.get("result") or "failed"
        incident_dir = params["incident_dir"] or log.get("capture_dir") or None
        timeline = [
            {
                "phase": phase.get("phase"),
                "duration_seconds": phase.get("duration_seconds"),
                "status": phase.get("status"),
            }
            for phase in log.get("timeline") or []
        ]

    rto_met = None if rto_seconds is None else rto_seconds <= objective_seconds
    decision = params["decision"]
    return {
        "format": RECORD_FORMAT,
        "drill_id": params["drill_id"],
        "date": started.strftime("%Y-%m-%d"),
        "started_at": params["started_at"],
        "recorded_at": now.strftime("%Y-%m-%dT%H:%M:%S.%fZ"),
        "environment": params["environment"],
        "host": params["host"],
        "from_version": params["from_version"],
        "to_version": params["to_version"],
        "decision": {key: decision[key] for key in DECISION_KEYS},
        "measurement": params["measurement"],
        "rto_seconds": rto_seconds,
        "rto_objective_seconds": objective_seconds,
        "rto_met": rto_met,
        "result": result,
        "incident_dir": incident_dir,
        "timeline": timeline,
        "removed_backups": params["removed_backups"],
    }


def append_line(history_bytes, record):
    """Return the history bytes with ``record`` appended as one line.

    The earlier bytes are kept exactly. A last line without a newline gets one
    first, so that the record starts on a line of its own.
    """
    line = json.dumps(record, sort_keys=True, separators=(",", ":")).encode("utf-8")
    if history_bytes and not history_bytes.endswith(b"\n"):
        history_bytes += b"\n"
    return history_bytes + line + b"\n"


# ---------------------------------------------------------------------------
# Rendering


def format_seconds(value):
    return "not measured" if value is None else f"{value:.1f} s"


def format_met(value):
    if value is None:
        return "not measured"
    return "met" if value else "MISSED"


def format_fraction(value):
    return "not measured" if value is None else f"{value * 100:.1f}%"


def trend_points(records):
    """Return (when, rto_seconds, rto_met, result) for each record, oldest first.

    A record whose started_at cannot be parsed is left out of the chart.
    """
    points = []
    for record in records:
        try:
            when = parse_utc("started_at", record.get("started_at"))
        except DrillReportError:
            continue
        points.append(
            (when, record.get("rto_seconds"), record.get("rto_met"), record["result"])
        )
    points.sort(key=lambda point: point[0])
    return points


def draw_trend(records, objective_seconds):
    """Draw the RTO of every drill over time and return the PNG bytes."""
    points = trend_points(records)
    figure, axes = pyplot.subplots(figsize=(9, 4), dpi=100)

    measured = [point for point in points if point[1] is not None]
    unmeasured = [point for point in points if point[1] is None]
    if measured:
        axes.plot(
            [point[0] for point in measured],
            [point[1] for point in measured],
            color="#1565c0",
            lw=1,
            marker="o",
            label="RTO of a drill",
        )
        # The values are labelled because they are often far below the objective
        # line, where the differences between drills are hard to read.
        for point in measured[-CHART_LABELLED_POINTS:]:
            axes.annotate(
                f"{point[1]:.1f} s",
                (point[0], point[1]),
                textcoords="offset points",
                xytext=(0, 6),
                ha="center",
                fontsize=7,
            )
        missed = [point for point in measured if point[2] is False]
        if missed:
            axes.scatter(
                [point[0] for point in missed],
                [point[1] for point in missed],
                color="#c62828",
                zorder=3,
                label="RTO objective missed",
            )
    if unmeasured:
        axes.scatter(
            [point[0] for point in unmeasured],
            [0] * len(unmeasured),
            color="#c62828",
            marker="x",
            zorder=3,
            label="no RTO (not detected or failed)",
        )

    axes.axhline(
        objective_seconds,
        color="#2e7d32",
        linestyle="--",
        lw=1,
        label=f"objective {objective_seconds / 60:g} min",
    )
    axes.set_ylim(bottom=0)
    axes.set_ylabel("RTO (seconds)")
    axes.set_xlabel("drill start (UTC)")
    if len(points) == 1:
        # matplotlib spreads a single date over years; show the days around it.
        day = datetime.timedelta(days=1)
        axes.set_xlim(points[0][0] - day, points[0][0] + day)
    drill_count = f"{len(points)} drill" + ("" if len(points) == 1 else "s")
    axes.set_title(f"Rollback drill RTO trend ({drill_count})", fontsize=10)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8, loc="upper left")
    figure.autofmt_xdate()
    figure.tight_layout()

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    pyplot.close(figure)
    return buffer.getvalue()


def render_report(record, records, corrupt, history_file, chart_drawn):
    """Return drill-report.md for ``record`` with the history table and the chart."""
    decision = record["decision"]
    metrics = decision.get("metrics") or {}
    measurement = record.get("measurement") or {}
    objective_minutes = record["rto_objective_seconds"] / 60
    if record["rto_seconds"] is None:
        rto_row = f"| RTO | not measured (objective {objective_minutes:g} min) |"
    else:
        rto_row = (
            f"| RTO | {format_seconds(record['rto_seconds'])} against the objective "
            f"of {objective_minutes:g} min: {format_met(record['rto_met'])} |"
        )
    decision_line = (
        f"Decision **{decision.get('decision')}** (severity "
        f"{decision.get('severity')}) from the live metrics of the bad release:"
    )
    response_time = format_seconds(metrics.get("response_time"))
    lines = [
        f"# Rollback drill {record['drill_id']}",
        "",
        "| | |",
        "|---|---|",
        f"| Date (UTC) | {record['date']} (started {record['started_at']}) |",
        f"| Environment | {record['environment']} (host {record['host']}) |",
        f"| Bad release deployed | {record['from_version']} |",
        f"| Rolled back to | {record['to_version']} |",
        f"| Result | {record['result']} |",
        rto_row,
        f"| Incident folder | {record['incident_dir'] or 'none'} |",
        "",
        "## Detection",
        "",
        decision_line,
        "",
        f"- error rate (5xx responses): {format_fraction(metrics.get('error_rate'))}",
        f"- uptime (requests answered): {format_fraction(metrics.get('uptime'))}",
        f"- response time (95th percentile): {response_time}",
    ]
    if "requests" in measurement:
        lines.append(
            f"- requests sent: {measurement['requests']}, 5xx responses: "
            f"{measurement.get('errors_5xx', 'not counted')}, no response: "
            f"{measurement.get('no_response', 'not counted')}"
        )
    endpoints = measurement.get("endpoints")
    if isinstance(endpoints, dict) and endpoints:
        lines += ["", "| Endpoint | Requests | 5xx |", "|---|---|---|"]
        for endpoint, counts in sorted(endpoints.items()):
            counts = counts if isinstance(counts, dict) else {}
            lines.append(
                f"| {endpoint} | {counts.get('requests', '')} | "
                f"{counts.get('errors_5xx', '')} |"
            )
    reasons = decision.get("reasons") or []
    if reasons:
        lines += ["", "Reasons:", ""]
        lines += [f"- {reason}" for reason in reasons]

    if record["timeline"]:
        lines += ["", "## Rollback timeline", "", "| Phase | Duration | Status |"]
        lines.append("|---|---|---|")
        for phase in record["timeline"]:
            duration = phase.get("duration_seconds")
            duration_text = "" if duration is None else f"{duration:.1f} s"
            lines.append(
                f"| {phase.get('phase')} | {duration_text} | {phase.get('status')} |"
            )
    if record["removed_backups"]:
        lines += ["", "Compose file backups removed after the drill:", ""]
        lines += [f"- {path}" for path in record["removed_backups"]]

    drill_count = f"{len(records)} drill" + ("" if len(records) == 1 else "s")
    lines += ["", "## RTO trend", ""]
    if chart_drawn:
        lines.append(f"![RTO of every drill over time]({CHART_NAME})")
    else:
        lines.append("The chart was not drawn (see the module's warning).")
    lines += [
        "",
        f"History: {history_file} ({drill_count}, newest first below).",
        "",
        "| Date | Drill | Versions | Decision | RTO | RTO met | Result |",
        "|---|---|---|---|---|---|---|",
    ]
    newest_first = sorted(
        records, key=lambda item: str(item.get("started_at")), reverse=True
    )
    for item in newest_first[:REPORT_HISTORY_ROWS]:
        item_decision = item.get("decision")
        decision_text = (
            item_decision.get("decision") if isinstance(item_decision, dict) else ""
        )
        lines.append(
            f"| {item.get('date', '')} | {item['drill_id']} | "
            f"{item.get('from_version', '')} -> {item.get('to_version', '')} | "
            f"{decision_text} | {format_seconds(item.get('rto_seconds'))} | "
            f"{format_met(item.get('rto_met'))} | {item.get('result', '')} |"
        )
    if len(records) > REPORT_HISTORY_ROWS:
        lines.append(
            f"\n{len(records) - REPORT_HISTORY_ROWS} older drills are in the history."
        )
    if corrupt:
        corrupt_line = (
            f"{len(corrupt)} line(s) of the history are not valid records and were "
            "left out (they stay in the file):"
        )
        lines += ["", corrupt_line, ""]
        lines += [f"- line {item['line']}: {item['error']}" for item in corrupt]
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------
# Writing


def ensure_folder(path):
    """Create ``path`` with mode 0700 when it is missing; an existing one is kept."""
    if os.path.isdir(path):
        return
    try:
        os.makedirs(path, mode=FOLDER_MODE)
    except FileExistsError:
        if not os.path.isdir(path):
            raise DrillReportError(
                f"report folder {path!r} exists and is not a folder"
            ) from None
        return
    # makedirs applies the umask to the mode.
    os.chmod(path, FOLDER_MODE)


class FolderLock:
    """An exclusive flock on a folder, held while the history is read and rewritten."""

    def __init__(self, folder):
        self.folder = folder
        self.fd = None

    def __enter__(self):
        self.fd = os.open(self.folder, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
        fcntl.flock(self.fd, fcntl.LOCK_EX)
        return self

    def __exit__(self, *exc_info):
        try:
            fcntl.flock(self.fd, fcntl.LOCK_UN)
        finally:
            os.close(self.fd)


def target_folders(params, record):
    """Return the folders that get the report and the chart, the latest first."""
    history_file = params["history_file"]
    report_dir = params["report_dir"] or os.path.dirname(history_file) or "."
    folders = [report_dir]
    incident_dir = record["incident_dir"]
    if incident_dir:
        if not os.path.isdir(incident_dir):
            raise DrillReportError(
                f"incident folder {incident_dir!r} not found; give incident_dir, or "
                "check the capture_dir of the rollback log"
            )
        if os.path.realpath(incident_dir) != os.path.realpath(report_dir):
            folders.append(incident_dir)
    return folders


def run(module, params, now):
    """Record the drill and write its report. Return the module result."""
    history_file = params["history_file"]
    log = read_rollback_log(params["rollback_log"]) if params["rollback_log"] else None
    record = build_record(params, log, now)
    folders = target_folders(params, record)
    history_dir = os.path.dirname(history_file) or "."
    check_mode = module.check_mode

    if not check_mode:
        ensure_folder(history_dir)
        for folder in folders:
            ensure_folder(folder)

    draw_chart = params["chart"]
    if draw_chart and MATPLOTLIB_ERROR is not None:
        module.warn(
            "rto-trend.png is not drawn because matplotlib is not installed for "
            f"{sys.executable}; install it for that Python (python3-matplotlib on "
            "Debian)"
        )
        draw_chart = False

    # In check mode a missing folder is not created, so there is nothing to lock.
    lock = (
        FolderLock(history_dir)
        if os.path.isdir(history_dir)
        else contextlib.nullcontext()
    )
    with lock:
        history_bytes = read_history_file(history_file)
        records, corrupt = read_history(history_bytes)
        known_ids = {item["drill_id"] for item in records}
        appended = record["drill_id"] not in known_ids
        if appended:
            records.append(record)
        else:
            module.warn(
                f"drill {record['drill_id']!r} is already in {history_file}, so no "
                "second record was appended"
            )
        for item in corrupt:
            module.warn(
                f"{history_file} line {item['line']} is not a valid drill record "
                f"({item['error']}); it stays in the file and is left out of the report"
            )

        chart_bytes = None
        if draw_chart:
            # Drawn before anything is written, so a drawing error writes nothing.
            chart_bytes = draw_trend(records, record["rto_objective_seconds"])
        report = render_report(
            record, records, corrupt, history_file, chart_bytes is not None
        )
        report_paths = [os.path.join(folder, REPORT_NAME) for folder in folders]
        chart_paths = (
            [os.path.join(folder, CHART_NAME) for folder in folders]
            if chart_bytes is not None
            else []
        )

        if not check_mode:
            if appended:
                atomic_write(
                    history_file, append_line(history_bytes, record), mode=FILE_MODE
                )
            for path in report_paths:
                atomic_write(path, report.encode("utf-8"), mode=FILE_MODE)
            for path in chart_paths:
                atomic_write(path, chart_bytes, mode=FILE_MODE)

    message = (
        f"Drill {record['drill_id']}: {record['result']}, RTO "
        f"{format_seconds(record['rto_seconds'])} (objective "
        f"{record['rto_objective_seconds'] / 60:g} min, "
        f"{format_met(record['rto_met'])}); record {len(records)} of {history_file}; "
        f"report {report_paths[0]}"
    )
    return {
        # The report and the chart are rewritten on every run.
        "changed": True,
        "msg": message,
        "record": record,
        "appended": appended,
        "history_file": history_file,
        "history_records": len(records),
        "corrupt_lines": corrupt,
        "report_paths": report_paths,
        "chart_paths": chart_paths,
        "rto_seconds": record["rto_seconds"],
        "rto_met": record["rto_met"],
        "result": record["result"],
    }


def main():
    module = AnsibleModule(
        argument_spec={
            "history_file": {"type": "path", "required": True},
            "report_dir": {"type": "path"},
            "incident_dir": {"type": "path"},
            "rollback_log": {"type": "path"},
            "drill_id": {"type": "str", "required": True},
            "started_at": {"type": "str", "required": True},
            "from_version": {"type": "str", "required": True},
            "to_version": {"type": "str", "required": True},
            "decision": {"type": "dict", "required": True},
            "measurement": {"type": "dict", "default": {}},
            "result": {
                "type": "str",
                "choices": ["success", "failed", "not_detected"],
            },
            "rto_objective_minutes": {"type": "float", "default": 15.0},
            "environment": {"type": "str", "default": "unknown"},
            "host": {"type": "str", "default": "unknown"},
            "removed_backups": {"type": "list", "elements": "str", "default": []},
            "chart": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    now = datetime.datetime.now(datetime.UTC)
    try:
        result = run(module, module.params, now)
    except DrillReportError as error:
        module.fail_json(msg=str(error))
    except OSError as error:
        module.fail_json(
            msg=(
                f"writing the drill report failed on {error.filename!r}: "
                f"{error.strerror or errno.errorcode.get(error.errno, error)}"
            ),
            exception=traceback.format_exc(),
        )
    except Exception as error:  # noqa: BLE001 - report any bug with its traceback
        module.fail_json(
            msg=f"drill report failed unexpectedly: {type(error).__name__}: {error}",
            exception=traceback.format_exc(),
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
