# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for the feature_flag module."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from ansible.module_utils.common import warnings as module_warnings
from ansible.module_utils.testing import patch_module_args
from ansible_collections.truebond.rollback.plugins.modules import feature_flag

COLLECTIONS_ROOT = Path(__file__).resolve().parents[4] / ".collections"

# Shaped like the drill stack's compose file: both services read .env.production.
COMPOSE = """\
name: truebond
services:
  backend:
    image: truebond-backend:v1.0.0
    env_file: .env.production
    network_mode: host
  frontend:
    image: truebond-frontend:v2.3.1
    env_file: .env.production
    network_mode: host
"""

# The drill stack's env file, with the forms an edit could disturb.
ENV_PRODUCTION = """\
# TrueBond backend settings (drill stack).
PORT=18080
JWT_SECRET=drill-only-not-a-secret
REALTIME_MESSAGING_ENABLED=true
REALTIME_MESSAGING_ENABLED_BETA=true
PAYMENTS_ENABLED=false
"""

BACKUP_NAME = re.compile(r"\.[0-9]{8}T[0-9]{6}Z\.bak\Z")


def write_project(tmp_path, compose_text=COMPOSE, env_files=None):
    """Write the compose file and env files into tmp_path; return the compose path."""
    if env_files is None:
        env_files = {".env.production": ENV_PRODUCTION}
    compose_file = tmp_path / "docker-compose.production.yml"
    compose_file.write_text(compose_text)
    for name, text in env_files.items():
        path = tmp_path / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(text.encode("utf-8"))
        os.chmod(path, 0o600)
    return compose_file


def backups(folder):
    return sorted(
        path.name for path in folder.iterdir() if BACKUP_NAME.search(path.name)
    )


def run_main(args, capsys, check_mode=False, diff=False):
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    # Warnings of an earlier run in the same test would show up in this result.
    module_warnings._global_warnings.clear()
    with patch_module_args(args), pytest.raises(SystemExit):
        feature_flag.main()
    return json.loads(capsys.readouterr().out)


def warning_messages(result):
    """Return the warning texts, which ansible-core 2.19 wraps in event objects."""
    return [warning["event"]["msg"] for warning in result.get("warnings", [])]


def disable_args(compose_file, **overrides):
    args = {
        "compose_file": str(compose_file),
        "service": "backend",
        "flags": {"REALTIME_MESSAGING_ENABLED": False},
    }
    args.update(overrides)
    return args


# --- Setting a flag ----------------------------------------------------------


def test_disable_changes_only_the_flag_line(tmp_path, capsys):
    compose_file = write_project(tmp_path)
    result = run_main(disable_args(compose_file), capsys)

    env_path = str(tmp_path / ".env.production")
    assert result["changed"] is True
    assert (tmp_path / ".env.production").read_text() == ENV_PRODUCTION.replace(
        "REALTIME_MESSAGING_ENABLED=true\n", "REALTIME_MESSAGING_ENABLED=false\n"
    )
    assert result["flags"] == {
        "REALTIME_MESSAGING_ENABLED": {
            "previous": "true",
            "value": "false",
            "file": env_path,
        }
    }
    assert result["known_flags"] == ["PAYMENTS_ENABLED", "REALTIME_MESSAGING_ENABLED"]


def test_disable_keeps_mode_and_writes_backup(tmp_path, capsys):
    compose_file = write_project(tmp_path)
    result = run_main(disable_args(compose_file), capsys)

    env_file = tmp_path / ".env.production"
    [entry] = result["files"]
    assert entry["path"] == str(env_file)
    assert entry["changed"] is True
    assert entry["services"] == ["backend", "frontend"]
    assert BACKUP_NAME.search(entry["backup_file"])
    assert Path(entry["backup_file"]).read_text() == ENV_PRODUCTION
    assert stat.S_IMODE(env_file.stat().st_mode) == 0o600
    assert stat.S_IMODE(Path(entry["backup_file"]).stat().st_mode) == 0o600


def test_disable_without_backup(tmp_path, capsys):
    compose_file = write_project(tmp_path)
    result = run_main(disable_args(compose_file, backup=False), capsys)

    assert result["changed"] is True
    assert result["files"][0]["backup_file"] is None
    assert backups(tmp_path) == []


