# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""End-to-end runs of atlas_snapshot against the local Atlas stand-in."""

from __future__ import annotations

import json
import os
import stat
import sys
from pathlib import Path

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.truebond.rollback.plugins.modules import atlas_snapshot

# The stand-in lives with the integration tests, which use it too.
INTEGRATION_DIR = Path(__file__).resolve().parents[3] / "integration"
if str(INTEGRATION_DIR) not in sys.path:
    sys.path.insert(0, str(INTEGRATION_DIR))

from atlas_peer import AtlasPeer

GROUP = "5f4e3d2c1b0a998877665544"
CLUSTER = "truebond-prod"
CLUSTER_PATH = f"/api/atlas/v2/groups/{GROUP}/clusters/{CLUSTER}"


@pytest.fixture
def peer():
    with AtlasPeer(polls_per_snapshot=3) as running:
        running.add_cluster(GROUP, CLUSTER)
        yield running


def module_args(peer, **overrides):
    args = {
        "base_url": peer.base_url,
        "group_id": GROUP,
        "cluster": CLUSTER,
        "public_key": peer.public_key,
        "private_key": peer.private_key,
        "name": "atlas-prod",
        "poll_interval": 0.01,
        "timeout": 10,
        "request_timeout": 5,
    }
    args.update(overrides)
    return args


