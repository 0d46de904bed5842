# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests of the Atlas API client against the local Atlas stand-in."""

from __future__ import annotations

import json
import socket
import sys
from pathlib import Path

import pytest
from ansible_collections.truebond.rollback.plugins.module_utils import _atlas

# The stand-in lives with the integration tests, which use it too.
INTEGRATION_DIR = Path(__file__).resolve().parents[3] / "integration"
if str(INTEGRATION_DIR) not in sys.path:
    sys.path.insert(0, str(INTEGRATION_DIR))

from atlas_peer import AtlasPeer

GROUP = "5f4e3d2c1b0a998877665544"
CLUSTER = "truebond-prod"


@pytest.fixture
def peer():
    with AtlasPeer() as running:
        running.add_cluster(GROUP, CLUSTER)
        yield running


def make_client(peer, private_key=None):
    return _atlas.AtlasClient(
        peer.base_url,
        peer.public_key,
        private_key or peer.private_key,
        timeout=5,
    )


def test_client_answers_digest_challenge(peer):
    cluster = make_client(peer).get_cluster(GROUP, CLUSTER)

    assert cluster["name"] == CLUSTER
    assert cluster["backupEnabled"] is True
    first, second = peer.requests
    assert first["authorization"] is None
    assert first["authorized"] is False
    assert second["authorization"].startswith("Digest ")
    assert 'username="pubkey-test"' in second["authorization"]
    assert 'realm="MMS Public API"' in second["authorization"]
    assert "qop=auth" in second["authorization"]
    assert second["authorized"] is True
    assert peer.private_key not in second["authorization"]


@pytest.mark.parametrize(
    ("call", "expected_accept"),
    [
        pytest.param(
            lambda client: client.get_cluster(GROUP, CLUSTER),
            "application/vnd.atlas.2024-08-05+json",
            id="cluster",
        ),
        pytest.param(
            lambda client: client.take_snapshot(GROUP, CLUSTER, "before rollback", 2),
            "application/vnd.atlas.2023-01-01+json",
            id="snapshot",
        ),
    ],
)
def test_client_sends_versioned_accept(peer, call, expected_accept):
    call(make_client(peer))

    (request,) = peer.authorized_requests()
    assert request["accept"] == expected_accept


def test_take_snapshot_sends_documented_body(peer):
    snapshot = make_client(peer).take_snapshot(GROUP, CLUSTER, "before rollback", 2)

    (request,) = peer.authorized_requests()
    assert request["method"] == "POST"
    assert request["path"] == (
        f"/api/atlas/v2/groups/{GROUP}/clusters/{CLUSTER}/backup/snapshots"
    )
    assert request["content_type"] == "application/vnd.atlas.2023-01-01+json"
    assert json.loads(request["body"]) == {
        "description": "before rollback",
        "retentionInDays": 2,
    }
    assert snapshot["status"] == "queued"
    assert len(snapshot["id"]) == 24


def test_create_restore_job_sends_documented_body(peer):
    snapshot_id = peer.add_snapshot(GROUP, CLUSTER)

    job = make_client(peer).create_restore_job(
        GROUP, CLUSTER, snapshot_id, CLUSTER, GROUP
    )

    (request,) = peer.authorized_requests()
    assert request["path"] == (
        f"/api/atlas/v2/groups/{GROUP}/clusters/{CLUSTER}/backup/restoreJobs"
    )
    assert json.loads(request["body"]) == {
        "snapshotId": snapshot_id,
        "deliveryType": "automated",
        "targetClusterName": CLUSTER,
        "targetGroupId": GROUP,
    }
    assert job["failed"] is False
    assert "finishedAt" not in job


def test_wrong_key_names_endpoint_not_key(peer):
    wrong_key = "wrong-private-key-987"
    client = make_client(peer, private_key=wrong_key)

    with pytest.raises(_atlas.AtlasError) as caught:
        client.get_cluster(GROUP, CLUSTER)

    message = str(caught.value)
    assert message == (
        f"Atlas API request GET /api/atlas/v2/groups/{GROUP}/clusters/{CLUSTER} on "
        f"{peer.base_url} failed with HTTP 401: digest authentication failed. Check "
        "public_key and private_key: the API key pair was rejected or the key is not "
        "allowed to use this API."
    )
    assert wrong_key not in message
    assert peer.private_key not in message
    assert caught.value.status == 401
    assert peer.authorized_requests() == []


def test_unknown_cluster_reports_error_code(peer):
    with pytest.raises(_atlas.AtlasError) as caught:
        make_client(peer).get_cluster(GROUP, "missing")

    assert str(caught.value) == (
        f"Atlas API request GET /api/atlas/v2/groups/{GROUP}/clusters/missing on "
        f"{peer.base_url} failed with HTTP 404 CLUSTER_NOT_FOUND: No cluster named "
        f"missing exists in group {GROUP}. Check group_id and the cluster name, and "
        "that the API key can see them."
    )
    assert caught.value.to_dict() == {
        "method": "GET",
        "path": f"/api/atlas/v2/groups/{GROUP}/clusters/missing",
        "status": 404,
        "error_code": "CLUSTER_NOT_FOUND",
        "detail": f"No cluster named missing exists in group {GROUP}.",
    }