def test_second_run_is_unchanged(tmp_path, capsys):
    compose_file = write_project(tmp_path)
    run_main(disable_args(compose_file), capsys)
    after_first = (tmp_path / ".env.production").read_bytes()

    second = run_main(disable_args(compose_file), capsys)

    assert second["changed"] is False
    assert second["files"][0]["changed"] is False
    assert second["files"][0]["backup_file"] is None
    assert second["flags"]["REALTIME_MESSAGING_ENABLED"]["previous"] == "false"
    assert (tmp_path / ".env.production").read_bytes() == after_first
    assert len(backups(tmp_path)) == 1


def test_check_mode_writes_nothing(tmp_path, capsys):
    compose_file = write_project(tmp_path)
    result = run_main(disable_args(compose_file), capsys, check_mode=True, diff=True)

    assert result["changed"] is True
    assert result["files"][0]["changed"] is True
    assert result["files"][0]["backup_file"] is None
    assert result["flags"]["REALTIME_MESSAGING_ENABLED"]["value"] == "false"
    assert (tmp_path / ".env.production").read_text() == ENV_PRODUCTION
    assert backups(tmp_path) == []


def test_diff_shows_only_the_changed_line(tmp_path, capsys):
    compose_file = write_project(tmp_path)
    result = run_main(disable_args(compose_file), capsys, check_mode=True, diff=True)

    env_path = tmp_path / ".env.production"
    assert result["diff"] == [
        {
            "prepared": (
                f"--- before: {env_path}\n"
                f"+++ after: {env_path}\n"
                "@@ -4 +4 @@\n"
                "-REALTIME_MESSAGING_ENABLED=true\n"
                "+REALTIME_MESSAGING_ENABLED=false\n"
            )
        }
    ]
    assert "JWT_SECRET" not in result["diff"][0]["prepared"]


def test_without_diff_returns_no_diff(tmp_path, capsys):
    compose_file = write_project(tmp_path)
    result = run_main(disable_args(compose_file), capsys, check_mode=True)
    assert "diff" not in result


@pytest.mark.parametrize(
    ("value", "written"),
    [
        pytest.param(False, "false", id="bool-false"),
        pytest.param(True, "true", id="bool-true"),
        pytest.param("off", "off", id="string"),
        pytest.param(0, "0", id="int"),
        pytest.param("a b", '"a b"', id="string-with-space-quoted"),
    ],
)
def test_value_is_written_as_text(tmp_path, capsys, value, written):
    compose_file = write_project(tmp_path)
    args = disable_args(compose_file, flags={"REALTIME_MESSAGING_ENABLED": value})
    run_main(args, capsys)

    text = (tmp_path / ".env.production").read_text()
    assert f"\nREALTIME_MESSAGING_ENABLED={written}\n" in text


def test_list_value_is_rejected(tmp_path, capsys):
    compose_file = write_project(tmp_path)
    args = disable_args(compose_file, flags={"REALTIME_MESSAGING_ENABLED": [1]})
    result = run_main(args, capsys)

    assert result["failed"] is True
    assert result["msg"] == (
        "the value [1] of flag 'REALTIME_MESSAGING_ENABLED' is a list, expected a"
        " boolean, a number or a string"
    )


def test_two_flags_in_one_run(tmp_path, capsys):
    compose_file = write_project(tmp_path)
    args = disable_args(
        compose_file,
        flags={"REALTIME_MESSAGING_ENABLED": False, "PAYMENTS_ENABLED": True},
    )
    result = run_main(args, capsys)

    text = (tmp_path / ".env.production").read_text()
    assert "\nREALTIME_MESSAGING_ENABLED=false\n" in text
    assert "\nPAYMENTS_ENABLED=true\n" in text
    assert result["flags"]["PAYMENTS_ENABLED"]["previous"] == "false"
    assert len(backups(tmp_path)) == 1


