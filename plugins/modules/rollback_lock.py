# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rollback_lock
short_description: Take, release or read the rollback lock of a target host
version_added: 0.2.0
description:
  - Keeps one rollback at a time on a host. The lock is a file on the target host,
    O(path), that contains a JSON record of its holder, the procedure and the run.
  - With O(state=acquired), the module creates the lock file with
    C(O_CREAT|O_EXCL), so that of two runs that start at once exactly one gets the
    lock, and flushes it to disk with C(fsync). When another run holds the lock,
    the task fails with the holder, the controller, the procedure, the time it was
    taken and how to take over a stale lock.
  - A lock is stale when its holder is gone. With O(owner_pid), the lock records a
    process on the target host, and the lock is stale once that process has
    exited, checked with C(kill(pid, 0)) and the start time of the process from
    C(/proc). Without a process to check, or when the lock was written on another
    host (a lock file on shared storage), the lock is stale O(ttl_minutes) after
    it was taken, with the TTL of the run that took it.
  - A stale lock is taken over only with O(takeover=true). The result then names
    the lock that was taken over. A lock whose holder may still run is never taken
    over, with or without O(takeover).
  - With O(state=released), the module removes the lock only when its run id is
    O(run_id), so that a run never removes the lock of another run. A missing lock
    is not an error and only warns.
  - With O(state=info), the module only reads the lock and returns its holder and
    whether it is stale.
options:
  state:
    description:
      - V(acquired) takes the lock for this run, or takes over a stale lock with
        O(takeover=true).
      - V(released) removes the lock when it belongs to O(run_id).
      - V(info) reads the lock and changes nothing.
    type: str
    choices: [acquired, released, info]
    default: acquired
  path:
    description:
      - Path of the lock file on the target host.
      - Missing parent folders are created with mode C(0700). The lock file is
        created with mode C(0600).
      - On Debian and Ubuntu, C(/var/lock) is a link to C(/run/lock), a tmpfs
        with mode C(1777), so the lock is gone after a reboot.
    type: path
    default: /var/lock/truebond-rollback.lock
  procedure:
    description:
      - Name of the procedure that takes the lock, such as V(rollback_app),
        V(rollback_db), V(rollback_full) or V(disable_feature).
      - Required with O(state=acquired).
    type: str
  holder:
    description:
      - Who takes the lock, usually the operator's user name on the controller or
        the AWX user.
      - When empty, the module records the remote user on the target host, from
        the environment variable C(USER) or else from the password database.
    type: str
  job_id:
    description:
      - ID of the AWX or Automation Controller job that runs the playbook, recorded
        with O(holder). Empty when the playbook runs from a shell.
    type: str
  controller:
    description:
      - Host name of the controller that runs the playbook. The module runs on the
        target host and cannot read it, so the caller passes it.
    type: str
  owner_pid:
    description:
      - ID of a process on the target host that runs for as long as the rollback,
        so that the lock counts as stale as soon as that process has exited.
      - With a local connection, pass the PID of the C(ansible-playbook) process.
        The module's own parent processes exit after each task, so they cannot
        represent the run. Over SSH no process on the target lives as long as
        the playbook, so leave this empty and the lock expires after
        O(ttl_minutes).
      - The process must be running when the lock is taken, or the task fails.
    type: int
  ttl_minutes:
    description:
      - Minutes after which the lock counts as stale when no process can be
        checked (O(owner_pid) is empty, or the lock was written on another host).
      - Set it longer than the longest rollback, including a database restore,
        because a run that takes longer loses its protection. The lock of a
        running O(owner_pid) never expires.
    type: int
    default: 120
  takeover:
    description:
      - Take over the lock when it is stale. Without this, a stale lock makes the
        task fail like a held one.
      - Has no effect when the lock is free, held by this run, or not stale.
    type: bool
    default: false
  takeover_hint:
    description:
      - How the operator sets O(takeover) in the calling playbook, quoted in the
        failure message, for example C(-e rollback_lock_takeover=true).
    type: str
    default: "takeover: true"
  run_id:
    description:
      - ID of the run that holds the lock.
      - With O(state=acquired), when empty, the module generates a random ID and
        returns it as RV(run_id). When O(run_id) is the ID in the lock, the task
        succeeds without a change, so a run may take its lock twice.
      - Required with O(state=released). Pass RV(run_id) of the acquiring task.
    type: str
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - The module reports what O(state=acquired) or O(state=released) would do and
        writes nothing, not even the parent folder. A check-mode run therefore does
        not hold the lock, and a real run may start while it runs.
      - In check mode, the task still fails when another run holds the lock, so that
        the operator learns of the other rollback in a dry run too.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - Every change to the lock file happens while the module holds C(flock) on the
    lock's parent folder, and each change checks the lock again after it has the
    C(flock). A failed acquire therefore always reads a complete record, and a
    release or takeover cannot remove a lock that another run has just written.
  - The lock file must be on a local filesystem. C(O_EXCL) and C(flock) are not
    reliable on every NFS setup.
  - The lock is advisory. It keeps out runs that use this module with the same
    O(path), not an operator who runs C(docker compose) by hand.
  - A lock file that is not a JSON record of this module makes the task fail
    without a change. Remove it by hand after checking that no rollback runs on
    the host.
  - The process start time is read from C(/proc/<pid>/stat) on Linux. Elsewhere
    only C(kill(pid, 0)) is checked, so a reused PID keeps the lock alive until
    that process exits.
