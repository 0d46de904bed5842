# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for mongo_migration_undo against a SecantusDB server."""

from __future__ import annotations

import pytest
from ansible_collections.truebond.rollback.plugins.modules import mongo_migration_undo

# pytest's default "prepend" import mode puts this folder on sys.path, because the
# test folders have no __init__.py.
from mongo_server import (
    database_state,
    index_summary,
    run_module,
)

UNDO_SPEC = {
    "unset": {"users": ["email_verified", "profile.theme"]},
    "drop_collections": ["audit_log"],
    "rename_fields": [{"collection": "users", "from": "name", "to": "display_name"}],
    "drop_indexes": {"users": ["email_1_name_-1"]},
    "create_indexes": {
        "users": [{"keys": [["email", 1]], "name": "email_1", "unique": True}]
    },
}


def seed(database):
    database.users.insert_many(
        [
            {
                "_id": index,
                "name": f"user{index}",
                "email": f"u{index}@x",
                "profile": {"lang": "en"},
            }
            for index in range(10)
        ]
    )
    database.users.create_index([("email", 1)], name="email_1", unique=True)


def migrate(database):
    database.users.update_many({}, {"$set": {"email_verified": False}})
    database.users.update_many({"_id": {"$lt": 4}}, {"$set": {"profile.theme": "dark"}})
    database.users.update_many({}, {"$rename": {"name": "display_name"}})
    database.audit_log.insert_one({"_id": 1, "event": "migrated"})
    database.users.drop_index("email_1")
    database.users.create_index([("email", 1), ("name", -1)], name="email_1_name_-1")


def undo_args(server, database, spec=None, **overrides):
    args = {
        "uri": f"{server.uri}{database.name}",
        "spec": UNDO_SPEC if spec is None else spec,
        "timeout": 5,
    }
    args.update(overrides)
    return args


def schema_state(database):
    """Return documents (field order ignored) and indexes of every collection.

    $rename moves the field to the end of the document, so an undone rename
    restores the values but not the byte order.
    """
    return {
        name: (
            sorted(database[name].find(), key=lambda document: document["_id"]),
            index_summary(database[name]),
        )
        for name in sorted(database.list_collection_names())
    }


def counts(result):
    return {
        (
            item["step"],
            item.get("field") or item.get("index") or item["collection"],
        ): item["count"]
        for item in result["operations"]
    }


def test_undo_restores_schema_and_is_idempotent(server, database, capsys):
    seed(database)
    before = schema_state(database)
    migrate(database)

    first = run_module(mongo_migration_undo, undo_args(server, database), capsys)
    second = run_module(mongo_migration_undo, undo_args(server, database), capsys)

    assert first["changed"] is True, first
    assert counts(first) == {
        ("rename_field", "display_name"): 10,
        ("unset", "email_verified"): 10,
        ("unset", "profile.theme"): 4,
        ("drop_index", "email_1_name_-1"): 1,
        ("create_index", "email_1"): 1,
        ("drop_collection", "audit_log"): 1,
    }
    assert schema_state(database) == before
    assert second["changed"] is False
    assert all(item["count"] == 0 for item in second["operations"])


def test_check_mode_counts_and_changes_nothing(server, database, capsys):
    seed(database)
    migrate(database)
    state = database_state(database.client, database.name)

    result = run_module(
        mongo_migration_undo,
        undo_args(server, database, _ansible_check_mode=True, _ansible_diff=True),
        capsys,
    )

    assert result["changed"] is True
    assert counts(result)[("unset", "email_verified")] == 10
    assert counts(result)[("unset", "profile.theme")] == 4
    assert counts(result)[("rename_field", "display_name")] == 10
    assert database_state(database.client, database.name) == state
    assert "unset users email_verified: 10 to change" in result["diff"]["before"]
    assert "drop_collection users audit_log" not in result["diff"]["before"]
    assert "drop_collection audit_log: 1 to change" in result["diff"]["before"]


