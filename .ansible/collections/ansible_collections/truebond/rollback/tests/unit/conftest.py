# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared pytest setup for the unit tests."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
from ansible.module_utils.common import warnings as module_warnings

# .collections/ansible_collections/truebond/rollback is a symlink to the repository
# root, so this entry makes the import path ansible_collections.truebond.rollback
# resolve to the working tree.
COLLECTIONS_ROOT = Path(__file__).resolve().parents[2] / ".collections"
if str(COLLECTIONS_ROOT) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_ROOT))


@pytest.fixture(autouse=True)
def clear_module_warnings():
    """Drop the warnings and deprecations that one module run left behind.

    ansible-core 2.19 keeps them in module-level dicts that exit_json and fail_json
    read. Without this, a warning from one test shows up in the next test's result.
    """
    module_warnings._global_warnings.clear()
    module_warnings._global_deprecations.clear()
    yield
    module_warnings._global_warnings.clear()
    module_warnings._global_deprecations.clear()
