# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for the property-based (hypothesis) tests of the modules."""

from __future__ import annotations

import contextlib
import io
import json
import traceback
from unittest import mock

import pytest
from ansible.module_utils.common import warnings as module_warnings
from ansible.module_utils.testing import patch_module_args


def run_module_main(main, args):
    """Run a module's main() with ``args`` and return its JSON result.

    ansible-core 2.19 leaves the ``exception`` key out of a fail_json result unless
    error tracebacks are enabled, so a bug would pass unseen. Every module calls
    traceback.format_exc() only in its catch-all handler for unexpected
    exceptions, so this helper records those calls and puts the last traceback
    into ``exception`` when the result lacks the key.

    stdout is captured with redirect_stdout instead of capsys, because hypothesis
    runs many examples per test and would share one function-scoped fixture
    between all of them. The warnings that ansible-core keeps in module-level
    dicts are cleared first, so that one example's warnings do not leak into the
    next result.
    """
    module_warnings._global_warnings.clear()
    module_warnings._global_deprecations.clear()
    output = io.StringIO()
    tracebacks = []
    original_format_exc = traceback.format_exc

    def recording_format_exc(*args, **kwargs):
        text = original_format_exc(*args, **kwargs)
        tracebacks.append(text)
        return text

    with (
        patch_module_args(args),
        mock.patch.object(traceback, "format_exc", recording_format_exc),
        contextlib.redirect_stdout(output),
        pytest.raises(SystemExit),
    ):
        main()
    result = json.loads(output.getvalue())
    if tracebacks and "exception" not in result:
        result["exception"] = tracebacks[-1]
    return result


def assert_no_traceback(result):
    """Assert that main() ended in exit_json or in one of its own fail_json calls."""
    assert "exception" not in result, result["exception"]
    assert "Traceback" not in result.get("msg", "")
    message = result.get("msg", "")
    assert "unexpected error:" not in message
    assert "failed unexpectedly" not in message
