# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Session setup of the integration tests: the drill stack must run, and stays at v1.0.0.

The stack is shared, so every test first resets it to the release it needs. The
helpers that the tests import are in drill_helpers.py.
"""

from __future__ import annotations

import pytest
from drill_helpers import (
    BACKEND_REPOSITORY,
    COMPOSE_FILE,
    STACK_DEFAULT_VERSION,
    STACK_SCRIPT,
    image_id,
    remove_image,
    reset_stack,
)


@pytest.fixture(scope="session", autouse=True)
def drill_stack():
    """Stop the session unless the drill stack is set up, and leave it at v1.0.0.

    Images that the tests build are removed by the tests themselves. This teardown
    only removes truebond-backend:v0.9.4 again if a failed test left it behind.
    """
    if not STACK_SCRIPT.is_file() or not COMPOSE_FILE.is_file():
        pytest.exit(
            f"the drill stack is not set up ({COMPOSE_FILE} is missing);"
            " start it with: make stack",
            returncode=4,
        )
    rebuilt_image = f"{BACKEND_REPOSITORY}:v0.9.4"
    rebuilt_image_existed = image_id(rebuilt_image) is not None
    yield
    reset_stack(STACK_DEFAULT_VERSION)
    if not rebuilt_image_existed:
        remove_image(rebuilt_image)
