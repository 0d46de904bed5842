# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mongo_restore
short_description: Restore MongoDB databases from a verified snapshot folder
description:
  - Restores the collections of a snapshot folder written by
    M(truebond.rollback.mongo_snapshot) (with mongodump or pymongo) into a MongoDB
    server, so that the restored data replaces what is there.
  - Before any data is touched, checks that C(snapshot.json) exists and is marked
    complete, that every file has the size and SHA-256 recorded there, and that the
    snapshot's database is the target database. A snapshot of another database is
    restored only when O(database) names the target explicitly.
  - Each collection in scope is dropped, created again with its options, filled with
    the snapshot's raw BSON documents in batches with document validation bypassed,
    and its indexes are created from the metadata.
  - Collections of the target database that the snapshot does not have (for example
    one that a migration created) are listed in RV(new_collections), and dropped only
    with O(drop_new_collections).
  - Afterwards, the document count and the index names and keys of every restored
    collection must match the snapshot, and a document that failed to insert fails
    the task with its namespace and the number of failed documents.
version_added: 0.2.0
author: TrueBond SRE team (@truebond)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - truebond.rollback.mongodb
attributes:
  check_mode:
    support: full
    details:
      - Verifies the snapshot, connects, and reports the plan (collections dropped
        and restored with their counts, new collections found) without changing
        anything.
  diff_mode:
    support: full
    details:
      - The diff shows the document count of each collection in scope before and
        after the restore.
  platform:
    platforms: posix
requirements:
  - pymongo 4.0 or newer on the managed host.
  - For O(method=mongorestore), the MongoDB Database Tools 100.3.0 or newer.
options:
  src:
    description:
      - Snapshot folder, the one that contains C(snapshot.json).
    type: path
    required: true
  database:
    description:
      - Target database. Giving it explicitly also allows restoring a snapshot of
        another database into it (with mongorestore, through C(--nsFrom) and
        C(--nsTo)).
      - The default is the database in the path of O(uri). When the URI names none,
        each database of the snapshot is restored under its own name.
    type: str
  source_database:
    description:
      - Database of the snapshot to restore, for a snapshot of several databases.
        The default is every database of the snapshot, or the only one when
        O(database) is set.
    type: str
  include:
    description:
      - Namespace patterns (C(db.collection), with C(*) matching any characters) to
        restore, as mongorestore's C(--nsInclude). They match the snapshot's
        namespaces, before any renaming into O(database). Empty includes all.
    type: list
    elements: str
    default: []
  exclude:
    description:
      - Namespace patterns to leave out, as mongorestore's C(--nsExclude).
    type: list
    elements: str
    default: []
  drop_new_collections:
    description:
      - Drop the collections of the target database that are in scope but not in
        the snapshot. Without it they are only listed in RV(new_collections).
    type: bool
    default: false
  method:
    description:
      - How to restore. C(mongorestore) runs O(mongorestore_executable), C(pymongo)
        inserts with pymongo, C(auto) uses C(mongorestore) when it is found on PATH
        and C(pymongo) otherwise. The verification afterwards is the same.
    type: str
    choices: [auto, mongorestore, pymongo]
    default: auto
  mongorestore_executable:
    description:
      - Name or path of the mongorestore program.
    type: str
    default: mongorestore
  batch_size:
    description:
      - Documents per insert_many call of the pymongo path. A batch also ends before
        it exceeds 16 MiB.
    type: int
    default: 1000
notes:
  - Collection UUIDs are not preserved; the restored collections get new ones, as
    with mongorestore without C(--preserveUUID).
  - Views are created again from their metadata. Time series collections are not
    supported.
  - The C(mongorestore) path passes the URI in a temporary 0600 config file
    (C(--config)) and uses C(--drop), C(--bypassDocumentValidation),
    C(--stopOnError), C(--nsInclude), C(--nsExclude), C(--nsFrom), C(--nsTo) and
    C(--gzip). The MongoDB Database Tools could not be installed where this module
    was developed, so that path is tested only through the command lines it builds
    and a stand-in program.
"""

EXAMPLES = r"""
- name: Restore the truebond database from the capture
  truebond.rollback.mongo_restore:
    src: /var/backups/truebond/incident-20260112T101500Z/datastores/mongodb
    uri: "{{ truebond_mongodb_uri }}"
    database: truebond
    drop_new_collections: true
  register: mongo_restore

- name: Restore only the users into a scratch database to compare
  truebond.rollback.mongo_restore:
    src: /var/backups/truebond/incident-20260112T101500Z/datastores/mongodb
    uri: mongodb://127.0.0.1:27017/
    database: truebond_compare
    include: [truebond.users]