@pytest.mark.parametrize(
    ("line", "edited"),
    [
        pytest.param(
            "export REALTIME_MESSAGING_ENABLED=true",
            "export REALTIME_MESSAGING_ENABLED=false",
            id="export",
        ),
        pytest.param(
            'REALTIME_MESSAGING_ENABLED="true"',
            'REALTIME_MESSAGING_ENABLED="false"',
            id="double-quotes",
        ),
        pytest.param(
            "REALTIME_MESSAGING_ENABLED='true'",
            "REALTIME_MESSAGING_ENABLED='false'",
            id="single-quotes",
        ),
        pytest.param(
            "REALTIME_MESSAGING_ENABLED = true  # on since 1.0",
            "REALTIME_MESSAGING_ENABLED = false  # on since 1.0",
            id="spaces-and-comment",
        ),
        pytest.param(
            "REALTIME_MESSAGING_ENABLED: true",
            "REALTIME_MESSAGING_ENABLED: false",
            id="colon-separator",
        ),
        pytest.param(
            "REALTIME_MESSAGING_ENABLED",
            "REALTIME_MESSAGING_ENABLED=false",
            id="key-only",
        ),
    ],
)
def test_line_styles_are_kept(tmp_path, capsys, line, edited):
    env_text = f"PORT=18080\n{line}\nPAYMENTS_ENABLED=false\n"
    compose_file = write_project(tmp_path, env_files={".env.production": env_text})
    run_main(disable_args(compose_file), capsys)

    assert (tmp_path / ".env.production").read_text() == (
        f"PORT=18080\n{edited}\nPAYMENTS_ENABLED=false\n"
    )


def test_every_copy_in_the_file_is_set(tmp_path, capsys):
    env_text = (
        "REALTIME_MESSAGING_ENABLED=true\n"
        "REALTIME_MESSAGING_ENABLED_BETA=true\n"
        "X_REALTIME_MESSAGING_ENABLED=true\n"
        "REALTIME_MESSAGING_ENABLED=true  # again\n"
    )
    compose_file = write_project(tmp_path, env_files={".env.production": env_text})
    run_main(disable_args(compose_file), capsys)

    assert (tmp_path / ".env.production").read_text() == (
        "REALTIME_MESSAGING_ENABLED=false\n"
        "REALTIME_MESSAGING_ENABLED_BETA=true\n"
        "X_REALTIME_MESSAGING_ENABLED=true\n"
        "REALTIME_MESSAGING_ENABLED=false  # again\n"
    )


def test_crlf_line_breaks_are_kept(tmp_path, capsys):
    env_text = "PORT=18080\r\nREALTIME_MESSAGING_ENABLED=true\r\n"
    compose_file = write_project(tmp_path, env_files={".env.production": env_text})
    run_main(disable_args(compose_file), capsys)

    assert (tmp_path / ".env.production").read_bytes() == (
        b"PORT=18080\r\nREALTIME_MESSAGING_ENABLED=false\r\n"
    )


# --- Which env file is edited -----------------------------------------------------

ENV_FILE_FORMS = [
    pytest.param("    env_file: base.env\n", ["base.env"], id="string"),
    pytest.param(
        "    env_file:\n      - base.env\n      - override.env\n",
        ["base.env", "override.env"],
        id="list-of-strings",
    ),
    pytest.param(
        "    env_file:\n"
        "      - path: base.env\n"
        "      - path: override.env\n"
        "        required: true\n"
        "      - path: missing.env\n"
        "        required: false\n",
        ["base.env", "override.env"],
        id="list-of-mappings",
    ),
    pytest.param(
        "    env_file:\n      - base.env\n      - path: sub/../override.env\n",
        ["base.env", "override.env"],
        id="mixed-list",
    ),
]


@pytest.mark.parametrize(("env_file_yaml", "expected"), ENV_FILE_FORMS)
def test_env_file_forms(tmp_path, capsys, env_file_yaml, expected):
    compose_text = "services:\n  backend:\n    image: app:v1\n" + env_file_yaml
    compose_file = write_project(
        tmp_path,
        compose_text,
        {
            "base.env": "REALTIME_MESSAGING_ENABLED=true\n",
            "override.env": "PAYMENTS_ENABLED=true\n",
        },
    )
    result = run_main(disable_args(compose_file), capsys, check_mode=True)

    assert [entry["path"] for entry in result["files"]] == [
        str(tmp_path / name) for name in expected
    ]
    assert result["flags"]["REALTIME_MESSAGING_ENABLED"]["file"] == str(
        tmp_path / "base.env"
    )


