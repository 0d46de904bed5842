# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: atlas_restore
short_description: Restore a MongoDB Atlas cloud backup snapshot into a named cluster
description:
  - Restores one Atlas cloud backup snapshot into the target cluster through an
    automated restore job of the Atlas Administration API v2, then polls the job until
    it finishes.
  - B(The restore overwrites all data of the target cluster.) Atlas replaces the
    target cluster's databases with the snapshot's data, and writes made to the target
    cluster since the snapshot are lost. The target can be the source cluster itself.
  - The snapshot comes from O(snapshot_id), or from the C(snapshot.json) that
    M(truebond.rollback.atlas_snapshot) wrote into the folder O(src). A folder whose
    record is missing, is not of kind C(atlas), is not complete, or names another
    project or cluster than the options given is rejected before any request that
    changes anything.
  - Before it creates the job, the module reads the snapshot (which must be
    C(completed)) and the target cluster (which must exist).
  - The job fails the task when Atlas marks it C(failed), C(cancelled) or
    C(expired), or when it has not finished within O(timeout).
version_added: 0.2.0
author: TrueBond SRE team (@truebond)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - truebond.rollback.atlas
attributes:
  check_mode:
    support: full
    details:
      - In check mode the module sends only GET requests, for the snapshot and the
        target cluster, and returns the plan in RV(plan). It creates no restore job.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  base_url:
    description:
      - Scheme and host of the Atlas Administration API.
      - Defaults to the C(base_url) in the C(snapshot.json) of O(src), else
        C(https://cloud.mongodb.com).
    type: str
  group_id:
    description:
      - Id of the Atlas project (group) of the cluster that the snapshot was taken
        from.
      - Required unless O(src) is given, whose record provides it.
    type: str
  cluster:
    description:
      - Name of the cluster that the snapshot was taken from. The restore job is
        created on this cluster.
      - Required unless O(src) is given, whose record provides it.
    type: str
  snapshot_id:
    description:
      - Id of the snapshot to restore.
      - Mutually exclusive with O(src). One of the two is required.
    type: str
  src:
    description:
      - Snapshot folder that contains the C(snapshot.json) written by
        M(truebond.rollback.atlas_snapshot).
      - Mutually exclusive with O(snapshot_id).
    type: path
  target_cluster:
    description:
      - Name of the cluster whose data the restore overwrites.
    type: str
    required: true
  target_group_id:
    description:
      - Id of the project that contains O(target_cluster). Defaults to the source
        project.
    type: str
  timeout:
    description:
      - Seconds to wait for the restore job to finish, counted from its creation.
    type: float
    default: 3600
  poll_interval:
    description:
      - Seconds between two reads of the restore job.
    type: float
    default: 15
notes:
  - The API key must be allowed to read the source project and to restore into the
    target project. The Project Owner role in both projects is enough.
  - The module rejects a target cluster that is paused or in state C(CREATING),
    C(DELETING) or C(DELETED). Other requirements of Atlas, such as the MongoDB
    version and storage size of the target, are checked by Atlas when the job is
    created, and its error is returned as is.
  - A task that fails on timeout leaves the job running in Atlas. Its id is in the
    message and in RV(restore_job_id).
  - Proxy settings from the environment (C(https_proxy), C(no_proxy)) apply.
seealso:
  - module: truebond.rollback.atlas_snapshot
"""

EXAMPLES = r"""
- name: Restore the captured Atlas snapshot into the production cluster (overwrites it)
  truebond.rollback.atlas_restore:
    src: /var/backups/truebond/incident-20261204T173000Z/datastores/atlas-prod
    target_cluster: truebond-prod
    public_key: "{{ atlas_public_key }}"
    private_key: "{{ atlas_private_key }}"
    timeout: 3600
  register: atlas_restore_result

- name: Restore a chosen snapshot into a staging cluster in another project
  truebond.rollback.atlas_restore:
    group_id: 5f4e3d2c1b0a998877665544
    cluster: truebond-prod
    snapshot_id: 6751a0c2e4b0a1b2c3d4e5f6
    target_cluster: truebond-staging
    target_group_id: 5f4e3d2c1b0a998877660000
    public_key: "{{ atlas_public_key }}"
    private_key: "{{ atlas_private_key }}"
"""

RETURN = r"""
overwritten:
  description:
    - The cluster whose data the restore overwrote, or would overwrite in check
      mode, with its project id.
  type: dict
  returned: always
  sample: {"group_id": "5f4e3d2c1b0a998877665544", "cluster": "truebond-prod"}
warning:
  description: Sentence that names the cluster whose data is overwritten and the snapshot.
  type: str
  returned: always
  sample: >-
    The data of Atlas cluster 'truebond-prod' in project '5f4e3d2c1b0a998877665544'
    is overwritten with snapshot 6751a0c2e4b0a1b2c3d4e5f6 of cluster 'truebond-prod'.
snapshot_id:
  description: Id of the snapshot restored.
  type: str
  returned: always
  sample: 6751a0c2e4b0a1b2c3d4e5f6
source:
  description: Project id and cluster that the snapshot belongs to.
  type: dict
  returned: always
  sample: {"group_id": "5f4e3d2c1b0a998877665544", "cluster": "truebond-prod"}
snapshot:
  description:
    - Fields of the snapshot as Atlas returned them before the restore, or null if
      it was not read.
  type: dict
  returned: always
  sample: {"id": "6751a0c2e4b0a1b2c3d4e5f6", "status": "completed", "createdAt": "2026-12-04T17:30:02Z"}
restore_job_id:
  description: Id of the restore job, or null if none was created.
  type: str
  returned: always
  sample: 6751a5d0e4b0a1b2c3d4e600
restore_job:
  description: The last restore job document that Atlas returned, or null.
  type: dict
  returned: always
  sample:
    id: 6751a5d0e4b0a1b2c3d4e600
    deliveryType: automated
    snapshotId: 6751a0c2e4b0a1b2c3d4e5f6
    targetClusterName: truebond-prod
    targetGroupId: 5f4e3d2c1b0a998877665544
    failed: false
    cancelled: false
    expired: false
    finishedAt: "2026-12-04T17:52:40Z"
state:
  description:
    - Final state of the restore job, C(finished), C(failed), C(cancelled),
      C(expired) or C(running) (after a timeout), or null if no job was created.
  type: str
  returned: always
  sample: finished
polls:
  description: Number of GET requests made for the restore job.
  type: int
  returned: always
  sample: 40
elapsed:
  description: Seconds from the creation of the restore job to its last read.
  type: float
  returned: always
  sample: 1203.8
plan:
  description: In check mode, the restore job that a run would create, else null.
  type: dict
  returned: always
  sample:
    method: POST
    path: /api/atlas/v2/groups/5f4e3d2c1b0a998877665544/clusters/truebond-prod/backup/restoreJobs
    body:
      snapshotId: 6751a0c2e4b0a1b2c3d4e5f6
      deliveryType: automated
      targetClusterName: truebond-prod
      targetGroupId: 5f4e3d2c1b0a998877665544
error:
  description:
    - The failed Atlas request, with its method, path, HTTP status, Atlas errorCode
      and detail. Null unless an Atlas request failed.
  type: dict
  returned: always
  sample:
    method: GET
    path: /api/atlas/v2/groups/5f4e3d2c1b0a998877665544/clusters/truebond-prod
    status: 401
    error_code: null
    detail: digest authentication failed
"""

import json
import os
import time

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.truebond.rollback.plugins.module_utils._atlas import (
    DEFAULT_BASE_URL,
    AtlasError,
    PollTimeout,
    client_from_params,
    cluster_path,
    connection_argument_spec,
    fail_with_error,
    poll_until,
    restore_job_state,
    run_module,
    snapshot_state,
    validate_base_url,
    validate_wait_options,
)

SNAPSHOT_FILE = "snapshot.json"
WHAT_TO_CHECK = (
    "In Atlas, open the project of the source cluster, then Backup > Restores, and "
    "read the job's status and the project activity feed. Do not assume that the "
    "target cluster still holds its previous data"
)


def read_snapshot_record(src):
    """Return the snapshot.json record of an Atlas snapshot folder.

    Raise ValueError when the record is missing, unreadable, of another kind, not
    complete, or without a completed snapshot id.
    """
    path = os.path.join(src, SNAPSHOT_FILE)
    if not os.path.isdir(src):
        raise ValueError(f"snapshot folder src {src!r} does not exist")
    try:
        with open(path, "rb") as stream:
            record = json.loads(stream.read().decode("utf-8"))
    except FileNotFoundError:
        raise ValueError(
            f"snapshot folder {src!r} has no {SNAPSHOT_FILE}, so the capture did not "
            "finish; choose another snapshot folder or give snapshot_id"
        ) from None
    except (OSError, ValueError) as error:
        raise ValueError(f"{path!r} could not be read as JSON: {error}") from None
    if not isinstance(record, dict):
        raise ValueError(f"{path!r} does not contain a JSON object")  # noqa: TRY004
    if record.get("kind") != "atlas":
        raise ValueError(
            f"{path!r} records a snapshot of kind {record.get('kind')!r}, not 'atlas'; "
            "restore it with restore_mongo_method full instead"
        )
    if record.get("complete") is not True or record.get("status") != "completed":
        raise ValueError(
            f"{path!r} records an incomplete Atlas snapshot (complete="
            f"{record.get('complete')!r}, status={record.get('status')!r}); it is never "
            "restored from. Choose a completed snapshot"
        )
    for key in ("group_id", "cluster", "snapshot_id"):
        if not record.get(key):
            raise ValueError(
                f"{path!r} has no {key}; it was not written by atlas_snapshot"
            )
    return record


def resolve_params(params):
    """Return the effective settings, merging the options with the record in src."""
    settings = {
        "base_url": params["base_url"],
        "group_id": params["group_id"],
        "cluster": params["cluster"],
        "snapshot_id": params["snapshot_id"],
        "record_path": None,
    }
    if params["src"]:
        record = read_snapshot_record(params["src"])
        settings["record_path"] = os.path.join(params["src"], SNAPSHOT_FILE)
        settings["snapshot_id"] = record["snapshot_id"]
        for key in ("group_id", "cluster", "base_url"):
            recorded = record.get(key)
            option_value = params[key]
            if key == "base_url" and option_value and recorded:
                option_value = option_value.rstrip("/")
                recorded = recorded.rstrip("/")
            if option_value and recorded and option_value != recorded:
                raise ValueError(
                    f"{key} is {option_value!r}, but the snapshot in {params['src']!r} "
                    f"belongs to {key} {recorded!r}; remove {key} or choose the "
                    "snapshot folder of that cluster"
                )
            settings[key] = option_value or recorded
    settings["base_url"] = settings["base_url"] or DEFAULT_BASE_URL
    validate_base_url(settings["base_url"])
    for key in ("group_id", "cluster", "snapshot_id"):
        if not settings[key]:
            raise ValueError(f"{key} is missing; give it, or give src")
    settings["target_cluster"] = params["target_cluster"]
    settings["target_group_id"] = params["target_group_id"] or settings["group_id"]
    if not settings["target_cluster"].strip():
        raise ValueError("target_cluster is empty; name the cluster to restore into")
    validate_wait_options(params)
    return settings


def overwrite_warning(settings):
    return (
        f"The data of Atlas cluster {settings['target_cluster']!r} in project "
        f"{settings['target_group_id']!r} is overwritten with snapshot "
        f"{settings['snapshot_id']} of cluster {settings['cluster']!r}."
    )


def check_inputs(client, settings, result):
    """Read the snapshot and the target cluster, and raise ValueError if unusable."""
    snapshot = client.get_snapshot(
        settings["group_id"], settings["cluster"], settings["snapshot_id"]
    )
    result["snapshot"] = snapshot
    status = snapshot_state(snapshot)
    if status != "completed":
        raise ValueError(
            f"snapshot {settings['snapshot_id']} of cluster {settings['cluster']!r} has "
            f"status {status!r}, and only a completed snapshot can be restored. Wait "
            "for it to complete or choose another snapshot"
        )
    target = client.get_cluster(settings["target_group_id"], settings["target_cluster"])
    state_name = target.get("stateName")
    # NOTE: which states Atlas refuses a restore in is not documented in the sources
    # used here; these three leave no cluster to restore into.
    if state_name in ("CREATING", "DELETING", "DELETED"):
        raise ValueError(
            f"target cluster {settings['target_cluster']!r} is in state "
            f"{state_name!r}, so there is no running cluster to restore into. Wait "
            "until it is IDLE or name another target_cluster"
        )
    if target.get("paused"):
        raise ValueError(
            f"target cluster {settings['target_cluster']!r} is paused; resume it in "
            "Atlas before restoring into it"
        )
    return target


def restore_and_wait(client, settings, params, result, sleep=time.sleep):
    """Create the restore job and wait for it. Return an error text or None."""
    group_id = settings["group_id"]
    cluster = settings["cluster"]
    started = time.monotonic()
    job = client.create_restore_job(
        group_id,
        cluster,
        settings["snapshot_id"],
        settings["target_cluster"],
        settings["target_group_id"],
    )
    result["changed"] = True
    job_id = job.get("id")
    result["restore_job"] = job
    if not job_id:
        raise AtlasError(
            f"Atlas accepted the restore job of snapshot {settings['snapshot_id']} "
            "but returned no job id. " + WHAT_TO_CHECK + "."
        )
    result["restore_job_id"] = job_id
    result["state"] = restore_job_state(job)

    error = None
    try:
        job, polls, _ = poll_until(
            lambda: client.get_restore_job(group_id, cluster, job_id),
            lambda document: restore_job_state(document) != "running",
            params["timeout"],
            params["poll_interval"],
            sleep=sleep,
        )
    except PollTimeout as timeout:
        job = timeout.last
        polls = timeout.polls
        error = (
            f"Atlas restore job {job_id} into cluster {settings['target_cluster']!r} "
            f"did not finish within {params['timeout']} s and is still running in "
            f"Atlas. {WHAT_TO_CHECK}, and raise timeout for the next run"
        )
    result["polls"] = polls
    result["elapsed"] = round(time.monotonic() - started, 3)
    result["restore_job"] = job
    state = restore_job_state(job)
    result["state"] = state
    if error is None and state != "finished":
        error = (
            f"Atlas restore job {job_id} of snapshot {settings['snapshot_id']} into "
            f"cluster {settings['target_cluster']!r} is {state}. {WHAT_TO_CHECK}"
        )
    return error


def run(module, client=None, sleep=time.sleep):
    params = module.params
    result = {
        "changed": False,
        "overwritten": None,
        "warning": None,
        "snapshot_id": None,
        "source": None,
        "snapshot": None,
        "restore_job_id": None,
        "restore_job": None,
        "state": None,
        "polls": 0,
        "elapsed": 0.0,
        "plan": None,
        "error": None,
    }
    try:
        settings = resolve_params(params)
    except ValueError as error:
        module.fail_json(
            msg=f"Atlas restore rejected before any request: {error}.", **result
        )

    result["snapshot_id"] = settings["snapshot_id"]
    result["source"] = {
        "group_id": settings["group_id"],
        "cluster": settings["cluster"],
    }
    result["overwritten"] = {
        "group_id": settings["target_group_id"],
        "cluster": settings["target_cluster"],
    }
    result["warning"] = overwrite_warning(settings)

    if client is None:
        client = client_from_params(params, settings["base_url"])
    failure_prefix = f"Atlas restore into cluster {settings['target_cluster']!r} failed"
    try:
        check_inputs(client, settings, result)
        if module.check_mode:
            result["changed"] = True
            result["plan"] = {
                "method": "POST",
                "path": cluster_path(settings["group_id"], settings["cluster"])
                + "/backup/restoreJobs",
                "body": {
                    "snapshotId": settings["snapshot_id"],
                    "deliveryType": "automated",
                    "targetClusterName": settings["target_cluster"],
                    "targetGroupId": settings["target_group_id"],
                },
            }
            module.exit_json(
                msg=(
                    "Check mode: would create an automated restore job. "
                    + result["warning"]
                ),
                **result,
            )
        error = restore_and_wait(client, settings, params, result, sleep=sleep)
    except (AtlasError, ValueError) as failure:
        fail_with_error(module, result, failure_prefix, failure)

    if error:
        module.fail_json(msg=f"{failure_prefix}: {error}.", **result)
    module.exit_json(
        msg=(
            f"Atlas restore job {result['restore_job_id']} finished. "
            + result["warning"].replace(" is overwritten ", " was overwritten ")
        ),
        **result,
    )


def main():
    module = AnsibleModule(
        argument_spec={
            "base_url": {"type": "str"},
            "group_id": {"type": "str"},
            "cluster": {"type": "str"},
            "snapshot_id": {"type": "str"},
            "src": {"type": "path"},
            "target_cluster": {"type": "str", "required": True},
            "target_group_id": {"type": "str"},
            "timeout": {"type": "float", "default": 3600},
            "poll_interval": {"type": "float", "default": 15},
            **connection_argument_spec(),
        },
        mutually_exclusive=[("snapshot_id", "src")],
        required_one_of=[("snapshot_id", "src")],
        supports_check_mode=True,
    )
    run_module(module, run, "atlas_restore")


if __name__ == "__main__":
    main()
