# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: mongo_migration_undo
short_description: Undo a MongoDB schema migration from a declarative spec
description:
  - Reverses what a migration did to one database without a full restore, so that
    documents written since the migration stay. This is the manual alternative to
    M(truebond.rollback.mongo_restore).
  - The steps run in this order, each only where there is something to do, so a
    second run reports no change. Rename fields back (C(spec.rename_fields)), unset
    fields (C(spec.unset)), drop indexes (C(spec.drop_indexes)), create indexes
    (C(spec.create_indexes)) and drop collections (C(spec.drop_collections)).
version_added: 0.2.0
author: TrueBond SRE team (@truebond)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
  - truebond.rollback.mongodb
attributes:
  check_mode:
    support: full
    details:
      - Counts the documents, indexes and collections each step would change, and
        changes nothing.
  diff_mode:
    support: full
    details:
      - The diff lists, per step, what is there before and after.
  platform:
    platforms: posix
requirements:
  - pymongo 4.0 or newer on the managed host.
options:
  database:
    description:
      - Database to change. The default is the database in the path of O(uri).
    type: str
  spec:
    description:
      - What the migration did, as a mapping with any of the keys below. Unknown keys
        and wrong shapes are errors that name the key and show an example.
      - "C(unset): fields the migration added, by collection, such as
        C({users: [email_verified, profile.theme]}). Each field is removed with
        C($unset) from every document that has it."
      - "C(drop_collections): collections the migration created, as a list of names.
        Each is dropped when it exists."
      - "C(rename_fields): renames the migration made, as a list of
        C({collection, from, to}) meaning that the migration renamed C(from) to
        C(to). The undo renames C(to) back to C(from) with C($rename) in every
        document that has C(to). When a document has both fields, C($rename)
        replaces the value of C(from) with that of C(to)."
      - "C(drop_indexes): indexes the migration created, by collection, as lists of
        index names. Each is dropped when it exists."
      - "C(create_indexes): indexes the migration dropped, by collection. Each item
        has C(keys) (a list of C([field, direction]) pairs, direction 1, -1 or a
        string such as C(2dsphere)), C(name), and optionally C(unique), C(sparse),
        C(expireAfterSeconds), C(partialFilterExpression), C(collation) and
        C(hidden). An index that exists with the same name and keys is left alone.
        One with the same name and other keys is an error unless it is also listed
        in C(drop_indexes)."
    type: dict
    required: true
"""

EXAMPLES = r"""
- name: Undo the v1.0.0 migration of the truebond database
  truebond.rollback.mongo_migration_undo:
    uri: "{{ truebond_mongodb_uri }}"
    database: truebond
    spec:
      unset:
        users: [email_verified]
      drop_collections: [audit_log]
      rename_fields:
        - {collection: users, from: name, to: display_name}
      drop_indexes:
        users: [email_1_created_at_-1]
      create_indexes:
        users:
          - {keys: [[email, 1]], name: email_1, unique: true}
"""

RETURN = r"""
database:
  description: The database changed.
  type: str
  returned: always
  sample: truebond
operations:
  description:
    - One item per step and target, with C(step), C(collection), the field, index
      or collection involved, C(count) (documents changed, or 1 for an index or a
      collection, in check mode those that would change) and C(changed).
  type: list
  elements: dict
  returned: always
  sample:
    - {step: unset, collection: users, field: email_verified, count: 1200, changed: true}
    - {step: drop_collection, collection: audit_log, count: 1, changed: true}
