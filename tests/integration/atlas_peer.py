# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Local stand-in for the Atlas Administration API v2 cloud backup endpoints.

It serves, on 127.0.0.1 and an ephemeral port:

- GET  /api/atlas/v2/groups/{groupId}/clusters/{clusterName}
- POST /api/atlas/v2/groups/{groupId}/clusters/{clusterName}/backup/snapshots
- GET  .../backup/snapshots/{snapshotId}
- POST .../backup/restoreJobs
- GET  .../backup/restoreJobs/{restoreJobId}

Shapes are taken from the Atlas Go SDK reference (mongodb/atlas-sdk-go docs/docs:
CloudBackupsApi.md for paths and the 2023-01-01 media type of the backup endpoints,
ClustersApi.md for the 2024-08-05 media type of GET cluster,
ClusterDescription20240805.md, DiskBackupOnDemandSnapshotRequest.md,
DiskBackupReplicaSet.md, DiskBackupSnapshotRestoreJob.md, ApiError.md). The digest
challenge copies the header in the Atlas v1.0 reference examples (mongodb/docs):
``Digest realm="MMS Public API", domain="", nonce=..., algorithm=MD5, qop="auth",
stale=false``.

Every request without a valid Digest Authorization header (RFC 7616, MD5, qop=auth,
or the RFC 2069 form without qop) gets 401 with a fresh challenge first, as Atlas
does. Snapshots and restore jobs advance one state per GET, so tests control how many
polls a wait takes. ``AtlasPeer.requests`` records every request received.

