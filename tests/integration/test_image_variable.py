# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Rollback of a compose file whose backend image tag is a variable.

The test rewrites the drill project's compose file to
``truebond-backend:${BACKEND_TAG:-v1.0.0}`` with ``BACKEND_TAG=v1.0.0`` in ``.env``,
so the rollback must change ``.env`` and leave the compose file alone.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import pytest
from drill_helpers import (
    BACKEND_CONTAINER,
    COMPOSE_FILE,
    PROJECT_DIR,
    image_id,
    inspect_container,
    reset_stack,
    run_playbook,
)

pytestmark = pytest.mark.usefixtures("drill_stack")

LITERAL_IMAGE = b"image: truebond-backend:v1.0.0\n"
VARIABLE_IMAGE = b"image: truebond-backend:${BACKEND_TAG:-v1.0.0}\n"
ENV_FILE = PROJECT_DIR / ".env"


@dataclass
class VariableProject:
    """The compose file bytes in variable mode, and the interpolation env file."""

    compose_bytes: bytes
    env_file: Path


@pytest.fixture
def variable_image_project():
    """Switch the drill project to a variable image tag, and restore it afterwards.

    The compose file and .env get their bytes back (.env is removed if it did not
    exist), backups of .env that the rollback wrote are removed, and the stack is
    reset to v1.0.0.
    """
    reset_stack("v1.0.0")
    original_compose = COMPOSE_FILE.read_bytes()
    original_env = ENV_FILE.read_bytes() if ENV_FILE.exists() else None
    files_before = {entry.name for entry in PROJECT_DIR.iterdir()}
    assert original_compose.count(LITERAL_IMAGE) == 1

    variable_compose = original_compose.replace(LITERAL_IMAGE, VARIABLE_IMAGE)
    try:
        COMPOSE_FILE.write_bytes(variable_compose)
        ENV_FILE.write_bytes(b"BACKEND_TAG=v1.0.0\n")
        yield VariableProject(variable_compose, ENV_FILE)
    finally:
        COMPOSE_FILE.write_bytes(original_compose)
        if original_env is None:
            ENV_FILE.unlink(missing_ok=True)
        else:
            ENV_FILE.write_bytes(original_env)
        for entry in PROJECT_DIR.iterdir():
            if entry.name not in files_before and entry.name.startswith(".env."):
                entry.unlink()
        reset_stack("v1.0.0")


def test_variable_tag_rollback_edits_env_file(variable_image_project):
    result = run_playbook({"version": "v0.9.5"})

    assert result.rc == 0, result.describe()
    assert variable_image_project.env_file.read_bytes() == b"BACKEND_TAG=v0.9.5\n"
    assert COMPOSE_FILE.read_bytes() == variable_image_project.compose_bytes
    backend = inspect_container(BACKEND_CONTAINER)
    assert backend.image == "truebond-backend:v0.9.5"
    assert backend.image_id == image_id("truebond-backend:v0.9.5")
