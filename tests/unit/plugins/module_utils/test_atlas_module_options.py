# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for the option and failure helpers that the atlas_* modules share."""

from __future__ import annotations

import pytest
from ansible_collections.truebond.rollback.plugins.module_utils import _atlas


class ModuleFailed(Exception):
    """Raised by FakeModule.fail_json with the keyword arguments it received."""

    def __init__(self, fields):
        super().__init__(fields.get("msg"))
        self.fields = fields


class FakeModule:
    def fail_json(self, **fields):
        raise ModuleFailed(fields)


def wait_params(**overrides):
    params = {"timeout": 60.0, "poll_interval": 1.0, "request_timeout": 30.0}
    params.update(overrides)
    return params


def test_connection_spec_marks_private_key_no_log():
    spec = _atlas.connection_argument_spec()

    assert spec == {
        "public_key": {"type": "str", "required": True},
        "private_key": {"type": "str", "required": True, "no_log": True},
        "request_timeout": {"type": "float", "default": 30},
        "validate_certs": {"type": "bool", "default": True},
    }


def test_connection_spec_returns_new_dicts():
    first = _atlas.connection_argument_spec()
    first["request_timeout"]["default"] = 5

    assert _atlas.connection_argument_spec()["request_timeout"]["default"] == 30


def test_client_from_params_uses_options():
    params = {
        "public_key": "public",
        "private_key": "private",
        "request_timeout": 7.5,
        "validate_certs": False,
    }

    client = _atlas.client_from_params(params, "https://atlas.example/")

    assert client.base_url == "https://atlas.example"
    assert client.public_key == "public"
    assert client.timeout == 7.5
    assert client.validate_certs is False


@pytest.mark.parametrize("name", ["timeout", "poll_interval", "request_timeout"])
@pytest.mark.parametrize("value", [0.0, -1.0], ids=["zero", "negative"])
def test_validate_wait_options_rejects(name, value):
    with pytest.raises(ValueError) as error:
        _atlas.validate_wait_options(wait_params(**{name: value}))

    assert str(error.value) == f"{name} must be greater than 0, got {value!r}"


def test_validate_wait_options_accepts_positive():
    _atlas.validate_wait_options(wait_params())


def test_fail_with_atlas_error_records_request():
    result = {"error": None}
    failure = _atlas.AtlasError(
        "Atlas API request GET /x failed with HTTP 404.", method="GET", path="/x"
    )

    with pytest.raises(ModuleFailed) as failed:
        _atlas.fail_with_error(FakeModule(), result, "Atlas restore failed", failure)

    fields = failed.value.fields
    assert fields["msg"] == (
        "Atlas restore failed: Atlas API request GET /x failed with HTTP 404."
    )
    assert fields["error"]["method"] == "GET"
    assert fields["error"]["path"] == "/x"
    assert result["error"] == fields["error"]


def test_fail_with_value_error_adds_full_stop():
    result = {"error": None}
    failure = ValueError("target cluster 'c' is paused")

    with pytest.raises(ModuleFailed) as failed:
        _atlas.fail_with_error(FakeModule(), result, "Atlas restore failed", failure)

    fields = failed.value.fields
    assert fields["msg"] == "Atlas restore failed: target cluster 'c' is paused."
    assert fields["error"] is None


def test_run_module_reports_unexpected_error():
    def run(module):
        raise KeyError("snapshot")

    with pytest.raises(ModuleFailed) as failed:
        _atlas.run_module(FakeModule(), run, "atlas_snapshot")

    fields = failed.value.fields
    assert fields["msg"] == "Unexpected error in atlas_snapshot: KeyError('snapshot')"
    assert "KeyError" in fields["exception"]


def test_run_module_passes_exit():
    def run(module):
        raise SystemExit(0)

    with pytest.raises(SystemExit):
        _atlas.run_module(FakeModule(), run, "atlas_snapshot")