def test_index_with_other_keys_is_an_error(server, database, capsys):
    seed(database)
    database.users.drop_index("email_1")
    database.users.create_index([("email", -1)], name="email_1")
    spec = {"create_indexes": {"users": [{"keys": [["email", 1]], "name": "email_1"}]}}

    result = run_module(mongo_migration_undo, undo_args(server, database, spec), capsys)

    assert result["msg"] == (
        f"index 'email_1' on {database.name}.users exists with keys [['email', -1]], "
        "not [['email', 1]]. Add it to spec.drop_indexes.users so that it is dropped "
        "first."
    )


@pytest.mark.parametrize(
    "spec, message",
    [
        pytest.param(
            {"unsets": {"users": ["a"]}},
            "spec has unknown key(s) unsets. Use only unset, drop_collections, "
            "rename_fields, drop_indexes, create_indexes.",
            id="unknown-key",
        ),
        pytest.param(
            {},
            "spec is empty. Give at least one of unset, drop_collections, "
            "rename_fields, drop_indexes, create_indexes.",
            id="empty",
        ),
        pytest.param(
            {"unset": ["email_verified"]},
            "spec.unset must be a mapping of collection to a list, got "
            "['email_verified']. Example: unset: {users: [email_verified]}",
            id="unset-list",
        ),
        pytest.param(
            {"unset": {"users": "email_verified"}},
            "spec.unset.users must be a list, got 'email_verified'. Example: unset: "
            "{users: [email_verified]}",
            id="unset-string",
        ),
        pytest.param(
            {"unset": {"users": ["$set"]}},
            "spec.unset.users contains '$set', which is not a field name. Give field "
            "names such as email_verified or profile.theme.",
            id="unset-operator",
        ),
        pytest.param(
            {"drop_collections": "audit_log"},
            "spec.drop_collections must be a list of collection names, got "
            "'audit_log'. Example: drop_collections: [audit_log]",
            id="drop-collections-string",
        ),
        pytest.param(
            {"rename_fields": [{"collection": "users", "old": "a", "new": "b"}]},
            "spec.rename_fields[0] must have exactly the keys collection, from and to, "
            "got {'collection': 'users', 'old': 'a', 'new': 'b'}. 'from' is the name "
            "before the migration and 'to' the name it gave the field.",
            id="rename-keys",
        ),
        pytest.param(
            {"drop_indexes": {"users": ["_id_"]}},
            "spec.drop_indexes.users contains '_id_'. Give index names other than "
            "_id_, as listIndexes shows them.",
            id="drop-id-index",
        ),
        pytest.param(
            {"create_indexes": {"users": [{"keys": {"email": 1}, "name": "e"}]}},
            "spec.create_indexes.users[0].keys must be a non-empty list of [field, "
            "direction] pairs with direction 1, -1 or an index type such as 2dsphere, "
            "got {'email': 1}. Example: keys: [[email, 1], [created_at, -1]]",
            id="index-keys-mapping",
        ),
        pytest.param(
            {
                "create_indexes": {
                    "users": [{"keys": [["email", 1]], "name": "e", "uniq": True}]
                }
            },
            "spec.create_indexes.users[0] has unknown key(s) uniq. Use keys, name and "
            "optionally unique, sparse, expireAfterSeconds, partialFilterExpression, "
            "collation, hidden.",
            id="index-unknown-option",
        ),
        pytest.param(
            {"create_indexes": {"users": [{"keys": [["email", 1]]}]}},
            "spec.create_indexes.users[0] needs a name, such as name: email_1.",
            id="index-no-name",
        ),
    ],
)
def test_invalid_spec_rejected(spec, message):
    with pytest.raises(mongo_migration_undo.SpecError) as raised:
        mongo_migration_undo.validate_spec(spec)

    assert str(raised.value) == message


def test_invalid_spec_fails_module(server, database, capsys):
    result = run_module(
        mongo_migration_undo, undo_args(server, database, {"drop": ["x"]}), capsys
    )

    assert result["failed"] is True
    assert result["msg"].startswith("spec has unknown key(s) drop. ")
