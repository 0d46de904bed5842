# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mongo_snapshot
short_description: Take a snapshot of MongoDB databases into a folder in mongodump's layout
description:
  - Dumps one or more databases into O(path) in mongodump's directory layout,
    C(<db>/<collection>.bson) with the raw BSON documents and
    C(<db>/<collection>.metadata.json) with the options, indexes, UUID, collection name
    and type as canonical extended JSON. With O(gzip), both files get a C(.gz) suffix,
    as with C(mongodump --gzip).
  - Either restore path (C(mongorestore) or M(truebond.rollback.mongo_restore) with
    pymongo) reads a snapshot taken by either dump path.
  - Writes C(snapshot.json) first with C(complete) false and, after every file is
    written and closed, again atomically with C(complete) true, the document count,
    index names and UUID of each collection and the size and SHA-256 of each file.
    A folder whose C(snapshot.json) is missing or not complete is never restored from.
  - A write error such as a full disk fails the task with the folder and its free
    space, and the folder stays marked incomplete.
version_added: 0.2.0
author: TrueBond SRE team (@truebond)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - truebond.rollback.mongodb
attributes:
  check_mode:
    support: full
    details:
      - Connects and reports the collections and their document counts that would be
        dumped, and writes nothing.
  diff_mode:
    support: none
  platform:
    platforms: posix
requirements:
  - pymongo 4.0 or newer on the managed host.
  - For O(method=mongodump), the MongoDB Database Tools 100.3.0 or newer (C(--config)).
options:
  path:
    description:
      - Snapshot folder. It is created with mode 0700 and its files get mode 0600.
    type: path
    required: true
  databases:
    description:
      - Databases to dump. The default is the database in the path of O(uri).
    type: list
    elements: str
  name:
    description:
      - Name of the data store, written to C(snapshot.json) and used in messages.
      - The default is the last component of O(path).
    type: str
  gzip:
    description:
      - Compress the BSON and metadata files with gzip (C(.bson.gz),
        C(.metadata.json.gz)).
    type: bool
    default: false
  method:
    description:
      - How to dump. C(mongodump) runs O(mongodump_executable), C(pymongo) reads each
        collection with pymongo, C(auto) uses C(mongodump) when it is found on PATH
        and C(pymongo) otherwise.
    type: str
    choices: [auto, mongodump, pymongo]
    default: auto
  mongodump_executable:
    description:
      - Name or path of the mongodump program.
    type: str
    default: mongodump
  force:
    description:
      - Write into a folder that already contains a C(snapshot.json), replacing the
        earlier snapshot's database folders. Without it, such a folder is an error.
    type: bool
    default: false
notes:
  - The pymongo writer reads with the C($natural) order and without a transaction
    or an oplog, like mongodump without C(--oplog), so writes that happen during
    the dump can be partly included. Stop the writers first for a consistent
    snapshot.
  - Collections whose names start with C(system.) are not dumped.
  - O(uri) is never written to C(snapshot.json), which records only its hosts.
  - The C(mongodump) path runs mongodump once per database with C(--config), a
    temporary 0600 YAML file holding the URI, so the password does not show in the
    process list. The MongoDB Database Tools could not be installed where this
    module was developed, so the C(mongodump) path is tested only with a stand-in
    program and the command lines it builds.
"""

EXAMPLES = r"""
- name: Take a snapshot of the truebond database
  truebond.rollback.mongo_snapshot:
    path: /var/backups/truebond/incident-20260112T101500Z/datastores/mongodb
    uri: "{{ truebond_mongodb_uri }}"
    databases: [truebond]
    gzip: true
  register: mongo_snapshot

- name: Show the document counts
  ansible.builtin.debug:
    msg: "{{ mongo_snapshot.snapshot.databases.truebond.collections }}"
"""

RETURN = r"""
path:
  description: The snapshot folder.
  type: str
  returned: always
  sample: /var/backups/truebond/incident-20260112T101500Z/datastores/mongodb
method:
  description: The dump path that was used, C(mongodump) or C(pymongo).
  type: str
  returned: always
  sample: pymongo
snapshot:
  description:
    - The content of C(snapshot.json). On a failed write it is the incomplete
      manifest, with C(complete) false and C(error).
    - In check mode, the manifest that would be written, without C(files).
  type: dict
  returned: always
  sample:
    format: 1
    kind: mongodb
    name: mongodb
    complete: true
    taken_at: "2026-12-04T17:30:01.123Z"
    finished_at: "2026-12-04T17:30:02.456Z"
    method: pymongo
    gzip: false
    server: {version: "8.2.11", address: "127.0.0.1:27017"}
    databases:
      truebond:
        collections:
          users:
            count: 2
            bson: truebond/users.bson
            metadata: truebond/users.metadata.json
            indexes: [_id_, email_1]
            uuid: 5ec3c2cf6a2a4b1ba6544c66a575e0eb
            type: collection
    files:
      truebond/users.bson: {bytes: 210, sha256: "9f86d0..."}
documents:
  description: Documents dumped (in check mode, counted) over all collections.
  type: int
  returned: always
  sample: 1250