seealso:
  - module: truebond.rollback.rollback_log
author:
  - TrueBond SRE team (@truebond-sre)
"""

EXAMPLES = r"""
- name: Take the rollback lock of the host
  truebond.rollback.rollback_lock:
    state: acquired
    procedure: rollback_app
    holder: "{{ lookup('ansible.builtin.env', 'USER') }}"
    controller: "{{ lookup('ansible.builtin.pipe', 'uname -n') }}"
  register: app_lock

- name: Release the lock of this run
  truebond.rollback.rollback_lock:
    state: released
    run_id: "{{ app_lock.run_id }}"

- name: Take over a lock whose holder's process has exited
  truebond.rollback.rollback_lock:
    state: acquired
    procedure: rollback_db
    holder: alice
    owner_pid: 48213
    takeover: true
  register: db_lock

- name: Name the run whose lock was taken over
  ansible.builtin.debug:
    msg: "Took over the lock of {{ db_lock.taken_over.holder }}, run {{ db_lock.taken_over.run_id }}"
  when: db_lock.taken_over is not none

- name: Show who holds the lock, if anyone
  truebond.rollback.rollback_lock:
    state: info
  register: lock_info
"""

RETURN = r"""
changed:
  description:
    - Whether the lock file was written or removed, or in check mode would be.
  type: bool
  returned: always
  sample: true
msg:
  description: What the task did, or in check mode would do, in one sentence.
  type: str
  returned: always
  sample: >-
    Acquired rollback lock '/var/lock/truebond-rollback.lock' for procedure
    rollback_app (run 5b0c6f0e0d4e4a0c9e3b2b9a1f7c2d11).
lock_path:
  description: Absolute path of the lock file.
  type: str
  returned: always
  sample: /var/lock/truebond-rollback.lock
run_id:
  description:
    - With O(state=acquired), the ID of this run's lock. Pass it to
      O(state=released).
    - With O(state=released), O(run_id). With O(state=info), C(null).
  type: str
  returned: always
  sample: 5b0c6f0e0d4e4a0c9e3b2b9a1f7c2d11
