# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: atlas_snapshot
short_description: Take an on-demand MongoDB Atlas cloud backup snapshot and wait for it
description:
  - Reads the cluster through the Atlas Administration API v2 and fails early when it
    does not exist or has Cloud Backup disabled.
  - Takes one on-demand snapshot of the cluster, then polls the snapshot until its
    status is C(completed). A status of C(failed), or a snapshot still C(queued) or
    C(inProgress) when O(timeout) has passed, fails the task with the last status.
  - With O(dest), writes C(snapshot.json) into that folder (mode 0600, folder 0700).
    It records the project, cluster, snapshot id and status, so that
    M(truebond.rollback.atlas_restore) can restore from the folder later.
  - Authenticates with HTTP Digest, using an Atlas API key pair. The Atlas CLI
    reference for C(atlas backups snapshots create) asks for the Project Owner role
    for on-demand snapshots.
version_added: 0.2.0
author: TrueBond SRE team (@truebond)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - truebond.rollback.atlas
attributes:
  check_mode:
    support: full
    details:
      - In check mode the module sends only the GET request for the cluster, checks
        that the cluster exists and has Cloud Backup enabled, and reports the
        snapshot it would take. It writes no file.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  base_url:
    description:
      - Scheme and host of the Atlas Administration API.
    type: str
    default: https://cloud.mongodb.com
  group_id:
    description:
      - Id of the Atlas project (group) that contains the cluster, 24 hexadecimal
        digits.
    type: str
    required: true
  cluster:
    description:
      - Name of the Atlas cluster to snapshot.
    type: str
    required: true
  name:
    description:
      - Name of the data store, written as C(name) into C(snapshot.json).
      - Defaults to O(cluster).
    type: str
  description:
    description:
      - Description that Atlas stores with the on-demand snapshot.
    type: str
    default: truebond.rollback capture before a rollback
  retention_days:
    description:
      - Number of days that Atlas keeps the snapshot. Must be at least 1.
    type: int
    default: 1
  dest:
    description:
      - Folder to write C(snapshot.json) into. It is created with mode 0700 if it is
        missing.
      - When not set, no file is written and the record is only returned.
    type: path
  timeout:
    description:
      - Seconds to wait for the snapshot to complete, counted from the request that
        takes it.
    type: float
    default: 1800
  poll_interval:
    description:
      - Seconds between two reads of the snapshot status.
    type: float
    default: 10
notes:
  - On-demand snapshots exist only for dedicated clusters (M10 and larger) with Cloud
    Backup enabled. Atlas takes one on-demand snapshot per cluster at a time, so a
    request made while another is queued or in progress fails with the error Atlas
    returns.
  - A task that fails on timeout leaves the snapshot running in Atlas. Its id is in
    the message and in RV(snapshot_id).
  - Proxy settings from the environment (C(https_proxy), C(no_proxy)) apply.
seealso:
  - module: truebond.rollback.atlas_restore
"""

EXAMPLES = r"""
- name: Take an Atlas snapshot of the production cluster before the rollback
  truebond.rollback.atlas_snapshot:
    group_id: 5f4e3d2c1b0a998877665544
    cluster: truebond-prod
    public_key: "{{ atlas_public_key }}"
    private_key: "{{ atlas_private_key }}"
    retention_days: 3
    dest: /var/backups/truebond/incident-20261204T173000Z/datastores/atlas-prod
    timeout: 1800
  register: atlas_capture

- name: Show the snapshot id
  ansible.builtin.debug:
    msg: "Atlas snapshot {{ atlas_capture.snapshot_id }} is {{ atlas_capture.status }}"
"""

RETURN = r"""
snapshot:
  description:
    - The C(snapshot.json) record. C(complete) is true only when Atlas reported the
      snapshot as completed.
    - In check mode, and on a failure before Atlas created the snapshot, the record
      with C(complete) false and C(snapshot_id) null.
  type: dict
  returned: always
  sample:
    format: 1
    kind: atlas
    name: atlas-prod
    complete: true
    taken_at: "2026-12-04T17:30:01.123Z"
    finished_at: "2026-12-04T17:34:12.456Z"
    files: {}
    group_id: 5f4e3d2c1b0a998877665544
    cluster: truebond-prod
    snapshot_id: 6751a0c2e4b0a1b2c3d4e5f6
    status: completed
    base_url: https://cloud.mongodb.com
    description: truebond.rollback capture before a rollback
    retention_days: 1
    created_at: "2026-12-04T17:30:02Z"
    expires_at: "2026-12-05T17:30:02Z"
    mongod_version: 8.0.4
    storage_size_bytes: 1048576
path:
  description: Path of the C(snapshot.json) written, or null without O(dest) and in check mode.
  type: str
  returned: always
  sample: /var/backups/truebond/incident-20261204T173000Z/datastores/atlas-prod/snapshot.json
