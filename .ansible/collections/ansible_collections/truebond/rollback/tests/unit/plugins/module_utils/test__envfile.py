# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for the _envfile module_utils: parsing and editing .env files."""

from __future__ import annotations

import json
import shutil
import subprocess

import pytest
from ansible_collections.truebond.rollback.plugins.module_utils import _envfile
from ansible_collections.truebond.rollback.plugins.module_utils._envfile import (
    EnvFileError,
    encode_value,
    get,
    parse,
    set_value,
    values,
)

# A .env file as operators write them: comments, blank lines, export, quotes,
# inline comments, a key that is a prefix of another, and a duplicate.
REALISTIC = (
    "# TrueBond interpolation variables for docker compose.\n"
    "\n"
    "BACKEND_TAG=v1.0.0 # set by the release job\n"
    "BACKEND_TAG_PREVIOUS=v0.9.5\n"
    "export FRONTEND_TAG='v2.3.1'\n"
    '  GREETING = "hello world"   # spaces around = are allowed\n'
    "# BACKEND_TAG=v0.0.1 is an old comment\n"
    "EMPTY=\n"
    "BACKEND_TAG=v1.0.0\n"
    "LAST_LINE_WITHOUT_NEWLINE=yes"
)


def compose_available() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, check=False
    )
    return probe.returncode == 0


requires_compose = pytest.mark.skipif(
    not compose_available(), reason="needs the docker compose plugin"
)