def run_main(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        atlas_snapshot.main()
    return json.loads(capsys.readouterr().out)


def test_snapshot_waits_until_completed(peer, tmp_path, capsys):
    dest = tmp_path / "datastores" / "atlas-prod"

    result = run_main(module_args(peer, dest=str(dest), retention_days=3), capsys)

    assert result.get("failed") is not True, result["msg"]
    assert result["changed"] is True
    assert result["status"] == "completed"
    assert result["polls"] == 3
    snapshot_id = result["snapshot_id"]
    assert peer.authorized_calls() == [
        ("GET", CLUSTER_PATH),
        ("POST", f"{CLUSTER_PATH}/backup/snapshots"),
        ("GET", f"{CLUSTER_PATH}/backup/snapshots/{snapshot_id}"),
        ("GET", f"{CLUSTER_PATH}/backup/snapshots/{snapshot_id}"),
        ("GET", f"{CLUSTER_PATH}/backup/snapshots/{snapshot_id}"),
    ]
    post = peer.authorized_requests()[1]
    assert json.loads(post["body"]) == {
        "description": "truebond.rollback capture before a rollback",
        "retentionInDays": 3,
    }
    assert result["msg"] == (
        f"Atlas snapshot {snapshot_id} of cluster 'truebond-prod' completed after 3 "
        "poll(s)"
    )


def test_snapshot_writes_record(peer, tmp_path, capsys):
    dest = tmp_path / "datastores" / "atlas-prod"

    result = run_main(module_args(peer, dest=str(dest)), capsys)

    path = dest / "snapshot.json"
    assert result["path"] == str(path)
    record = json.loads(path.read_text())
    assert record == result["snapshot"]
    assert record["format"] == 1
    assert record["kind"] == "atlas"
    assert record["name"] == "atlas-prod"
    assert record["complete"] is True
    assert record["group_id"] == GROUP
    assert record["cluster"] == CLUSTER
    assert record["snapshot_id"] == result["snapshot_id"]
    assert record["status"] == "completed"
    assert record["base_url"] == peer.base_url
    assert record["files"] == {}
    assert record["taken_at"].endswith("Z")
    assert record["finished_at"] >= record["taken_at"]
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert stat.S_IMODE(os.stat(dest).st_mode) == 0o700
    assert peer.private_key not in path.read_text()


def test_snapshot_without_dest_writes_nothing(peer, tmp_path, capsys):
    result = run_main(module_args(peer), capsys)

    assert result["path"] is None
    assert result["snapshot"]["complete"] is True
    assert list(tmp_path.iterdir()) == []


def test_failed_snapshot_fails_with_status(peer, tmp_path, capsys):
    peer.fail_snapshot = True
    dest = tmp_path / "atlas-prod"

    result = run_main(module_args(peer, dest=str(dest)), capsys)

    snapshot_id = result["snapshot_id"]
    assert result["failed"] is True
    assert result["status"] == "failed"
    assert result["msg"] == (
        f"Atlas snapshot of data store 'atlas-prod' failed: Atlas snapshot "
        f"{snapshot_id} of cluster 'truebond-prod' in project '{GROUP}' ended with "
        "status 'failed'. Check the cluster's Backup tab and the project activity "
        "feed in Atlas, then run the capture again."
    )
    record = json.loads((dest / "snapshot.json").read_text())
    assert record["complete"] is False
    assert record["status"] == "failed"


def test_snapshot_timeout_reports_last_status(peer, capsys):
    peer.polls_per_snapshot = 10_000

    result = run_main(module_args(peer, timeout=0.2, poll_interval=0.05), capsys)

    snapshot_id = result["snapshot_id"]
    assert result["failed"] is True
    assert result["status"] == "inProgress"
    assert result["snapshot"]["complete"] is False
    assert result["msg"] == (
        f"Atlas snapshot of data store 'atlas-prod' failed: Atlas snapshot "
        f"{snapshot_id} of cluster 'truebond-prod' in project '{GROUP}' did not "
        "complete within 0.2 s; its last status was 'inProgress'. It keeps running "
        "in Atlas: raise timeout, or check the cluster's Backup tab and use the "
        "snapshot id once it has completed."
    )
    assert 2 <= result["polls"] <= 10


def test_wrong_key_fails_without_leaking_key(peer, capsys):
    wrong_key = "wrong-private-key-987"

    result = run_main(module_args(peer, private_key=wrong_key), capsys)

    assert result["failed"] is True
    assert result["msg"] == (
        f"Atlas snapshot of data store 'atlas-prod' failed: Atlas API request GET "
        f"{CLUSTER_PATH} on {peer.base_url} failed with HTTP 401: digest "
        "authentication failed. Check public_key and private_key: the API key pair "
        "was rejected or the key is not allowed to use this API."
    )
    assert wrong_key not in json.dumps(result)
    assert result["error"]["status"] == 401
    assert result["snapshot_id"] is None
    assert result["snapshot"]["complete"] is False
    assert peer.authorized_requests() == []


def test_unknown_cluster_fails_with_404(peer, capsys):
    result = run_main(module_args(peer, cluster="missing", name=None), capsys)

    assert result["failed"] is True
    assert result["msg"] == (
        f"Atlas snapshot of data store 'missing' failed: Atlas API request GET "
        f"/api/atlas/v2/groups/{GROUP}/clusters/missing on {peer.base_url} failed "
        f"with HTTP 404 CLUSTER_NOT_FOUND: No cluster named missing exists in group "
        f"{GROUP}. Check group_id and the cluster name, and that the API key can see "
        "them."
    )
    assert result["error"]["error_code"] == "CLUSTER_NOT_FOUND"
    assert result["changed"] is False


def test_backup_disabled_fails_before_post(peer, capsys):
    peer.add_cluster(GROUP, "no-backup", backup_enabled=False)

    result = run_main(module_args(peer, cluster="no-backup", name=None), capsys)

    assert result["failed"] is True
    assert result["msg"] == (
        "Atlas snapshot of data store 'no-backup' failed: Atlas cluster 'no-backup' in "
        f"project '{GROUP}' has Cloud Backup disabled (backupEnabled is false), so it "
        "has no snapshots. Enable Cloud Backup for the cluster in Atlas, or capture "
        "the database with the mongodb snapshot type instead."
    )
    assert [method for method, _ in peer.authorized_calls()] == ["GET"]


def test_check_mode_sends_only_gets(peer, tmp_path, capsys):
    dest = tmp_path / "atlas-prod"

    result = run_main(
        module_args(peer, dest=str(dest), _ansible_check_mode=True), capsys
    )

    assert result.get("failed") is not True, result["msg"]
    assert result["changed"] is True
    assert {entry["method"] for entry in peer.requests} == {"GET"}
    assert peer.authorized_calls() == [("GET", CLUSTER_PATH)]
    assert result["cluster_info"] == {
        "name": CLUSTER,
        "backup_enabled": True,
        "state_name": "IDLE",
    }
    assert result["snapshot"]["snapshot_id"] is None
    assert result["path"] is None
    assert not dest.exists()
    assert result["msg"] == (
        "Check mode: would take an on-demand snapshot of Atlas cluster "
        f"'truebond-prod' in project '{GROUP}', kept 1 day(s)"
    )


@pytest.mark.parametrize(
    ("overrides", "expected"),
    [
        pytest.param(
            {"retention_days": 0},
            "Invalid options: retention_days must be at least 1, got 0.",
            id="retention",
        ),
        pytest.param(
            {"timeout": 0},
            "Invalid options: timeout must be greater than 0, got 0.0.",
            id="timeout",
        ),
        pytest.param(
            {"group_id": " "},
            "Invalid options: group_id is empty; give the Atlas group id.",
            id="group-id",
        ),
    ],
)
def test_invalid_option_rejected(peer, capsys, overrides, expected):
    result = run_main(module_args(peer, **overrides), capsys)

    assert result["failed"] is True
    assert result["msg"] == expected
    assert peer.requests == []
