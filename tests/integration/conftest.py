# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Shared fixtures of the integration tests. The helpers are in drill_helpers.py.

The drill stack is shared, so every test that uses it first resets it to the
release it needs, and the drill_stack fixture leaves it at v1.0.0.

The tests that use the drill stack, the host's rollback lock file
(/var/lock/truebond-rollback.lock) or Docker beside the stack carry the drill_machine
marker, and run one at a time because they reset, stop and lock what the others
read. `make integration` runs the other tests, whose servers, files and locks are
all their own, beside them in a second pytest process (`-m "not drill_machine"`).
"""

from __future__ import annotations

import subprocess

import pytest
from drill_helpers import (
    BACKEND_REPOSITORY,
    COMPOSE_FILE,
    PROJECT_DIR,
    STACK_DEFAULT_VERSION,
    STACK_SCRIPT,
    compose_backups,
    controller_chart_files,
    image_id,
    remove_image,
    reset_stack,
)


def pytest_configure(config):
    config.addinivalue_line(
        "markers",
        "drill_machine: the test uses the drill stack, the host's rollback lock or"
        " Docker beside the stack, so it must not run beside another such test",
    )


# First, so that -m selects on the marker that this hook adds.
@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(config, items):
    """Mark every test that uses the drill_stack fixture drill_machine."""
    for item in items:
        if "drill_stack" in item.fixturenames:
            item.add_marker(pytest.mark.drill_machine)


@pytest.fixture(scope="session")
def drill_stack():
    """Fail unless the drill stack is set up, and leave it at v1.0.0 at the end.

    The teardown also removes the compose file backups that the session's rollbacks
    wrote into the project checkout, and the timeline charts they left in the
    controller's temporary folder. Incident folders stay for inspection. Images
    that the tests build are removed by the tests themselves, and this teardown
    only removes truebond-backend:v0.9.4 again if a failed test left it behind.
    """
    if not STACK_SCRIPT.is_file() or not COMPOSE_FILE.is_file():
        pytest.fail(
            f"the drill stack is not set up ({COMPOSE_FILE} is missing);"
            " start it with: make stack"
        )
    rebuilt_image = f"{BACKEND_REPOSITORY}:v0.9.4"
    rebuilt_image_existed = image_id(rebuilt_image) is not None
    backups_before = compose_backups()
    charts_before = controller_chart_files()
    yield
    reset_stack(STACK_DEFAULT_VERSION)
    # The tests sign users up and post messages; later suites expect the seed data.
    subprocess.run(["bash", str(STACK_SCRIPT), "seed"], check=True)
    for name in sorted(compose_backups() - backups_before):
        (PROJECT_DIR / name).unlink()
    for chart in sorted(controller_chart_files() - charts_before):
        chart.unlink(missing_ok=True)
    if not rebuilt_image_existed:
        remove_image(rebuilt_image)
