# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Property-based tests of flag names and values written into .env files.

Covers _envfile.set_value and feature_flag through main(). The central property:
whatever the value, the written file has exactly the keys it had before, so a
value with a line break or "=" cannot add a second statement.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest
from ansible_collections.truebond.rollback.plugins.module_utils import _envfile
from ansible_collections.truebond.rollback.plugins.modules import feature_flag
from fuzz_support import assert_no_traceback, run_module_main
from hypothesis import event, example, given, settings
from hypothesis import strategies as st

FAST = settings(max_examples=300, derandomize=True, deadline=None)
MODULE_RUNS = settings(max_examples=150, derandomize=True, deadline=None)

# Characters that could end a statement, start a new one, quote, escape,
# interpolate or comment, plus line separators that str.splitlines splits on.
INJECTION_CHARACTERS = (
    "\n\r=#'\"\\$ \t:{}`;\x00\x0b\x0c\x1c\x1e\x85\xa0\u2028\u2029\u200b\ufeff"
)
injection_texts = st.text(
    alphabet=st.sampled_from(INJECTION_CHARACTERS) | st.sampled_from("aZ09_-.x"),
    max_size=30,
)
flag_values = st.one_of(
    injection_texts,
    st.text(max_size=30),
    st.builds("{}\n{}=1".format, st.sampled_from(["false", ""]), st.text(max_size=8)),
)

# Each statement form that set_value must keep: unquoted, single-quoted with
# export, double-quoted with an inline comment, and a key-only line.
ENV_TEXT = (
    "# TrueBond production settings\n"
    "JWT_SECRET=s3cret-value\n"
    "REALTIME_MESSAGING_ENABLED=true\n"
    "export SEARCH_ENABLED='yes'\n"
    'NOTIFICATIONS_ENABLED="on" # paging\n'
    "INHERITED_ENABLED\n"
    'MONGO_URI="mongodb://127.0.0.1:27017/truebond"\n'
)
ENV_KEYS = [
    "JWT_SECRET",
    "REALTIME_MESSAGING_ENABLED",
    "SEARCH_ENABLED",
    "NOTIFICATIONS_ENABLED",
    "INHERITED_ENABLED",
    "MONGO_URI",
]
FLAGS = [key for key in ENV_KEYS if key.endswith("_ENABLED")]


def compose_literal(entry):
    """Return the value that Compose uses after interpolation, where $$ is $.

    The writer escapes every $, so the written values contain no variable.
    """
    if entry.interpolated:
        return entry.value.replace("$$", "$")
    return entry.value


def statements(text):
    return [(entry.key, entry) for entry in _envfile.parse(text)]


@FAST
@given(key=st.sampled_from([*ENV_KEYS, "NEW_FLAG_ENABLED"]), value=flag_values)
@example(key="REALTIME_MESSAGING_ENABLED", value="false\nJWT_SECRET=owned")
@example(key="SEARCH_ENABLED", value="x' \nJWT_SECRET='owned")
@example(key="NOTIFICATIONS_ENABLED", value='a" # \nB=c')
@example(key="INHERITED_ENABLED", value="=\n=")
@example(key="NEW_FLAG_ENABLED", value="\u2028JWT_SECRET=owned")
def test_set_value_keeps_keys(key, value):
    try:
        written = _envfile.set_value(ENV_TEXT, key, value)
    except _envfile.EnvFileError as error:
        assert repr(value) in str(error)
        return
    before = statements(ENV_TEXT)
    after = statements(written)
    expected_keys = [name for name, _ in before]
    if key not in expected_keys:
        expected_keys.append(key)
    assert [name for name, _ in after] == expected_keys
    assert written.count("\n") == ENV_TEXT.count("\n") + (key not in ENV_KEYS)
    for (name, old), (_, new) in zip(before, after):
        if name != key:
            assert new == old
    assert compose_literal(dict(after)[key]) == value


@FAST
@given(st.text(max_size=30))
@example("BACKEND_TAG\n")
@example("A=B")
@example("")
def test_validate_key_only_key_characters(key):
    try:
        accepted = _envfile.validate_key(key)
    except _envfile.EnvFileError as error:
        assert repr(key) in str(error)
    else:
        assert accepted == key
        assert all(char.isalnum() or char in "_.-[]" for char in key)