"""

RETURN = r"""
path:
  description: The snapshot folder.
  type: str
  returned: always
  sample: /var/backups/truebond/incident-20260112T101500Z/datastores/mongodb
method:
  description: The restore path used (or planned in check mode).
  type: str
  returned: always
  sample: pymongo
databases:
  description: Snapshot database to target database.
  type: dict
  returned: always
  sample: {truebond: truebond}
plan:
  description:
    - Each collection in scope, with its snapshot count and current count.
    - The current count is the estimate from the collection metadata, so that large
      collections are not scanned for the plan; the check after the restore counts
      exactly.
  type: list
  elements: dict
  returned: always
  sample:
    - namespace: truebond.users
      source: truebond.users
      documents: 1200
      current_documents: 1250
      action: drop and restore
new_collections:
  description:
    - Namespaces of the target that are in scope but not in the snapshot, with
      their document counts and whether they were (or would be) dropped.
  type: list
  elements: dict
  returned: always
  sample: [{namespace: truebond.audit_log, documents: 3, dropped: false}]
restored:
  description:
    - The collections restored, with documents inserted and indexes.
    - When the server fails part-way through the pymongo restore, the collections
      restored before the failure.
  type: list
  elements: dict
  returned: success and not check mode, and when the pymongo restore failed part-way
  sample: [{namespace: truebond.users, documents: 1200, indexes: [_id_, email_1]}]
failed_collection:
  description:
    - The namespace whose restore the server error interrupted. It may already be
      dropped or hold part of its documents.
  type: str
  returned: when the pymongo restore failed part-way
  sample: truebond.messages
not_restored:
  description: The namespaces in scope that the failed pymongo restore never reached.
  type: list
  elements: str
  returned: when the pymongo restore failed part-way
  sample: [truebond.rooms]
verification:
  description: Count and index comparison with the snapshot after the restore.
  type: dict
  returned: success and not check mode
  sample: {ok: true, collections: 3, documents: 1250, problems: []}
snapshot:
  description: The content of C(snapshot.json).
  type: dict
  returned: when the snapshot passed its checks
command:
  description: The mongorestore command line run.
  type: list
  elements: str
  returned: when O(method) resolved to C(mongorestore)