def test_last_env_file_that_defines_the_flag_is_edited(tmp_path, capsys):
    compose_text = (
        "services:\n  backend:\n    image: app:v1\n"
        "    env_file: [base.env, override.env, later.env]\n"
    )
    compose_file = write_project(
        tmp_path,
        compose_text,
        {
            "base.env": "REALTIME_MESSAGING_ENABLED=true\n",
            "override.env": "REALTIME_MESSAGING_ENABLED=yes\n",
            "later.env": "PORT=1\n",
        },
    )
    result = run_main(disable_args(compose_file), capsys)

    assert (tmp_path / "base.env").read_text() == "REALTIME_MESSAGING_ENABLED=true\n"
    assert (tmp_path / "override.env").read_text() == (
        "REALTIME_MESSAGING_ENABLED=false\n"
    )
    assert result["flags"]["REALTIME_MESSAGING_ENABLED"] == {
        "previous": "yes",
        "value": "false",
        "file": str(tmp_path / "override.env"),
    }
    assert [entry["changed"] for entry in result["files"]] == [False, True, False]


def test_key_only_line_reports_earlier_value(tmp_path, capsys):
    compose_text = (
        "services:\n  backend:\n    image: app:v1\n"
        "    env_file: [base.env, override.env]\n"
    )
    compose_file = write_project(
        tmp_path,
        compose_text,
        {
            "base.env": "REALTIME_MESSAGING_ENABLED=true\n",
            "override.env": "REALTIME_MESSAGING_ENABLED\n",
        },
    )
    result = run_main(disable_args(compose_file), capsys)

    assert result["flags"]["REALTIME_MESSAGING_ENABLED"]["previous"] == "true"
    assert (tmp_path / "override.env").read_text() == (
        "REALTIME_MESSAGING_ENABLED=false\n"
    )


def test_absolute_env_file_path(tmp_path, capsys):
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    absolute = elsewhere / "flags.env"
    absolute.write_text("REALTIME_MESSAGING_ENABLED=true\n")
    compose_text = (
        f"services:\n  backend:\n    image: app:v1\n    env_file: {absolute}\n"
    )
    project = tmp_path / "project"
    project.mkdir()
    compose_file = write_project(project, compose_text, env_files={})
    run_main(disable_args(compose_file), capsys)

    assert absolute.read_text() == "REALTIME_MESSAGING_ENABLED=false\n"


def test_shared_env_file_warns_about_other_services(tmp_path, capsys):
    compose_file = write_project(tmp_path)
    result = run_main(disable_args(compose_file), capsys)

    assert warning_messages(result) == [
        (
            f"env file '{tmp_path / '.env.production'}' is also read by service(s)"
            " frontend; their containers keep the old values until they are recreated"
        )
    ]


def test_unchanged_shared_env_file_does_not_warn(tmp_path, capsys):
    compose_file = write_project(tmp_path)
    run_main(disable_args(compose_file), capsys)
    result = run_main(disable_args(compose_file), capsys)

    assert warning_messages(result) == []


# --- Rejected flags: nothing is written -------------------------------------------

KNOWN = (
    "Known flags: PAYMENTS_ENABLED, REALTIME_MESSAGING_ENABLED. Nothing was written."
)