snapshot_id:
  description: Id of the snapshot that Atlas created, or null if none was created.
  type: str
  returned: always
  sample: 6751a0c2e4b0a1b2c3d4e5f6
status:
  description:
    - Last snapshot status that Atlas returned (C(queued), C(inProgress),
      C(completed) or C(failed)), or null if no snapshot was created.
  type: str
  returned: always
  sample: completed
polls:
  description: Number of GET requests made for the snapshot status.
  type: int
  returned: always
  sample: 12
elapsed:
  description: Seconds from the request that took the snapshot to its last status read.
  type: float
  returned: always
  sample: 251.3
cluster_info:
  description: Fields of the cluster that the module checked, or null if it was not read.
  type: dict
  returned: always
  sample: {"name": "truebond-prod", "backup_enabled": true, "state_name": "IDLE"}
error:
  description:
    - The failed Atlas request, with its method, path, HTTP status, Atlas errorCode
      and detail. Null unless an Atlas request failed.
  type: dict
  returned: always
  sample:
    method: GET
    path: /api/atlas/v2/groups/5f4e3d2c1b0a998877665544/clusters/truebond-prod
    status: 404
    error_code: CLUSTER_NOT_FOUND
    detail: No cluster named truebond-prod exists in group 5f4e3d2c1b0a998877665544.