bytes:
  description: Bytes written over all files, after compression. 0 in check mode.
  type: int
  returned: always
  sample: 524288
command:
  description:
    - The last mongodump command line run, with the path of the temporary config
      file that held the URI.
  type: list
  elements: str
  returned: when O(method) resolved to C(mongodump)
  sample: [mongodump, --config=/tmp/mongodump-x/config.yml, --db=truebond, --out=/backup]
"""

import os

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.truebond.rollback.plugins.module_utils import _mongo
from ansible_collections.truebond.rollback.plugins.module_utils._files import (
    free_space_text,
    is_disk_full,
)
from ansible_collections.truebond.rollback.plugins.module_utils._mongo import (
    MongoSnapshotError,
)


class SnapshotWriteError(MongoSnapshotError):
    """A failure after the folder was created, carrying the incomplete manifest."""


def resolve_databases(databases, uri):
    """Return the databases to dump, defaulting to the URI's database."""
    if databases:
        return list(dict.fromkeys(databases))
    database = _mongo.uri_database(uri)
    if not database:
        raise MongoSnapshotError(
            f"no database to dump: databases is empty and the URI for "
            f"{_mongo.describe_uri(uri)} names none. Set databases, for example "
            "databases: [truebond]."
        )
    return [database]


def build_mongodump_command(executable, config_path, database, out, compressed):
    """Build the mongodump command line for one database."""
    command = [
        executable,
        f"--config={config_path}",
        f"--db={database}",
        f"--out={out}",
    ]
    if compressed:
        command.append("--gzip")
    return command


def plan_snapshot(client, databases):
    """Return the collections and document counts that a snapshot would contain."""
    planned = {}
    total = 0
    for db_name in databases:
        database = client[db_name]
        collections = {}
        for info in _mongo.list_dumpable_collections(database):
            collection_type = info.get("type", "collection")
            count = 0
            if collection_type == "collection":
                count = database[info["name"]].count_documents({})
            total += count
            collections[info["name"]] = {"count": count, "type": collection_type}
        planned[db_name] = {"collections": collections}
    return planned, total


def prepare_folder(path, databases, force):
    """Create the snapshot folder, or clear an earlier snapshot when force is set."""
    manifest = os.path.join(path, _mongo.SNAPSHOT_FILE)
    if os.path.exists(manifest):
        if not force:
            raise MongoSnapshotError(
                f"snapshot folder {path!r} already contains {_mongo.SNAPSHOT_FILE}. "
                "Choose a new folder, or set force: true to replace that snapshot."
            )
        _mongo.remove_database_folders(path, databases)
    os.makedirs(path, mode=_mongo.DIRECTORY_MODE, exist_ok=True)
    os.chmod(path, _mongo.DIRECTORY_MODE)


def dump_with_pymongo(client, databases, path, snapshot):
    """Write each collection with pymongo, filling snapshot's databases and files."""
    for db_name in databases:
        database = client[db_name]
        collections = {}
        snapshot["databases"][db_name] = {"collections": collections}
        for info in _mongo.list_dumpable_collections(database):
            entry, files = _mongo.write_collection(
                database, info, path, snapshot["gzip"]
            )
            collections[info["name"]] = entry
            snapshot["files"].update(files)


def dump_with_mongodump(module, executable, uri, databases, path, snapshot):
    """Run mongodump per database, then describe the files it wrote."""
    command = None
    with _mongo.tools_config(uri, "mongodump-") as config_path:
        for db_name in databases:
            command = build_mongodump_command(
                executable, config_path, db_name, path, snapshot["gzip"]
            )
            rc, stdout, stderr = module.run_command(command)
            if rc != 0:
                raise MongoSnapshotError(
                    f"mongodump of database {db_name!r} failed with exit code {rc}: "
                    f"{_mongo.redact((stderr or stdout).strip(), uri)}"
                )
    described, files, _ = _mongo.scan_dump(path, databases)
    for db_name in databases:
        snapshot["databases"][db_name] = described.get(db_name, {"collections": {}})
    snapshot["files"].update(files)
    return command


def new_manifest(name, method, compressed, server):
    return {
        "format": _mongo.SNAPSHOT_FORMAT,
        "kind": "mongodb",
        "name": name,
        "complete": False,
        "taken_at": _mongo.utc_timestamp(),
        "finished_at": None,
        "method": method,
        "gzip": compressed,
        "server": server,
        "databases": {},
        "files": {},
    }