"""

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.truebond.rollback.plugins.module_utils import _mongo
from ansible_collections.truebond.rollback.plugins.module_utils._mongo import (
    MongoSnapshotError,
)

SPEC_KEYS = (
    "unset",
    "drop_collections",
    "rename_fields",
    "drop_indexes",
    "create_indexes",
)
INDEX_OPTIONS = (
    "unique",
    "sparse",
    "expireAfterSeconds",
    "partialFilterExpression",
    "collation",
    "hidden",
)
RENAME_KEYS = ("collection", "from", "to")


class SpecError(MongoSnapshotError):
    pass


def _require_mapping_of_lists(spec, key, example):
    value = spec.get(key) or {}
    if not isinstance(value, dict):
        raise SpecError(
            f"spec.{key} must be a mapping of collection to a list, got "
            f"{value!r}. Example: {key}: {example}"
        )
    for collection, items in value.items():
        if not isinstance(items, list):
            raise SpecError(
                f"spec.{key}.{collection} must be a list, got {items!r}. "
                f"Example: {key}: {example}"
            )
    return value


def validate_spec(spec):
    """Check the spec's keys and shapes and return it with every key present."""
    if not isinstance(spec, dict):
        raise SpecError(f"spec must be a mapping, got {spec!r}.")
    unknown = sorted(set(spec) - set(SPEC_KEYS))
    if unknown:
        raise SpecError(
            f"spec has unknown key(s) {', '.join(unknown)}. Use only "
            f"{', '.join(SPEC_KEYS)}."
        )
    if not any(spec.get(key) for key in SPEC_KEYS):
        raise SpecError(f"spec is empty. Give at least one of {', '.join(SPEC_KEYS)}.")

    unset = _require_mapping_of_lists(spec, "unset", "{users: [email_verified]}")
    for collection, fields in unset.items():
        for field in fields:
            if not isinstance(field, str) or not field or field.startswith("$"):
                raise SpecError(
                    f"spec.unset.{collection} contains {field!r}, which is not a "
                    "field name. Give field names such as email_verified or "
                    "profile.theme."
                )

    drop_collections = spec.get("drop_collections") or []
    if not isinstance(drop_collections, list) or not all(
        isinstance(name, str) and name for name in drop_collections
    ):
        raise SpecError(
            f"spec.drop_collections must be a list of collection names, got "
            f"{drop_collections!r}. Example: drop_collections: [audit_log]"
        )

    rename_fields = spec.get("rename_fields") or []
    if not isinstance(rename_fields, list):
        raise SpecError(
            f"spec.rename_fields must be a list, got {rename_fields!r}. Example: "
            "rename_fields: [{collection: users, from: name, to: display_name}]"
        )
    for position, item in enumerate(rename_fields):
        if not isinstance(item, dict) or set(item) != set(RENAME_KEYS):
            raise SpecError(
                f"spec.rename_fields[{position}] must have exactly the keys "
                f"collection, from and to, got {item!r}. 'from' is the name before "
                "the migration and 'to' the name it gave the field."
            )
        if not all(isinstance(item[key], str) and item[key] for key in RENAME_KEYS):
            raise SpecError(
                f"spec.rename_fields[{position}] values must be non-empty strings, "
                f"got {item!r}."
            )
        if item["from"] == item["to"]:
            raise SpecError(
                f"spec.rename_fields[{position}] renames {item['from']!r} to itself."
            )

    drop_indexes = _require_mapping_of_lists(spec, "drop_indexes", "{users: [email_1]}")
    for collection, names in drop_indexes.items():
        for name in names:
            if not isinstance(name, str) or not name or name == "_id_":
                raise SpecError(
                    f"spec.drop_indexes.{collection} contains {name!r}. Give index "
                    "names other than _id_, as listIndexes shows them."
                )

    create_indexes = _require_mapping_of_lists(
        spec, "create_indexes", "{users: [{keys: [[email, 1]], name: email_1}]}"
    )
    for collection, indexes in create_indexes.items():
        for position, index in enumerate(indexes):
            where = f"spec.create_indexes.{collection}[{position}]"
            _validate_index(index, where)

    return {
        "unset": unset,
        "drop_collections": drop_collections,
        "rename_fields": rename_fields,
        "drop_indexes": drop_indexes,
        "create_indexes": create_indexes,
    }


def _validate_index(index, where):
    if not isinstance(index, dict):
        raise SpecError(f"{where} must be a mapping with keys and name, got {index!r}.")
    unknown = sorted(set(index) - {"keys", "name", *INDEX_OPTIONS})
    if unknown:
        raise SpecError(
            f"{where} has unknown key(s) {', '.join(unknown)}. Use keys, name and "
            f"optionally {', '.join(INDEX_OPTIONS)}."
        )
    if not isinstance(index.get("name"), str) or not index["name"]:
        raise SpecError(f"{where} needs a name, such as name: email_1.")
    keys = index.get("keys")
    valid = isinstance(keys, list) and keys
    for pair in keys if valid else []:
        if not (
            isinstance(pair, list)
            and len(pair) == 2
            and isinstance(pair[0], str)
            and (pair[1] in (1, -1) or isinstance(pair[1], str))
            and not isinstance(pair[1], bool)
        ):
            valid = False
    if not valid:
        raise SpecError(
            f"{where}.keys must be a non-empty list of [field, direction] pairs with "
            f"direction 1, -1 or an index type such as 2dsphere, got {keys!r}. "
            "Example: keys: [[email, 1], [created_at, -1]]"
        )


def _index_document(index):
    document = {"key": {field: direction for field, direction in index["keys"]}}
    document["name"] = index["name"]
    for option in INDEX_OPTIONS:
        if option in index:
            document[option] = index[option]
    return document


def _indexes_by_name(collection):
    return {index["name"]: index for index in collection.list_indexes()}


