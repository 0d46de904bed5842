# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""MongoDB snapshot folders in mongodump's layout, shared by the mongo_* modules.

A snapshot folder contains ``<db>/<collection>.bson`` with the raw BSON documents
one after another, and ``<db>/<collection>.metadata.json`` with the options,
indexes, uuid, collectionName and type as canonical extended JSON. Both can be
gzip-compressed with a ``.gz`` suffix. ``snapshot.json`` is the manifest with
counts and SHA-256 checksums. snapshot.json is written last, so a
folder without it, or with ``"complete": false``, is never restored from.
"""

from __future__ import annotations

import contextlib
import datetime
import gzip
import hashlib
import json
import os
import re
import shutil
import struct
import tempfile
import traceback
from urllib.parse import unquote

from ansible_collections.truebond.rollback.plugins.module_utils._files import (
    atomic_write,
    sha256_file,
)

try:
    import bson
    import pymongo
    from bson import json_util
    from bson.raw_bson import RawBSONDocument
    from pymongo.errors import PyMongoError

    HAS_PYMONGO = True
    PYMONGO_IMPORT_ERROR = None
except ImportError:
    HAS_PYMONGO = False
    PYMONGO_IMPORT_ERROR = traceback.format_exc()
    PyMongoError = Exception

SNAPSHOT_FILE = "snapshot.json"
SNAPSHOT_FORMAT = 1
DIRECTORY_MODE = 0o700
FILE_MODE = 0o600
# An insert batch ends before it passes 16 MiB, the maximum size of one BSON
# document, to keep the memory of a restore bounded.
BATCH_BYTES = 16 * 1024 * 1024
BYTES_PER_MIB = 1024 * 1024

# \A and \Z rather than ^ and $, because $ also matches before a final line break.
URI_PATTERN = re.compile(
    r"\A(?P<scheme>mongodb(?:\+srv)?)://(?:(?P<userinfo>[^@/]*)@)?"
    r"(?P<hosts>[^/?]*)(?:/(?P<database>[^?]*))?(?:\?(?P<query>.*))?\Z"
)


class MongoSnapshotError(Exception):
    """A failure with a message meant for the operator."""


def require_pymongo(module):
    """Fail the module when pymongo cannot be imported."""
    if not HAS_PYMONGO:
        from ansible.module_utils.basic import missing_required_lib

        module.fail_json(
            msg=missing_required_lib("pymongo"), exception=PYMONGO_IMPORT_ERROR
        )


def describe_uri(uri: str) -> str:
    """Return the hosts of a MongoDB URI, without credentials, for messages.

    The scheme, database and query are left out. The query can carry secrets such
    as ``tlsCertificateKeyFilePassword``, and Ansible masks every occurrence of a
    no_log value in the output, so text equal to a credential-free URI would show
    as VALUE_SPECIFIED_IN_NO_LOG_PARAMETER.
    """
    match = URI_PATTERN.match(uri or "")
    if not match:
        return "(a URI that does not start with mongodb:// or mongodb+srv://)"
    if match.group("scheme") == "mongodb+srv":
        return f"{match.group('hosts')} (DNS seed list)"
    return match.group("hosts")


def uri_database(uri: str) -> str | None:
    """Return the database named in the path of a MongoDB URI, or None."""
    match = URI_PATTERN.match(uri or "")
    if not match or not match.group("database"):
        return None
    return unquote(match.group("database"))


def connect(
    uri: str,
    timeout: float,
    name: str | None = None,
    connect_timeout: float | None = None,
):
    """Return a connected MongoClient, or raise MongoSnapshotError.

    ``timeout`` (seconds) bounds server selection, the connection and each socket
    operation's wait for a connection. The first ping must succeed within
    ``connect_timeout`` seconds, or ``timeout`` when that is shorter or
    ``connect_timeout`` is None. A server that is down thus fails the module early,
    while later operations keep the longer wait, for example during a replica set
    election. The message names the address without the user name and password.
    """
    address = describe_uri(uri)
    label = f"MongoDB data store {name!r}" if name else "MongoDB"
    timeout_ms = int(timeout * 1000)
    ping_timeout = timeout if connect_timeout is None else min(connect_timeout, timeout)
    try:
        client = pymongo.MongoClient(
            uri,
            serverSelectionTimeoutMS=timeout_ms,
            connectTimeoutMS=timeout_ms,
            waitQueueTimeoutMS=timeout_ms,
            appname="truebond.rollback",
        )
    except (PyMongoError, ValueError, TypeError) as error:
        raise MongoSnapshotError(
            f"{label} at {address}: invalid connection URI: "
            f"{redact(str(error), uri)}. Check the URI syntax."
        ) from None
    try:
        # pymongo.timeout (pymongo 4.2 and later) bounds the whole command, server
        # selection included.
        with pymongo.timeout(ping_timeout):
            client.admin.command("ping")
    except PyMongoError as error:
        client.close()
        raise MongoSnapshotError(
            f"{label} at {address} is unreachable: {redact(str(error), uri)}. "
            "Check that the server is running, the address and port are right and "
            f"the credentials are valid (waited {ping_timeout:g} s)."
        ) from None
    return client


def redact(text: str, uri: str) -> str:
    """Remove the URI's user information from a driver message, to be safe."""
    match = URI_PATTERN.match(uri or "")
    if match and match.group("userinfo"):
        userinfo = match.group("userinfo")
        for secret in {userinfo, unquote(userinfo)} | set(
            unquote(userinfo).split(":", 1)[1:]
        ):
            if secret:
                text = text.replace(secret, "********")
    return text


