# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
name: timeline
type: aggregate
short_description: Record a rollback run's tasks with timestamps, operator and parameters
description:
  - Records every task of the run with its host, role, status, start and end time (UTC),
    and the rollback phase it belongs to, together with who ran the playbook, on which
    controller, with which command line and extra variables.
  - Values whose key looks like a secret (see O(redact_keys)) and passwords inside URLs
    are replaced by C(<redacted>) before anything is written.
  - The record is a JSON file in O(dir), rewritten atomically after every task, so a run
    that is interrupted still leaves the tasks it finished. Its path is put into the
    environment variable E(TRUEBOND_TIMELINE_FILE) of the controller, where the
    truebond.rollback.rollback_log role reads it to add the tasks to the rollback log.
  - The phase of a task is the last phase opened by the truebond.rollback.rollback_log
    role's C(phase) entry point before the task ran.
requirements:
  - Enable it, for example with C(callbacks_enabled = truebond.rollback.timeline) in the
    C([defaults]) section of ansible.cfg or E(ANSIBLE_CALLBACKS_ENABLED).
options:
  dir:
    description: Folder for the timeline files; created with mode 0700 when missing.
    type: path
    default: ~/.ansible/truebond/timelines
    env:
      - name: TRUEBOND_TIMELINE_DIR
    ini:
      - section: callback_truebond_timeline
        key: dir
  redact_keys:
    description:
      - Regular expression, matched case-insensitively anywhere in a variable name. The
        values of matching variables are redacted in the record.
    type: str
    default: (password|passwd|secret|token|api_?key|private_?key|credential|auth|cookie|session_?key|webhook)
    env:
      - name: TRUEBOND_TIMELINE_REDACT_KEYS
    ini:
      - section: callback_truebond_timeline
        key: redact_keys
notes:
  - Values given on the command line are redacted by their key only, in C(key=value)
    pairs and in JSON or YAML documents given to C(-e). A secret passed under an
    innocent name, such as C(-e note=hunter2), is recorded as given.