def read_with_compose(tmp_path, env_text: str, keys) -> dict:
    """Return the values that docker compose reads for ``keys`` from ``env_text``.

    ``docker compose config`` prints a literal $ as $$, which is undone here.
    """
    environment = "\n".join(f'      {key}: "${{{key}}}"' for key in keys)
    (tmp_path / "compose.yml").write_text(
        f"services:\n  probe:\n    image: probe\n    environment:\n{environment}\n"
    )
    (tmp_path / "probe.env").write_text(env_text)
    completed = subprocess.run(
        ["docker", "compose", "--env-file", "probe.env", "config", "--format", "json"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=True,
    )
    read = json.loads(completed.stdout)["services"]["probe"]["environment"]
    return {key: value.replace("$$", "$") for key, value in read.items()}


@pytest.mark.parametrize(
    "line, key, raw_value, value, quote, has_export, interpolated",
    [
        pytest.param("FOO=bar", "FOO", "bar", "bar", None, False, True, id="plain"),
        pytest.param(
            "export FOO=bar", "FOO", "bar", "bar", None, True, True, id="export"
        ),
        pytest.param(
            "FOO=bar # note", "FOO", "bar", "bar", None, False, True, id="comment"
        ),
        pytest.param("FOO=a#b", "FOO", "a#b", "a#b", None, False, True, id="hash"),
        pytest.param(
            "FOO=a\t#b", "FOO", "a\t#b", "a\t#b", None, False, True, id="tab-hash"
        ),
        pytest.param("FOO= #b", "FOO", "#b", "#b", None, False, True, id="hash-first"),
        pytest.param(
            "FOO=bar   ", "FOO", "bar", "bar", None, False, True, id="trailing-space"
        ),
        pytest.param("FOO=bar\r", "FOO", "bar", "bar", None, False, True, id="crlf"),
        pytest.param("FOO = bar", "FOO", "bar", "bar", None, False, True, id="spaced"),
        pytest.param("FOO: bar", "FOO", "bar", "bar", None, False, True, id="yaml"),
        pytest.param("FOO=", "FOO", "", "", None, False, True, id="empty"),
        pytest.param(
            "FOO='a $X \\n'",
            "FOO",
            "'a $X \\n'",
            "a $X \\n",
            "'",
            False,
            False,
            id="single-literal",
        ),
        pytest.param(
            "FOO='it\\'s'", "FOO", "'it\\'s'", "it's", "'", False, False, id="single-q"
        ),
        pytest.param(
            'FOO="a\\nb \\" \\\\ \\t"',
            "FOO",
            '"a\\nb \\" \\\\ \\t"',
            'a\nb " \\ \t',
            '"',
            False,
            True,
            id="double-escapes",
        ),
        pytest.param(
            'FOO="\\$HOME"',
            "FOO",
            '"\\$HOME"',
            "$$HOME",
            '"',
            False,
            True,
            id="double-dollar",
        ),
        pytest.param(
            'FOO="\\0101"', "FOO", '"\\0101"', "A", '"', False, True, id="octal"
        ),
        pytest.param(
            'FOO="a" # c', "FOO", '"a"', "a", '"', False, True, id="double-comment"
        ),
        pytest.param('FOO="a"#c', "FOO", '"a"', "a", '"', False, True, id="tight"),
        pytest.param(
            "FOO=${BAR}", "FOO", "${BAR}", "${BAR}", None, False, True, id="reference"
        ),
        pytest.param("exportFOO=1", "exportFOO", "1", "1", None, False, True, id="ex"),
        pytest.param(
            "a.b-c[0]=1", "a.b-c[0]", "1", "1", None, False, True, id="punctuation"
        ),
    ],
)
def test_parse_line(line, key, raw_value, value, quote, has_export, interpolated):
    [entry] = parse(line)
    assert entry.key == key
    assert entry.raw_value == raw_value
    assert entry.value == value
    assert entry.quote == quote
    assert entry.has_export is has_export
    assert entry.interpolated is interpolated
    start, end = entry.value_span
    assert line[start:end] == raw_value


def test_parse_bare_key_is_inherited():
    [entry] = parse("export FOO")
    assert entry.key == "FOO"
    assert entry.inherited
    assert entry.value is None
    assert entry.has_export


def test_parse_skips_comments_and_blank_lines():
    entries = parse(REALISTIC)
    assert [(entry.line_index, entry.key) for entry in entries] == [
        (2, "BACKEND_TAG"),
        (3, "BACKEND_TAG_PREVIOUS"),
        (4, "FRONTEND_TAG"),
        (5, "GREETING"),
        (7, "EMPTY"),
        (8, "BACKEND_TAG"),
        (9, "LAST_LINE_WITHOUT_NEWLINE"),
    ]


@pytest.mark.parametrize(
    "text, message",
    [
        pytest.param(
            "FOO BAR=1", "line 1: key 'FOO BAR' cannot contain a space", id="space"
        ),
        pytest.param(
            "A=1\nFOO/BAR=1",
            "line 2: unexpected character '/' in variable name 'FOO/BAR=1'",
            id="slash",
        ),
        pytest.param("=1", "line 1: missing variable name before '='", id="no-key"),
        pytest.param(
            'FOO="abc',
            "line 1: the quoted value of 'FOO' is not closed on the same line; values"
            " that span lines are not supported, put the value on one line and write"
            " line breaks as \\n inside double quotes",
            id="unterminated",
        ),
        pytest.param(
            'FOO="a\nb"',
            "line 1: the quoted value of 'FOO' is not closed on the same line; values"
            " that span lines are not supported, put the value on one line and write"
            " line breaks as \\n inside double quotes",
            id="multi-line",
        ),
        pytest.param(
            'FOO="a" junk',
            "line 1: unexpected text 'junk' after the closing quote of 'FOO'; put a"
            " comment after ' #' or remove the text",
            id="text-after-quote",
        ),
    ],
)
def test_parse_rejects(text, message):
    with pytest.raises(EnvFileError) as error:
        parse(text)
    assert str(error.value) == message


def test_get_returns_last_occurrence():
    assert get("FOO=1\nFOO=2\n", "FOO") == "2"


def test_get_does_not_match_prefix():
    assert get("FOO_BAR=1\n", "FOO") is None
    assert get("FOO=1\nFOO_BAR=2\n", "FOO_BAR") == "2"


def test_get_skips_inherited_line():
    assert get("FOO=1\nFOO\n", "FOO") == "1"


def test_get_missing_key_is_none():
    assert get(REALISTIC, "MISSING") is None


def test_values_uses_last_occurrence():
    assert values(REALISTIC) == {
        "BACKEND_TAG": "v1.0.0",
        "BACKEND_TAG_PREVIOUS": "v0.9.5",
        "FRONTEND_TAG": "v2.3.1",
        "GREETING": "hello world",
        "EMPTY": "",
        "LAST_LINE_WITHOUT_NEWLINE": "yes",
    }


@pytest.mark.parametrize(
    "text, key, value, expected",
    [
        pytest.param("FOO=1\n", "FOO", "2", "FOO=2\n", id="plain"),
        pytest.param(
            "FOO=1\nFOO_BAR=1\n", "FOO", "2", "FOO=2\nFOO_BAR=1\n", id="not-prefix"
        ),
        pytest.param(
            "FOO=1\nFOO_BAR=1\n", "FOO_BAR", "2", "FOO=1\nFOO_BAR=2\n", id="longer-key"
        ),
        pytest.param("export FOO=1\n", "FOO", "2", "export FOO=2\n", id="export"),
        pytest.param('FOO="1"\n', "FOO", "2", 'FOO="2"\n', id="double-kept"),
        pytest.param("FOO='1'\n", "FOO", "2", "FOO='2'\n", id="single-kept"),
        pytest.param(
            "FOO=1 # pinned\n", "FOO", "2", "FOO=2 # pinned\n", id="inline-comment"
        ),
        pytest.param(
            'FOO="1"   # pinned\n', "FOO", "2", 'FOO="2"   # pinned\n', id="q-comment"
        ),
        pytest.param("FOO = 1\n", "FOO", "2", "FOO = 2\n", id="spaced"),
        pytest.param("FOO: 1\n", "FOO", "2", "FOO: 2\n", id="yaml-style"),
        pytest.param(
            "FOO=1\nBAR=x\nexport FOO='0'\n",
            "FOO",
            "2",
            "FOO=2\nBAR=x\nexport FOO='2'\n",
            id="duplicates",
        ),
        pytest.param("BAR=x\n", "FOO", "2", "BAR=x\nFOO=2\n", id="append"),
        pytest.param("BAR=x", "FOO", "2", "BAR=x\nFOO=2\n", id="append-no-newline"),
        pytest.param("", "FOO", "2", "FOO=2\n", id="append-empty"),
        pytest.param(
            "BAR=x\r\nFOO=1\r\n", "FOO", "2", "BAR=x\r\nFOO=2\r\n", id="crlf-edit"
        ),
        pytest.param("BAR=x\r\n", "FOO", "2", "BAR=x\r\nFOO=2\r\n", id="crlf-append"),
        pytest.param(
            "# FOO=1\nFOO=1\n", "FOO", "2", "# FOO=1\nFOO=2\n", id="comment-untouched"
        ),
        pytest.param("FOO\n", "FOO", "2", "FOO=2\n", id="inherited"),
        pytest.param("FOO=\n", "FOO", "2", "FOO=2\n", id="from-empty"),
        pytest.param("FOO=1\n", "FOO", "", "FOO=\n", id="to-empty"),
        pytest.param("FOO=1\n", "FOO", "a b", 'FOO="a b"\n', id="space-quoted"),
        pytest.param("FOO=1\n", "FOO", "a#b", 'FOO="a#b"\n', id="hash-quoted"),
        pytest.param("FOO=1\n", "FOO", "pa$s", 'FOO="pa\\$s"\n', id="dollar-quoted"),
        pytest.param(
            "FOO=1\n", "FOO", 'say "hi"', 'FOO="say \\"hi\\""\n', id="quote-escaped"
        ),
        pytest.param("FOO=1\n", "FOO", "a\nb", 'FOO="a\\nb"\n', id="newline"),
        pytest.param("FOO=1\n", "FOO", "a\\b", "FOO=a\\b\n", id="backslash-plain"),
        pytest.param("FOO='1'\n", "FOO", "a$b", "FOO='a$b'\n", id="single-dollar"),
        pytest.param("FOO='1'\n", "FOO", "it's", 'FOO="it\'s"\n', id="single-to-dq"),
        pytest.param("FOO='1'\n", "FOO", "a\\", 'FOO="a\\\\"\n', id="single-end-bs"),
        pytest.param('FOO="1"\n', "FOO", "a\\b", 'FOO="a\\\\b"\n', id="double-bs"),
    ],
)
def test_set_value(text, key, value, expected):
    assert set_value(text, key, value) == expected


def test_set_value_changes_only_the_key_lines():
    edited = set_value(REALISTIC, "BACKEND_TAG", "v0.9.5")
    before = REALISTIC.split("\n")
    after = edited.split("\n")
    assert len(after) == len(before)
    changed = [index for index, line in enumerate(after) if line != before[index]]
    assert changed == [2, 8]
    assert after[2] == "BACKEND_TAG=v0.9.5 # set by the release job"
    assert after[8] == "BACKEND_TAG=v0.9.5"


def test_set_value_same_value_returns_same_text():
    assert set_value(REALISTIC, "GREETING", "hello world") == REALISTIC


def test_set_value_appends_after_line_without_newline():
    edited = set_value(REALISTIC, "NEW_FLAG", "true")
    assert edited == REALISTIC + "\nNEW_FLAG=true\n"


@pytest.mark.parametrize(
    "value",
    [
        pytest.param("v0.9.5", id="tag"),
        pytest.param("", id="empty"),
        pytest.param("two words", id="space"),
        pytest.param(" padded ", id="padding"),
        pytest.param("a #b", id="comment-like"),
        pytest.param("'single'", id="single-quotes"),
        pytest.param('"double"', id="double-quotes"),
        pytest.param("back\\slash", id="backslash"),
        pytest.param("line\nbreak\ttab", id="control"),
        pytest.param("caf\u00e9", id="non-ascii"),
    ],
)
@pytest.mark.parametrize(
    "quote", [None, "'", '"'], ids=["unquoted", "single", "double"]
)
def test_set_value_round_trips(value, quote):
    original = "FOO=x\n" if quote is None else f"FOO={quote}x{quote}\n"
    assert get(set_value(original, "FOO", value), "FOO") == value


def test_set_value_dollar_reads_back_in_interpolation_syntax():
    assert get(set_value("", "FOO", "a$b"), "FOO") == "a$$b"


@pytest.mark.parametrize(
    "key, value, message",
    [
        pytest.param(
            "",
            "1",
            "key '' is empty, expected a name such as BACKEND_TAG",
            id="empty-key",
        ),
        pytest.param(
            "FOO BAR",
            "1",
            "key 'FOO BAR' is invalid, expected letters, digits and '_', '.', '-',"
            " '[' or ']', such as BACKEND_TAG",
            id="space-in-key",
        ),
        pytest.param(
            "FOO=",
            "1",
            "key 'FOO=' is invalid, expected letters, digits and '_', '.', '-',"
            " '[' or ']', such as BACKEND_TAG",
            id="equals-in-key",
        ),
        pytest.param(
            "FOO",
            "a\x00b",
            "value 'a\\x00b' of 'FOO' contains the control character '\\x00', which"
            " a .env file cannot contain",
            id="nul-in-value",
        ),
        pytest.param("FOO", 1, "value 1 of 'FOO' is not a string", id="not-a-string"),
    ],
)
def test_set_value_rejects(key, value, message):
    with pytest.raises(EnvFileError) as error:
        set_value("", key, value)
    assert str(error.value) == message


def test_set_value_rejects_unparsable_text():
    with pytest.raises(EnvFileError):
        set_value('FOO="open\n', "BAR", "1")


@pytest.mark.parametrize(
    "value, quote, encoded",
    [
        pytest.param("v1", None, "v1", id="plain"),
        pytest.param("v1", "'", "'v1'", id="single"),
        pytest.param("v1", '"', '"v1"', id="double"),
        pytest.param("a b", None, '"a b"', id="needs-quotes"),
    ],
)
def test_encode_value(value, quote, encoded):
    assert encode_value(value, quote) == encoded


def test_env_file_error_is_value_error():
    assert issubclass(_envfile.EnvFileError, ValueError)


@requires_compose
def test_parse_matches_docker_compose(tmp_path):
    text = (
        "PLAIN=v1.0.0 # comment\n"
        "HASH=a#b\n"
        "TAB=a\t#b\n"
        "HASH_FIRST= #b\n"
        "export EXPORTED=yes\n"
        "SPACED = value  \n"
        "YAML: style\n"
        "SINGLE='it\\'s $NOT \\n'\n"
        'DOUBLE="a\\nb \\" \\\\ \\$LIT"\n'
        'OCTAL="\\0101"\n'
        "DUPLICATE=first\n"
        "DUPLICATE=second\n"
        "CRLF=yes\r\n"
    )
    read = read_with_compose(tmp_path, text, values(text))
    for key, value in values(text).items():
        entry = [e for e in parse(text) if e.key == key][-1]
        literal = value.replace("$$", "$") if entry.interpolated else value
        assert read[key] == literal, key


@requires_compose
def test_set_value_result_reads_back_in_docker_compose(tmp_path):
    written = {
        "TAG": "v0.9.5",
        "SPACES": " two words ",
        "DOLLAR": "pa$word",
        "QUOTES": "say \"hi\" and 'bye'",
        "BACKSLASH": "C:\\path\\",
        "COMMENT_LIKE": "a #b",
        "NEWLINE": "a\nb",
    }
    text = "TAG=v1.0.0 # pinned\nexport SPACES='x'\nDOLLAR=\"x\"\n"
    for key, value in written.items():
        text = set_value(text, key, value)
    assert read_with_compose(tmp_path, text, written) == written
