# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Client for the MongoDB Atlas Administration API v2 cloud backup endpoints.

Request and response shapes follow the Atlas Go SDK reference (mongodb/atlas-sdk-go,
docs/docs/CloudBackupsApi.md, ClustersApi.md, DiskBackupOnDemandSnapshotRequest.md,
DiskBackupReplicaSet.md, DiskBackupSnapshotRestoreJob.md and ApiError.md), which is
generated from the Atlas OpenAPI specification:

- POST /api/atlas/v2/groups/{groupId}/clusters/{clusterName}/backup/snapshots takes
  ``{"description", "retentionInDays"}`` and returns a snapshot whose ``status`` is
  queued, inProgress, completed or failed.
- GET .../backup/snapshots/{snapshotId} returns that snapshot.
- POST .../backup/restoreJobs takes ``{"snapshotId", "deliveryType": "automated",
  "targetClusterName", "targetGroupId"}``. GET .../backup/restoreJobs/{restoreJobId}
  returns the job with the flags ``failed``, ``cancelled`` and ``expired`` and, once
  it is done, ``finishedAt``.
- The backup endpoints accept ``application/vnd.atlas.2023-01-01+json``. GET
  /api/atlas/v2/groups/{groupId}/clusters/{clusterName} accepts
  ``application/vnd.atlas.2024-08-05+json`` and returns ``backupEnabled`` and
  ``stateName``.
- An error body is ``{"error": <HTTP status>, "errorCode", "detail", "reason",
  "parameters"}``.

Authentication is HTTP Digest with the API key pair, the public key as user name and
the private key as password (the SDK's UseDigestAuth, and the curl examples with
``--digest`` in mongodb/docs source/includes/api/requests/cloud-backup-restores/).
ansible.module_utils.urls installs urllib's HTTPDigestAuthHandler when url_username is
set and force_basic_auth is false (ansible-core 2.19, urls.py), so the private key
is sent only as a digest response and never in clear text.
"""

from __future__ import annotations

import http.client
import json
import time
import traceback
import urllib.error
import urllib.parse

from ansible.module_utils.urls import ConnectionError as UrlsConnectionError
from ansible.module_utils.urls import Request

DEFAULT_BASE_URL = "https://cloud.mongodb.com"
BACKUP_API_VERSION = "2023-01-01"
CLUSTER_API_VERSION = "2024-08-05"
USER_AGENT = "truebond.rollback-atlas"
MAX_BODY_BYTES = 1024 * 1024
DETAIL_EXCERPT_CHARS = 300

SNAPSHOT_DONE_STATES = ("completed", "failed")
RESTORE_JOB_FAILURE_FLAGS = ("failed", "cancelled", "expired")


class AtlasError(Exception):
    """An Atlas API request that failed, with the endpoint and Atlas's error fields."""

    def __init__(
        self,
        message,
        method=None,
        path=None,
        status=None,
        error_code=None,
        detail=None,
    ):
        super().__init__(message)
        self.method = method
        self.path = path
        self.status = status
        self.error_code = error_code
        self.detail = detail

    def to_dict(self):
        return {
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "error_code": self.error_code,
            "detail": self.detail,
        }


class PollTimeout(Exception):
    """A wait that reached its deadline, with the last document that was read."""

    def __init__(self, last, polls, elapsed):
        super().__init__(f"timed out after {elapsed:.1f} s and {polls} polls")
        self.last = last
        self.polls = polls
        self.elapsed = elapsed


def api_media_type(version):
    return f"application/vnd.atlas.{version}+json"


def quote_segment(value):
    return urllib.parse.quote(str(value), safe="")


def cluster_path(group_id, cluster):
    return (
        f"/api/atlas/v2/groups/{quote_segment(group_id)}"
        f"/clusters/{quote_segment(cluster)}"
    )


def _parse_error_body(raw):
    """Return (errorCode, detail) from an Atlas error body, or (None, text)."""
    text = raw.decode("utf-8", errors="replace") if raw else ""
    try:
        document = json.loads(text)
    except ValueError:
        excerpt = " ".join(text.split())[:DETAIL_EXCERPT_CHARS]
        return None, excerpt or None
    if not isinstance(document, dict):
        return None, None
    detail = document.get("detail") or document.get("reason")
    return document.get("errorCode"), detail


