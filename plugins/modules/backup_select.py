# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: backup_select
short_description: Choose and verify the backup that a data restore reads
description:
  - Looks for backup folders written by the capture_state role, each with
    C(manifest.json) and one snapshot folder per data store under C(datastores/),
    and returns the one a restore should read.
  - With O(path), checks that one folder. With O(root), checks every folder under it
    and picks the newest usable one. A folder is usable when, for every data store
    in O(stores), C(datastores/<name>/snapshot.json) exists, says the snapshot is
    complete and of the right kind, and every file it lists has its recorded size
    and SHA-256 checksum.
  - With O(version), a folder is usable only when the capture saw a container run
    O(image) at that version, so that the data matches the release being rolled
    back to.
  - Reports the age of the chosen backup. Writes made after it was taken are lost by
    a full restore, so the module warns when it is older than
    O(rpo_objective_minutes).
version_added: 0.2.0
author: TrueBond SRE team (@truebond)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - The module only reads, so it runs as in a normal run.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  path:
    description:
      - One backup folder to check. Mutually exclusive with O(root).
    type: path
  root:
    description:
      - Folder whose subfolders are the candidate backups. Mutually exclusive with
        O(path).
    type: path
  stores:
    description:
      - The data stores the restore needs, each with its snapshot name and kind.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description:
          - Name of the snapshot, the folder under C(datastores/).
          - A plain file name that matches C([A-Za-z0-9_][A-Za-z0-9_.-]{0,63}), as
            the role C(capture_state) names the snapshots.
        type: str
        required: true
      kind:
        description: Kind the snapshot must be.
        type: str
        required: true
        choices: [mongodb, redis, atlas]
  version:
    description:
      - Release the backup must have been taken on, for example C(v0.9.5). Empty
        accepts any.
    type: str
    default: ""
  purpose:
    description:
      - Purpose the capture must have recorded in its manifest, for example
        C(backup) for the folders the snapshot playbook writes before a deploy.
        Empty accepts any, including the capture of an earlier rollback.
    type: str
    default: ""
  image:
    description:
      - Image repository whose tag is compared with O(version), as recorded in the
        manifest's C(containers).
    type: str
    default: truebond-backend
  exclude:
    description:
      - Folders never to choose, for example the capture of the current run, which
        contains the data being rolled back.
    type: list
    elements: path
    default: []
  verify_checksums:
    description:
      - Recompute the SHA-256 of every snapshot file. Turning it off only checks
        sizes; the restore modules still verify the checksums before they change
        data.
    type: bool
    default: true
  rpo_objective_minutes:
    description:
      - Recovery point objective. A chosen backup older than this gets a warning.
    type: float
    default: 5
notes:
  - Backups are ordered by the time their oldest needed snapshot was taken, not by
    folder name or modification time.
"""

EXAMPLES = r"""
- name: Pick the newest verified backup taken on v0.9.5
  truebond.rollback.backup_select:
    root: /backup
    version: v0.9.5
    purpose: backup
    stores:
      - name: main
        kind: mongodb
      - name: cache
        kind: redis
    exclude:
      - /backup/incident-20260112T101500Z
  register: backup

- name: Check the backup the operator named
  truebond.rollback.backup_select:
    path: /backup/backup-20260112T090000Z
    stores:
      - name: main
        kind: mongodb
"""

RETURN = r"""
path:
  description: The chosen backup folder.
  type: str
  returned: success
  sample: /backup/backup-20260112T090000Z
taken_at:
  description: When the oldest of its needed snapshots was taken (UTC).
  type: str
  returned: success
  sample: "2026-01-12T09:00:01.250Z"
age_seconds:
  description: Seconds from RV(taken_at) to now.
  type: float
  returned: success
  sample: 4501.3
older_than_objective:
  description: Whether RV(age_seconds) exceeds O(rpo_objective_minutes).
  type: bool
  returned: success
  sample: true
version:
  description: Tag of O(image) that ran when the backup was taken, or null.
  type: str
  returned: success
  sample: v0.9.5
snapshots:
  description: For each store in O(stores), its snapshot folder, kind and time.
  type: dict
  returned: success
  sample:
    main:
      path: /backup/backup-20260112T090000Z/datastores/main
      kind: mongodb
      taken_at: "2026-01-12T09:00:01.250Z"
rejected:
  description: Folders that were looked at and not chosen, each with the reason.
  type: list
  elements: dict
  returned: always
  sample:
    - path: /backup/incident-20260112T101500Z
      reason: excluded
