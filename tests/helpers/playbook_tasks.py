# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Walk the task lists of playbooks read as YAML, for the tests that inspect them."""

from __future__ import annotations


def walk_tasks(tasks):
    """Yield each task of a task list, including those inside blocks."""
    for task in tasks or []:
        yield task
        for section in ("block", "rescue", "always"):
            yield from walk_tasks(task.get(section))
