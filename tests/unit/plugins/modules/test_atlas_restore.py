# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""End-to-end runs of atlas_restore against the local Atlas stand-in."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.truebond.rollback.plugins.modules import atlas_restore

# The stand-in lives with the integration tests, which use it too.
INTEGRATION_DIR = Path(__file__).resolve().parents[3] / "integration"
if str(INTEGRATION_DIR) not in sys.path:
    sys.path.insert(0, str(INTEGRATION_DIR))

from atlas_peer import AtlasPeer

GROUP = "5f4e3d2c1b0a998877665544"
OTHER_GROUP = "5f4e3d2c1b0a998877660000"
CLUSTER = "truebond-prod"
STAGING = "truebond-staging"
CLUSTER_PATH = f"/api/atlas/v2/groups/{GROUP}/clusters/{CLUSTER}"
WHAT_TO_CHECK = (
    "In Atlas, open the project of the source cluster, then Backup > Restores, and "
    "read the job's status and the project activity feed. Do not assume that the "
    "target cluster still holds its previous data"
)


@pytest.fixture
def peer():
    with AtlasPeer(polls_per_restore=3) as running:
        running.add_cluster(GROUP, CLUSTER)
        running.add_cluster(OTHER_GROUP, STAGING)
        yield running


@pytest.fixture
def snapshot_id(peer):
    return peer.add_snapshot(GROUP, CLUSTER)


def module_args(peer, **overrides):
    args = {
        "base_url": peer.base_url,
        "target_cluster": CLUSTER,
        "public_key": peer.public_key,
        "private_key": peer.private_key,
        "poll_interval": 0.01,
        "timeout": 10,
        "request_timeout": 5,
    }
    args.update(overrides)
    return args


def run_main(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        atlas_restore.main()
    return json.loads(capsys.readouterr().out)


def write_record(folder, peer, snapshot_id, **overrides):
    record = {
        "format": 1,
        "kind": "atlas",
        "name": "atlas-prod",
        "complete": True,
        "taken_at": "2026-12-04T17:30:01.123Z",
        "finished_at": "2026-12-04T17:34:12.456Z",
        "files": {},
        "group_id": GROUP,
        "cluster": CLUSTER,
        "snapshot_id": snapshot_id,
        "status": "completed",
        "base_url": peer.base_url,
    }
    record.update(overrides)
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "snapshot.json").write_text(json.dumps(record))
    return folder


def test_restore_waits_until_finished(peer, snapshot_id, capsys):
    result = run_main(
        module_args(peer, group_id=GROUP, cluster=CLUSTER, snapshot_id=snapshot_id),
        capsys,
    )

    assert result.get("failed") is not True, result["msg"]
    assert result["changed"] is True
    assert result["state"] == "finished"
    assert result["polls"] == 3
    job_id = result["restore_job_id"]
    assert peer.authorized_calls() == [
        ("GET", f"{CLUSTER_PATH}/backup/snapshots/{snapshot_id}"),
        ("GET", CLUSTER_PATH),
        ("POST", f"{CLUSTER_PATH}/backup/restoreJobs"),
        ("GET", f"{CLUSTER_PATH}/backup/restoreJobs/{job_id}"),
        ("GET", f"{CLUSTER_PATH}/backup/restoreJobs/{job_id}"),
        ("GET", f"{CLUSTER_PATH}/backup/restoreJobs/{job_id}"),
    ]
    post = peer.authorized_requests()[2]
    assert json.loads(post["body"]) == {
        "snapshotId": snapshot_id,
        "deliveryType": "automated",
        "targetClusterName": CLUSTER,
        "targetGroupId": GROUP,
    }
    assert result["restore_job"]["finishedAt"]


def test_restore_says_target_is_overwritten(peer, snapshot_id, capsys):
    result = run_main(
        module_args(peer, group_id=GROUP, cluster=CLUSTER, snapshot_id=snapshot_id),
        capsys,
    )

    assert result["overwritten"] == {"group_id": GROUP, "cluster": CLUSTER}
    assert result["warning"] == (
        f"The data of Atlas cluster 'truebond-prod' in project '{GROUP}' is "
        f"overwritten with snapshot {snapshot_id} of cluster 'truebond-prod'."
    )
    assert result["msg"] == (
        f"Atlas restore job {result['restore_job_id']} finished. The data of Atlas "
        f"cluster 'truebond-prod' in project '{GROUP}' was overwritten with snapshot "
        f"{snapshot_id} of cluster 'truebond-prod'."
    )