def test_unreachable_server_names_endpoint():
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    client = _atlas.AtlasClient(f"http://127.0.0.1:{port}", "pub", "secret", timeout=2)

    with pytest.raises(_atlas.AtlasError) as caught:
        client.get_snapshot(GROUP, CLUSTER, "abc")

    message = str(caught.value)
    assert message.startswith(
        f"Atlas API request GET /api/atlas/v2/groups/{GROUP}/clusters/{CLUSTER}"
        f"/backup/snapshots/abc on http://127.0.0.1:{port} failed: "
    )
    assert message.endswith(
        "Check base_url and that this host can reach it (proxy settings from the "
        "environment apply)."
    )
    assert caught.value.status is None


def test_redact_scrubs_echoed_private_key():
    client = _atlas.AtlasClient("http://127.0.0.1:1", "pub", "s3cret-value")

    with pytest.raises(_atlas.AtlasError) as caught:
        client._fail("GET", "/x", 400, "INVALID", "echo s3cret-value back")

    assert "s3cret-value" not in str(caught.value)
    assert caught.value.detail == "echo ******** back"


def test_cluster_path_quotes_segments():
    assert (
        _atlas.cluster_path("g/1", "a b") == "/api/atlas/v2/groups/g%2F1/clusters/a%20b"
    )


@pytest.mark.parametrize(
    ("job", "expected"),
    [
        pytest.param({}, "running", id="new"),
        pytest.param({"finishedAt": "2026-12-04T17:00:00Z"}, "finished", id="finished"),
        pytest.param({"failed": True}, "failed", id="failed"),
        pytest.param({"cancelled": True}, "cancelled", id="cancelled"),
        pytest.param({"expired": True}, "expired", id="expired"),
        pytest.param(
            {"failed": True, "finishedAt": "2026-12-04T17:00:00Z"},
            "failed",
            id="failed-wins-over-finished",
        ),
    ],
)
def test_restore_job_state(job, expected):
    assert _atlas.restore_job_state(job) == expected


class FakeClock:
    def __init__(self):
        self.now = 100.0
        self.sleeps = []

    def clock(self):
        return self.now

    def sleep(self, seconds):
        self.sleeps.append(seconds)
        self.now += seconds


def test_poll_until_returns_first_done():
    fake = FakeClock()

    document, polls, elapsed = _atlas.poll_until(
        lambda: {"status": "completed"},
        lambda doc: doc["status"] == "completed",
        timeout=10,
        interval=1,
        sleep=fake.sleep,
        clock=fake.clock,
    )

    assert document == {"status": "completed"}
    assert polls == 1
    assert elapsed == 0
    assert fake.sleeps == []


def test_poll_until_waits_through_states():
    fake = FakeClock()
    states = iter(["queued", "inProgress", "inProgress", "completed"])

    document, polls, elapsed = _atlas.poll_until(
        lambda: {"status": next(states)},
        lambda doc: doc["status"] == "completed",
        timeout=60,
        interval=5,
        sleep=fake.sleep,
        clock=fake.clock,
    )

    assert document["status"] == "completed"
    assert polls == 4
    assert fake.sleeps == [5, 5, 5]
    assert elapsed == 15


def test_poll_until_stops_at_deadline():
    fake = FakeClock()

    with pytest.raises(_atlas.PollTimeout) as caught:
        _atlas.poll_until(
            lambda: {"status": "inProgress"},
            lambda doc: False,
            timeout=12,
            interval=5,
            sleep=fake.sleep,
            clock=fake.clock,
        )

    # The last wait is shortened so that the final poll runs at the deadline.
    assert fake.sleeps == [5, 5, 2]
    assert caught.value.polls == 4
    assert caught.value.last == {"status": "inProgress"}
    assert caught.value.elapsed == 12


@pytest.mark.parametrize(
    ("base_url", "expected"),
    [
        pytest.param(
            "cloud.mongodb.com",
            "base_url 'cloud.mongodb.com' is not an http or https URL with a host; use "
            "'https://cloud.mongodb.com'",
            id="no-scheme",
        ),
        pytest.param(
            "https://user:pw@cloud.mongodb.com",
            "base_url must not contain credentials; give public_key and private_key",
            id="credentials",
        ),
    ],
)
def test_validate_base_url_rejects(base_url, expected):
    with pytest.raises(ValueError) as caught:
        _atlas.validate_base_url(base_url)

    assert str(caught.value) == expected


def test_utc_timestamp_has_milliseconds():
    assert _atlas.utc_timestamp(1796405401.1234) == "2026-12-04T17:30:01.123Z"
