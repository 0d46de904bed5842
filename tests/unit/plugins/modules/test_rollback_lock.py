# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for the rollback_lock module."""

from __future__ import annotations

import datetime
import json
import multiprocessing
import os
import socket
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.truebond.rollback.plugins.modules import rollback_lock

COLLECTIONS_ROOT = Path(__file__).resolve().parents[4] / ".collections"
MODULE = "ansible_collections.truebond.rollback.plugins.modules.rollback_lock"
HOST = "app-1"
NOW = datetime.datetime(2026, 12, 4, 17, 30, 24, tzinfo=datetime.timezone.utc)  # noqa: UP017


def params(**overrides):
    values = {
        "state": "acquired",
        "path": None,
        "procedure": "rollback_app",
        "holder": "alice",
        "job_id": None,
        "controller": "ops-laptop-3",
        "owner_pid": None,
        "ttl_minutes": 120,
        "takeover": False,
        "takeover_hint": "takeover: true",
        "run_id": None,
    }
    values.update(overrides)
    return values


def record(**overrides):
    values = {
        "format": 1,
        "holder": "bob",
        "job_id": "4711",
        "controller": "ops-laptop-7",
        "procedure": "rollback_db",
        "since": "2026-12-04T16:00:00Z",
        "expires": "2026-12-04T18:00:00Z",
        "ttl_minutes": 120,
        "run_id": "run-bob",
        "owner_pid": None,
        "owner_start_time": None,
        "host": HOST,
    }
    values.update(overrides)
    return values


def write_lock(path, content):
    path.parent.mkdir(parents=True, exist_ok=True)
    text = content if isinstance(content, str) else json.dumps(content)
    path.write_text(text)
    path.chmod(0o600)


def read_lock_file(path):
    return json.loads(path.read_text())