def take_snapshot(module, client, params, databases, method):
    """Write the snapshot and return (manifest, command)."""
    path = params["path"]
    uri = params["uri"]
    snapshot = new_manifest(
        params["name"], method, params["gzip"], _mongo.server_description(client, uri)
    )
    try:
        prepare_folder(path, databases, params["force"])
        _mongo.write_snapshot_json(path, snapshot)
    except OSError as error:
        # Nothing of the snapshot is on disk yet, so there is no folder to mark.
        reason = f"the disk is full: {error}" if is_disk_full(error) else error
        raise MongoSnapshotError(
            f"MongoDB snapshot {params['name']!r} into {path!r} could not start: "
            f"{reason}. {free_space_text(path)}. Nothing of the snapshot was "
            "written. Free space or choose another folder, then take the snapshot "
            "again."
        ) from None

    command = None
    try:
        if method == "pymongo":
            dump_with_pymongo(client, databases, path, snapshot)
        else:
            command = dump_with_mongodump(
                module, params["mongodump_executable"], uri, databases, path, snapshot
            )
    except OSError as error:
        reason = f"writing the snapshot failed: {error}"
        if is_disk_full(error):
            reason = f"the disk is full: {error}"
        message = (
            f"MongoDB snapshot {params['name']!r} into {path!r}: {reason}. "
            f"{free_space_text(path)}. The folder is marked incomplete and is "
            "never restored from. Free space or choose another folder, then take "
            "the snapshot again."
        )
        raise mark_incomplete(path, snapshot, message) from None
    except (_mongo.PyMongoError, MongoSnapshotError) as error:
        message = (
            f"MongoDB snapshot {params['name']!r} of {_mongo.describe_uri(uri)} into "
            f"{path!r} failed: {_mongo.redact(str(error), uri)}. The folder is "
            "marked incomplete and is never restored from. Fix the cause and take "
            "the snapshot again."
        )
        raise mark_incomplete(path, snapshot, message) from None

    snapshot["finished_at"] = _mongo.utc_timestamp()
    snapshot["complete"] = True
    try:
        _mongo.write_snapshot_json(path, snapshot)
    except OSError as error:
        snapshot["complete"] = False
        failure = SnapshotWriteError(
            f"MongoDB snapshot {params['name']!r}: writing "
            f"{os.path.join(path, _mongo.SNAPSHOT_FILE)!r} failed: {error}. "
            f"{free_space_text(path)}. The snapshot is incomplete. Free "
            "space or choose another folder, then take the snapshot again."
        )
        failure.snapshot = snapshot
        raise failure from None
    return snapshot, command


def mark_incomplete(path, snapshot, message):
    """Record the error in snapshot.json (still incomplete) and return the error.

    On a full disk this rewrite can fail too. The snapshot.json written at the
    start then stays, with complete false.
    """
    snapshot["complete"] = False
    snapshot["error"] = message
    snapshot["finished_at"] = _mongo.utc_timestamp()
    try:
        _mongo.write_snapshot_json(path, snapshot)
    except OSError:
        pass
    error = SnapshotWriteError(message)
    error.snapshot = snapshot
    return error


def run(module):
    params = dict(module.params)
    uri = params["uri"]
    path = params["path"]
    params["name"] = params["name"] or os.path.basename(os.path.normpath(path))
    databases = resolve_databases(params["databases"], uri)
    method = _mongo.resolve_tool_method(
        params["method"], "mongodump", params["mongodump_executable"]
    )
    _mongo.validate_timeout(params["timeout"])
    _mongo.validate_timeout(params["connect_timeout"], "connect_timeout")

    client = _mongo.connect(
        uri, params["timeout"], params["name"], params["connect_timeout"]
    )
    try:
        if module.check_mode:
            planned, total = plan_snapshot(client, databases)
            snapshot = new_manifest(
                params["name"],
                method,
                params["gzip"],
                _mongo.server_description(client, uri),
            )
            snapshot["databases"] = planned
            del snapshot["files"]
            return {
                "changed": True,
                "path": path,
                "method": method,
                "snapshot": snapshot,
                "documents": total,
                "bytes": 0,
            }
        snapshot, command = take_snapshot(module, client, params, databases, method)
    finally:
        client.close()

    for db_name, db_entry in snapshot["databases"].items():
        if not db_entry["collections"]:
            module.warn(
                f"database {db_name!r} has no collections, so its snapshot is empty. "
                "Check the database name."
            )
    result = {
        "changed": True,
        "path": path,
        "method": method,
        "snapshot": snapshot,
        "documents": sum(
            entry["count"]
            for db_entry in snapshot["databases"].values()
            for entry in db_entry["collections"].values()
        ),
        "bytes": sum(entry["bytes"] for entry in snapshot["files"].values()),
    }
    if command:
        result["command"] = command
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "databases": {"type": "list", "elements": "str"},
            "name": {"type": "str"},
            "gzip": {"type": "bool", "default": False},
            "method": {
                "type": "str",
                "choices": ["auto", "mongodump", "pymongo"],
                "default": "auto",
            },
            "mongodump_executable": {"type": "str", "default": "mongodump"},
            "force": {"type": "bool", "default": False},
            **_mongo.connection_argument_spec(),
        },
        supports_check_mode=True,
    )
    _mongo.require_pymongo(module)
    path = module.params["path"]
    try:
        result = run(module)
    except SnapshotWriteError as error:
        module.fail_json(
            msg=str(error), path=path, snapshot=getattr(error, "snapshot", None)
        )
    except MongoSnapshotError as error:
        module.fail_json(msg=str(error), path=path, snapshot=None)
    except Exception as error:  # noqa: BLE001 - report any bug with its traceback
        _mongo.fail_unexpected(module, "mongo_snapshot", error, path=path)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