def server_description(client, uri: str) -> dict:
    """Return the server version and the credential-free address."""
    try:
        version = client.server_info().get("version")
    except PyMongoError:
        version = None
    return {"version": version, "address": describe_uri(uri)}


def utc_timestamp() -> str:
    """Return the current UTC time as ISO 8601 with milliseconds and a Z."""
    # datetime.UTC needs Python 3.11, and managed hosts may run an older Python.
    now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017
    return now.strftime("%Y-%m-%dT%H:%M:%S.") + f"{now.microsecond // 1000:03d}Z"


# Namespace patterns -------------------------------------------------------------


def compile_namespace_pattern(pattern: str):
    """Compile a mongorestore-style namespace pattern such as ``app.user*``.

    ``*`` matches any run of characters, including none and including dots, and
    ``\\*`` is a literal asterisk, as in mongorestore's --nsInclude and --nsExclude.
    The pattern must match the whole namespace: ``\\Z`` is used rather than ``$``,
    which also matches before a final line break.
    """
    parts = []
    index = 0
    while index < len(pattern):
        char = pattern[index]
        if char == "\\" and index + 1 < len(pattern):
            parts.append(re.escape(pattern[index + 1]))
            index += 2
            continue
        parts.append(".*" if char == "*" else re.escape(char))
        index += 1
    return re.compile(r"\A" + "".join(parts) + r"\Z", re.DOTALL)


def namespace_selected(namespace: str, include=None, exclude=None) -> bool:
    """Return whether ``namespace`` (db.collection) passes the include and exclude."""
    if include and not any(
        compile_namespace_pattern(p).match(namespace) for p in include
    ):
        return False
    excluded = exclude and any(
        compile_namespace_pattern(p).match(namespace) for p in exclude
    )
    return not excluded


# File names ---------------------------------------------------------------------


def escape_collection_name(name: str) -> str:
    """Escape a collection name for a file name, as mongodump does for % and /."""
    return name.replace("%", "%25").replace("/", "%2F")


def bson_file_name(collection: str, compressed: bool) -> str:
    return escape_collection_name(collection) + (".bson.gz" if compressed else ".bson")


def metadata_file_name(collection: str, compressed: bool) -> str:
    suffix = ".metadata.json.gz" if compressed else ".metadata.json"
    return escape_collection_name(collection) + suffix


def open_read(path: str):
    """Open a dump file for reading, decompressing it when its name ends in .gz."""
    if path.endswith(".gz"):
        return gzip.open(path, "rb")
    return open(path, "rb")


class _DigestFile:
    """A raw file that counts and hashes the bytes written to it."""

    def __init__(self, raw):
        self._raw = raw
        self.digest = hashlib.sha256()
        self.bytes = 0

    def write(self, data) -> int:
        self._raw.write(data)
        self.digest.update(data)
        self.bytes += len(data)
        return len(data)

    def flush(self):
        self._raw.flush()