REJECTED_FLAGS = [
    pytest.param(
        {"REALTIME_MESSAGING": False},
        None,
        "unknown feature flag for service 'backend': 'REALTIME_MESSAGING' is not"
        " defined in any env file of the service ({env}) (did you mean"
        f" REALTIME_MESSAGING_ENABLED?). {KNOWN}",
        id="prefix-of-a-flag",
    ),
    pytest.param(
        {"NOPE_ENABLED": False},
        None,
        "unknown feature flag for service 'backend': 'NOPE_ENABLED' is not defined"
        f" in any env file of the service ({{env}}). {KNOWN}",
        id="not-in-env-file",
    ),
    pytest.param(
        {"JWT_SECRET": "x"},
        None,
        "unknown feature flag for service 'backend': 'JWT_SECRET' does not match"
        f" known_pattern '_ENABLED$'. {KNOWN}",
        id="not-matching-pattern",
    ),
    pytest.param(
        {"REALTIME_MESSAGING_ENABLED_BETA": False},
        None,
        "unknown feature flag for service 'backend':"
        " 'REALTIME_MESSAGING_ENABLED_BETA' does not match known_pattern"
        " '_ENABLED$' (did you mean REALTIME_MESSAGING_ENABLED?)."
        f" {KNOWN}",
        id="longer-key-not-matching-pattern",
    ),
    pytest.param(
        {"PAYMENTS_ENABLED": True},
        ["REALTIME_MESSAGING_ENABLED"],
        "unknown feature flag for service 'backend': 'PAYMENTS_ENABLED' is not in"
        " the allowed list (REALTIME_MESSAGING_ENABLED). Known flags:"
        " REALTIME_MESSAGING_ENABLED. Nothing was written.",
        id="not-allowed",
    ),
    pytest.param(
        {"REALTIME_MESSAGING_ENABLED": False, "NOPE_ENABLED": False},
        None,
        "unknown feature flag for service 'backend': 'NOPE_ENABLED' is not defined"
        f" in any env file of the service ({{env}}). {KNOWN}",
        id="one-good-one-bad",
    ),
    pytest.param(
        {"NOPE_ENABLED": False, "JWT_SECRET": "x"},
        None,
        "unknown feature flags for service 'backend': 'NOPE_ENABLED' is not defined"
        " in any env file of the service ({env}); 'JWT_SECRET' does not match"
        f" known_pattern '_ENABLED$'. {KNOWN}",
        id="two-bad",
    ),
]


@pytest.mark.parametrize(("flags", "allowed", "message"), REJECTED_FLAGS)
def test_rejected_flag_writes_nothing(tmp_path, capsys, flags, allowed, message):
    compose_file = write_project(tmp_path)
    args = disable_args(compose_file, flags=flags)
    if allowed is not None:
        args["allowed"] = allowed
    result = run_main(args, capsys)

    assert result["failed"] is True
    assert result["msg"] == message.format(env=tmp_path / ".env.production")
    assert (tmp_path / ".env.production").read_text() == ENV_PRODUCTION
    assert backups(tmp_path) == []


def test_service_without_env_file_has_no_known_flags(tmp_path, capsys):
    compose_text = "services:\n  backend:\n    image: app:v1\n"
    compose_file = write_project(tmp_path, compose_text, env_files={})
    result = run_main(disable_args(compose_file), capsys)

    assert result["msg"] == (
        "unknown feature flag for service 'backend': 'REALTIME_MESSAGING_ENABLED' is"
        " not defined in any env file of the service (none). Known flags: none."
        " Nothing was written."
    )


def test_custom_known_pattern(tmp_path, capsys):
    env_text = "FEATURE_CHAT=on\nREALTIME_MESSAGING_ENABLED=true\n"
    compose_file = write_project(tmp_path, env_files={".env.production": env_text})
    args = disable_args(compose_file, flags={"FEATURE_CHAT": "off"})
    result = run_main({**args, "known_pattern": "^FEATURE_"}, capsys)

    assert result["known_flags"] == ["FEATURE_CHAT"]
    assert (tmp_path / ".env.production").read_text() == (
        "FEATURE_CHAT=off\nREALTIME_MESSAGING_ENABLED=true\n"
    )


def test_invalid_known_pattern(tmp_path, capsys):
    compose_file = write_project(tmp_path)
    result = run_main({**disable_args(compose_file), "known_pattern": "("}, capsys)

    assert result["msg"] == (
        "known_pattern '(' is not a valid regular expression: missing ), unterminated"
        " subpattern at position 0"
    )


# --- environment: in the compose file wins over env files ------------------------

OVERRIDING_ENVIRONMENT = [
    pytest.param(
        "    environment:\n      REALTIME_MESSAGING_ENABLED: 'true'\n", id="mapping"
    ),
    pytest.param(
        "    environment:\n      - REALTIME_MESSAGING_ENABLED=true\n", id="list"
    ),
    pytest.param(
        "    environment:\n      - REALTIME_MESSAGING_ENABLED\n", id="list-key-only"
    ),
    pytest.param(
        "    environment:\n      REALTIME_MESSAGING_ENABLED:\n", id="mapping-null"
    ),
]