lock:
  description:
    - The record in the lock file after the task, or in check mode the record
      that would be written. C(null) when there is no lock.
    - When the task fails because another run holds the lock, that run's record.
  type: dict
  returned: always
  contains:
    holder:
      description: O(holder) of the run that holds the lock.
      type: str
      sample: alice
    job_id:
      description: O(job_id) of that run, or C(null).
      type: str
      sample: "4711"
    controller:
      description: O(controller) of that run, or C(null).
      type: str
      sample: ops-laptop-3
    procedure:
      description: O(procedure) of that run.
      type: str
      sample: rollback_app
    since:
      description: When the lock was taken, in UTC (ISO 8601).
      type: str
      sample: "2026-12-04T17:30:24Z"
    expires:
      description:
        - When the lock counts as stale if no process can be checked, in UTC.
      type: str
      sample: "2026-12-04T19:30:24Z"
    ttl_minutes:
      description: O(ttl_minutes) of that run.
      type: int
      sample: 120
    run_id:
      description: ID of that run.
      type: str
      sample: 5b0c6f0e0d4e4a0c9e3b2b9a1f7c2d11
    owner_pid:
      description: O(owner_pid) of that run, or C(null).
      type: int
      sample: 48213
    owner_start_time:
      description:
        - Start time of O(owner_pid) in clock ticks after boot, from
          C(/proc/<pid>/stat), or C(null) where C(/proc) has no such file.
      type: int
      sample: 8412345
    host:
      description: Host name of the target host that wrote the lock.
      type: str
      sample: app-1
    format:
      description: Version of the record's layout, currently C(1).
      type: int
      sample: 1
stale:
  description:
    - Whether the lock that was in the file before the task counts as stale.
    - C(null) when there was no lock or it belonged to this run.
  type: bool
  returned: always
  sample: false
holder_status:
  description:
    - Why the lock counts as stale or not, or C(null) when there was no lock or it
      belonged to this run.
  type: str
  returned: always
  sample: process 48213 on app-1 is running
taken_over:
  description:
    - The record of the stale lock that this run took over, else C(null).
    - With O(state=acquired) only.
  type: dict
  returned: always
  sample:
    holder: bob
    procedure: rollback_db
    since: "2026-12-04T09:02:11Z"
    run_id: 0e6a1c5d9b0a4f63a9e8f3c1d2b4a5e6
released:
  description:
    - The record that the task removed, or in check mode would remove, else
      C(null). With O(state=released) only.
  type: dict
  returned: always
  sample:
    holder: alice
    procedure: rollback_app
    run_id: 5b0c6f0e0d4e4a0c9e3b2b9a1f7c2d11
"""

import contextlib
import datetime
import fcntl
import getpass
import json
import os
import re
import shlex
import socket
import tempfile
import traceback
import uuid

from ansible.module_utils.basic import AnsibleModule

DEFAULT_PATH = "/var/lock/truebond-rollback.lock"
LOCK_FORMAT = 1
TIME_FORMAT = "%Y-%m-%dT%H:%M:%SZ"
# \Z rather than $, because $ also matches before a final line break.
RUN_ID_PATTERN = re.compile(r"[A-Za-z0-9._:-]{1,128}\Z")
REQUIRED_KEYS = ("holder", "procedure", "since", "expires", "run_id")


class LockError(Exception):
    """A failure to report with fail_json. The message is the whole report."""

    def __init__(self, message, lock=None, stale=None, holder_status=None):
        super().__init__(message)
        self.lock = lock
        self.stale = stale
        self.holder_status = holder_status


def utc_now():
    # datetime.UTC needs Python 3.11, and managed hosts may run an older Python.
    return datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017


def format_time(moment):
    return moment.strftime(TIME_FORMAT)


def parse_time(text):
    moment = datetime.datetime.strptime(text, TIME_FORMAT)
    return moment.replace(tzinfo=datetime.timezone.utc)  # noqa: UP017


def removal_advice(path):
    return (
        "Make sure that no rollback runs on this host (ask the other operators and"
        " check the AWX jobs), then remove the file with: rm -- "
        f"{shlex.quote(path)}"
    )


def process_start_time(pid):
    """Return the start time of ``pid`` in clock ticks after boot, or None."""
    try:
        with open(f"/proc/{pid}/stat", encoding="utf-8", errors="replace") as stream:
            return parse_start_time(stream.read())
    except OSError:
        return None


def parse_start_time(stat_text):
    """Return field 22 (starttime) of a /proc/<pid>/stat line, or None.

    The command name in field 2 may contain spaces and brackets, so the fields are
    counted after its last ")". The first of them is field 3 (the state).
    """
    fields = stat_text.rpartition(")")[2].split()
    try:
        return int(fields[19])
    except (IndexError, ValueError):
        return None


def process_running(pid):
    """Return whether a process with ID ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except (ProcessLookupError, OverflowError):
        return False
    except PermissionError:
        # The process exists but belongs to another user.
        return True
    return True