class HashingWriter:
    """A file writer that records the size and SHA-256 of the bytes on disk.

    For a .gz file the digest is of the compressed stream, which is what a later
    check reads back. The file is created with mode 0600.
    """

    def __init__(self, path: str, compressed: bool):
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, FILE_MODE)
        self._raw = os.fdopen(fd, "wb")
        self._digest_file = _DigestFile(self._raw)
        self._gzip = (
            gzip.GzipFile(fileobj=self._digest_file, mode="wb", mtime=0)
            if compressed
            else None
        )

    def write(self, data) -> None:
        (self._gzip or self._digest_file).write(data)

    def close(self) -> None:
        if self._gzip is not None:
            self._gzip.close()
        self._raw.flush()
        os.fsync(self._raw.fileno())
        self._raw.close()

    def discard(self) -> None:
        """Close the file without raising, after a failed write."""
        try:
            self._raw.close()
        except OSError:
            pass

    @property
    def bytes(self) -> int:
        return self._digest_file.bytes

    @property
    def sha256(self) -> str:
        return self._digest_file.digest.hexdigest()


# Extended JSON metadata ---------------------------------------------------------


def build_metadata(collection_info: dict, indexes: list) -> dict:
    """Build mongodump's metadata document from listCollections and listIndexes.

    The keys are, in this order: options, indexes, uuid, collectionName, type.
    """
    info = collection_info.get("info") or {}
    uuid_value = info.get("uuid")
    metadata = {
        "options": dict(collection_info.get("options") or {}),
        "indexes": [_clean_index(index) for index in indexes],
        "uuid": uuid_value.hex() if isinstance(uuid_value, bytes) else "",
        "collectionName": collection_info["name"],
        "type": collection_info.get("type", "collection"),
    }
    return metadata


def _clean_index(index) -> dict:
    spec = dict(index)
    spec.pop("ns", None)
    return spec


def encode_metadata(metadata: dict) -> bytes:
    """Encode metadata as canonical extended JSON."""
    return json_util.dumps(
        metadata, json_options=json_util.CANONICAL_JSON_OPTIONS
    ).encode()


def decode_metadata(data: bytes, source: str) -> dict:
    """Decode a metadata.json document (canonical, relaxed or legacy)."""
    try:
        metadata = json_util.loads(
            data.decode("utf-8"), json_options=json_util.CANONICAL_JSON_OPTIONS
        )
    except (ValueError, UnicodeDecodeError) as error:
        raise MongoSnapshotError(
            f"metadata file {source} is not valid extended JSON: {error}. "
            "Take a new snapshot."
        ) from None
    if not isinstance(metadata, dict):
        raise MongoSnapshotError(
            f"metadata file {source} is not a JSON object. Take a new snapshot."
        )
    return metadata


def read_metadata(path: str) -> dict:
    with open_read(path) as stream:
        return decode_metadata(stream.read(), path)


def index_keys(index) -> list:
    """Return an index key document as a list of [field, direction] pairs."""
    return [
        [field, _plain_number(direction)] for field, direction in index["key"].items()
    ]


def _plain_number(value):
    if isinstance(value, float) and value.is_integer():
        return int(value)
    if isinstance(value, bson.int64.Int64):
        return int(value)
    return value


# Reading BSON files -------------------------------------------------------------


def iter_raw_documents(path: str):
    """Yield each document of a .bson or .bson.gz file as a RawBSONDocument."""
    options = bson.CodecOptions(document_class=RawBSONDocument)
    with open_read(path) as stream:
        while True:
            header = stream.read(4)
            if not header:
                return
            if len(header) < 4:
                raise MongoSnapshotError(f"BSON file {path} ends inside a document.")
            (length,) = struct.unpack("<i", header)
            if length < 5:
                raise MongoSnapshotError(
                    f"BSON file {path} has an invalid document length {length}."
                )
            body = stream.read(length - 4)
            if len(body) != length - 4:
                raise MongoSnapshotError(f"BSON file {path} ends inside a document.")
            yield RawBSONDocument(header + body, options)


def count_documents_in_file(path: str) -> int:
    """Count the documents of a BSON file by their length prefixes."""
    count = 0
    with open_read(path) as stream:
        while True:
            header = stream.read(4)
            if not header:
                return count
            if len(header) < 4:
                raise MongoSnapshotError(f"BSON file {path} ends inside a document.")
            (length,) = struct.unpack("<i", header)
            if length < 5:
                raise MongoSnapshotError(
                    f"BSON file {path} has an invalid document length {length}."
                )
            if len(stream.read(length - 4)) != length - 4:
                raise MongoSnapshotError(f"BSON file {path} ends inside a document.")
            count += 1