"""

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.truebond.rollback.plugins.module_utils._atlas import (
    DEFAULT_BASE_URL,
    SNAPSHOT_DONE_STATES,
    AtlasError,
    PollTimeout,
    client_from_params,
    connection_argument_spec,
    fail_with_error,
    poll_until,
    run_module,
    snapshot_state,
    utc_timestamp,
    validate_base_url,
    validate_wait_options,
)
from ansible_collections.truebond.rollback.plugins.module_utils._files import (
    atomic_write,
)

SNAPSHOT_FILE = "snapshot.json"


def validate_params(params):
    """Raise ValueError naming the first invalid option and its value."""
    validate_base_url(params["base_url"])
    for name in ("group_id", "cluster", "public_key"):
        if not params[name].strip():
            raise ValueError(
                f"{name} is empty; give the Atlas {name.replace('_', ' ')}"
            )
    if params["retention_days"] < 1:
        raise ValueError(
            f"retention_days must be at least 1, got {params['retention_days']!r}"
        )
    validate_wait_options(params)


def describe_cluster(cluster_document):
    return {
        "name": cluster_document.get("name"),
        "backup_enabled": bool(cluster_document.get("backupEnabled")),
        "state_name": cluster_document.get("stateName"),
    }


def build_record(params, snapshot=None, taken_at=None, finished_at=None):
    """Return the snapshot.json record for a snapshot document from Atlas."""
    snapshot = snapshot or {}
    status = snapshot.get("status")
    return {
        "format": 1,
        "kind": "atlas",
        "name": params["name"] or params["cluster"],
        "complete": status == "completed",
        "taken_at": taken_at,
        "finished_at": finished_at,
        "files": {},
        "group_id": params["group_id"],
        "cluster": params["cluster"],
        "snapshot_id": snapshot.get("id"),
        "status": status,
        "base_url": params["base_url"].rstrip("/"),
        "description": params["description"],
        "retention_days": params["retention_days"],
        "created_at": snapshot.get("createdAt"),
        "expires_at": snapshot.get("expiresAt"),
        "mongod_version": snapshot.get("mongodVersion"),
        "storage_size_bytes": snapshot.get("storageSizeBytes"),
    }


def write_record(dest, record):
    """Write snapshot.json into dest (created 0700) and return its path."""
    os.makedirs(dest, mode=0o700, exist_ok=True)
    path = os.path.join(dest, SNAPSHOT_FILE)
    data = (json.dumps(record, indent=2, sort_keys=True) + "\n").encode("utf-8")
    atomic_write(path, data, mode=0o600)
    return path


def check_cluster(client, params):
    """Read the cluster and raise ValueError when it cannot be snapshotted."""
    info = describe_cluster(client.get_cluster(params["group_id"], params["cluster"]))
    if not info["backup_enabled"]:
        raise ValueError(
            f"Atlas cluster {params['cluster']!r} in project {params['group_id']!r} "
            "has Cloud Backup disabled (backupEnabled is false), so it has no "
            "snapshots. Enable Cloud Backup for the cluster in Atlas, or capture the "
            "database with the mongodb snapshot type instead"
        )
    return info


def take_and_wait(module, client, params, result, sleep=time.sleep):
    """Take the snapshot, wait for it, and fill result. Return an error text or None."""
    group_id = params["group_id"]
    cluster = params["cluster"]
    taken_at = utc_timestamp()
    started = time.monotonic()
    created = client.take_snapshot(
        group_id, cluster, params["description"], params["retention_days"]
    )
    result["changed"] = True
    snapshot_id = created.get("id")
    if not snapshot_id:
        raise AtlasError(
            f"Atlas accepted the snapshot request for cluster {cluster!r} but returned "
            "no snapshot id. Look for the on-demand snapshot in Atlas under the "
            "cluster's Backup tab."
        )
    result["snapshot_id"] = snapshot_id
    result["status"] = snapshot_state(created)

    error = None
    last = created
    try:
        last, polls, _ = poll_until(
            lambda: client.get_snapshot(group_id, cluster, snapshot_id),
            lambda document: snapshot_state(document) in SNAPSHOT_DONE_STATES,
            params["timeout"],
            params["poll_interval"],
            sleep=sleep,
        )
        result["polls"] = polls
    except PollTimeout as timeout:
        last = timeout.last
        result["polls"] = timeout.polls
        error = (
            f"Atlas snapshot {snapshot_id} of cluster {cluster!r} in project "
            f"{group_id!r} did not complete within {params['timeout']} s; its last "
            f"status was {snapshot_state(last)!r}. It keeps running in Atlas: raise "
            "timeout, or check the cluster's Backup tab and use the snapshot id once "
            "it has completed"
        )
    result["elapsed"] = round(time.monotonic() - started, 3)

    status = snapshot_state(last)
    result["status"] = status
    if error is None and status == "failed":
        error = (
            f"Atlas snapshot {snapshot_id} of cluster {cluster!r} in project "
            f"{group_id!r} ended with status 'failed'. Check the cluster's Backup tab "
            "and the project activity feed in Atlas, then run the capture again"
        )
    finished_at = utc_timestamp() if status == "completed" else None
    record = build_record(params, last, taken_at, finished_at)
    result["snapshot"] = record
    if params["dest"]:
        # A failed or unfinished snapshot is recorded too, with complete false, so
        # that the folder names the snapshot id but is never restored from.
        result["path"] = write_record(params["dest"], record)
    return error


def run(module, client=None, sleep=time.sleep):
    params = module.params
    # The record starts as incomplete, so that a failure before the snapshot
    # exists still returns a snapshot dict with complete false.
    result = {
        "changed": False,
        "snapshot": build_record(params),
        "path": None,
        "snapshot_id": None,
        "status": None,
        "polls": 0,
        "elapsed": 0.0,
        "cluster_info": None,
        "error": None,
    }
    try:
        validate_params(params)
    except ValueError as error:
        module.fail_json(msg=f"Invalid options: {error}.", **result)

    if client is None:
        client = client_from_params(params, params["base_url"])
    store = params["name"] or params["cluster"]
    failure_prefix = f"Atlas snapshot of data store {store!r} failed"

    try:
        result["cluster_info"] = check_cluster(client, params)
        if module.check_mode:
            result["changed"] = True
            result["snapshot"] = build_record(params)
            module.exit_json(
                msg=(
                    f"Check mode: would take an on-demand snapshot of Atlas cluster "
                    f"{params['cluster']!r} in project {params['group_id']!r}, kept "
                    f"{params['retention_days']} day(s)"
                ),
                **result,
            )
        error = take_and_wait(module, client, params, result, sleep=sleep)
    except (AtlasError, ValueError) as failure:
        fail_with_error(module, result, failure_prefix, failure)
    except OSError as failure:
        module.fail_json(
            msg=(
                f"Atlas snapshot {result['snapshot_id']} of data store {store!r} was "
                f"taken, but writing {SNAPSHOT_FILE} into {params['dest']!r} failed: "
                f"{failure}. Free space or fix the folder's permissions, then record "
                "the snapshot id by hand"
            ),
            **result,
        )

    if error:
        module.fail_json(msg=f"{failure_prefix}: {error}.", **result)
    module.exit_json(
        msg=(
            f"Atlas snapshot {result['snapshot_id']} of cluster {params['cluster']!r} "
            f"completed after {result['polls']} poll(s)"
        ),
        **result,
    )


def main():
    module = AnsibleModule(
        argument_spec={
            "base_url": {"type": "str", "default": DEFAULT_BASE_URL},
            "group_id": {"type": "str", "required": True},
            "cluster": {"type": "str", "required": True},
            "name": {"type": "str"},
            "description": {
                "type": "str",
                "default": "truebond.rollback capture before a rollback",
            },
            "retention_days": {"type": "int", "default": 1},
            "dest": {"type": "path"},
            "timeout": {"type": "float", "default": 1800},
            "poll_interval": {"type": "float", "default": 10},
            **connection_argument_spec(),
        },
        supports_check_mode=True,
    )
    run_module(module, run, "atlas_snapshot")


if __name__ == "__main__":
    main()