"""

EXAMPLES = r"""
# ansible.cfg
# [defaults]
# callbacks_enabled = truebond.rollback.timeline
#
# [callback_truebond_timeline]
# dir = /var/log/truebond/timelines
"""

import datetime
import getpass
import json
import os
import re
import socket
import sys
import tempfile
import time

import yaml
from ansible.plugins.callback import CallbackBase

REDACTED = "<redacted>"
FORMAT_VERSION = 1
URL_PASSWORD = re.compile(
    r"(?P<scheme>[a-z][a-z0-9+.-]*://)(?P<user>[^:/@\s]*):[^@/\s]*@", re.IGNORECASE
)


def utc_timestamp(epoch):
    """Format a POSIX time as ISO 8601 UTC with microseconds and a Z."""
    moment = datetime.datetime.fromtimestamp(epoch, tz=datetime.timezone.utc)  # noqa: UP017
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def redact(value, key_pattern, key=""):
    """Return a copy of value with secret-looking keys and URL passwords redacted."""
    if key and key_pattern.search(str(key)):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, key_pattern, k) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [redact(item, key_pattern) for item in value]
    if isinstance(value, str):
        return URL_PASSWORD.sub(r"\g<scheme>\g<user>:" + REDACTED + "@", value)
    return value


def redact_argv(argv, key_pattern):
    """Redact extra variables (key=value pairs, JSON or YAML) and URL passwords."""
    redacted = []
    for arg in argv:
        document = parse_document(arg)
        if document is not None:
            redacted.append(json.dumps(redact(document, key_pattern), sort_keys=True))
            continue
        parts = []
        for word in arg.split(" "):
            name, sep, _ = word.partition("=")
            if sep and key_pattern.search(name):
                word = name + "=" + REDACTED
            parts.append(word)
        redacted.append(redact(" ".join(parts), key_pattern))
    return redacted


def parse_document(arg):
    """Return arg as a dict or list when it is JSON or YAML flow syntax, else None."""
    text = arg.strip()
    if not text.startswith(("{", "[")):
        return None
    try:
        return json.loads(text)
    except ValueError:
        pass
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        return None
    return document if isinstance(document, (dict, list)) else None


class CallbackModule(CallbackBase):
    CALLBACK_VERSION = 2.0
    CALLBACK_TYPE = "aggregate"
    CALLBACK_NAME = "truebond.rollback.timeline"
    CALLBACK_NEEDS_ENABLED = True

    def __init__(self, clock=time.time, display=None):
        super().__init__(display=display)
        self._clock = clock
        self._path = None
        self._key_pattern = None
        self._phase = None
        self._started = {}
        self._record = None

    # Writing

    def _write(self):
        if self._path is None:
            return
        folder = os.path.dirname(self._path)
        handle, temporary = tempfile.mkstemp(prefix=".timeline.", dir=folder)
        try:
            with os.fdopen(handle, "w", encoding="utf-8") as stream:
                json.dump(self._record, stream, indent=2, sort_keys=True)
                stream.write("\n")
            os.chmod(temporary, 0o600)
            os.replace(temporary, self._path)
        except OSError as error:
            self._display.warning(f"timeline: could not write {self._path}: {error}")
            if os.path.exists(temporary):
                os.unlink(temporary)

    # Playbook events

    def v2_playbook_on_start(self, playbook):
        now = self._clock()
        self._key_pattern = re.compile(self.get_option("redact_keys"), re.IGNORECASE)
        name = os.path.splitext(os.path.basename(playbook._file_name))[0]
        folder = os.path.expanduser(self.get_option("dir"))
        stamp = datetime.datetime.fromtimestamp(now, tz=datetime.timezone.utc)  # noqa: UP017
        run_id = f"{name}-{stamp.strftime('%Y%m%dT%H%M%S.%fZ')}-{os.getpid()}"
        try:
            os.makedirs(folder, mode=0o700, exist_ok=True)
            self._path = os.path.join(folder, run_id + ".json")
        except OSError as error:
            self._display.warning(
                f"timeline: could not create {folder}: {error}; no timeline is kept"
            )
            self._path = None
        self._record = {
            "format": FORMAT_VERSION,
            "run_id": run_id,
            "playbook": playbook._file_name,
            "started": utc_timestamp(now),
            "ended": None,
            "operator": getpass.getuser(),
            "controller": socket.gethostname(),
            "command_line": redact_argv(sys.argv, self._key_pattern),
            "extra_vars": {},
            "tasks": [],
            "stats": {},
        }
        if self._path is not None:
            # Worker processes fork from this one, so the roles' lookups see it.
            os.environ["TRUEBOND_TIMELINE_FILE"] = self._path
        self._write()

    def v2_playbook_on_play_start(self, play):
        if self._record is None:
            return
        manager = play.get_variable_manager()
        extra_vars = dict(manager.extra_vars) if manager is not None else {}
        self._record["extra_vars"] = redact(extra_vars, self._key_pattern)

    def _task_started(self, task, host_name):
        self._started[(task._uuid, host_name)] = self._clock()

    def v2_playbook_on_task_start(self, task, is_conditional):
        self._started[(task._uuid, None)] = self._clock()

    def v2_playbook_on_handler_task_start(self, task):
        self._started[(task._uuid, None)] = self._clock()

    def v2_runner_on_start(self, host, task):
        self._task_started(task, host.get_name())

    def _task_ended(self, result, status):
        if self._record is None:
            return
        now = self._clock()
        task = result._task
        host_name = result._host.get_name()
        started = self._started.pop(
            (task._uuid, host_name), self._started.get((task._uuid, None), now)
        )
        facts = result._result.get("ansible_facts") or {}
        opened = facts.get("rollback_log_open") or {}
        if status == "ok" and result._result.get("changed"):
            status = "changed"
        entry = {
            "task": task.get_name(),
            "action": task.action,
            "role": task._role.get_name() if task._role else None,
            "host": host_name,
            "phase": self._phase,
            "status": status,
            "started": utc_timestamp(started),
            "ended": utc_timestamp(now),
            "duration_seconds": round(now - started, 3),
        }
        if status in ("failed", "unreachable"):
            message = result._result.get("msg", "")
            entry["message"] = redact(str(message), self._key_pattern)[:500]
        self._record["tasks"].append(entry)
        # A phase opened by this task applies to the tasks after it.
        if isinstance(opened, dict) and opened.get("phase"):
            self._phase = opened["phase"]
        self._write()

    def v2_runner_on_ok(self, result):
        self._task_ended(result, "ok")

    def v2_runner_on_failed(self, result, ignore_errors=False):
        self._task_ended(result, "ignored" if ignore_errors else "failed")

    def v2_runner_on_skipped(self, result):
        self._task_ended(result, "skipped")

    def v2_runner_on_unreachable(self, result):
        self._task_ended(result, "unreachable")

    def v2_playbook_on_stats(self, stats):
        if self._record is None:
            return
        self._record["ended"] = utc_timestamp(self._clock())
        self._record["stats"] = {
            host: stats.summarize(host) for host in sorted(stats.processed.keys())
        }
        self._write()
        if self._path is not None:
            self._display.display(f"Timeline of this run: {self._path}")