def read_lock(path):
    """Return the record in the lock file at ``path``, or None when it is missing."""
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except FileNotFoundError:
        return None
    except PermissionError as error:
        owner = file_owner(path)
        raise LockError(
            f"rollback lock {path!r} exists but cannot be read: {error}. It belongs"
            f" to {owner}. Run the playbook as that user, or with become."
        ) from None

    if not data.strip():
        problem = "is empty (a run may have stopped while writing it)"
    else:
        try:
            record = json.loads(data.decode("utf-8"))
        except (UnicodeDecodeError, ValueError) as error:
            problem = f"is not valid JSON ({error})"
        else:
            problem = check_record(record)
            if problem is None:
                return record
    raise LockError(
        f"rollback lock file {path!r} {problem}, so its holder is unknown and it was"
        f" not changed. {removal_advice(path)}"
    )


def check_record(record):
    """Return what is wrong with a parsed lock record, or None when it is usable."""
    if not isinstance(record, dict):
        return f"contains a JSON {type(record).__name__}, not a lock record"
    missing = [key for key in REQUIRED_KEYS if not record.get(key)]
    if missing:
        return f"lacks the keys {', '.join(missing)} of a lock record"
    try:
        parse_time(record["expires"])
        parse_time(record["since"])
    except (TypeError, ValueError):
        return (
            f"has the times since={record['since']!r} and expires="
            f"{record['expires']!r}, expected the form YYYY-MM-DDTHH:MM:SSZ"
        )
    pid = record.get("owner_pid")
    if pid is not None and (isinstance(pid, bool) or not isinstance(pid, int)):
        return f"has owner_pid {pid!r}, expected a process ID or null"
    return None


def file_owner(path):
    try:
        uid = os.stat(path).st_uid
    except OSError:
        return "an unknown user"
    try:
        import pwd

        return f"user {pwd.getpwuid(uid).pw_name} (uid {uid})"
    except (ImportError, KeyError):
        return f"uid {uid}"


def judge_holder(record, hostname, now):
    """Return (stale, holder_status) for a lock record.

    The holder's process decides when the lock names one that was started on this
    host. Otherwise the lock's expiry time decides.
    """
    pid = record.get("owner_pid")
    if pid and record.get("host") == hostname:
        where = f"process {pid} on {hostname}"
        if not process_running(pid):
            return True, f"{where} has exited"
        recorded_start = record.get("owner_start_time")
        current_start = process_start_time(pid)
        if (
            recorded_start is not None
            and current_start is not None
            and recorded_start != current_start
        ):
            return True, (
                f"{where} has exited, and its ID now belongs to another process"
                " (the start time differs)"
            )
        return False, f"{where} is running"

    expires = record["expires"]
    reason = "no process on this host is recorded to check"
    if pid:
        reason = f"its process {pid} runs on {record.get('host')}, not on {hostname}"
    if now >= parse_time(expires):
        return True, f"it expired at {expires}, and {reason}"
    return False, f"it expires at {expires}, and {reason}"


def describe_holder(record):
    holder = record["holder"]
    if record.get("job_id"):
        holder += f" (AWX job {record['job_id']})"
    text = holder
    if record.get("controller"):
        text += f" from controller {record['controller']}"
    return (
        f"{text} for procedure {record['procedure']} since {record['since']}"
        f" (run {record['run_id']})"
    )


