# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: disk_space_info
short_description: Report the free space of the filesystem that contains a path
description:
  - Reports the free and total space of the filesystem that contains O(path).
  - O(path) does not need to exist yet. The module walks up to the nearest existing
    ancestor and checks the filesystem of that one, which is where a directory
    created at O(path) would live unless something is mounted in between later.
  - With O(min_free_mb), the task fails when less space is free, so that a capture
    or backup stops before it starts instead of filling the disk halfway through.
version_added: 0.1.0
author: TrueBond SRE team (@truebond)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - The module only reads, so it runs in check mode as in a normal run.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  path:
    description:
      - Path whose filesystem to check. It may be a file, a directory or a path that
        does not exist yet.
    type: path
    required: true
  min_free_mb:
    description:
      - Minimum free space in MiB (1048576 bytes). When less is free, the task fails.
      - Free space counts the blocks available to unprivileged users, so space
        reserved for root is not included.
    type: int
  hint:
    description:
      - Text appended to the failure message when too little space is free, for
        example the variable that sets O(min_free_mb) in the calling role.
    type: str
notes:
  - Free space is measured with C(statvfs) at the moment the task runs. Other writers
    can use the space before the caller does.
"""

EXAMPLES = r"""
- name: Check that the backup folder has room for the state capture
  truebond.rollback.disk_space_info:
    path: /var/backups/truebond/incident-20260112T101500Z
    min_free_mb: 512
    hint: free space or set capture_state_min_free_mb
  register: backup_space

- name: Show the free space
  ansible.builtin.debug:
    msg: "{{ backup_space.free_mb }} MiB free on {{ backup_space.checked_path }}"
"""

RETURN = r"""
checked_path:
  description: The nearest existing ancestor of O(path), or O(path) itself if it exists.
  type: str
  returned: always
  sample: /var/backups
free_bytes:
  description: Bytes available to unprivileged users on the filesystem.
  type: int
  returned: always
  sample: 125829120
total_bytes:
  description: Size of the filesystem in bytes.
  type: int
  returned: always
  sample: 10737418240
free_mb:
  description: RV(free_bytes) in MiB, rounded down.
  type: int
  returned: always
  sample: 120
enough:
  description:
    - Whether at least O(min_free_mb) MiB are free. Always true when O(min_free_mb)
      is not set.
  type: bool
  returned: always
  sample: true
"""

import os
import traceback

from ansible.module_utils.basic import AnsibleModule

BYTES_PER_MIB = 1024 * 1024


def nearest_existing_path(path):
    """Return the absolute path itself, or its nearest ancestor that exists."""
    current = os.path.abspath(path)
    while not os.path.exists(current):
        parent = os.path.dirname(current)
        if parent == current:
            break
        current = parent
    return current


def measure(path, min_free_mb=None):
    """Return the free and total space of the filesystem that contains path."""
    checked_path = nearest_existing_path(path)
    stats = os.statvfs(checked_path)
    free_bytes = stats.f_bavail * stats.f_frsize
    free_mb = free_bytes // BYTES_PER_MIB
    return {
        "checked_path": checked_path,
        "free_bytes": free_bytes,
        "total_bytes": stats.f_blocks * stats.f_frsize,
        "free_mb": free_mb,
        "enough": min_free_mb is None or free_mb >= min_free_mb,
    }


def build_low_space_message(path, result, min_free_mb, hint=None):
    location = result["checked_path"]
    if location != os.path.abspath(path):
        location += f" (filesystem of {path})"
    message = (
        f"only {result['free_mb']} MiB free on {location}, {min_free_mb} MiB needed"
    )
    if hint:
        message += f"; {hint}"
    return message


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "min_free_mb": {"type": "int"},
            "hint": {"type": "str"},
        },
        supports_check_mode=True,
    )
    path = module.params["path"]
    min_free_mb = module.params["min_free_mb"]

    if min_free_mb is not None and min_free_mb < 0:
        module.fail_json(msg=f"min_free_mb must not be negative, got {min_free_mb!r}")

    try:
        result = measure(path, min_free_mb)
    except OSError as error:
        module.fail_json(
            msg=f"could not read the free space for {path!r}: {error}; check that the "
            "path is readable by the remote user"
        )
    except Exception as error:  # noqa: BLE001 - report any bug with its traceback
        module.fail_json(
            msg=f"disk_space_info failed unexpectedly on {path!r}: {error}",
            exception=traceback.format_exc(),
        )

    if not result["enough"]:
        module.fail_json(
            msg=build_low_space_message(
                path, result, min_free_mb, module.params["hint"]
            ),
            changed=False,
            **result,
        )
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
