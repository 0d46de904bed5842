# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for the option, tool and failure helpers that the mongo_* modules share."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from ansible_collections.truebond.rollback.plugins.module_utils import _mongo


class ModuleFailed(Exception):
    """Raised by FakeModule.fail_json with the keyword arguments it received."""

    def __init__(self, fields):
        super().__init__(fields.get("msg"))
        self.fields = fields


class FakeModule:
    def __init__(self, params):
        self.params = params

    def fail_json(self, **fields):
        raise ModuleFailed(fields)


@pytest.fixture
def tool(tmp_path):
    """Return the path of a fake mongorestore executable that exits with 0."""
    path = tmp_path / "mongorestore"
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return str(path)


def test_connection_spec_marks_uri_no_log():
    spec = _mongo.connection_argument_spec()

    assert spec == {
        "uri": {"type": "str", "required": True, "no_log": True},
        "timeout": {"type": "float", "default": 30},
        "connect_timeout": {"type": "float", "default": 10},
    }


def test_connection_spec_returns_new_dicts():
    first = _mongo.connection_argument_spec()
    first["timeout"]["default"] = 5

    assert _mongo.connection_argument_spec()["timeout"]["default"] == 30


@pytest.mark.parametrize("timeout", [0, -1.5], ids=["zero", "negative"])
def test_validate_timeout_rejects(timeout):
    with pytest.raises(_mongo.MongoSnapshotError) as error:
        _mongo.validate_timeout(timeout)

    assert str(error.value) == f"timeout must be positive, got {timeout!r}."


def test_validate_timeout_accepts_positive():
    _mongo.validate_timeout(0.5)


def test_validate_timeout_names_option():
    with pytest.raises(_mongo.MongoSnapshotError) as error:
        _mongo.validate_timeout(0, "connect_timeout")

    assert str(error.value) == "connect_timeout must be positive, got 0."


def test_tool_method_auto_picks_found_tool(tool):
    assert _mongo.resolve_tool_method("auto", "mongorestore", tool) == "mongorestore"


def test_tool_method_auto_falls_back_to_pymongo(tmp_path):
    missing = str(tmp_path / "mongorestore")

    assert _mongo.resolve_tool_method("auto", "mongorestore", missing) == "pymongo"


@pytest.mark.parametrize("method", ["pymongo", "mongorestore"])
def test_tool_method_keeps_explicit_choice(tool, method):
    assert _mongo.resolve_tool_method(method, "mongorestore", tool) == method


def test_tool_method_rejects_missing_tool(tmp_path):
    missing = str(tmp_path / "mongorestore")

    with pytest.raises(_mongo.MongoSnapshotError) as error:
        _mongo.resolve_tool_method("mongorestore", "mongorestore", missing)

    assert str(error.value) == (
        f"method mongorestore: {missing!r} was not found on PATH. Install the MongoDB "
        "Database Tools, set mongorestore_executable, or use method: pymongo."
    )


def test_tools_config_writes_private_file():
    uri = "mongodb://backup:s3cret@127.0.0.1:27017/"

    with _mongo.tools_config(uri, "mongodump-") as config_path:
        path = Path(config_path)
        mode = stat.S_IMODE(path.stat().st_mode)
        content = path.read_text(encoding="utf-8")
        folder = path.parent

    assert folder.name.startswith("mongodump-")
    assert mode == 0o600
    assert content == f'uri: "{uri}"\n'
    assert not folder.exists()


def test_tools_config_removed_after_error():
    uri = "mongodb://127.0.0.1/"
    with pytest.raises(RuntimeError), _mongo.tools_config(uri, "mongorestore-") as path:
        folder = os.path.dirname(path)
        raise RuntimeError("tool failed")

    assert not os.path.exists(folder)


def test_fail_unexpected_redacts_uri_and_names_path():
    module = FakeModule({"uri": "mongodb://app:s3cret@db1:27017/truebond"})

    with pytest.raises(ModuleFailed) as failed:
        try:
            raise RuntimeError("password s3cret was rejected")
        except RuntimeError as error:
            _mongo.fail_unexpected(module, "mongo_restore", error, path="/backup/x")

    fields = failed.value.fields
    assert fields["msg"] == (
        "mongo_restore failed unexpectedly on '/backup/x': password ******** was "
        "rejected"
    )
    assert fields["path"] == "/backup/x"
    assert "RuntimeError: password" in fields["exception"]


def test_fail_unexpected_without_path():
    module = FakeModule({"uri": "mongodb://127.0.0.1/truebond"})

    with pytest.raises(ModuleFailed) as failed:
        try:
            raise KeyError("users")
        except KeyError as error:
            _mongo.fail_unexpected(module, "mongo_migration_undo", error)

    fields = failed.value.fields
    assert fields["msg"] == "mongo_migration_undo failed unexpectedly: 'users'"
    assert "path" not in fields
    assert "KeyError" in fields["exception"]
