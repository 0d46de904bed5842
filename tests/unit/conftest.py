# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared pytest setup for the unit tests."""

from __future__ import annotations

import sys
from pathlib import Path

# .collections/ansible_collections/truebond/rollback is a symlink to the repository
# root, so this entry makes the import path ansible_collections.truebond.rollback
# resolve to the working tree.
COLLECTIONS_ROOT = Path(__file__).resolve().parents[2] / ".collections"
if str(COLLECTIONS_ROOT) not in sys.path:
    sys.path.insert(0, str(COLLECTIONS_ROOT))