@pytest.mark.parametrize("environment_yaml", OVERRIDING_ENVIRONMENT)
def test_environment_key_in_compose_is_rejected(tmp_path, capsys, environment_yaml):
    compose_text = (
        "services:\n  backend:\n    image: app:v1\n    env_file: .env.production\n"
        + environment_yaml
    )
    compose_file = write_project(tmp_path, compose_text)
    result = run_main(disable_args(compose_file), capsys)

    assert result["msg"] == (
        f"compose file '{compose_file}' sets"
        " services.backend.environment.REALTIME_MESSAGING_ENABLED, which overrides"
        " every env file, so changing the env file would not change the container."
        " Nothing was written. Remove the key from the service's environment so that"
        " the env file sets it, or change the value in the compose file."
    )
    assert (tmp_path / ".env.production").read_text() == ENV_PRODUCTION


def test_other_environment_keys_are_accepted(tmp_path, capsys):
    compose_text = (
        "services:\n  backend:\n    image: app:v1\n    env_file: .env.production\n"
        "    environment:\n      - LOG_LEVEL=debug\n"
    )
    compose_file = write_project(tmp_path, compose_text)
    result = run_main(disable_args(compose_file), capsys)

    assert result["changed"] is True


# --- Invalid input and files -------------------------------------------------------


def test_missing_required_env_file(tmp_path, capsys):
    compose_text = (
        "services:\n  backend:\n    image: app:v1\n"
        "    env_file: [.env.production, missing.env]\n"
    )
    compose_file = write_project(tmp_path, compose_text)
    result = run_main(disable_args(compose_file), capsys)

    assert result["msg"] == (
        f"env file '{tmp_path / 'missing.env'}' of service 'backend' was not found,"
        " and Compose requires it; create it or mark the entry required: false"
    )


@pytest.mark.parametrize(
    ("env_file_yaml", "message"),
    [
        pytest.param(
            "    env_file:\n      - path: .env.production\n        format: raw\n",
            "env_file entry {'path': '.env.production', 'format': 'raw'} of service"
            " 'backend' in compose file '{compose}' has format 'raw'; this module"
            " edits only env files in the default dotenv format",
            id="raw-format",
        ),
        pytest.param(
            "    env_file: ${ENV_FILE:-.env.production}\n",
            "env_file path '${ENV_FILE:-.env.production}' of service 'backend' in"
            " compose file '{compose}' contains a variable, which this module does"
            " not interpolate; write the path without variables",
            id="variable-in-path",
        ),
        pytest.param(
            "    env_file:\n      - path: .env.production\n        required: maybe\n",
            "env_file entry {'path': '.env.production', 'required': 'maybe'} of"
            " service 'backend' in compose file '{compose}' has required 'maybe',"
            " expected true or false",
            id="required-not-bool",
        ),
        pytest.param(
            "    env_file:\n      - required: true\n",
            "env_file entry None of service 'backend' in compose file '{compose}' is"
            " not a path",
            id="mapping-without-path",
        ),
        pytest.param(
            "    env_file: {path: .env.production}\n",
            "env_file of service 'backend' in compose file '{compose}' is {'path':"
            " '.env.production'}, expected a path or a list of paths",
            id="mapping-not-in-list",
        ),
    ],
)
def test_unsupported_env_file_entry(tmp_path, capsys, env_file_yaml, message):
    compose_text = "services:\n  backend:\n    image: app:v1\n" + env_file_yaml
    compose_file = write_project(tmp_path, compose_text)
    result = run_main(disable_args(compose_file), capsys)

    # str.format would read the braces of the dict reprs, so replace the path only.
    assert result["msg"] == message.replace("{compose}", str(compose_file))


def test_unknown_service_lists_services(tmp_path, capsys):
    compose_file = write_project(tmp_path)
    result = run_main(disable_args(compose_file, service="api"), capsys)

    assert result["msg"] == (
        f"service 'api' was not found in compose file '{compose_file}'; services in"
        " the file: backend, frontend"
    )


def test_missing_compose_file(tmp_path, capsys):
    missing = tmp_path / "missing.yml"
    result = run_main(disable_args(missing), capsys)
    assert result["msg"] == f"compose file '{missing}' was not found"