def exited_pid():
    """Return the ID of a process that has exited and been reaped."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def acquire(path, check_mode=False, now=NOW, **overrides):
    return rollback_lock.acquire(
        str(path), params(**overrides), check_mode, hostname=HOST, now=now
    )


def run_main(args, capsys, check_mode=False):
    if check_mode:
        args = dict(args, _ansible_check_mode=True)
    with patch_module_args(args), pytest.raises(SystemExit):
        rollback_lock.main()
    return json.loads(capsys.readouterr().out)


def warning_messages(result):
    return [warning["event"]["msg"] for warning in result.get("warnings", [])]


def missing_lock_warning(lock):
    return (
        f"rollback lock {str(lock)!r} did not exist at release, so nothing was"
        " removed. Someone may have removed it by hand, or another run took it"
        " over and released it."
    )


BOB_HELD = (
    "is held by bob (AWX job 4711) from controller ops-laptop-7 for procedure"
    " rollback_db since 2026-12-04T16:00:00Z (run run-bob)."
)


# Acquire on a free lock.


def test_acquire_writes_record(tmp_path):
    lock = tmp_path / "truebond-rollback.lock"
    result = acquire(lock, run_id="run-alice", owner_pid=os.getpid())
    assert result["changed"] is True
    assert result["run_id"] == "run-alice"
    assert result["taken_over"] is None
    assert result["msg"] == (
        f"Acquired rollback lock {str(lock)!r} for procedure rollback_app (run"
        " run-alice)."
    )
    stored = read_lock_file(lock)
    assert stored == result["lock"]
    assert stored == {
        "format": 1,
        "holder": "alice",
        "job_id": None,
        "controller": "ops-laptop-3",
        "procedure": "rollback_app",
        "since": "2026-12-04T17:30:24Z",
        "expires": "2026-12-04T19:30:24Z",
        "ttl_minutes": 120,
        "run_id": "run-alice",
        "owner_pid": os.getpid(),
        "owner_start_time": rollback_lock.process_start_time(os.getpid()),
        "host": HOST,
    }


def test_acquire_generates_random_run_id(tmp_path):
    first = acquire(tmp_path / "a.lock")
    second = acquire(tmp_path / "b.lock")
    assert len(first["run_id"]) == 32
    assert first["run_id"] != second["run_id"]


def test_acquire_holder_defaults_to_user(tmp_path, monkeypatch):
    monkeypatch.setenv("USER", "deploy")
    result = acquire(tmp_path / "x.lock", holder=None)
    assert result["lock"]["holder"] == "deploy"


def test_acquire_file_mode_0600_parents_0700(tmp_path):
    lock = tmp_path / "run" / "truebond" / "rollback.lock"
    old_umask = os.umask(0)
    try:
        acquire(lock)
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    assert stat.S_IMODE(lock.parent.stat().st_mode) == 0o700
    assert stat.S_IMODE(lock.parent.parent.stat().st_mode) == 0o700


def test_acquire_keeps_existing_parent_mode(tmp_path):
    tmp_path.chmod(0o755)
    acquire(tmp_path / "x.lock")
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o755


def test_acquire_same_run_twice_unchanged(tmp_path):
    lock = tmp_path / "x.lock"
    acquire(lock, run_id="run-alice")
    before = lock.read_text()
    result = acquire(lock, run_id="run-alice")
    assert result["changed"] is False
    assert result["msg"] == (
        f"Rollback lock {str(lock)!r} is already held by this run (run-alice)."
    )
    assert lock.read_text() == before


def test_acquire_rejects_exited_owner_pid(tmp_path):
    pid = exited_pid()
    with pytest.raises(rollback_lock.LockError) as raised:
        acquire(tmp_path / "x.lock", owner_pid=pid)
    assert str(raised.value) == (
        f"owner_pid {pid!r} is not a running process on {HOST}, so the lock would"
        " be stale at once. Pass the PID of the ansible-playbook process when the"
        " connection is local, or leave owner_pid empty."
    )
    assert not (tmp_path / "x.lock").exists()


# Two runs at once.


def race_worker(path, barrier, outcomes, index):
    barrier.wait()
    try:
        result = rollback_lock.acquire(
            path, params(run_id=f"run-{index}"), False, hostname=HOST, now=NOW
        )
        outcomes.put(("won", result["run_id"]))
    except rollback_lock.LockError as error:
        outcomes.put(("rejected", str(error)))


def test_race_exactly_one_process_wins(tmp_path):
    path = str(tmp_path / "locks" / "x.lock")
    racers = 8
    context = multiprocessing.get_context("fork")
    barrier = context.Barrier(racers)
    outcomes = context.Queue()
    processes = [
        context.Process(target=race_worker, args=(path, barrier, outcomes, index))
        for index in range(racers)
    ]
    for process in processes:
        process.start()
    results = [outcomes.get(timeout=30) for _ in processes]
    for process in processes:
        process.join(timeout=30)

    winners = [detail for outcome, detail in results if outcome == "won"]
    rejections = [detail for outcome, detail in results if outcome == "rejected"]
    assert len(winners) == 1
    assert len(rejections) == racers - 1
    assert read_lock_file(Path(path))["run_id"] == winners[0]
    for message in rejections:
        assert f"(run {winners[0]})." in message


def test_race_main_exactly_one_wins(tmp_path):
    """Start the module as separate Python processes, as Ansible runs it."""
    path = tmp_path / "x.lock"
    environment = dict(os.environ, PYTHONPATH=str(COLLECTIONS_ROOT))
    processes = []
    for index in range(6):
        args_file = tmp_path / f"args-{index}.json"
        args = {"path": str(path), "procedure": "rollback_app", "run_id": f"r{index}"}
        args_file.write_text(json.dumps({"ANSIBLE_MODULE_ARGS": args}))
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", MODULE, str(args_file)],
                stdout=subprocess.PIPE,
                env=environment,
            )
        )
    results = [json.loads(process.communicate(timeout=60)[0]) for process in processes]

    winners = [result for result in results if not result.get("failed")]
    assert len(winners) == 1
    assert read_lock_file(path)["run_id"] == winners[0]["run_id"]
    for result in results:
        if result.get("failed"):
            assert result["lock"]["run_id"] == winners[0]["run_id"]


# A lock held by another run.


def test_held_by_running_process_message(tmp_path):
    lock = tmp_path / "x.lock"
    pid = os.getpid()
    write_lock(lock, record(owner_pid=pid))
    with pytest.raises(rollback_lock.LockError) as raised:
        acquire(lock, takeover_hint="-e rollback_lock_takeover=true")
    assert str(raised.value) == (
        f"rollback lock {str(lock)!r} {BOB_HELD} Process {pid} on {HOST} is"
        " running, so that rollback may still be running. Wait for it to finish."
        " Once that process has exited, the lock is stale and can be taken over"
        " with -e rollback_lock_takeover=true."
    )
    assert raised.value.stale is False
    assert raised.value.lock["run_id"] == "run-bob"


def test_held_until_expiry_message(tmp_path):
    lock = tmp_path / "x.lock"
    write_lock(lock, record())
    with pytest.raises(rollback_lock.LockError) as raised:
        acquire(lock)
    assert str(raised.value) == (
        f"rollback lock {str(lock)!r} {BOB_HELD} It expires at 2026-12-04T18:00:00Z,"
        " and no process on this host is recorded to check, so that rollback may"
        " still be running. Wait for it to finish. After 2026-12-04T18:00:00Z, the"
        " lock is stale and can be taken over with takeover: true."
    )


def test_held_lock_takeover_rejected(tmp_path):
    lock = tmp_path / "x.lock"
    write_lock(lock, record())
    before = lock.read_text()
    with pytest.raises(rollback_lock.LockError) as raised:
        acquire(lock, takeover=True)
    assert str(raised.value).endswith(
        " takeover was requested, but the lock is not stale, so it was kept."
    )
    assert lock.read_text() == before


def test_pid_on_other_host_uses_expiry(tmp_path):
    lock = tmp_path / "x.lock"
    write_lock(lock, record(owner_pid=exited_pid(), host="app-2"))
    with pytest.raises(rollback_lock.LockError) as raised:
        acquire(lock, takeover=True)
    assert raised.value.stale is False
    assert raised.value.holder_status.endswith(f"runs on app-2, not on {HOST}")


# Stale locks.


@pytest.mark.parametrize(
    "lock_fields, now, expected_status",
    [
        pytest.param(
            {"owner_pid": "exited"},
            NOW,
            "process {pid} on app-1 has exited",
            id="dead-pid",
        ),
        pytest.param(
            {"owner_pid": "self", "owner_start_time": -1},
            NOW,
            "process {pid} on app-1 has exited, and its ID now belongs to another"
            " process (the start time differs)",
            id="reused-pid",
        ),
        pytest.param(
            {},
            datetime.datetime(2026, 12, 4, 18, 0, 0, tzinfo=datetime.timezone.utc),  # noqa: UP017
            "it expired at 2026-12-04T18:00:00Z, and no process on this host is"
            " recorded to check",
            id="ttl-expired",
        ),
        pytest.param(
            {"owner_pid": 4242, "host": "app-2"},
            datetime.datetime(2026, 12, 5, tzinfo=datetime.timezone.utc),  # noqa: UP017
            "it expired at 2026-12-04T18:00:00Z, and its process 4242 runs on app-2,"
            " not on app-1",
            id="ttl-expired-pid-elsewhere",
        ),
    ],
)
def test_stale_lock_rejected_without_takeover(
    tmp_path, lock_fields, now, expected_status
):
    fields = dict(lock_fields)
    if fields.get("owner_pid") == "exited":
        fields["owner_pid"] = exited_pid()
    if fields.get("owner_pid") == "self":
        fields["owner_pid"] = os.getpid()
    status = expected_status.format(pid=fields.get("owner_pid"))
    lock = tmp_path / "x.lock"
    write_lock(lock, record(**fields))
    before = lock.read_text()

    with pytest.raises(rollback_lock.LockError) as raised:
        acquire(lock, now=now, takeover_hint="-e rollback_lock_takeover=true")
    assert str(raised.value) == (
        f"rollback lock {str(lock)!r} {BOB_HELD} The lock is stale because {status}."
        " If no rollback runs on this host, take the lock over with"
        " -e rollback_lock_takeover=true."
    )
    assert raised.value.stale is True
    assert lock.read_text() == before


def test_stale_lock_taken_over_explicitly(tmp_path):
    lock = tmp_path / "x.lock"
    pid = exited_pid()
    previous = record(owner_pid=pid)
    write_lock(lock, previous)
    result = acquire(lock, takeover=True, run_id="run-alice")
    assert result["changed"] is True
    assert result["taken_over"] == previous
    assert result["stale"] is True
    assert result["msg"] == (
        f"Took over the stale rollback lock {str(lock)!r} of bob (AWX job 4711)"
        " from controller ops-laptop-7 for procedure rollback_db since"
        f" 2026-12-04T16:00:00Z (run run-bob), because process {pid} on {HOST} has"
        " exited."
    )
    assert read_lock_file(lock)["run_id"] == "run-alice"
    assert stat.S_IMODE(lock.stat().st_mode) == 0o600
    assert sorted(os.listdir(tmp_path)) == ["x.lock"]


def test_takeover_flag_on_free_lock_acquires(tmp_path):
    result = acquire(tmp_path / "x.lock", takeover=True)
    assert result["changed"] is True
    assert result["taken_over"] is None


@pytest.mark.parametrize(
    "lock_fields",
    [
        pytest.param({"owner_pid": None}, id="no-pid"),
        pytest.param({"owner_pid": 1, "host": "app-2"}, id="pid-on-other-host"),
    ],
)
def test_judge_holder_before_expiry(lock_fields):
    before = NOW.replace(hour=17, minute=59, second=59)
    stale, _status = rollback_lock.judge_holder(record(**lock_fields), HOST, before)
    assert stale is False


def test_judge_holder_running_pid_ignores_expiry():
    late = datetime.datetime(2027, 1, 1, tzinfo=datetime.timezone.utc)  # noqa: UP017
    lock = record(owner_pid=os.getpid())
    stale, status = rollback_lock.judge_holder(lock, HOST, late)
    assert stale is False
    assert status == f"process {os.getpid()} on {HOST} is running"


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param(
            "123 (python3) S 1 123 123 0 -1 " + "0 " * 13 + "987 5", 987, id="plain"
        ),
        pytest.param(
            "77 (a) b (c)) R 1 1 1 0 -1 " + "0 " * 13 + "555 9",
            555,
            id="name-with-brackets",
        ),
        pytest.param("77 (short) R 1", None, id="truncated"),
    ],
)
def test_parse_start_time(text, expected):
    assert rollback_lock.parse_start_time(text) == expected


# Corrupted lock files.


@pytest.mark.parametrize(
    "content, problem",
    [
        pytest.param(
            "not json",
            "is not valid JSON (Expecting value: line 1 column 1 (char 0))",
            id="not-json",
        ),
        pytest.param(
            "", "is empty (a run may have stopped while writing it)", id="empty"
        ),
        pytest.param(
            "[1, 2]", "contains a JSON list, not a lock record", id="json-list"
        ),
        pytest.param(
            '{"holder": "bob"}',
            "lacks the keys procedure, since, expires, run_id of a lock record",
            id="missing-keys",
        ),
        pytest.param(
            json.dumps(record(since="yesterday")),
            "has the times since='yesterday' and expires='2026-12-04T18:00:00Z',"
            " expected the form YYYY-MM-DDTHH:MM:SSZ",
            id="bad-time",
        ),
        pytest.param(
            json.dumps(record(owner_pid="42")),
            "has owner_pid '42', expected a process ID or null",
            id="pid-as-text",
        ),
    ],
)
@pytest.mark.parametrize("state", ["acquired", "released", "info"])
def test_corrupted_lock_clear_error(tmp_path, capsys, content, problem, state):
    lock = tmp_path / "x.lock"
    write_lock(lock, content)
    result = run_main(
        {
            "state": state,
            "path": str(lock),
            "procedure": "rollback_app",
            "run_id": "r1",
        },
        capsys,
    )
    assert result["failed"] is True
    assert result["msg"] == (
        f"rollback lock file {str(lock)!r} {problem}, so its holder is unknown and"
        " it was not changed. Make sure that no rollback runs on this host (ask the"
        " other operators and check the AWX jobs), then remove the file with: rm --"
        f" {lock}"
    )
    assert lock.read_text() == content


def test_corrupted_lock_path_quoted_for_shell(tmp_path):
    lock = tmp_path / "my locks" / "x.lock"
    write_lock(lock, "garbage")
    with pytest.raises(rollback_lock.LockError) as raised:
        rollback_lock.read_lock(str(lock))
    assert str(raised.value).endswith(f"rm -- '{lock}'")


# Release.


def test_release_own_lock_removes_file(tmp_path):
    lock = tmp_path / "x.lock"
    acquire(lock, run_id="run-alice")
    warnings = []
    result = rollback_lock.release(str(lock), "run-alice", False, warnings.append)
    assert result["changed"] is True
    assert result["released"]["run_id"] == "run-alice"
    assert result["msg"] == f"Released rollback lock {str(lock)!r} of run run-alice."
    assert not lock.exists()
    assert warnings == []


def test_release_other_run_rejected(tmp_path):
    lock = tmp_path / "x.lock"
    write_lock(lock, record())
    before = lock.read_text()
    with pytest.raises(rollback_lock.LockError) as raised:
        rollback_lock.release(str(lock), "run-alice", False, print)
    assert str(raised.value) == (
        f"rollback lock {str(lock)!r} belongs to another run. It is held by bob"
        " (AWX job 4711) from controller ops-laptop-7 for procedure rollback_db"
        " since 2026-12-04T16:00:00Z (run run-bob), not by run run-alice, so it"
        " was not removed. Another run may have taken it over after this run's lock"
        " went stale."
    )
    assert lock.read_text() == before


@pytest.mark.parametrize(
    "parent_exists", [True, False], ids=["file-missing", "dir-missing"]
)
def test_release_missing_lock_warns(tmp_path, parent_exists):
    lock = tmp_path / "locks" / "x.lock"
    if parent_exists:
        lock.parent.mkdir()
    warnings = []
    result = rollback_lock.release(str(lock), "run-alice", False, warnings.append)
    assert result["changed"] is False
    assert warnings == [missing_lock_warning(lock)]


# Check mode.


def test_check_mode_acquire_writes_nothing(tmp_path):
    lock = tmp_path / "new" / "x.lock"
    result = acquire(lock, check_mode=True)
    assert result["changed"] is True
    assert result["msg"] == (
        f"Check mode: would acquire rollback lock {str(lock)!r} for procedure"
        " rollback_app. Nothing was written, so this run does not hold the lock."
    )
    assert not lock.parent.exists()


def test_check_mode_acquire_fails_when_held(tmp_path):
    lock = tmp_path / "x.lock"
    write_lock(lock, record())
    with pytest.raises(rollback_lock.LockError) as raised:
        acquire(lock, check_mode=True)
    assert BOB_HELD in str(raised.value)


def test_check_mode_takeover_keeps_stale_lock(tmp_path):
    lock = tmp_path / "x.lock"
    write_lock(lock, record(owner_pid=exited_pid()))
    before = lock.read_text()
    result = acquire(lock, check_mode=True, takeover=True)
    assert result["changed"] is True
    assert result["taken_over"]["run_id"] == "run-bob"
    assert result["msg"].startswith("Check mode: would take over the stale rollback")
    assert lock.read_text() == before


def test_check_mode_release_keeps_lock(tmp_path):
    lock = tmp_path / "x.lock"
    acquire(lock, run_id="run-alice")
    before = lock.read_text()
    result = rollback_lock.release(str(lock), "run-alice", True, print)
    assert result["changed"] is True
    assert result["msg"] == (
        f"Check mode: would release rollback lock {str(lock)!r} of run run-alice."
    )
    assert lock.read_text() == before


def test_check_mode_release_missing_lock_quiet(tmp_path):
    warnings = []
    result = rollback_lock.release(
        str(tmp_path / "x.lock"), "run-alice", True, warnings.append
    )
    assert result["changed"] is False
    assert warnings == []


def test_check_mode_main_changes_nothing(tmp_path, capsys):
    lock = tmp_path / "x.lock"
    # main() judges the lock with the real host name of this machine.
    write_lock(lock, record(owner_pid=exited_pid(), host=socket.gethostname()))
    before = sorted(os.listdir(tmp_path)), lock.read_text(), lock.stat().st_mtime_ns
    for args in (
        {"state": "acquired", "procedure": "rollback_app", "takeover": True},
        {"state": "released", "run_id": "run-bob"},
        {"state": "info"},
    ):
        result = run_main(dict(args, path=str(lock)), capsys, check_mode=True)
        assert "failed" not in result
    after = sorted(os.listdir(tmp_path)), lock.read_text(), lock.stat().st_mtime_ns
    assert after == before


# Info.


def test_info_free_and_held(tmp_path):
    lock = tmp_path / "x.lock"
    free = rollback_lock.info(str(lock), hostname=HOST, now=NOW)
    assert free["lock"] is None
    assert free["msg"] == f"Rollback lock {str(lock)!r} is free."
    write_lock(lock, record())
    held = rollback_lock.info(str(lock), hostname=HOST, now=NOW)
    assert held["changed"] is False
    assert held["lock"]["holder"] == "bob"
    assert held["stale"] is False
    assert held["holder_status"] == (
        "it expires at 2026-12-04T18:00:00Z, and no process on this host is recorded"
        " to check"
    )


# The module end to end.


def test_main_acquire_info_release(tmp_path, capsys):
    lock = tmp_path / "locks" / "x.lock"
    acquired = run_main(
        {"path": str(lock), "procedure": "rollback_db", "holder": "alice"}, capsys
    )
    assert acquired["changed"] is True
    assert acquired["lock_path"] == str(lock)
    run_id = acquired["run_id"]

    second = run_main(
        {"path": str(lock), "procedure": "rollback_app", "holder": "bob"}, capsys
    )
    assert second["failed"] is True
    assert second["lock"]["run_id"] == run_id
    assert second["stale"] is False

    held = run_main({"state": "info", "path": str(lock)}, capsys)
    assert held["lock"]["holder"] == "alice"

    released = run_main(
        {"state": "released", "path": str(lock), "run_id": run_id}, capsys
    )
    assert released["changed"] is True
    assert not lock.exists()

    again = run_main({"state": "released", "path": str(lock), "run_id": run_id}, capsys)
    assert again["changed"] is False
    assert warning_messages(again) == [missing_lock_warning(lock)]


@pytest.mark.parametrize(
    "args, message",
    [
        pytest.param(
            {"state": "acquired"},
            "procedure is missing, and state=acquired requires it. Name the"
            " procedure that takes the lock, such as rollback_app.",
            id="no-procedure",
        ),
        pytest.param(
            {"state": "released"},
            "run_id is missing, and state=released requires it. Pass the run_id"
            " that the acquiring task returned.",
            id="release-without-run-id",
        ),
        pytest.param(
            {"procedure": "rollback_app", "run_id": "a b"},
            "run_id 'a b' is invalid. Use 1 to 128 letters, digits and the"
            " characters . _ : -",
            id="bad-run-id",
        ),
        pytest.param(
            {"procedure": "rollback_app", "run_id": "run-1\n"},
            "run_id 'run-1\\n' is invalid. Use 1 to 128 letters, digits and the"
            " characters . _ : -",
            id="run-id-trailing-newline",
        ),
        pytest.param(
            {"procedure": "rollback_app", "ttl_minutes": 0},
            "ttl_minutes must be at least 1, got 0",
            id="zero-ttl",
        ),
        pytest.param(
            {"procedure": "rollback_app", "owner_pid": -5},
            "owner_pid must be a process ID, got -5",
            id="negative-pid",
        ),
    ],
)
def test_main_rejects_invalid_options(tmp_path, capsys, args, message):
    result = run_main(dict(args, path=str(tmp_path / "x.lock")), capsys)
    assert result["failed"] is True
    assert result["msg"] == message
    assert not (tmp_path / "x.lock").exists()


def test_main_rejects_path_with_nul(tmp_path, capsys):
    path = str(tmp_path / "a\x00b" / "x.lock")
    result = run_main({"procedure": "rollback_app", "path": path}, capsys)
    assert result["failed"] is True
    assert result["msg"] == (
        f"path {path!r} contains a NUL byte, which no file path can contain. Set"
        " path to the lock file, such as /var/lock/truebond-rollback.lock."
    )
    assert os.listdir(tmp_path) == []


def test_main_reports_unwritable_folder(tmp_path, capsys, monkeypatch):
    def denied(path, mode=0o777):
        raise PermissionError(13, "Permission denied", path)

    monkeypatch.setattr(rollback_lock.os, "mkdir", denied)
    lock = tmp_path / "missing" / "x.lock"
    result = run_main({"path": str(lock), "procedure": "rollback_app"}, capsys)
    assert result["msg"] == (
        f"rollback lock {str(lock)!r} could not be changed: [Errno 13] Permission"
        f" denied: {str(lock.parent)!r}. The remote user needs write access to the"
        " lock's folder. Set path to a folder it can write, or use become."
    )


def test_unreadable_lock_names_owner(tmp_path, monkeypatch):
    lock = tmp_path / "x.lock"
    write_lock(lock, record())

    def denied(path, mode="r", **kwargs):
        raise PermissionError(13, "Permission denied", path)

    # The tests run as root, which reads any file, so open() is replaced instead.
    monkeypatch.setattr(rollback_lock, "open", denied, raising=False)
    with pytest.raises(rollback_lock.LockError) as raised:
        rollback_lock.read_lock(str(lock))
    owner = rollback_lock.file_owner(str(lock))
    assert owner.endswith(f"(uid {os.getuid()})")
    assert str(raised.value) == (
        f"rollback lock {str(lock)!r} exists but cannot be read: [Errno 13]"
        f" Permission denied: {str(lock)!r}. It belongs to {owner}. Run the"
        " playbook as that user, or with become."
    )