def _status_hint(status):
    if status == 401:
        return (
            "Check public_key and private_key: the API key pair was rejected or the "
            "key is not allowed to use this API."
        )
    if status == 403:
        return (
            "Check that the API key has the Project Owner role in the project and, "
            "if the organization requires an API access list, that this host's "
            "address is on it."
        )
    if status == 404:
        return "Check group_id and the cluster name, and that the API key can see them."
    if status == 406:
        return "The Atlas API rejected the versioned Accept header."
    if status == 429:
        return "Atlas rate-limited the request; wait a minute and run again."
    return ""


class AtlasClient:
    """Send Atlas Administration API v2 requests with HTTP Digest authentication."""

    def __init__(
        self,
        base_url,
        public_key,
        private_key,
        timeout=30.0,
        validate_certs=True,
    ):
        self.base_url = base_url.rstrip("/")
        self.public_key = public_key
        self._private_key = private_key
        self.timeout = timeout
        self.validate_certs = validate_certs

    def _redact(self, text):
        # The private key never appears in a URL or a body that this client sends,
        # but a proxy or server could echo it back, so the message is scrubbed.
        if text and self._private_key:
            return text.replace(self._private_key, "********")
        return text

    def _fail(self, method, path, status=None, error_code=None, detail=None, reason=""):
        where = f"Atlas API request {method} {path} on {self.base_url}"
        if status is None:
            message = f"{where} failed: {reason}."
            hint = (
                "Check base_url and that this host can reach it (proxy settings "
                "from the environment apply)."
            )
        else:
            message = f"{where} failed with HTTP {status}"
            if error_code:
                message += f" {error_code}"
            if detail:
                message += f": {detail}"
            if not message.endswith("."):
                message += "."
            hint = _status_hint(status)
        if hint:
            message += " " + hint
        raise AtlasError(
            self._redact(message),
            method=method,
            path=path,
            status=status,
            error_code=error_code,
            detail=self._redact(detail),
        )

    def request(self, method, path, body=None, version=BACKUP_API_VERSION):
        """Send one request and return the decoded JSON object of the response.

        Raise AtlasError naming the method, path, HTTP status and Atlas's errorCode
        and detail on any failure.
        """
        media_type = api_media_type(version)
        headers = {"Accept": media_type}
        data = None
        if body is not None:
            data = json.dumps(body).encode("utf-8")
            headers["Content-Type"] = media_type

        request = Request(
            url_username=self.public_key,
            url_password=self._private_key,
            force_basic_auth=False,
            validate_certs=self.validate_certs,
            http_agent=USER_AGENT,
            timeout=self.timeout,
        )
        url = self.base_url + path
        try:
            response = request.open(method, url, data=data, headers=headers)
            raw = response.read(MAX_BODY_BYTES)
        except urllib.error.HTTPError as error:
            # urllib's digest handler gives up after several rejected digest responses and
            # raises HTTPError 401 without a body, so a missing body is expected.
            try:
                raw = error.read(MAX_BODY_BYTES) if error.fp is not None else b""
            except (OSError, http.client.HTTPException, AttributeError):
                raw = b""
            error_code, detail = _parse_error_body(raw)
            if detail is None and error.code == 401:
                detail = "digest authentication failed"
            self._fail(method, path, error.code, error_code, detail)
        except (
            urllib.error.URLError,
            UrlsConnectionError,
            http.client.HTTPException,
            OSError,
        ) as error:
            reason = getattr(error, "reason", error)
            if isinstance(reason, TimeoutError):
                text = f"timed out after {self.timeout} s"
            else:
                text = str(reason) or type(reason).__name__
            self._fail(method, path, reason=text)

        try:
            document = json.loads(raw.decode("utf-8")) if raw else {}
        except ValueError:
            self._fail(method, path, reason="the response body is not JSON")
        if not isinstance(document, dict):
            self._fail(method, path, reason="the response body is not a JSON object")
        return document

    def get_cluster(self, group_id, cluster):
        return self.request(
            "GET", cluster_path(group_id, cluster), version=CLUSTER_API_VERSION
        )

    def take_snapshot(self, group_id, cluster, description, retention_days):
        body = {"description": description, "retentionInDays": retention_days}
        path = cluster_path(group_id, cluster) + "/backup/snapshots"
        return self.request("POST", path, body=body)

    def get_snapshot(self, group_id, cluster, snapshot_id):
        path = (
            cluster_path(group_id, cluster)
            + f"/backup/snapshots/{quote_segment(snapshot_id)}"
        )
        return self.request("GET", path)

    def create_restore_job(
        self, group_id, cluster, snapshot_id, target_cluster, target_group_id
    ):
        body = {
            "snapshotId": snapshot_id,
            "deliveryType": "automated",
            "targetClusterName": target_cluster,
            "targetGroupId": target_group_id,
        }
        path = cluster_path(group_id, cluster) + "/backup/restoreJobs"
        return self.request("POST", path, body=body)

    def get_restore_job(self, group_id, cluster, restore_job_id):
        path = (
            cluster_path(group_id, cluster)
            + f"/backup/restoreJobs/{quote_segment(restore_job_id)}"
        )
        return self.request("GET", path)


