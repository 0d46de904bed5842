# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Property-based tests that no module argument reaches a shell.

Only three modules start a program: mongo_snapshot (mongodump) and mongo_restore
(mongorestore) through AnsibleModule.run_command, and redis_restore
(redis-check-rdb) through subprocess.run. test_only_three_modules_start_programs
keeps that list true. The other tests fuzz the values that reach those programs
and check that each is one argv element, with no shell and no connection string.
"""

from __future__ import annotations

import re
import subprocess
import tempfile
from pathlib import Path
from unittest import mock

import yaml
from ansible_collections.truebond.rollback.plugins.module_utils import _mongo
from ansible_collections.truebond.rollback.plugins.modules import (
    mongo_restore,
    mongo_snapshot,
    redis_restore,
)
from hypothesis import example, given, settings
from hypothesis import strategies as st

FAST = settings(max_examples=200, derandomize=True, deadline=None)
FILESYSTEM = settings(max_examples=60, derandomize=True, deadline=None)

PLUGINS = Path(__file__).resolve().parents[4] / "plugins"
# Calls that start a program, and the two ways to hand a command to a shell.
PROGRAM_CALL = re.compile(
    r"\brun_command\(|\bsubprocess\.|\bos\.(?:system|popen|exec\w*|spawn\w*)\("
    r"|\bpty\.spawn\("
)
SHELL_OPTION = re.compile(r"shell\s*=\s*True|use_unsafe_shell")

# Characters that a shell would split on, expand or run, plus a few plain ones.
SHELL_CHARACTERS = ";|&$()`><*?~'\"\\\n#=- \ta0\u00e9"
shell_texts = st.text(alphabet=SHELL_CHARACTERS, min_size=1, max_size=20)
argument_texts = st.one_of(shell_texts, st.text(min_size=1, max_size=20))


def test_only_three_modules_start_programs():
    starting = set()
    for source in sorted(PLUGINS.glob("module*/*.py")):
        text = source.read_text()
        assert SHELL_OPTION.search(text) is None, source.name
        if PROGRAM_CALL.search(text):
            starting.add(source.name)
    assert starting == {"mongo_restore.py", "mongo_snapshot.py", "redis_restore.py"}


class RecordingModule:
    """Stand-in for AnsibleModule that records run_command calls and succeeds."""

    def __init__(self):
        self.calls = []

    def run_command(self, args, **kwargs):
        self.calls.append((args, kwargs))
        return 0, "", ""


def assert_argv(command, kwargs):
    assert isinstance(command, list)
    assert all(isinstance(part, str) for part in command)
    assert not kwargs.get("use_unsafe_shell")


# The password carries a fixed marker, so that a generated argument cannot contain
# it by chance.
PASSWORD_MARKER = "Pw-marker-"
uris = st.builds(
    "mongodb://{}:{}{}@127.0.0.1:27017/{}".format,
    st.text(alphabet="abc", min_size=1, max_size=5),
    st.just(PASSWORD_MARKER),
    st.text(alphabet="0123456789", min_size=4, max_size=8),
    st.text(alphabet="truebond", max_size=8),
)


def password_of(uri):
    return uri.split(":")[2].split("@")[0]


@FILESYSTEM
@given(
    executable=argument_texts, databases=st.lists(argument_texts, max_size=3), uri=uris
)
@example(
    executable="mongodump",
    databases=["app; rm -rf /"],
    uri="mongodb://abc:Pw-marker-1234@127.0.0.1:27017/truebond",
)
def test_mongodump_argv_per_value(executable, databases, uri):
    module = RecordingModule()
    snapshot = {"gzip": True, "databases": {}, "files": {}}
    password = password_of(uri)
    with tempfile.TemporaryDirectory() as out:
        mongo_snapshot.dump_with_mongodump(
            module, executable, uri, databases, out, snapshot
        )
        assert len(module.calls) == len(databases)
        for (command, kwargs), database in zip(module.calls, databases):
            assert_argv(command, kwargs)
            assert command[0] == executable
            assert command[2] == f"--db={database}"
            assert command[3] == f"--out={out}"
            assert not any(password in part for part in command)


@FILESYSTEM
@given(
    executable=argument_texts,
    src=argument_texts,
    source_db=argument_texts,
    target_db=argument_texts,
    exclude=st.lists(argument_texts, max_size=2),
    uri=uris,
)
def test_mongorestore_argv_per_value(
    executable, src, source_db, target_db, exclude, uri
):
    module = RecordingModule()
    params = {
        "mongorestore_executable": executable,
        "uri": uri,
        "src": src,
        "include": [],
        "exclude": exclude,
    }
    password = password_of(uri)
    mongo_restore.restore_with_mongorestore(
        module, params, {"gzip": False}, {source_db: target_db}, []
    )
    [(command, kwargs)] = module.calls
    assert_argv(command, kwargs)
    assert command[0] == executable
    assert f"--dir={src}" in command
    assert f"--nsInclude={mongo_restore.escape_namespace(source_db)}.*" in command
    for pattern in exclude:
        assert f"--nsExclude={pattern}" in command
    assert not any(password in part for part in command)


uri_texts = st.text(max_size=60)


@FAST
@given(uri_texts | shell_texts.map("mongodb://127.0.0.1/{}".format))
@example('mongodb://127.0.0.1/"\nuri: mongodb://evil')
@example("mongodb://u:p@127.0.0.1/app?x=1 # comment")
def test_tools_config_holds_one_uri(uri):
    with tempfile.TemporaryDirectory() as directory:
        path = _mongo.write_tools_config(directory, uri)
        config = yaml.safe_load(Path(path).read_text())
        mode = Path(path).stat().st_mode & 0o777
    assert config == {"uri": _mongo.uri_for_tools(uri)}
    assert mode == 0o600


def test_tools_config_astral_character():
    uri = "mongodb://u:p\U00010000@127.0.0.1/app"
    with tempfile.TemporaryDirectory() as directory:
        path = _mongo.write_tools_config(directory, uri)
        config = yaml.safe_load(Path(path).read_text())
    assert config == {"uri": _mongo.uri_for_tools(uri)}


@FAST
@given(program=argument_texts, path=argument_texts)
@example(program="redis-check-rdb", path="dump.rdb; reboot")
@example(program="redis-check-rdb", path="$(id)")
def test_check_rdb_argv(program, path):
    completed = subprocess.CompletedProcess([program, path], 0, "OK", "")
    with mock.patch.object(
        redis_restore.subprocess, "run", return_value=completed
    ) as run:
        assert redis_restore.check_rdb_file(path, program) == "OK"
    [call] = run.call_args_list
    assert call.args == ([program, path],)
    assert not call.kwargs.get("shell")