"""

import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.truebond.rollback.plugins.module_utils import _mongo
from ansible_collections.truebond.rollback.plugins.module_utils._mongo import (
    MongoSnapshotError,
)

try:
    from pymongo.errors import BulkWriteError
except ImportError:
    BulkWriteError = Exception


def resolve_databases(snapshot, database, source_database, uri):
    """Return {snapshot database: target database} or raise MongoSnapshotError.

    A snapshot of another database than the URI's is rejected unless ``database``
    is given, because restoring into a different database has to be a choice.
    """
    available = sorted(snapshot["databases"])
    if not available:
        raise MongoSnapshotError("the snapshot contains no database. Use another one.")
    if source_database is not None and source_database not in available:
        raise MongoSnapshotError(
            f"source_database {source_database!r} is not in the snapshot, which "
            f"contains {', '.join(available)}. Set source_database to one of them."
        )
    sources = [source_database] if source_database else available

    if database:
        if len(sources) > 1:
            raise MongoSnapshotError(
                f"the snapshot contains the databases {', '.join(sources)}, so "
                f"restoring into database {database!r} needs source_database to say "
                "which one."
            )
        return {sources[0]: database}

    target = _mongo.uri_database(uri)
    if target is None:
        return {source: source for source in sources}
    if target not in sources:
        raise MongoSnapshotError(
            f"the snapshot is of database {', '.join(sources)} but the target "
            f"database from the URI for {_mongo.describe_uri(uri)} is {target!r}. "
            f"Nothing was changed. To restore into a different database, set "
            f"database: {target} explicitly."
        )
    return {target: target}


def collections_in_scope(snapshot, mapping, include, exclude):
    """Return (source db, collection, entry) for the snapshot collections to restore."""
    selected = []
    for source_db in mapping:
        collections = snapshot["databases"][source_db].get("collections", {})
        for name in sorted(collections):
            if _mongo.namespace_selected(f"{source_db}.{name}", include, exclude):
                selected.append((source_db, name, collections[name]))
    return selected


def build_plan(client, snapshot, mapping, include, exclude):
    """Compare the snapshot with the target and return (plan, new_collections)."""
    plan = []
    new_collections = []
    for source_db, target_db in mapping.items():
        database = client[target_db]
        current = {
            info["name"]: info for info in _mongo.list_dumpable_collections(database)
        }
        snapshot_names = set(snapshot["databases"][source_db].get("collections", {}))
        for _, name, entry in collections_in_scope(
            snapshot, {source_db: target_db}, include, exclude
        ):
            current_count = None
            if (
                name in current
                and current[name].get("type", "collection") == "collection"
            ):
                # The plan only shows this count to the operator, so the count from
                # the collection's metadata saves a full scan of large collections.
                # The check after the restore counts exactly.
                current_count = database[name].estimated_document_count()
            plan.append(
                {
                    "namespace": f"{target_db}.{name}",
                    "source": f"{source_db}.{name}",
                    "type": entry.get("type", "collection"),
                    "documents": entry["count"],
                    "current_documents": current_count,
                    "action": "drop and restore" if name in current else "restore",
                }
            )
        for name in sorted(set(current) - snapshot_names):
            if not _mongo.namespace_selected(f"{source_db}.{name}", include, exclude):
                continue
            count = None
            if current[name].get("type", "collection") == "collection":
                count = database[name].count_documents({})
            new_collections.append(
                {
                    "namespace": f"{target_db}.{name}",
                    "documents": count,
                    "dropped": False,
                }
            )
    return plan, new_collections


def escape_namespace(text):
    """Escape * and \\ for a mongorestore namespace pattern."""
    return text.replace("\\", "\\\\").replace("*", "\\*")


def build_mongorestore_command(
    executable, config_path, src, mapping, include, exclude, compressed, selected
):
    """Build the mongorestore command line for the mapping and namespace patterns.

    Without include patterns, each mapped database is included whole and the
    exclude patterns pass through. With include patterns, the namespaces in
    ``selected`` (snapshot namespaces that passed both pattern lists) are included
    one by one, because an include such as ``*.users`` would also match the
    databases that the mapping leaves out.
    """
    command = [
        executable,
        f"--config={config_path}",
        f"--dir={src}",
        "--drop",
        "--bypassDocumentValidation",
        "--stopOnError",
    ]
    if compressed:
        command.append("--gzip")
    if include:
        for namespace in selected:
            command.append(f"--nsInclude={escape_namespace(namespace)}")
    else:
        for source_db in mapping:
            command.append(f"--nsInclude={escape_namespace(source_db)}.*")
        for pattern in exclude:
            command.append(f"--nsExclude={pattern}")
    for source_db, target_db in mapping.items():
        if source_db != target_db:
            command.append(f"--nsFrom={escape_namespace(source_db)}.*")
            command.append(f"--nsTo={escape_namespace(target_db)}.*")
    return command


_FAILED_PATTERN = re.compile(r"(\d+) document\(s\) failed to restore")


def parse_failed_documents(output):
    """Return the failed document count that mongorestore prints at the end."""
    match = _FAILED_PATTERN.search(output or "")
    return int(match.group(1)) if match else 0


def restore_with_mongorestore(module, params, snapshot, mapping, selected):
    """Run mongorestore and return its command line."""
    with _mongo.tools_config(params["uri"], "mongorestore-") as config_path:
        command = build_mongorestore_command(
            params["mongorestore_executable"],
            config_path,
            params["src"],
            mapping,
            params["include"],
            params["exclude"],
            bool(snapshot.get("gzip")),
            [f"{source_db}.{name}" for source_db, name, _ in selected],
        )
        rc, stdout, stderr = module.run_command(command)
    output = f"{stdout}\n{stderr}"
    failed = parse_failed_documents(output)
    if rc != 0 or failed:
        raise MongoSnapshotError(
            f"mongorestore failed with exit code {rc} and {failed} failed "
            f"document(s): {_mongo.redact(output.strip()[-2000:], params['uri'])}"
        )
    return command


def restore_collection(database, name, entry, src, batch_size):
    """Drop and restore one collection with pymongo and return the inserted count."""
    metadata = _mongo.read_metadata(os.path.join(src, entry["metadata"]))
    options = dict(metadata.get("options") or {})
    collection_type = metadata.get("type", entry.get("type", "collection"))
    database.drop_collection(name)

    if collection_type == "view" or "viewOn" in options:
        database.command({"create": name, **options})
        return 0
    if options:
        database.command({"create": name, **options})
    else:
        database.create_collection(name)

    collection = database.get_collection(name)
    inserted = 0
    failed = 0
    first_error = None
    batch = []
    batch_bytes = 0

    def flush():
        nonlocal inserted, failed, first_error
        try:
            collection.insert_many(
                batch, ordered=False, bypass_document_validation=True
            )
            # inserted_ids stays empty for RawBSONDocument batches (pymongo 4.20).
            inserted += len(batch)
        except BulkWriteError as error:
            details = error.details or {}
            errors = details.get("writeErrors", [])
            inserted += details.get("nInserted", 0)
            failed += len(errors) or len(batch) - details.get("nInserted", 0)
            if first_error is None and errors:
                first_error = errors[0].get("errmsg")

    if entry.get("bson"):
        for document in _mongo.iter_raw_documents(os.path.join(src, entry["bson"])):
            size = len(document.raw)
            if batch and (
                len(batch) >= batch_size or batch_bytes + size > _mongo.BATCH_BYTES
            ):
                flush()
                batch, batch_bytes = [], 0
            batch.append(document)
            batch_bytes += size
        if batch:
            flush()

    if failed:
        raise MongoSnapshotError(
            f"restoring {database.name}.{name} failed for {failed} document(s) "
            f"({inserted} inserted); first error: {first_error}. The collection is "
            "incomplete. Fix the cause and run the restore again."
        )

    specs = [
        _index_spec(index)
        for index in metadata.get("indexes", [])
        if index.get("name") != "_id_"
    ]
    if specs:
        database.command({"createIndexes": name, "indexes": specs})
    return inserted


def _index_spec(index):
    spec = dict(index)
    spec.pop("ns", None)
    return spec


def verify_restore(client, snapshot, src, mapping, selected):
    """Compare counts and index names and keys with the snapshot."""
    problems = []
    documents = 0
    for source_db, name, entry in selected:
        target_db = mapping[source_db]
        database = client[target_db]
        namespace = f"{target_db}.{name}"
        if entry.get("type", "collection") != "collection":
            if name not in database.list_collection_names():
                problems.append(f"{namespace}: view missing after the restore")
            continue
        count = database[name].count_documents({})
        documents += count
        if count != entry["count"]:
            problems.append(
                f"{namespace}: {count} documents, the snapshot has {entry['count']}"
            )
        metadata = _mongo.read_metadata(os.path.join(src, entry["metadata"]))
        expected = {
            index["name"]: _mongo.index_keys(index) for index in metadata["indexes"]
        }
        actual = {
            index["name"]: _mongo.index_keys(index)
            for index in database[name].list_indexes()
        }
        if expected != actual:
            problems.append(
                f"{namespace}: indexes {actual!r}, the snapshot has {expected!r}"
            )
    return {
        "ok": not problems,
        "collections": len(selected),
        "documents": documents,
        "problems": problems,
    }


def check_snapshot(src):
    snapshot = _mongo.load_snapshot(src)
    problems = _mongo.verify_files(src, snapshot)
    if problems:
        raise MongoSnapshotError(
            f"snapshot folder {src!r} fails its checksums: {'; '.join(problems)}. "
            "Nothing was changed. Use another capture."
        )
    return snapshot


def run(module):
    params = module.params
    src = params["src"]
    uri = params["uri"]
    _mongo.validate_timeout(params["timeout"])
    _mongo.validate_timeout(params["connect_timeout"], "connect_timeout")
    if params["batch_size"] < 1:
        raise MongoSnapshotError(
            f"batch_size must be at least 1, got {params['batch_size']!r}."
        )

    snapshot = check_snapshot(src)
    mapping = resolve_databases(
        snapshot, params["database"], params["source_database"], uri
    )
    method = _mongo.resolve_tool_method(
        params["method"], "mongorestore", params["mongorestore_executable"]
    )

    include, exclude = params["include"], params["exclude"]
    selected = collections_in_scope(snapshot, mapping, include, exclude)
    if not selected:
        raise MongoSnapshotError(
            f"no collection of the snapshot matches include {include!r} and exclude "
            f"{exclude!r}. Nothing was changed. Check the patterns (db.collection)."
        )

    client = _mongo.connect(
        uri, params["timeout"], connect_timeout=params["connect_timeout"]
    )
    try:
        plan, new_collections = build_plan(client, snapshot, mapping, include, exclude)
        for item in new_collections:
            item["dropped"] = params["drop_new_collections"]
        result = {
            "changed": True,
            "path": src,
            "method": method,
            "databases": mapping,
            "plan": plan,
            "new_collections": new_collections,
            "snapshot": snapshot,
        }
        if module._diff:
            result["diff"] = build_diff(plan, new_collections)
        if new_collections and not params["drop_new_collections"]:
            module.warn(
                "collections not in the snapshot are kept: "
                f"{', '.join(item['namespace'] for item in new_collections)}. Set "
                "drop_new_collections: true to drop them."
            )
        if module.check_mode:
            return result

        restored = []
        if method == "mongorestore":
            result["command"] = restore_with_mongorestore(
                module, params, snapshot, mapping, selected
            )
            restored = [
                {
                    "namespace": f"{mapping[s]}.{n}",
                    "documents": e["count"],
                    "indexes": e.get("indexes", []),
                }
                for s, n, e in selected
            ]
        else:
            for position, (source_db, name, entry) in enumerate(selected):
                database = client[mapping[source_db]]
                try:
                    inserted = restore_collection(
                        database, name, entry, src, params["batch_size"]
                    )
                except _mongo.PyMongoError as error:
                    raise PartialRestoreError(
                        uri, src, error, restored, selected[position:], mapping
                    ) from error
                restored.append(
                    {
                        "namespace": f"{database.name}.{name}",
                        "documents": inserted,
                        "indexes": entry.get("indexes", []),
                    }
                )
        if params["drop_new_collections"]:
            for item in new_collections:
                target_db, name = item["namespace"].split(".", 1)
                client[target_db].drop_collection(name)

        result["restored"] = restored
        verification = verify_restore(client, snapshot, src, mapping, selected)
        result["verification"] = verification
        if not verification["ok"]:
            raise VerificationError(
                "the restored data does not match the snapshot: "
                f"{'; '.join(verification['problems'])}. Run the restore again or "
                "inspect the target.",
                result,
            )
        return result
    finally:
        client.close()


class VerificationError(MongoSnapshotError):
    def __init__(self, message, result):
        super().__init__(message)
        self.result = result


class PartialRestoreError(MongoSnapshotError):
    """A server error part-way through the pymongo restore, with what it reached.

    ``remaining`` starts with the collection whose restore failed, which the restore
    may already have dropped or partly filled.
    """

    def __init__(self, uri, src, error, restored, remaining, mapping):
        done = [item["namespace"] for item in restored]
        failed, *untouched = [f"{mapping[s]}.{n}" for s, n, _e in remaining]
        super().__init__(
            f"restore into {_mongo.describe_uri(uri)} from {src!r} failed at "
            f"collection {failed}: {_mongo.redact(str(error), uri)}. Restored before "
            f"the failure: {', '.join(done) or 'none'}. {failed} may already be "
            "dropped or partly restored. Not started: "
            f"{', '.join(untouched) or 'none'}. The snapshot folder is unchanged: "
            "once MongoDB answers again, run the restore again, which restores every "
            "collection in scope."
        )
        self.result = {
            "path": src,
            "restored": restored,
            "failed_collection": failed,
            "not_restored": untouched,
        }


def build_diff(plan, new_collections):
    before = {}
    after = {}
    for item in plan:
        before[item["namespace"]] = item["current_documents"]
        after[item["namespace"]] = item["documents"]
    for item in new_collections:
        before[item["namespace"]] = item["documents"]
        after[item["namespace"]] = None if item["dropped"] else item["documents"]
    return {
        "before": {"collections": before},
        "after": {"collections": after},
        "before_header": "target document counts",
        "after_header": "document counts after the restore",
    }


def main():
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "path", "required": True},
            "database": {"type": "str"},
            "source_database": {"type": "str"},
            "include": {"type": "list", "elements": "str", "default": []},
            "exclude": {"type": "list", "elements": "str", "default": []},
            "drop_new_collections": {"type": "bool", "default": False},
            "method": {
                "type": "str",
                "choices": ["auto", "mongorestore", "pymongo"],
                "default": "auto",
            },
            "mongorestore_executable": {"type": "str", "default": "mongorestore"},
            "batch_size": {"type": "int", "default": 1000},
            **_mongo.connection_argument_spec(),
        },
        supports_check_mode=True,
    )
    _mongo.require_pymongo(module)
    src = module.params["src"]
    uri = module.params["uri"]
    try:
        result = run(module)
    except (VerificationError, PartialRestoreError) as error:
        module.fail_json(msg=str(error), **error.result)
    except MongoSnapshotError as error:
        module.fail_json(msg=str(error), path=src)
    except _mongo.PyMongoError as error:
        module.fail_json(
            msg=f"restore into {_mongo.describe_uri(uri)} from {src!r} failed: "
            f"{_mongo.redact(str(error), uri)}. The target may be partly restored. "
            "Fix the cause and run the restore again.",
            path=src,
        )
    except Exception as error:  # noqa: BLE001 - report any bug with its traceback
        _mongo.fail_unexpected(module, "mongo_restore", error, path=src)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