def build_held_message(path, record, stale, holder_status, takeover, takeover_hint):
    message = f"rollback lock {path!r} is held by {describe_holder(record)}."
    if stale:
        return (
            f"{message} The lock is stale because {holder_status}. If no rollback"
            f" runs on this host, take the lock over with {takeover_hint}."
        )
    if holder_status.startswith("process"):
        when = "Once that process has exited"
    else:
        when = f"After {record['expires']}"
    message += (
        f" {holder_status[0].upper()}{holder_status[1:]}, so that rollback may still"
        f" be running. Wait for it to finish. {when}, the lock is stale and can be"
        f" taken over with {takeover_hint}."
    )
    if takeover:
        message += " takeover was requested, but the lock is not stale, so it was kept."
    return message


def new_record(params, run_id, hostname, now):
    ttl_minutes = params["ttl_minutes"]
    owner_pid = params["owner_pid"] or None
    return {
        "format": LOCK_FORMAT,
        "holder": params["holder"] or default_holder(),
        "job_id": params["job_id"] or None,
        "controller": params["controller"] or None,
        "procedure": params["procedure"],
        "since": format_time(now),
        "expires": format_time(now + datetime.timedelta(minutes=ttl_minutes)),
        "ttl_minutes": ttl_minutes,
        "run_id": run_id,
        "owner_pid": owner_pid,
        "owner_start_time": process_start_time(owner_pid) if owner_pid else None,
        "host": hostname,
    }


def default_holder():
    user = os.environ.get("USER")
    if user:
        return user
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return f"uid {os.getuid()}"


def create_parents(directory):
    """Create the missing folders of ``directory`` with mode 0700, top first."""
    missing = []
    current = directory
    while not os.path.isdir(current):
        missing.append(current)
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    for folder in reversed(missing):
        try:
            os.mkdir(folder, 0o700)
        except FileExistsError:
            continue
        os.chmod(folder, 0o700)


def fsync_directory(directory):
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


