# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Turn ansible-runner events of a rollback playbook into progress lines and a summary.

Controller-side helper of runner_cli. ProgressPrinter is the event_handler of
ansible_runner.run: it prints one line as each phase of the rollback log starts, and
collects the failed tasks, the data rollback's plan and where each host's rollback
log is. report_logs prints the log summaries at the end of the run.
"""

from __future__ import annotations

import json
import re
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

# Task names the playbooks and the rollback_log role use. A playbook opens each phase
# with a task "Start the <phase> phase". The log role's task names start with
# "Rollback log |", and the first of them closes the last phase.
PHASE_TASK = re.compile(r"^Start the (?P<phase>[A-Za-z0-9_-]+) phase$")
LOG_TASK_PREFIX = "Rollback log |"
LOG_PATHS_TASK = "Rollback log | Print where the log is"
LOG_JSON_LINE = re.compile(r"^Rollback log \(JSON\): (?P<path>.+)$")
LOG_MARKDOWN_LINE = re.compile(r"^Rollback log \(Markdown\): (?P<path>.+)$")
# The data rollbacks show their plan in this task and stop in the other one when
# the confirmation prompt gets no "yes".
PLAN_TASK = "Report the plan of this rollback"
NOT_CONFIRMED_TASK = "Stop because the rollback was not confirmed"


@dataclass
class HostLog:
    """Location of one host's rollback log, read from the log role's debug task."""

    host: str
    lines: list[str]
    json_path: str | None = None
    markdown_path: str | None = None


@dataclass
class Failure:
    host: str
    task: str
    message: str


class ProgressPrinter:
    """Turn ansible-runner events into one line per phase and collect the results."""

    def __init__(self, stream=None, verbose: int = 0, clock=time.monotonic):
        self.stream = stream if stream is not None else sys.stdout
        self.verbose = verbose
        self.clock = clock
        self.started = clock()
        self.phase: str | None = None
        # (task uuid, phase, clock) of a phase task whose outcome is not known yet.
        self.pending: tuple[str | None, str, float] | None = None
        self.phase_started = 0.0
        self.phases: list[tuple[str, float]] = []
        self.logs: dict[str, HostLog] = {}
        self.failures: list[Failure] = []
        self.plans: dict[str, list[str]] = {}

    def elapsed(self) -> float:
        return self.clock() - self.started

    def write(self, text: str) -> None:
        print(text, file=self.stream, flush=True)

    def close_phase(self, ended: float | None = None) -> str:
        """Close the open phase at ``ended`` (default now) and return its duration text."""
        if self.phase is None:
            return ""
        duration = (self.clock() if ended is None else ended) - self.phase_started
        self.phases.append((self.phase, duration))
        text = f" ({self.phase} took {duration:.1f} s)"
        self.phase = None
        return text

    def start_phase(self, phase: str, started: float) -> None:
        closed = self.close_phase(started)
        self.phase = phase
        self.phase_started = started
        self.write(f"[{started - self.started:7.1f} s] {phase} phase started{closed}")

    def finish(self, status: str) -> None:
        self.commit_pending()
        closed = self.close_phase()
        self.write(f"[{self.elapsed():7.1f} s] run {status}{closed}")

    def commit_pending(self) -> None:
        if self.pending is not None:
            _uuid, phase, started = self.pending
            self.pending = None
            self.start_phase(phase, started)

    def handle(self, event: dict) -> bool:
        """Process one event and return True, so that ansible-runner stores it."""
        if self.verbose and event.get("stdout"):
            self.write(event["stdout"])
        data = event.get("event_data") or {}
        kind = event.get("event")
        task = str(data.get("task") or "")

        # A phase task can be skipped by its when condition (the shared
        # switch_backend.yml includes both of its phases in a loop), so a phase
        # counts as started only once an event other than its skip follows.
        if self.pending is not None:
            if kind == "runner_on_skipped" and data.get("task_uuid") == self.pending[0]:
                self.pending = None
            elif kind not in ("runner_on_start", "runner_on_skipped"):
                self.commit_pending()

        if kind == "playbook_on_task_start":
            match = PHASE_TASK.match(task)
            if match:
                self.pending = (
                    data.get("task_uuid"),
                    match.group("phase"),
                    self.clock(),
                )
            elif task.startswith(LOG_TASK_PREFIX) and self.phase is not None:
                # The log role closes the last phase, so its time ends here.
                closed = self.close_phase()
                self.write(
                    f"[{self.elapsed():7.1f} s] writing the rollback log{closed}"
                )
        elif kind == "runner_on_ok" and task == LOG_PATHS_TASK:
            self.record_log(data)
        elif kind == "runner_on_ok" and task == PLAN_TASK:
            message = (data.get("res") or {}).get("msg")
            lines = message if isinstance(message, list) else [message]
            self.plans[str(data.get("host") or "unknown")] = [
                str(line) for line in lines
            ]
        elif kind in ("runner_on_failed", "runner_on_unreachable") and not data.get(
            "ignore_errors"
        ):
            self.record_failure(data)
        return True

    def record_log(self, data: dict) -> None:
        host = str(data.get("host") or "unknown")
        message = (data.get("res") or {}).get("msg")
        lines = [str(line) for line in message] if isinstance(message, list) else []
        log = HostLog(host=host, lines=lines)
        for line in lines:
            if match := LOG_JSON_LINE.match(line):
                log.json_path = match.group("path")
            if match := LOG_MARKDOWN_LINE.match(line):
                log.markdown_path = match.group("path")
        self.logs[host] = log

    def record_failure(self, data: dict) -> None:
        result = data.get("res") or {}
        message = result.get("msg") or result.get("stderr") or "no message"
        self.failures.append(
            Failure(
                host=str(data.get("host") or "unknown"),
                task=str(data.get("task") or "unknown"),
                message=str(message).strip(),
            )
        )


def format_seconds(value) -> str:
    if value is None:
        return "not measured"
    return f"{float(value):.1f} s"


def summarize_log(document: dict) -> list[str]:
    """Return the summary lines of a rollback-log.json document."""
    lines = [
        f"  Result: {document.get('result')}",
        f"  Procedure: {document.get('procedure')} (Type {document.get('rollback_type')})",
    ]
    if document.get("from_version") or document.get("to_version"):
        source = document.get("from_version") or "unknown"
        target = document.get("to_version") or "unknown"
        lines.append(f"  Versions: {source} -> {target}")
    for name in ("rto", "rpo"):
        section = document.get(name) or {}
        seconds = section.get("seconds")
        objective = section.get("objective_seconds")
        if seconds is None:
            verdict = (
                "the rollback was not verified"
                if name == "rto"
                else "no data was restored"
            )
            lines.append(f"  {name.upper()}: not measured ({verdict})")
        else:
            verdict = "met" if section.get("met") else "MISSED"
            lines.append(
                f"  {name.upper()}: {format_seconds(seconds)} against the objective of "
                f"{float(objective) / 60:g} min: {verdict}"
            )
    for phase in document.get("timeline") or []:
        lines.append(
            f"    {phase.get('phase'):<10} {format_seconds(phase.get('duration_seconds')):>10}"
            f"  {phase.get('status')}"
        )
    return lines


def report_logs(printer: ProgressPrinter, artifact_dir: Path) -> None:
    """Print each host's rollback log summary and copy local logs to the artifacts."""
    for host, log in printer.logs.items():
        printer.write(f"Rollback log of {host}:")
        # NOTE: a log of a remote host is read here only when this machine has a
        # file at the same path, which is the case for a local connection.
        json_path = Path(log.json_path) if log.json_path else None
        if json_path is not None and json_path.is_file():
            document = json.loads(json_path.read_text())
            for line in summarize_log(document):
                printer.write(line)
            copies = artifact_dir / "rollback-log" / host
            copies.mkdir(parents=True, exist_ok=True)
            for name in ("rollback-log.json", "rollback-log.md", "timeline.png"):
                source = json_path.parent / name
                if source.is_file():
                    shutil.copy2(source, copies / name)
            printer.write(f"  Log: {log.markdown_path}")
            printer.write(f"  Log (JSON): {log.json_path}")
            printer.write(f"  Copy in the artifacts: {copies}")
        else:
            # The log was written on a managed host that this machine cannot read.
            for line in log.lines:
                printer.write(f"  {line}")
            printer.write(f"  (the files are on {host})")