COMPOSE_TEXT = """\
services:
  backend:
    image: truebond-backend:v1.0.0
    env_file: .env.production
  worker:
    image: truebond-backend:v1.0.0
    env_file:
      - path: .env.production
        required: true
"""


def write_project(folder):
    compose_path = Path(folder, "docker-compose.production.yml")
    compose_path.write_text(COMPOSE_TEXT)
    Path(folder, ".env.production").write_text(ENV_TEXT)
    return str(compose_path)


def run_feature_flag(folder, **params):
    args = {
        "compose_file": write_project(folder),
        "service": "backend",
        "backup": False,
        **params,
    }
    return run_module_main(feature_flag.main, args)


@MODULE_RUNS
@given(
    flag=st.sampled_from(FLAGS),
    value=st.one_of(
        flag_values,
        st.booleans(),
        st.integers(),
        st.floats(allow_nan=True, allow_infinity=True),
    ),
)
@example(flag="REALTIME_MESSAGING_ENABLED", value="false\nJWT_SECRET=owned")
@example(flag="SEARCH_ENABLED", value="no'\nexport JWT_SECRET='owned")
@example(flag="INHERITED_ENABLED", value="false\x00")
def test_feature_flag_value_no_injection(flag, value):
    with tempfile.TemporaryDirectory() as folder:
        result = run_feature_flag(folder, flags={flag: value})
        assert_no_traceback(result)
        written = Path(folder, ".env.production").read_text()
        assert sorted(os.listdir(folder)) == [
            ".env.production",
            "docker-compose.production.yml",
        ]

    event("rejected" if result.get("failed") else "written")
    if result.get("failed"):
        assert written == ENV_TEXT
        assert repr(value) in result["msg"]
        return
    entries = dict(statements(written))
    assert [name for name, _ in statements(written)] == ENV_KEYS
    assert written.count("\n") == ENV_TEXT.count("\n")
    assert entries["JWT_SECRET"].value == "s3cret-value"
    assert compose_literal(entries[flag]) == feature_flag.flag_text(flag, value)
    assert result["flags"][flag]["value"] == feature_flag.flag_text(flag, value)


def near_flag_names():
    """Return a strategy for names one hostile character away from a defined flag."""
    return st.builds(
        lambda flag, position, char: flag[:position] + char + flag[position:],
        st.sampled_from(FLAGS),
        st.integers(min_value=0, max_value=26),
        st.sampled_from("\n=# $'\"\x00./[]-\u0130\u00e9\u0661"),
    )


@MODULE_RUNS
@given(st.one_of(st.text(max_size=30), near_flag_names(), st.sampled_from(ENV_KEYS)))
@example("JWT_SECRET")
@example("REALTIME_MESSAGING_ENABLED\nJWT_SECRET")
@example("REALTIME_MESSAGING_ENABLED=false")
@example("")
def test_feature_flag_name_only_allowed(name):
    with tempfile.TemporaryDirectory() as folder:
        result = run_feature_flag(folder, flags={name: False})
        assert_no_traceback(result)
        written = Path(folder, ".env.production").read_text()

    event("rejected" if result.get("failed") else "written")
    if name in FLAGS:
        assert not result.get("failed"), result["msg"]
        assert dict(statements(written))[name].value == "false"
        assert [key for key, _ in statements(written)] == ENV_KEYS
    else:
        assert result["failed"] is True
        assert repr(name) in result["msg"]
        assert written == ENV_TEXT


@MODULE_RUNS
@given(
    pattern=st.one_of(
        st.text(max_size=12), st.text(alphabet="()[]{}*+?|^$\\._ENABLED", max_size=12)
    )
)
@example(pattern="(")
@example(pattern="[")
@example(pattern="SECRET")
# re.compile warns about "[[" and similar sets, which generated patterns contain.
@pytest.mark.filterwarnings("ignore::FutureWarning")
def test_feature_flag_known_pattern_errors(pattern):
    with tempfile.TemporaryDirectory() as folder:
        result = run_feature_flag(
            folder, flags={"REALTIME_MESSAGING_ENABLED": False}, known_pattern=pattern
        )
        assert_no_traceback(result)
        written = Path(folder, ".env.production").read_text()
    if result.get("failed"):
        assert written == ENV_TEXT
    assert [key for key, _ in statements(written)] == ENV_KEYS