def test_restore_from_snapshot_folder(peer, snapshot_id, tmp_path, capsys):
    folder = write_record(tmp_path / "atlas-prod", peer, snapshot_id)

    result = run_main(
        module_args(
            peer,
            src=str(folder),
            target_cluster=STAGING,
            target_group_id=OTHER_GROUP,
        ),
        capsys,
    )

    assert result.get("failed") is not True, result["msg"]
    assert result["snapshot_id"] == snapshot_id
    assert result["source"] == {"group_id": GROUP, "cluster": CLUSTER}
    assert result["overwritten"] == {"group_id": OTHER_GROUP, "cluster": STAGING}
    post = peer.authorized_requests()[2]
    assert json.loads(post["body"])["targetGroupId"] == OTHER_GROUP
    assert json.loads(post["body"])["targetClusterName"] == STAGING


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param(
            {"complete": False, "status": "failed"},
            "records an incomplete Atlas snapshot (complete=False, status='failed'); "
            "it is never restored from. Choose a completed snapshot.",
            id="incomplete",
        ),
        pytest.param(
            {"kind": "mongodb"},
            "records a snapshot of kind 'mongodb', not 'atlas'; restore it with "
            "restore_mongo_method full instead.",
            id="other-kind",
        ),
    ],
)
def test_unusable_folder_rejected_before_requests(
    peer, snapshot_id, tmp_path, capsys, overrides, expected
):
    folder = write_record(tmp_path / "atlas-prod", peer, snapshot_id, **overrides)

    result = run_main(module_args(peer, src=str(folder)), capsys)

    assert result["failed"] is True
    assert result["msg"] == (
        f"Atlas restore rejected before any request: '{folder}/snapshot.json' "
        + expected
    )
    assert peer.requests == []


def test_folder_without_record_rejected(peer, tmp_path, capsys):
    folder = tmp_path / "half-written"
    folder.mkdir()

    result = run_main(module_args(peer, src=str(folder)), capsys)

    assert result["failed"] is True
    assert result["msg"] == (
        f"Atlas restore rejected before any request: snapshot folder '{folder}' has "
        "no snapshot.json, so the capture did not finish; choose another snapshot "
        "folder or give snapshot_id."
    )
    assert peer.requests == []


def test_folder_of_other_cluster_rejected(peer, snapshot_id, tmp_path, capsys):
    folder = write_record(tmp_path / "atlas-prod", peer, snapshot_id)

    result = run_main(module_args(peer, src=str(folder), cluster=STAGING), capsys)

    assert result["failed"] is True
    assert result["msg"] == (
        "Atlas restore rejected before any request: cluster is 'truebond-staging', "
        f"but the snapshot in '{folder}' belongs to cluster 'truebond-prod'; remove "
        "cluster or choose the snapshot folder of that cluster."
    )
    assert peer.requests == []


@pytest.mark.parametrize("outcome", ["failed", "cancelled", "expired"])
def test_unsuccessful_job_fails_with_job_id(peer, snapshot_id, capsys, outcome):
    peer.fail_restore = outcome

    result = run_main(
        module_args(peer, group_id=GROUP, cluster=CLUSTER, snapshot_id=snapshot_id),
        capsys,
    )

    job_id = result["restore_job_id"]
    assert result["failed"] is True
    assert result["changed"] is True
    assert result["state"] == outcome
    assert result["msg"] == (
        f"Atlas restore into cluster 'truebond-prod' failed: Atlas restore job "
        f"{job_id} of snapshot {snapshot_id} into cluster 'truebond-prod' is "
        f"{outcome}. {WHAT_TO_CHECK}."
    )


def test_restore_timeout_reports_job_id(peer, snapshot_id, capsys):
    peer.polls_per_restore = 10_000

    result = run_main(
        module_args(
            peer,
            group_id=GROUP,
            cluster=CLUSTER,
            snapshot_id=snapshot_id,
            timeout=0.2,
            poll_interval=0.05,
        ),
        capsys,
    )

    job_id = result["restore_job_id"]
    assert result["failed"] is True
    assert result["state"] == "running"
    assert result["msg"] == (
        f"Atlas restore into cluster 'truebond-prod' failed: Atlas restore job "
        f"{job_id} into cluster 'truebond-prod' did not finish within 0.2 s and is "
        f"still running in Atlas. {WHAT_TO_CHECK}, and raise timeout for the next "
        "run."
    )