# Writing a snapshot with pymongo ------------------------------------------------


def list_dumpable_collections(database) -> list:
    """Return listCollections entries of a database, without system collections."""
    entries = []
    for info in database.list_collections():
        if info["name"].startswith("system."):
            continue
        entries.append(info)
    entries.sort(key=lambda entry: entry["name"])
    return entries


def write_collection(database, info: dict, folder: str, compressed: bool) -> tuple:
    """Write one collection's BSON and metadata files under ``folder``/<db>.

    Returns the snapshot.json entry and the files dict (relative path to bytes and
    sha256). A view gets only a metadata file, as mongodump writes it.
    """
    db_name = database.name
    db_dir = os.path.join(folder, db_name)
    os.makedirs(db_dir, mode=DIRECTORY_MODE, exist_ok=True)
    name = info["name"]
    collection_type = info.get("type", "collection")
    files = {}
    count = 0
    bson_relative = None

    if collection_type == "collection":
        bson_relative = f"{db_name}/{bson_file_name(name, compressed)}"
        raw = database.get_collection(
            name, codec_options=bson.CodecOptions(document_class=RawBSONDocument)
        )
        writer = HashingWriter(os.path.join(folder, bson_relative), compressed)
        try:
            for document in raw.find({}, sort=[("$natural", 1)], batch_size=1000):
                writer.write(document.raw)
                count += 1
            writer.close()
        except BaseException:
            writer.discard()
            raise
        files[bson_relative] = {"bytes": writer.bytes, "sha256": writer.sha256}
        indexes = list(database.get_collection(name).list_indexes())
    else:
        indexes = []

    metadata = build_metadata(info, indexes)
    metadata_relative = f"{db_name}/{metadata_file_name(name, compressed)}"
    writer = HashingWriter(os.path.join(folder, metadata_relative), compressed)
    try:
        writer.write(encode_metadata(metadata))
        writer.close()
    except BaseException:
        writer.discard()
        raise
    files[metadata_relative] = {"bytes": writer.bytes, "sha256": writer.sha256}

    entry = {
        "count": count,
        "bson": bson_relative,
        "metadata": metadata_relative,
        "indexes": [index["name"] for index in metadata["indexes"]],
        "uuid": metadata["uuid"],
        "type": collection_type,
    }
    return entry, files


# Reading a dump folder ----------------------------------------------------------


def _unescape_collection_file(stem: str) -> str:
    return unquote(stem)


def scan_dump(folder: str, databases=None) -> tuple:
    """Describe a mongodump-layout folder: collections, counts and checksums.

    Returns (databases, files, compressed) in snapshot.json's shapes. Used after
    mongodump and for a dump folder made by other means. Only the database folders
    in ``databases`` are read when it is given.
    """
    described = {}
    files = {}
    compressed_seen = set()
    for db_name in sorted(os.listdir(folder)):
        db_dir = os.path.join(folder, db_name)
        if not os.path.isdir(db_dir) or (databases and db_name not in databases):
            continue
        collections = {}
        for file_name in sorted(os.listdir(db_dir)):
            for suffix, compressed in (
                (".metadata.json", False),
                (".metadata.json.gz", True),
            ):
                if file_name.endswith(suffix):
                    break
            else:
                continue
            stem = file_name[: -len(suffix)]
            metadata_path = os.path.join(db_dir, file_name)
            metadata = read_metadata(metadata_path)
            name = metadata.get("collectionName") or _unescape_collection_file(stem)
            collection_type = metadata.get("type", "collection")
            bson_name = stem + (".bson.gz" if compressed else ".bson")
            bson_path = os.path.join(db_dir, bson_name)
            bson_relative = None
            count = 0
            if os.path.exists(bson_path):
                bson_relative = f"{db_name}/{bson_name}"
                count = count_documents_in_file(bson_path)
                files[bson_relative] = _file_entry(bson_path)
            elif collection_type == "collection":
                raise MongoSnapshotError(
                    f"dump folder {folder} has {db_name}/{file_name} but no "
                    f"{bson_name}. Take a new snapshot."
                )
            metadata_relative = f"{db_name}/{file_name}"
            files[metadata_relative] = _file_entry(metadata_path)
            compressed_seen.add(compressed)
            uuid_value = metadata.get("uuid", "")
            collections[name] = {
                "count": count,
                "bson": bson_relative,
                "metadata": metadata_relative,
                "indexes": [index["name"] for index in metadata.get("indexes", [])],
                "uuid": uuid_value if isinstance(uuid_value, str) else "",
                "type": collection_type,
            }
        described[db_name] = {"collections": collections}
    return described, files, compressed_seen == {True}