@contextlib.contextmanager
def directory_guard(directory):
    """Hold an exclusive flock on ``directory`` while the block runs.

    The flock orders every read-check-write of the lock file among runs of this
    module. The kernel drops it when the process exits, so a killed run leaves no
    guard behind.
    """
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def encode_record(record):
    return (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")


def write_exclusive(path, record):
    """Create the lock file with O_CREAT|O_EXCL. Raise FileExistsError when taken."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, encode_record(record))
        os.fsync(fd)
    except BaseException:
        os.close(fd)
        os.unlink(path)
        raise
    os.close(fd)
    fsync_directory(os.path.dirname(path))


def replace_lock(path, record):
    """Replace the lock file atomically, so that it never goes missing in between."""
    directory = os.path.dirname(path)
    fd, temporary = tempfile.mkstemp(prefix=".rollback-lock-", dir=directory)
    try:
        os.fchmod(fd, 0o600)
        os.write(fd, encode_record(record))
        os.fsync(fd)
        os.close(fd)
        fd = None
        os.replace(temporary, path)
    except BaseException:
        if fd is not None:
            os.close(fd)
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise
    fsync_directory(directory)


def result_for(path, run_id, msg, changed, lock, **extra):
    result = {
        "changed": changed,
        "msg": msg,
        "lock_path": path,
        "run_id": run_id,
        "lock": lock,
        "stale": None,
        "holder_status": None,
        "taken_over": None,
        "released": None,
    }
    result.update(extra)
    return result


def acquire(path, params, check_mode, hostname=None, now=None):
    """Take the lock at ``path`` for this run and return the module result."""
    hostname = hostname or socket.gethostname()
    now = now or utc_now()
    run_id = params["run_id"] or uuid.uuid4().hex
    owner_pid = params["owner_pid"]
    if owner_pid and not process_running(owner_pid):
        raise LockError(
            f"owner_pid {owner_pid!r} is not a running process on {hostname}, so the"
            " lock would be stale at once. Pass the PID of the ansible-playbook"
            " process when the connection is local, or leave owner_pid empty."
        )
    record = new_record(params, run_id, hostname, now)

    if check_mode:
        return decide_acquire(
            path, params, record, read_lock(path), hostname, now, check_mode
        )

    create_parents(os.path.dirname(path))
    with directory_guard(os.path.dirname(path)):
        try:
            write_exclusive(path, record)
        except FileExistsError:
            pass
        else:
            return result_for(
                path, run_id, acquired_message(path, record), True, record
            )

        existing = read_lock(path)
        if existing is None:
            # Removed between the two calls by something that skips the flock,
            # such as rm by hand. Try once more.
            write_exclusive(path, record)
            return result_for(
                path, run_id, acquired_message(path, record), True, record
            )
        result = decide_acquire(
            path, params, record, existing, hostname, now, check_mode
        )
        if result["taken_over"] is not None:
            replace_lock(path, record)
        return result


def acquired_message(path, record):
    return (
        f"Acquired rollback lock {path!r} for procedure {record['procedure']}"
        f" (run {record['run_id']})."
    )


def decide_acquire(path, params, record, existing, hostname, now, check_mode):
    """Return the acquire result for the lock ``existing``, or raise when it is held.

    Writes nothing. The caller writes ``record`` when the result has
    ``taken_over`` set and it is not check mode.
    """
    run_id = record["run_id"]
    if existing is None:
        # Only check mode gets here: a real run has created the file already.
        return result_for(
            path,
            run_id,
            f"Check mode: would acquire rollback lock {path!r} for procedure"
            f" {record['procedure']}. Nothing was written, so this run does not hold"
            " the lock.",
            True,
            record,
        )
    if existing["run_id"] == run_id:
        return result_for(
            path,
            run_id,
            f"Rollback lock {path!r} is already held by this run ({run_id}).",
            False,
            existing,
        )

    stale, holder_status = judge_holder(existing, hostname, now)
    if not stale or not params["takeover"]:
        raise LockError(
            build_held_message(
                path,
                existing,
                stale,
                holder_status,
                params["takeover"],
                params["takeover_hint"],
            ),
            lock=existing,
            stale=stale,
            holder_status=holder_status,
        )
    verb = "Check mode: would take over" if check_mode else "Took over"
    return result_for(
        path,
        run_id,
        f"{verb} the stale rollback lock {path!r} of {describe_holder(existing)},"
        f" because {holder_status}.",
        True,
        record,
        stale=True,
        holder_status=holder_status,
        taken_over=existing,
    )


def release(path, run_id, check_mode, warn):
    """Remove the lock at ``path`` when it belongs to ``run_id``."""
    if check_mode:
        existing = read_lock(path)
        if existing is None:
            # A check-mode acquire writes nothing, so no lock is the usual case.
            return result_for(
                path,
                run_id,
                f"Check mode: rollback lock {path!r} does not exist, so there is"
                " nothing to release.",
                False,
                None,
            )
        check_owner(path, existing, run_id)
        return result_for(
            path,
            run_id,
            f"Check mode: would release rollback lock {path!r} of run {run_id}.",
            True,
            None,
            released=existing,
        )

    directory = os.path.dirname(path)
    if not os.path.isdir(directory):
        existing = None
    else:
        with directory_guard(directory):
            existing = read_lock(path)
            if existing is not None:
                check_owner(path, existing, run_id)
                os.unlink(path)
                fsync_directory(directory)
    if existing is None:
        warn(
            f"rollback lock {path!r} did not exist at release, so nothing was"
            " removed. Someone may have removed it by hand, or another run took it"
            " over and released it."
        )
        return result_for(
            path,
            run_id,
            f"Rollback lock {path!r} did not exist.",
            False,
            None,
        )
    return result_for(
        path,
        run_id,
        f"Released rollback lock {path!r} of run {run_id}.",
        True,
        None,
        released=existing,
    )


def check_owner(path, existing, run_id):
    if existing["run_id"] != run_id:
        raise LockError(
            f"rollback lock {path!r} belongs to another run. It is held by"
            f" {describe_holder(existing)}, not by run {run_id}, so it was not removed."
            " Another run may have taken it over after this run's lock went stale.",
            lock=existing,
        )


def info(path, hostname=None, now=None):
    """Return the current lock at ``path`` and whether it is stale."""
    hostname = hostname or socket.gethostname()
    now = now or utc_now()
    existing = read_lock(path)
    if existing is None:
        return result_for(path, None, f"Rollback lock {path!r} is free.", False, None)
    stale, holder_status = judge_holder(existing, hostname, now)
    state = "stale" if stale else "held"
    return result_for(
        path,
        None,
        f"Rollback lock {path!r} is {state}: {describe_holder(existing)}, and"
        f" {holder_status}.",
        False,
        existing,
        stale=stale,
        holder_status=holder_status,
    )


def check_params(params):
    """Raise LockError for an option value that the argument spec cannot check."""
    state = params["state"]
    if state == "acquired" and not (params["procedure"] or "").strip():
        raise LockError(
            "procedure is missing, and state=acquired requires it. Name the"
            " procedure that takes the lock, such as rollback_app."
        )
    if state == "released" and not params["run_id"]:
        raise LockError(
            "run_id is missing, and state=released requires it. Pass the run_id"
            " that the acquiring task returned."
        )
    path = params.get("path")
    if path is not None and "\x00" in path:
        raise LockError(
            f"path {path!r} contains a NUL byte, which no file path can contain."
            f" Set path to the lock file, such as {DEFAULT_PATH}."
        )
    run_id = params["run_id"]
    if run_id and not RUN_ID_PATTERN.match(run_id):
        raise LockError(
            f"run_id {run_id!r} is invalid. Use 1 to 128 letters, digits and the"
            " characters . _ : -"
        )
    if params["ttl_minutes"] < 1:
        raise LockError(
            f"ttl_minutes must be at least 1, got {params['ttl_minutes']!r}"
        )
    owner_pid = params["owner_pid"]
    if owner_pid is not None and owner_pid < 0:
        raise LockError(f"owner_pid must be a process ID, got {owner_pid!r}")


def run_module(module):
    params = module.params
    check_params(params)
    path = os.path.abspath(params["path"])
    if params["state"] == "acquired":
        return acquire(path, params, module.check_mode)
    if params["state"] == "released":
        return release(path, params["run_id"], module.check_mode, module.warn)
    return info(path)


def main():
    module = AnsibleModule(
        argument_spec={
            "state": {
                "type": "str",
                "choices": ["acquired", "released", "info"],
                "default": "acquired",
            },
            "path": {"type": "path", "default": DEFAULT_PATH},
            "procedure": {"type": "str"},
            "holder": {"type": "str"},
            "job_id": {"type": "str"},
            "controller": {"type": "str"},
            "owner_pid": {"type": "int"},
            "ttl_minutes": {"type": "int", "default": 120},
            "takeover": {"type": "bool", "default": False},
            "takeover_hint": {"type": "str", "default": "takeover: true"},
            "run_id": {"type": "str"},
        },
        supports_check_mode=True,
    )
    path = os.path.abspath(module.params["path"])
    try:
        result = run_module(module)
    except LockError as error:
        module.fail_json(
            **result_for(
                path,
                module.params["run_id"],
                str(error),
                False,
                error.lock,
                stale=error.stale,
                holder_status=error.holder_status,
            )
        )
    except OSError as error:
        message = (
            f"rollback lock {path!r} could not be changed: {error}. The remote user"
            " needs write access to the lock's folder. Set path to a folder it can"
            " write, or use become."
        )
        module.fail_json(
            **result_for(path, module.params["run_id"], message, False, None)
        )
    except Exception as error:  # noqa: BLE001 - report any bug with its traceback
        module.fail_json(
            msg=f"rollback_lock failed unexpectedly on {path!r}: {error}",
            exception=traceback.format_exc(),
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