"""

import datetime
import json
import os
import re
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.truebond.rollback.plugins.module_utils._files import (
    sha256_file,
)

# A snapshot name is a plain file name, the folder under datastores/. The role
# capture_state checks the snapshot names it writes against the same pattern.
STORE_NAME = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,63}\Z")


class Unusable(Exception):
    """The folder cannot serve as the backup; the message gives the reason."""


def parse_time(text):
    value = datetime.datetime.strptime(text, "%Y-%m-%dT%H:%M:%S.%fZ")
    return value.replace(tzinfo=datetime.timezone.utc)  # noqa: UP017 - Python < 3.11


def read_json(path, what):
    try:
        with open(path, encoding="utf-8") as handle:
            return json.load(handle)
    except FileNotFoundError:
        raise Unusable(f"{what} {path} does not exist") from None
    except (OSError, ValueError) as error:
        raise Unusable(f"{what} {path} cannot be read: {error}") from None


def check_files(folder, files, verify_checksums):
    # realpath on both sides, so that neither "..", "//" nor a symlink can lead a
    # listed file out of the snapshot folder.
    real_folder = os.path.realpath(folder)
    for relative, expected in sorted(files.items()):
        if "\x00" in relative:
            raise Unusable(
                f"snapshot.json lists a file name with a NUL byte: {relative!r}"
            )
        full = os.path.join(folder, relative)
        if not os.path.realpath(full).startswith(real_folder + os.sep):
            raise Unusable(f"snapshot.json lists {relative!r}, outside {folder}")
        try:
            size = os.path.getsize(full)
        except OSError:
            raise Unusable(f"snapshot file {full} is missing") from None
        if size != expected.get("bytes"):
            raise Unusable(
                f"snapshot file {full} has {size} bytes, the snapshot recorded "
                f"{expected.get('bytes')}"
            )
        if verify_checksums and sha256_file(full) != expected.get("sha256"):
            raise Unusable(
                f"snapshot file {full} does not match its recorded SHA-256 checksum"
            )


def image_version(manifest, image):
    containers = (manifest.get("metadata") or {}).get("containers") or {}
    for reference in containers.values():
        name, _, tag = str(reference).rpartition(":")
        if name == image and tag:
            return tag
    return None


def inspect(folder, params):
    """Return the candidate for folder, or raise Unusable."""
    manifest = read_json(os.path.join(folder, "manifest.json"), "manifest")
    purpose = (manifest.get("metadata") or {}).get("purpose")
    if params["purpose"] and purpose != params["purpose"]:
        raise Unusable(
            f"its purpose is {purpose or 'not recorded'}, not {params['purpose']}"
        )
    version = image_version(manifest, params["image"])
    if params["version"] and version != params["version"]:
        raise Unusable(
            f"taken while {params['image']} ran {version or 'no known version'}, "
            f"not {params['version']}"
        )
    snapshots = {}
    for store in params["stores"]:
        name, kind = store["name"], store["kind"]
        snapshot_dir = os.path.join(folder, "datastores", name)
        snapshot = read_json(
            os.path.join(snapshot_dir, "snapshot.json"), f"snapshot {name!r}"
        )
        if snapshot.get("kind") != kind:
            raise Unusable(
                f"snapshot {name!r} is of kind {snapshot.get('kind')!r}, not {kind!r}"
            )
        if snapshot.get("complete") is not True:
            raise Unusable(f"snapshot {name!r} is marked incomplete")
        try:
            taken_at = parse_time(snapshot["taken_at"])
        except (KeyError, TypeError, ValueError):
            raise Unusable(
                f"snapshot {name!r} has no valid taken_at: {snapshot.get('taken_at')!r}"
            ) from None
        check_files(
            snapshot_dir, snapshot.get("files") or {}, params["verify_checksums"]
        )
        snapshots[name] = {
            "path": snapshot_dir,
            "kind": kind,
            "taken_at": snapshot["taken_at"],
            "_time": taken_at,
        }
    oldest = min(snapshots.values(), key=lambda item: item["_time"])
    return {
        "path": folder,
        "version": version,
        "snapshots": snapshots,
        "oldest": oldest,
    }


def candidates(params):
    if params["path"]:
        return [os.path.normpath(params["path"])]
    root = os.path.normpath(params["root"])
    try:
        names = sorted(os.listdir(root))
    except OSError as error:
        raise Unusable(f"cannot list the backup root {root}: {error}") from None
    return [
        os.path.join(root, name)
        for name in names
        if os.path.isdir(os.path.join(root, name))
    ]


def select(params, now=None):
    """Return (result, rejected); result is None when no folder is usable."""
    excluded = {os.path.normpath(path) for path in params["exclude"]}
    usable, rejected = [], []
    for folder in candidates(params):
        if os.path.normpath(folder) in excluded:
            rejected.append({"path": folder, "reason": "excluded"})
            continue
        try:
            usable.append(inspect(folder, params))
        except Unusable as error:
            rejected.append({"path": folder, "reason": str(error)})
        except (AttributeError, KeyError, TypeError) as error:
            # Valid JSON of the wrong shape: this folder is unusable, the others
            # may still be.
            rejected.append(
                {
                    "path": folder,
                    "reason": f"its manifest or snapshot.json has an unexpected "
                    f"structure ({type(error).__name__}: {error})",
                }
            )
    if not usable:
        return None, rejected
    best = max(usable, key=lambda item: item["oldest"]["_time"])
    for other in usable:
        if other is not best:
            rejected.append(
                {"path": other["path"], "reason": "a newer backup is usable"}
            )
    now = now or datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017
    age = round((now - best["oldest"]["_time"]).total_seconds(), 3)
    snapshots = {
        name: {key: value for key, value in item.items() if key != "_time"}
        for name, item in best["snapshots"].items()
    }
    return {
        "path": best["path"],
        "taken_at": best["oldest"]["taken_at"],
        "age_seconds": age,
        "older_than_objective": age > params["rpo_objective_minutes"] * 60,
        "version": best["version"],
        "snapshots": snapshots,
    }, rejected


def check_store_names(stores):
    """Raise ValueError naming the first store whose name is not a plain file name."""
    for store in stores:
        name = store["name"]
        if not STORE_NAME.match(name):
            raise ValueError(
                f"stores name {name!r} is not a valid snapshot name; use 1 to 64"
                " letters, digits, '_', '.' or '-', starting with a letter, digit or"
                " '_', as the folder under datastores/ is named, for example 'cache'"
            )


def describe_rejected(rejected):
    return "; ".join(f"{item['path']}: {item['reason']}" for item in rejected) or "none"


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path"},
            "root": {"type": "path"},
            "stores": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "name": {"type": "str", "required": True},
                    "kind": {
                        "type": "str",
                        "required": True,
                        "choices": ["mongodb", "redis", "atlas"],
                    },
                },
            },
            "version": {"type": "str", "default": ""},
            "purpose": {"type": "str", "default": ""},
            "image": {"type": "str", "default": "truebond-backend"},
            "exclude": {"type": "list", "elements": "path", "default": []},
            "verify_checksums": {"type": "bool", "default": True},
            "rpo_objective_minutes": {"type": "float", "default": 5.0},
        },
        mutually_exclusive=[("path", "root")],
        required_one_of=[("path", "root")],
        supports_check_mode=True,
    )
    params = module.params
    if not params["stores"]:
        module.fail_json(msg="stores is empty: name at least one snapshot to restore")
    try:
        check_store_names(params["stores"])
    except ValueError as error:
        module.fail_json(msg=str(error))
    where = params["path"] or params["root"]
    try:
        result, rejected = select(params)
    except Unusable as error:
        module.fail_json(msg=str(error), rejected=[])
    except Exception as error:  # noqa: BLE001 - report any bug with its traceback
        module.fail_json(
            msg=f"backup_select failed unexpectedly on {where!r}: {error}",
            exception=traceback.format_exc(),
        )

    if result is None:
        wanted = ", ".join(f"{s['kind']} {s['name']!r}" for s in params["stores"])
        version = f" taken on {params['version']}" if params["version"] else ""
        module.fail_json(
            msg=(
                f"No usable backup{version} with {wanted} in {where}. Checked: "
                f"{describe_rejected(rejected)}. Nothing was changed. Name a backup "
                "folder with -e backup=PATH, or take one with the snapshot playbook "
                "before a deploy."
            ),
            rejected=rejected,
        )
    if result["older_than_objective"]:
        module.warn(
            f"The backup {result['path']} was taken at {result['taken_at']}, "
            f"{result['age_seconds'] / 60:.1f} min ago, more than the RPO objective of "
            f"{params['rpo_objective_minutes']:g} min: a full restore loses every "
            "write made since. To keep them, consider rollback_db with "
            "method=migration_undo."
        )
    module.exit_json(changed=False, rejected=rejected, **result)


if __name__ == "__main__":
    main()