def test_wrong_key_fails_without_leaking_key(peer, snapshot_id, capsys):
    wrong_key = "wrong-private-key-987"

    result = run_main(
        module_args(
            peer,
            group_id=GROUP,
            cluster=CLUSTER,
            snapshot_id=snapshot_id,
            private_key=wrong_key,
        ),
        capsys,
    )

    assert result["failed"] is True
    assert result["msg"] == (
        "Atlas restore into cluster 'truebond-prod' failed: Atlas API request GET "
        f"{CLUSTER_PATH}/backup/snapshots/{snapshot_id} on {peer.base_url} failed "
        "with HTTP 401: digest authentication failed. Check public_key and "
        "private_key: the API key pair was rejected or the key is not allowed to use "
        "this API."
    )
    assert wrong_key not in json.dumps(result)
    assert result["restore_job_id"] is None
    assert peer.authorized_requests() == []


def test_unknown_target_cluster_fails_with_404(peer, snapshot_id, capsys):
    result = run_main(
        module_args(
            peer,
            group_id=GROUP,
            cluster=CLUSTER,
            snapshot_id=snapshot_id,
            target_cluster="missing",
        ),
        capsys,
    )

    assert result["failed"] is True
    assert result["msg"] == (
        "Atlas restore into cluster 'missing' failed: Atlas API request GET "
        f"/api/atlas/v2/groups/{GROUP}/clusters/missing on {peer.base_url} failed "
        f"with HTTP 404 CLUSTER_NOT_FOUND: No cluster named missing exists in group "
        f"{GROUP}. Check group_id and the cluster name, and that the API key can see "
        "them."
    )
    assert "POST" not in {entry["method"] for entry in peer.requests}


def test_unfinished_snapshot_rejected_before_post(peer, capsys):
    snapshot_id = peer.add_snapshot(GROUP, CLUSTER, status="inProgress")
    peer.polls_per_snapshot = 10_000

    result = run_main(
        module_args(peer, group_id=GROUP, cluster=CLUSTER, snapshot_id=snapshot_id),
        capsys,
    )

    assert result["failed"] is True
    assert result["msg"] == (
        f"Atlas restore into cluster 'truebond-prod' failed: snapshot {snapshot_id} "
        "of cluster 'truebond-prod' has status 'inProgress', and only a completed "
        "snapshot can be restored. Wait for it to complete or choose another "
        "snapshot."
    )
    assert "POST" not in {entry["method"] for entry in peer.requests}


def test_check_mode_sends_only_gets(peer, snapshot_id, capsys):
    result = run_main(
        module_args(
            peer,
            group_id=GROUP,
            cluster=CLUSTER,
            snapshot_id=snapshot_id,
            _ansible_check_mode=True,
        ),
        capsys,
    )

    assert result.get("failed") is not True, result["msg"]
    assert result["changed"] is True
    assert {entry["method"] for entry in peer.requests} == {"GET"}
    assert peer.authorized_calls() == [
        ("GET", f"{CLUSTER_PATH}/backup/snapshots/{snapshot_id}"),
        ("GET", CLUSTER_PATH),
    ]
    assert peer.restore_jobs == {}
    assert result["plan"] == {
        "method": "POST",
        "path": f"{CLUSTER_PATH}/backup/restoreJobs",
        "body": {
            "snapshotId": snapshot_id,
            "deliveryType": "automated",
            "targetClusterName": CLUSTER,
            "targetGroupId": GROUP,
        },
    }
    assert result["msg"] == (
        "Check mode: would create an automated restore job. The data of Atlas "
        f"cluster 'truebond-prod' in project '{GROUP}' is overwritten with snapshot "
        f"{snapshot_id} of cluster 'truebond-prod'."
    )


def test_snapshot_id_and_src_are_exclusive(peer, tmp_path, capsys):
    result = run_main(module_args(peer, snapshot_id="abc", src=str(tmp_path)), capsys)

    assert result["failed"] is True
    assert result["msg"] == "parameters are mutually exclusive: snapshot_id|src"