def _file_entry(path: str) -> dict:
    return {"bytes": os.path.getsize(path), "sha256": sha256_file(path)}


# snapshot.json ------------------------------------------------------------------


def write_snapshot_json(folder: str, snapshot: dict) -> None:
    """Write snapshot.json atomically with mode 0600."""
    data = (json.dumps(snapshot, indent=2, sort_keys=True) + "\n").encode()
    atomic_write(os.path.join(folder, SNAPSHOT_FILE), data, mode=FILE_MODE)


def load_snapshot(folder: str) -> dict:
    """Read and check a MongoDB snapshot folder's snapshot.json.

    Raises MongoSnapshotError for a missing folder or file, invalid JSON, another
    kind of snapshot or one that is not marked complete.
    """
    if not os.path.isdir(folder):
        raise MongoSnapshotError(
            f"snapshot folder {folder!r} does not exist or is not a directory. "
            "Give the datastores/<name> folder of a capture."
        )
    path = os.path.join(folder, SNAPSHOT_FILE)
    if not os.path.isfile(path):
        raise MongoSnapshotError(
            f"snapshot folder {folder!r} has no {SNAPSHOT_FILE}, so the snapshot never "
            "finished and is not restored from. Use another capture."
        )
    try:
        with open(path, "rb") as stream:
            snapshot = json.loads(stream.read().decode("utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as error:
        raise MongoSnapshotError(
            f"{path} cannot be read as JSON: {error}. Use another capture."
        ) from None
    if not isinstance(snapshot, dict):
        raise MongoSnapshotError(f"{path} is not a JSON object. Use another capture.")
    if snapshot.get("kind") != "mongodb":
        raise MongoSnapshotError(
            f"{path} describes a {snapshot.get('kind')!r} snapshot, not 'mongodb'. "
            "Give the folder of a MongoDB snapshot."
        )
    if snapshot.get("complete") is not True:
        raise MongoSnapshotError(
            f"{path} is marked incomplete (complete: {snapshot.get('complete')!r}), "
            f"so the snapshot did not finish. Reason recorded: "
            f"{snapshot.get('error') or 'none'}. Use another capture."
        )
    if not isinstance(snapshot.get("databases"), dict) or not isinstance(
        snapshot.get("files"), dict
    ):
        raise MongoSnapshotError(
            f"{path} lacks the 'databases' or 'files' mapping. Use another capture."
        )
    return snapshot


def verify_files(folder: str, snapshot: dict) -> list:
    """Return the problems found when checking every listed file's size and SHA-256."""
    problems = []
    for relative, expected in sorted(snapshot["files"].items()):
        path = os.path.join(folder, relative)
        if os.path.normpath(relative).startswith("..") or os.path.isabs(relative):
            problems.append(f"{relative}: path leaves the snapshot folder")
            continue
        if not os.path.isfile(path):
            problems.append(f"{relative}: missing")
            continue
        size = os.path.getsize(path)
        if size != expected.get("bytes"):
            problems.append(
                f"{relative}: {size} bytes, snapshot.json records {expected.get('bytes')}"
            )
            continue
        digest = sha256_file(path)
        if digest != expected.get("sha256"):
            problems.append(
                f"{relative}: SHA-256 {digest}, snapshot.json records "
                f"{expected.get('sha256')}"
            )
    for db_name, db_entry in snapshot["databases"].items():
        for name, entry in db_entry.get("collections", {}).items():
            for key in ("bson", "metadata"):
                relative = entry.get(key)
                if relative and relative not in snapshot["files"]:
                    problems.append(
                        f"{relative}: used by {db_name}.{name} but has no checksum"
                    )
    return problems


# MongoDB Database Tools ---------------------------------------------------------


def uri_for_tools(uri):
    """Return the URI without its database path, for mongodump --db/mongorestore.

    The database tools reject a URI database that differs from --db or --nsInclude.
    The path database is also the default authSource, so it becomes an explicit
    authSource when the URI has credentials and no authSource of its own.
    """
    match = URI_PATTERN.match(uri)
    if not match or not match.group("database"):
        return uri
    query = match.group("query") or ""
    parameters = [part for part in query.split("&") if part]
    has_auth_source = any(p.lower().startswith("authsource=") for p in parameters)
    if match.group("userinfo") is not None and not has_auth_source:
        parameters.append(f"authSource={match.group('database')}")
    userinfo = match.group("userinfo")
    prefix = f"{match.group('scheme')}://"
    if userinfo is not None:
        prefix += f"{userinfo}@"
    result = f"{prefix}{match.group('hosts')}/"
    if parameters:
        result += "?" + "&".join(parameters)
    return result


# Characters that yaml_quoted writes as \u escapes. PyYAML 6 rejects the C0 and C1
# controls, DEL, U+FFFE and U+FFFF, and reads U+0085 as a line break that it folds
# into a space. YAML also counts U+2028 and U+2029 as line breaks, so they are
# escaped along with the byte order mark, and surrogates have no UTF-8 form.
_YAML_UNSAFE = re.compile(
    "[^\x20-\x7e\xa0-\u2027\u202a-\ud7ff\ue000-\ufefe\uff00-\ufffd"
    "\U00010000-\U0010ffff]"
)


def yaml_quoted(text: str) -> str:
    """Return text as a YAML double-quoted scalar that PyYAML reads back unchanged.

    json.dumps escapes the quote, the backslash and the C0 controls, and YAML reads
    those escapes the same way. Characters outside the Basic Multilingual Plane
    stay as they are, because YAML reads the surrogate pair that json.dumps would
    write for them as two lone surrogates. The file must then be written as UTF-8.
    """
    quoted = json.dumps(text, ensure_ascii=False)
    return _YAML_UNSAFE.sub(lambda match: f"\\u{ord(match.group()):04x}", quoted)


def write_tools_config(directory, uri):
    """Write a 0600 UTF-8 YAML config file with the URI for --config, return its path."""
    path = os.path.join(directory, "config.yml")
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as stream:
        stream.write(f"uri: {yaml_quoted(uri_for_tools(uri))}\n")
    return path


@contextlib.contextmanager
def tools_config(uri, prefix):
    """Yield the path of a temporary --config file with the URI.

    The file is in a new folder whose name starts with prefix. The folder is
    removed when the block ends, also after an error.
    """
    directory = tempfile.mkdtemp(prefix=prefix)
    try:
        yield write_tools_config(directory, uri)
    finally:
        shutil.rmtree(directory, ignore_errors=True)


def resolve_tool_method(method, tool, executable):
    """Return tool or pymongo for a method option of auto, tool or pymongo.

    auto picks tool when executable is found on PATH. Raise MongoSnapshotError
    when method is tool and executable is not found on PATH.
    """
    if method == "auto":
        return tool if shutil.which(executable) else "pymongo"
    if method == tool and not shutil.which(executable):
        raise MongoSnapshotError(
            f"method {tool}: {executable!r} was not found on PATH. Install the "
            f"MongoDB Database Tools, set {tool}_executable, or use method: pymongo."
        )
    return method


# Free space and cleanup ---------------------------------------------------------


def remove_database_folders(folder: str, databases) -> None:
    """Remove the <db> folders of an earlier snapshot before writing a new one."""
    for db_name in databases:
        path = os.path.join(folder, db_name)
        if os.path.isdir(path):
            shutil.rmtree(path)


# Module options and failures ----------------------------------------------------


def connection_argument_spec():
    """Return the argument_spec entries of the options in the mongodb doc fragment."""
    return {
        "uri": {"type": "str", "required": True, "no_log": True},
        "timeout": {"type": "float", "default": 30},
        "connect_timeout": {"type": "float", "default": 10},
    }


def validate_timeout(timeout, option="timeout"):
    """Raise MongoSnapshotError unless the timeout option ``option`` is positive."""
    if timeout <= 0:
        raise MongoSnapshotError(f"{option} must be positive, got {timeout!r}.")


def fail_unexpected(module, module_name, error, path=None):
    """Fail the module with the traceback of an exception that no handler expected.

    Call it from the except block. The message has the credentials of the uri
    option removed. When path is given, the message names it and the result
    returns it.
    """
    where = ""
    fields = {}
    if path is not None:
        where = f" on {path!r}"
        fields["path"] = path
    module.fail_json(
        msg=f"{module_name} failed unexpectedly{where}: "
        f"{redact(str(error), module.params['uri'])}",
        exception=traceback.format_exc(),
        **fields,
    )