def snapshot_state(snapshot):
    """Return the snapshot's status: queued, inProgress, completed or failed."""
    return snapshot.get("status") or "unknown"


def restore_job_state(job):
    """Return failed, cancelled, expired, finished or running for a restore job.

    A failure flag wins over finishedAt, so a job that has both counts as
    unsuccessful.
    """
    for flag in RESTORE_JOB_FAILURE_FLAGS:
        if job.get(flag):
            return flag
    if job.get("finishedAt"):
        return "finished"
    return "running"


def poll_until(
    fetch,
    is_done,
    timeout,
    interval,
    sleep=time.sleep,
    clock=time.monotonic,
):
    """Call fetch() until is_done(document) is true or timeout seconds have passed.

    Return (document, polls, elapsed). The first fetch runs at once and each later
    one runs interval seconds after the previous one, shortened so that the last
    one runs at the deadline. Raise PollTimeout with the last document when the
    deadline passes. AtlasError from fetch() propagates.
    """
    started = clock()
    deadline = started + timeout
    polls = 0
    while True:
        document = fetch()
        polls += 1
        now = clock()
        if is_done(document):
            return document, polls, now - started
        if now >= deadline:
            raise PollTimeout(document, polls, now - started)
        sleep(max(0.0, min(interval, deadline - now)))


def utc_timestamp(epoch=None):
    """Format a time as UTC ISO 8601 with milliseconds and a Z suffix."""
    if epoch is None:
        epoch = time.time()
    seconds = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(epoch))
    millis = int((epoch % 1) * 1000)
    return f"{seconds}.{millis:03d}Z"


def validate_base_url(base_url):
    parsed = urllib.parse.urlsplit(base_url)
    if parsed.scheme not in ("http", "https") or not parsed.netloc:
        raise ValueError(
            f"base_url {base_url!r} is not an http or https URL with a host; use "
            f"{DEFAULT_BASE_URL!r}"
        )
    if parsed.username or parsed.password:
        raise ValueError(
            "base_url must not contain credentials; give public_key and private_key"
        )


def connection_argument_spec():
    """Return the argument_spec entries of the options in the atlas doc fragment."""
    return {
        "public_key": {"type": "str", "required": True},
        "private_key": {"type": "str", "required": True, "no_log": True},
        "request_timeout": {"type": "float", "default": 30},
        "validate_certs": {"type": "bool", "default": True},
    }


def client_from_params(params, base_url):
    """Build an AtlasClient from the options in connection_argument_spec()."""
    return AtlasClient(
        base_url,
        params["public_key"],
        params["private_key"],
        timeout=params["request_timeout"],
        validate_certs=params["validate_certs"],
    )


def validate_wait_options(params):
    """Raise ValueError unless each wait option is greater than 0.

    The wait options are timeout, poll_interval and request_timeout.
    """
    for name in ("timeout", "poll_interval", "request_timeout"):
        if params[name] <= 0:
            raise ValueError(f"{name} must be greater than 0, got {params[name]!r}")


def fail_with_error(module, result, prefix, failure):
    """Fail the module with prefix and an AtlasError or ValueError.

    An AtlasError message already ends with a full stop and also sets
    result["error"] to its request fields.
    """
    if isinstance(failure, AtlasError):
        result["error"] = failure.to_dict()
        module.fail_json(msg=f"{prefix}: {failure}", **result)
    else:
        module.fail_json(msg=f"{prefix}: {failure}.", **result)


def run_module(module, run, module_name):
    """Call run(module) and fail with the traceback on any unexpected exception."""
    try:
        run(module)
    except Exception as error:  # noqa: BLE001 - report any surprise with its traceback
        module.fail_json(
            msg=f"Unexpected error in {module_name}: {error!r}",
            exception=traceback.format_exc(),
        )