NOTE: the errorCode values for 401, 400 and 406 are this stand-in's choice. Only
CLUSTER_NOT_FOUND and the error body's field names come from the sources above.
"""

from __future__ import annotations

import hashlib
import http.server
import itertools
import json
import re
import secrets
import threading
import time
import urllib.request

REALM = "MMS Public API"
BACKUP_MEDIA_TYPE = "application/vnd.atlas.2023-01-01+json"
CLUSTER_MEDIA_TYPES = (
    "application/vnd.atlas.2023-02-01+json",
    "application/vnd.atlas.2024-08-05+json",
)
ROUTE = re.compile(
    r"^/api/atlas/v2/groups/(?P<group>[^/]+)/clusters/(?P<cluster>[^/]+)"
    r"(?:/backup/(?P<kind>snapshots|restoreJobs)(?:/(?P<item>[^/]+))?)?$"
)
RESTORE_FAILURES = ("failed", "cancelled", "expired")


def md5_hex(text):
    return hashlib.md5(text.encode("utf-8")).hexdigest()


def iso_now(offset_seconds=0.0):
    epoch = time.time() + offset_seconds
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch))


def parse_digest_header(value):
    """Return the parameters of a ``Digest k=v, k="v"`` header as a dict, or None."""
    if not value or not value.startswith("Digest "):
        return None
    items = urllib.request.parse_http_list(value[len("Digest ") :])
    return urllib.request.parse_keqv_list(items)


class AtlasPeer:
    """State and configuration of the stand-in, shared with its request handler.

    polls_per_snapshot and polls_per_restore are the number of GET requests after
    which a snapshot or restore job reaches its final state. fail_snapshot makes
    snapshots end as failed, and fail_restore ("failed", "cancelled" or "expired")
    sets that flag on restore jobs instead of finishing them.
    """

    def __init__(
        self,
        public_key="pubkey-test",
        private_key="private-key-secret-0123",
        polls_per_snapshot=2,
        polls_per_restore=2,
    ):
        self.public_key = public_key
        self.private_key = private_key
        self.polls_per_snapshot = polls_per_snapshot
        self.polls_per_restore = polls_per_restore
        self.fail_snapshot = False
        self.fail_restore = None
        # group id -> cluster name -> cluster document fields
        self.clusters = {}
        self.snapshots = {}
        self.restore_jobs = {}
        self.requests = []
        self._nonces = set()
        self._ids = itertools.count(1)
        self._lock = threading.Lock()
        self._server = None
        self._thread = None

    # Setup ---------------------------------------------------------------

    def add_cluster(self, group_id, name, backup_enabled=True, state_name="IDLE"):
        self.clusters.setdefault(group_id, {})[name] = {
            "backupEnabled": backup_enabled,
            "stateName": state_name,
        }

    def add_snapshot(self, group_id, cluster, status="completed"):
        """Store a snapshot of cluster with status and return its id."""
        snapshot_id = self.new_id()
        self.snapshots[snapshot_id] = {
            "id": snapshot_id,
            "createdAt": iso_now(-3600),
            "description": "added by the test",
            "snapshotType": "onDemand",
            "status": status,
            "type": "replicaSet",
            "_group": group_id,
            "_cluster": cluster,
            "_polls": self.polls_per_snapshot if status == "completed" else 0,
            "_fail": False,
        }
        return snapshot_id

    def new_id(self):
        # Atlas ids are 24 hexadecimal digits.
        return f"{next(self._ids):024x}"

    def start(self):
        handler = type("AtlasPeerHandler", (_Handler,), {"peer": self})
        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self._server.daemon_threads = True
        # A short poll interval makes stop() return quickly.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.05},
            name="atlas-peer",
            daemon=True,
        )
        self._thread.start()
        return self

    def stop(self):
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc_info):
        self.stop()

    @property
    def base_url(self):
        host, port = self._server.server_address[:2]
        return f"http://{host}:{port}"

    # Request log -----------------------------------------------------------

    def authorized_requests(self):
        """Return the recorded requests that passed digest authentication."""
        return [entry for entry in self.requests if entry["authorized"]]

    def authorized_calls(self):
        """Return (method, path) of each authorized request, in order."""
        return [
            (entry["method"], entry["path"]) for entry in self.authorized_requests()
        ]

    # Digest authentication -------------------------------------------------

    def challenge(self):
        nonce = secrets.token_hex(16)
        with self._lock:
            self._nonces.add(nonce)
        return (
            f'Digest realm="{REALM}", domain="", nonce="{nonce}", algorithm=MD5, '
            'qop="auth", stale=false'
        )

    def check_authorization(self, method, uri, header):
        """Return True when header is a valid MD5 digest response for this request."""
        params = parse_digest_header(header)
        if not params:
            return False
        if params.get("username") != self.public_key:
            return False
        if params.get("realm") != REALM or params.get("uri") != uri:
            return False
        if params.get("algorithm", "MD5").upper() != "MD5":
            return False
        nonce = params.get("nonce")
        with self._lock:
            if nonce not in self._nonces:
                return False
        ha1 = md5_hex(f"{self.public_key}:{REALM}:{self.private_key}")
        ha2 = md5_hex(f"{method}:{uri}")
        qop = params.get("qop")
        if qop == "auth":
            expected = md5_hex(
                f"{ha1}:{nonce}:{params.get('nc')}:{params.get('cnonce')}:auth:{ha2}"
            )
        elif qop is None:
            expected = md5_hex(f"{ha1}:{nonce}:{ha2}")
        else:
            return False
        return secrets.compare_digest(expected, params.get("response", ""))

    # Resource state ----------------------------------------------------------

    def advance_snapshot(self, snapshot):
        """Move a snapshot one step: queued, inProgress, then completed or failed."""
        snapshot["_polls"] += 1
        polls = snapshot["_polls"]
        if polls >= self.polls_per_snapshot:
            snapshot["status"] = "failed" if snapshot["_fail"] else "completed"
        elif polls >= 1:
            snapshot["status"] = "inProgress"

    def advance_restore_job(self, job):
        job["_polls"] += 1
        if job["_polls"] < self.polls_per_restore:
            return
        if job["_fail"]:
            job[job["_fail"]] = True
        if job["_fail"] != "cancelled":
            job["finishedAt"] = iso_now()


def public_view(document):
    return {key: value for key, value in document.items() if not key.startswith("_")}


def error_body(status, error_code, detail, reason, parameters=()):
    return {
        "detail": detail,
        "error": status,
        "errorCode": error_code,
        "parameters": list(parameters),
        "reason": reason,
    }


class _Handler(http.server.BaseHTTPRequestHandler):
    peer: AtlasPeer
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        return

    def _send_json(self, status, document, extra_headers=()):
        payload = json.dumps(document).encode("utf-8")
        self.send_response(status)
        content_type = self.headers.get("Accept") or "application/json"
        if status >= 400 or content_type not in (
            BACKUP_MEDIA_TYPE,
            *CLUSTER_MEDIA_TYPES,
        ):
            content_type = "application/json"
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(payload)))
        for name, value in extra_headers:
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(payload)

    def _read_body(self):
        length = int(self.headers.get("Content-Length") or 0)
        return self.rfile.read(length) if length else b""

    def _handle(self, method):
        raw_body = self._read_body()
        peer = self.peer
        path = self.path.split("?", 1)[0]
        authorized = peer.check_authorization(
            method, self.path, self.headers.get("Authorization")
        )
        entry = {
            "method": method,
            "path": path,
            "accept": self.headers.get("Accept"),
            "content_type": self.headers.get("Content-Type"),
            "authorization": self.headers.get("Authorization"),
            "body": raw_body.decode("utf-8", errors="replace"),
            "authorized": authorized,
        }
        with peer._lock:
            peer.requests.append(entry)

        if not authorized:
            body = error_body(
                401,
                "UNAUTHORIZED",
                "You are not authorized for this resource.",
                "Unauthorized",
            )
            self._send_json(401, body, [("WWW-Authenticate", peer.challenge())])
            return

        match = ROUTE.match(path)
        if not match:
            self._send_json(
                404,
                error_body(404, "RESOURCE_NOT_FOUND", f"No route {path}.", "Not Found"),
            )
            return
        with peer._lock:
            status, document = self._route(method, match, raw_body)
        self._send_json(status, document)

    def do_GET(self):
        self._handle("GET")

    def do_POST(self):
        self._handle("POST")

    def do_DELETE(self):
        self._handle("DELETE")

    # Routing -----------------------------------------------------------------

    def _check_accept(self, allowed):
        accept = self.headers.get("Accept", "")
        if accept in allowed:
            return None
        return 406, error_body(
            406,
            "INVALID_ACCEPT_HEADER",
            f"Accept header {accept!r} is not one of {', '.join(allowed)}.",
            "Not Acceptable",
        )

    def _route(self, method, match, raw_body):
        peer = self.peer
        group_id = match["group"]
        cluster_name = match["cluster"]
        kind = match["kind"]
        item = match["item"]

        allowed = CLUSTER_MEDIA_TYPES if kind is None else (BACKUP_MEDIA_TYPE,)
        rejected = self._check_accept(allowed)
        if rejected:
            return rejected

        cluster = peer.clusters.get(group_id, {}).get(cluster_name)
        if cluster is None:
            return 404, error_body(
                404,
                "CLUSTER_NOT_FOUND",
                f"No cluster named {cluster_name} exists in group {group_id}.",
                "Not Found",
                [cluster_name, group_id],
            )

        if kind is None and method == "GET":
            return 200, {
                "id": peer.new_id(),
                "groupId": group_id,
                "name": cluster_name,
                "clusterType": "REPLICASET",
                "mongoDBVersion": "8.0.4",
                "paused": False,
                **cluster,
            }
        if kind == "snapshots":
            return self._snapshots(
                method, group_id, cluster_name, cluster, item, raw_body
            )
        if kind == "restoreJobs":
            return self._restore_jobs(method, group_id, cluster_name, item, raw_body)
        return 405, error_body(405, "METHOD_NOT_ALLOWED", method, "Method Not Allowed")

    def _json_body(self, raw_body):
        if self.headers.get("Content-Type") != BACKUP_MEDIA_TYPE:
            return None, (
                415,
                error_body(
                    415,
                    "UNSUPPORTED_MEDIA_TYPE",
                    f"Content-Type must be {BACKUP_MEDIA_TYPE}.",
                    "Unsupported Media Type",
                ),
            )
        try:
            document = json.loads(raw_body)
        except ValueError:
            document = None
        if not isinstance(document, dict):
            return None, (
                400,
                error_body(
                    400, "INVALID_JSON", "Body is not a JSON object.", "Bad Request"
                ),
            )
        return document, None

    def _invalid(self, attribute, detail):
        return 400, error_body(
            400, "INVALID_ATTRIBUTE", detail, "Bad Request", [attribute]
        )

    def _snapshots(self, method, group_id, cluster_name, cluster, item, raw_body):
        peer = self.peer
        if method == "POST" and item is None:
            body, rejected = self._json_body(raw_body)
            if rejected:
                return rejected
            unknown = sorted(set(body) - {"description", "retentionInDays"})
            if unknown:
                return self._invalid(unknown[0], f"Unknown attribute {unknown[0]}.")
            retention = body.get("retentionInDays")
            if retention is not None and (
                not isinstance(retention, int)
                or isinstance(retention, bool)
                or retention < 1
            ):
                return self._invalid(
                    "retentionInDays",
                    "retentionInDays must be an integer of at least 1.",
                )
            description = body.get("description")
            if description is not None and not isinstance(description, str):
                return self._invalid("description", "description must be a string.")
            if not cluster["backupEnabled"]:
                return 400, error_body(
                    400,
                    "BACKUP_NOT_ENABLED",
                    f"Cloud Backup is not enabled for cluster {cluster_name}.",
                    "Bad Request",
                    [cluster_name],
                )
            snapshot_id = peer.new_id()
            snapshot = {
                "id": snapshot_id,
                "cloudProvider": "AWS",
                "createdAt": iso_now(),
                "description": description,
                "expiresAt": iso_now((retention or 1) * 86400),
                "frequencyType": "ondemand",
                "mongodVersion": "8.0.4",
                "replicaSetName": cluster_name,
                "snapshotType": "onDemand",
                "status": "queued",
                "storageSizeBytes": 1048576,
                "type": "replicaSet",
                "_group": group_id,
                "_cluster": cluster_name,
                "_polls": 0,
                "_fail": peer.fail_snapshot,
            }
            peer.snapshots[snapshot_id] = snapshot
            return 200, public_view(snapshot)
        if method == "GET" and item is not None:
            snapshot = peer.snapshots.get(item)
            if (
                snapshot is None
                or snapshot["_group"] != group_id
                or snapshot["_cluster"] != cluster_name
            ):
                return 404, error_body(
                    404,
                    "SNAPSHOT_NOT_FOUND",
                    f"No snapshot with ID {item} exists for cluster {cluster_name}.",
                    "Not Found",
                    [item],
                )
            if snapshot["status"] not in ("completed", "failed"):
                peer.advance_snapshot(snapshot)
            return 200, public_view(snapshot)
        return 405, error_body(405, "METHOD_NOT_ALLOWED", method, "Method Not Allowed")

    def _restore_jobs(self, method, group_id, cluster_name, item, raw_body):
        peer = self.peer
        if method == "POST" and item is None:
            body, rejected = self._json_body(raw_body)
            if rejected:
                return rejected
            for attribute in (
                "snapshotId",
                "deliveryType",
                "targetClusterName",
                "targetGroupId",
            ):
                if not isinstance(body.get(attribute), str) or not body[attribute]:
                    return self._invalid(attribute, f"{attribute} is required.")
            if body["deliveryType"] != "automated":
                return self._invalid(
                    "deliveryType",
                    "This stand-in supports only deliveryType automated.",
                )
            snapshot = peer.snapshots.get(body["snapshotId"])
            if (
                snapshot is None
                or snapshot["_group"] != group_id
                or snapshot["_cluster"] != cluster_name
                or snapshot["status"] != "completed"
            ):
                return self._invalid(
                    "snapshotId",
                    f"Snapshot {body['snapshotId']} is not a completed snapshot of "
                    f"cluster {cluster_name}.",
                )
            target_group = body["targetGroupId"]
            target_cluster = body["targetClusterName"]
            if target_cluster not in peer.clusters.get(target_group, {}):
                return 404, error_body(
                    404,
                    "CLUSTER_NOT_FOUND",
                    f"No cluster named {target_cluster} exists in group {target_group}.",
                    "Not Found",
                    [target_cluster, target_group],
                )
            job_id = peer.new_id()
            job = {
                "id": job_id,
                "cancelled": False,
                "deliveryType": "automated",
                "expired": False,
                "expiresAt": iso_now(86400),
                "failed": False,
                "snapshotId": body["snapshotId"],
                "targetClusterName": target_cluster,
                "targetGroupId": target_group,
                "timestamp": snapshot["createdAt"],
                "_group": group_id,
                "_cluster": cluster_name,
                "_polls": 0,
                "_fail": peer.fail_restore,
            }
            peer.restore_jobs[job_id] = job
            return 200, public_view(job)
        if method == "GET" and item is not None:
            job = peer.restore_jobs.get(item)
            if (
                job is None
                or job["_group"] != group_id
                or job["_cluster"] != cluster_name
            ):
                return 404, error_body(
                    404,
                    "RESTORE_JOB_NOT_FOUND",
                    f"No restore job with ID {item} exists for cluster {cluster_name}.",
                    "Not Found",
                    [item],
                )
            done = job.get("finishedAt") or any(job[flag] for flag in RESTORE_FAILURES)
            if not done:
                peer.advance_restore_job(job)
            return 200, public_view(job)
        return 405, error_body(405, "METHOD_NOT_ALLOWED", method, "Method Not Allowed")