def undo(database, spec, check_mode):
    """Apply (or, in check mode, count) each step and return the operations."""
    operations = []
    existing = set(database.list_collection_names())

    for item in spec["rename_fields"]:
        collection = database[item["collection"]]
        query = {item["to"]: {"$exists": True}}
        count = (
            collection.count_documents(query) if item["collection"] in existing else 0
        )
        if count and not check_mode:
            count = collection.update_many(
                query, {"$rename": {item["to"]: item["from"]}}
            ).modified_count
        operations.append(
            {
                "step": "rename_field",
                "collection": item["collection"],
                "field": item["to"],
                "to": item["from"],
                "count": count,
                "changed": count > 0,
            }
        )

    for name, fields in spec["unset"].items():
        collection = database[name]
        for field in fields:
            query = {field: {"$exists": True}}
            count = collection.count_documents(query) if name in existing else 0
            if count and not check_mode:
                count = collection.update_many(
                    query, {"$unset": {field: ""}}
                ).modified_count
            operations.append(
                {
                    "step": "unset",
                    "collection": name,
                    "field": field,
                    "count": count,
                    "changed": count > 0,
                }
            )

    for name, index_names in spec["drop_indexes"].items():
        present = _indexes_by_name(database[name]) if name in existing else {}
        for index_name in index_names:
            found = index_name in present
            if found and not check_mode:
                database[name].drop_index(index_name)
            operations.append(
                {
                    "step": "drop_index",
                    "collection": name,
                    "index": index_name,
                    "count": int(found),
                    "changed": found,
                }
            )

    for name, indexes in spec["create_indexes"].items():
        present = _indexes_by_name(database[name]) if name in existing else {}
        dropped = set(spec["drop_indexes"].get(name, []))
        for index in indexes:
            document = _index_document(index)
            current = present.get(index["name"])
            if current is not None and index["name"] not in dropped:
                if _mongo.index_keys(current) != [list(p) for p in index["keys"]]:
                    raise MongoSnapshotError(
                        f"index {index['name']!r} on {database.name}.{name} exists "
                        f"with keys {_mongo.index_keys(current)!r}, not "
                        f"{index['keys']!r}. Add it to spec.drop_indexes.{name} so "
                        "that it is dropped first."
                    )
                operations.append(
                    {
                        "step": "create_index",
                        "collection": name,
                        "index": index["name"],
                        "count": 0,
                        "changed": False,
                    }
                )
                continue
            if not check_mode:
                database.command({"createIndexes": name, "indexes": [document]})
            operations.append(
                {
                    "step": "create_index",
                    "collection": name,
                    "index": index["name"],
                    "count": 1,
                    "changed": True,
                }
            )

    for name in spec["drop_collections"]:
        found = name in existing
        if found and not check_mode:
            database.drop_collection(name)
        operations.append(
            {
                "step": "drop_collection",
                "collection": name,
                "count": int(found),
                "changed": found,
            }
        )
    return operations


def build_diff(operations):
    before = []
    after = []
    for operation in operations:
        if not operation["changed"]:
            continue
        target = operation.get("field") or operation.get("index")
        label = " ".join(
            part
            for part in (operation["step"], operation["collection"], target)
            if part
        )
        before.append(f"{label}: {operation['count']} to change")
        after.append(f"{label}: done")
    return {
        "before": "\n".join(before) + ("\n" if before else ""),
        "after": "\n".join(after) + ("\n" if after else ""),
    }


def run(module):
    params = module.params
    uri = params["uri"]
    spec = validate_spec(params["spec"])
    database_name = params["database"] or _mongo.uri_database(uri)
    if not database_name:
        raise MongoSnapshotError(
            f"no database: database is not set and the URI for "
            f"{_mongo.describe_uri(uri)} names none. Set database."
        )
    _mongo.validate_timeout(params["timeout"])
    _mongo.validate_timeout(params["connect_timeout"], "connect_timeout")
    client = _mongo.connect(
        uri, params["timeout"], connect_timeout=params["connect_timeout"]
    )
    try:
        operations = undo(client[database_name], spec, module.check_mode)
    finally:
        client.close()
    result = {
        "changed": any(operation["changed"] for operation in operations),
        "database": database_name,
        "operations": operations,
    }
    if module._diff:
        result["diff"] = build_diff(operations)
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "database": {"type": "str"},
            # validate_spec checks the keys, so that errors name the key and the fix.
            "spec": {"type": "dict", "required": True},
            **_mongo.connection_argument_spec(),
        },
        supports_check_mode=True,
    )
    _mongo.require_pymongo(module)
    uri = module.params["uri"]
    try:
        result = run(module)
    except MongoSnapshotError as error:
        module.fail_json(msg=str(error))
    except _mongo.PyMongoError as error:
        module.fail_json(
            msg=f"migration undo on {_mongo.describe_uri(uri)} failed: "
            f"{_mongo.redact(str(error), uri)}. Steps before the failure may have "
            "been applied. Fix the cause and run it again; the steps are idempotent."
        )
    except Exception as error:  # noqa: BLE001 - report any bug with its traceback
        _mongo.fail_unexpected(module, "mongo_migration_undo", error)
    module.exit_json(**result)


if __name__ == "__main__":
    main()