def test_compose_file_without_services(tmp_path, capsys):
    compose_file = write_project(tmp_path, "name: truebond\n")
    result = run_main(disable_args(compose_file), capsys)
    assert result["msg"] == (
        f"compose file '{compose_file}' has no services: expected a top-level"
        " 'services' mapping with one entry per service"
    )


def test_invalid_yaml(tmp_path, capsys):
    compose_file = write_project(tmp_path, "services:\n  backend: [\n")
    result = run_main(disable_args(compose_file), capsys)
    assert result["msg"].startswith(f"compose file '{compose_file}' is not valid YAML")


def test_unparsable_env_file(tmp_path, capsys):
    compose_file = write_project(
        tmp_path, env_files={".env.production": 'REALTIME_MESSAGING_ENABLED="true\n'}
    )
    result = run_main(disable_args(compose_file), capsys)

    assert result["msg"].startswith(
        f"env file '{tmp_path / '.env.production'}' cannot be parsed: line 1: the"
        " quoted value of 'REALTIME_MESSAGING_ENABLED' is not closed on the same line"
    )


def test_empty_flags(tmp_path, capsys):
    compose_file = write_project(tmp_path)
    result = run_main(disable_args(compose_file, flags={}), capsys)
    assert result["msg"] == (
        "flags is empty; give at least one flag, such as"
        " {'REALTIME_MESSAGING_ENABLED': false}"
    )


def test_invalid_flag_name(tmp_path, capsys):
    compose_file = write_project(tmp_path)
    result = run_main(disable_args(compose_file, flags={"A B": False}), capsys)
    assert result["msg"] == (
        "invalid flag name: key 'A B' is invalid, expected letters, digits and '_',"
        " '.', '-', '[' or ']', such as BACKEND_TAG"
    )


# --- Helpers --------------------------------------------------------------------------


def test_compose_values_last_statement_wins():
    first = feature_flag.EnvFile("a", "", feature_flag._envfile.parse("A=1\nB=1\n"))
    second = feature_flag.EnvFile("b", "", feature_flag._envfile.parse("A=2\nB\nC\n"))

    assert feature_flag.compose_values([first, second]) == {
        "A": "2",
        "B": "1",
        "C": None,
    }


# --- End to end ------------------------------------------------------------------------


def test_module_runs_as_a_script(tmp_path):
    compose_file = write_project(tmp_path)
    args_file = tmp_path / "args.json"
    args_file.write_text(
        json.dumps({"ANSIBLE_MODULE_ARGS": disable_args(compose_file)})
    )
    completed = subprocess.run(
        [
            sys.executable,
            "-m",
            "ansible_collections.truebond.rollback.plugins.modules.feature_flag",
            str(args_file),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(COLLECTIONS_ROOT)},
    )

    assert completed.returncode == 0, completed.stderr
    result = json.loads(completed.stdout)
    assert result["changed"] is True
    assert "\nREALTIME_MESSAGING_ENABLED=false\n" in (
        (tmp_path / ".env.production").read_text()
    )


def compose_available() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, check=False
    )
    return probe.returncode == 0


@pytest.mark.skipif(not compose_available(), reason="needs the docker compose plugin")
def test_compose_resolves_the_written_values(tmp_path, capsys):
    compose_text = (
        "services:\n  backend:\n    image: app:v1\n"
        "    env_file:\n      - base.env\n      - path: override.env\n"
    )
    compose_file = write_project(
        tmp_path,
        compose_text,
        {
            "base.env": "REALTIME_MESSAGING_ENABLED=true\nPAYMENTS_ENABLED=true\n",
            "override.env": "export REALTIME_MESSAGING_ENABLED='yes'  # on\n",
        },
    )
    args = disable_args(
        compose_file,
        flags={"REALTIME_MESSAGING_ENABLED": False, "PAYMENTS_ENABLED": "$off"},
    )
    run_main(args, capsys)

    completed = subprocess.run(
        ["docker", "compose", "-f", str(compose_file), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
    )
    environment = json.loads(completed.stdout)["services"]["backend"]["environment"]
    assert environment["REALTIME_MESSAGING_ENABLED"] == "false"
    # docker compose config writes a literal $ as $$, so the container gets $off.
    assert environment["PAYMENTS_ENABLED"] == "$$off"
