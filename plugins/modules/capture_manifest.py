# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: capture_manifest
short_description: Write or verify the checksum manifest of an incident folder
description:
  - With O(state=present), records every file under O(path) in C(manifest.json)
    (size, SHA-256, mode) and writes C(SHA256SUMS) in the format that
    C(sha256sum -c) reads, so the captured state can be checked later with standard
    tools.
  - With O(state=verified), recomputes the files under O(path) and fails when a
    listed file is missing or changed, or when a file is not listed.
  - Symlinks are recorded as symlinks with their target and are never followed.
    Other special files (FIFOs, sockets, devices) are skipped with a warning.
  - C(manifest.json) and C(SHA256SUMS) at the top of O(path) are never listed, nor
    are temporary files that an interrupted write of them left behind.
version_added: 0.1.0
author: TrueBond SRE team (@truebond)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - With O(state=present), reports whether the manifest would change and writes
        nothing.
      - O(state=verified) only reads, so it runs as in a normal run.
  diff_mode:
    support: full
    details:
      - With O(state=present), the diff lists the recorded entries before and after,
        one line per file (checksum and path) or symlink (path and target).
  platform:
    platforms: posix
options:
  path:
    description:
      - Incident folder to record or verify. It must be an existing directory.
    type: path
    required: true
  state:
    description:
      - V(present) writes the manifest and the checksum file when they do not match
        the folder.
      - V(verified) checks the folder against an existing manifest and changes
        nothing.
    type: str
    choices: [present, verified]
    default: present
  metadata:
    description:
      - Values written into the manifest under C(metadata), for example the incident
        id or the versions involved. They must be JSON-serializable.
      - Only used with O(state=present).
    type: dict
    default: {}
  exclude:
    description:
      - Paths relative to O(path) to leave out, in POSIX form. An entry that names a
        directory leaves out everything below it. Wildcards are not expanded.
      - With O(state=present) the list is stored in the manifest. With
        O(state=verified) the stored list and this option both apply.
    type: list
    elements: str
    default: []
  documents:
    description:
      - Text files to write into the folder before the manifest is made, as a mapping
        of a path relative to O(path) to the file's content. Each is written atomically
        with mode 0600, in a subfolder created with mode 0700 when needed, and is then
        listed in the manifest like every other file.
      - Only used with O(state=present). A document whose content and mode are already
        right is left alone.
      - Writing the capture's generated files in the same call as the manifest saves
        one module run per file, which matters during an incident.
    type: dict
    default: {}
  copies:
    description:
      - Files on the host to copy into the folder before the manifest is made, such as
        the compose file and the env files. Each copy is written atomically with mode
        0600 and is then listed in the manifest.
      - Only used with O(state=present).
    type: list
    elements: dict
    default: []
    suboptions:
      src:
        description: Absolute path of the file to copy.
        type: path
        required: true
      dest:
        description: Path of the copy, relative to O(path).
        type: str
        required: true
      missing:
        description:
          - What to do when O(copies[].src) does not exist. V(skip) leaves it out and
            lists it in RV(missing).
        type: str
        choices: [fail, skip]
        default: fail
notes:
  - The manifest records file modes, but O(state=verified) does not compare them.
    Only missing, changed (size or checksum), retyped (file or symlink) and unlisted
    entries fail the check.
  - O(state=present) is idempotent. When the recorded entries, metadata and exclude
    list match the existing manifest, nothing is rewritten and C(created) keeps its
    first value.
  - Every file is read in full to compute its checksum, so a large capture takes
    time in both states.
"""

EXAMPLES = r"""
- name: Record the checksums of the captured state
  truebond.rollback.capture_manifest:
    path: /var/backups/truebond/incident-20260112T101500Z
    metadata:
      incident: incident-20260112T101500Z
      from_version: v1.0.0
    exclude:
      - logs/live
  register: capture_manifest

- name: Check the captured state before restoring from it
  truebond.rollback.capture_manifest:
    path: /var/backups/truebond/incident-20260112T101500Z
    state: verified
"""

RETURN = r"""
manifest_path:
  description: Path of C(manifest.json).
  type: str
  returned: always
  sample: /var/backups/truebond/incident-20260112T101500Z/manifest.json
checksums_path:
  description: Path of C(SHA256SUMS).
  type: str
  returned: always
  sample: /var/backups/truebond/incident-20260112T101500Z/SHA256SUMS
files:
  description:
    - Number of entries (regular files and symlinks) in the manifest.
    - With O(state=verified), the number listed in the existing manifest.
  type: int
  returned: always
  sample: 12
total_bytes:
  description: Sum of the sizes of the regular files in the manifest.
  type: int
  returned: always
  sample: 1048576
documents:
  description: The O(documents) and O(copies) destinations that were written, or would be in check mode.
  type: list
  elements: str
  returned: with O(state=present)
  sample: [containers.json, symptoms.md]
missing:
  description: Sources of O(copies) that did not exist and were skipped.
  type: list
  elements: str
  returned: with O(state=present)
  sample: [/home/truebond/truebond/.env.local]
verified:
  description: Whether the folder matches the manifest.
  type: bool
  returned: when O(state=verified)
  sample: true
mismatches:
  description: Entries that differ from the manifest, sorted by path.
  type: list
  elements: dict
  returned: when O(state=verified)
  contains:
    path:
      description: Path relative to O(path).
      type: str
      sample: redis/dump.rdb
    problem:
      description:
        - V(missing) (listed but absent), V(unlisted) (present but not listed),
          V(size), V(checksum), V(target) (symlink target), V(type) (file replaced
          by symlink or the reverse), or V(checksums_file) when C(SHA256SUMS) no
          longer matches the manifest.
      type: str
      sample: checksum
    expected:
      description: The value in the manifest, or null for an unlisted entry.
      type: raw
      sample: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
    actual:
      description: The value found in the folder, or null for a missing entry.
      type: raw
      sample: 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752
  sample:
    - path: redis/dump.rdb
      problem: checksum
      expected: 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08
      actual: 60303ae22b998861bce3b28f33eec1be758a213c86c93c076dbe9f558c11c752
"""

import datetime
import json
import os
import stat
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.truebond.rollback.plugins.module_utils._files import (
    atomic_write,
    free_space_text,
    is_disk_full,
    sha256_file,
)

MANIFEST_NAME = "manifest.json"
CHECKSUMS_NAME = "SHA256SUMS"
MANIFEST_FORMAT = 1
FILE_MODE = 0o600
MAX_NAMES_IN_MESSAGE = 10


class ManifestError(Exception):
    """A problem with the folder or the manifest that the caller must fix."""


def normalize_exclude(exclude):
    """Return the exclude entries as sorted, unique relative POSIX paths."""
    normalized = set()
    for entry in exclude:
        cleaned = entry.strip()
        while cleaned.startswith("./"):
            cleaned = cleaned[2:]
        cleaned = cleaned.rstrip("/")
        parts = cleaned.split("/")
        if not cleaned or cleaned.startswith("/") or ".." in parts:
            raise ManifestError(
                f"exclude entry {entry!r} is not a path inside the folder; give a "
                "relative path such as 'logs/live'"
            )
        normalized.add(cleaned)
    return sorted(normalized)


def is_excluded(relative, exclude):
    return any(
        relative == entry or relative.startswith(entry + "/") for entry in exclude
    )


def is_reserved(relative):
    """Return whether a top-level name belongs to the manifest files themselves.

    atomic_write creates temporary files named .<name>.<random>.tmp next to the
    target, and an interrupted run can leave one behind.
    """
    if "/" in relative:
        return False
    if relative in (MANIFEST_NAME, CHECKSUMS_NAME):
        return True
    return any(
        relative.startswith(f".{name}.") and relative.endswith(".tmp")
        for name in (MANIFEST_NAME, CHECKSUMS_NAME)
    )


def raise_walk_error(error):
    raise error


def describe_entry(root, relative, warnings):
    """Return the manifest entry for one path, or None for a special file."""
    absolute = os.path.join(root, relative)
    info = os.lstat(absolute)
    if stat.S_ISLNK(info.st_mode):
        return {"path": relative, "type": "symlink", "target": os.readlink(absolute)}
    if stat.S_ISREG(info.st_mode):
        return {
            "path": relative,
            "type": "file",
            "size": info.st_size,
            "sha256": sha256_file(absolute),
            "mode": f"{stat.S_IMODE(info.st_mode):04o}",
        }
    warnings.append(f"skipped {relative!r}: not a regular file, directory or symlink")
    return None


def scan_folder(root, exclude):
    """Return (entries sorted by path, warnings) for every file below root.

    Directories are descended but not listed. Symlinks to directories are listed
    as symlinks and not descended.
    """
    entries = []
    warnings = []
    for directory, dirnames, filenames in os.walk(
        root, followlinks=False, onerror=raise_walk_error
    ):
        prefix = os.path.relpath(directory, root)
        prefix = "" if prefix == "." else prefix.replace(os.sep, "/") + "/"

        kept_dirs = []
        for name in dirnames:
            relative = prefix + name
            if is_excluded(relative, exclude):
                continue
            if os.path.islink(os.path.join(directory, name)):
                entries.append(describe_entry(root, relative, warnings))
            else:
                kept_dirs.append(name)
        dirnames[:] = kept_dirs

        for name in filenames:
            relative = prefix + name
            if is_reserved(relative) or is_excluded(relative, exclude):
                continue
            entry = describe_entry(root, relative, warnings)
            if entry is not None:
                entries.append(entry)

    entries.sort(key=lambda entry: entry["path"])
    return entries, warnings


def utc_now():
    # datetime.UTC needs Python 3.11, and managed hosts may run an older Python.
    now = datetime.datetime.now(datetime.timezone.utc)  # noqa: UP017
    return now.strftime("%Y-%m-%dT%H:%M:%SZ")


def build_manifest(entries, metadata, exclude, created):
    return {
        "format": MANIFEST_FORMAT,
        "created": created,
        "metadata": metadata,
        "exclude": exclude,
        "files": entries,
        "total_bytes": total_bytes(entries),
    }


def total_bytes(entries):
    return sum(entry.get("size", 0) for entry in entries if entry["type"] == "file")


def render_manifest(manifest):
    return (json.dumps(manifest, indent=2, sort_keys=True) + "\n").encode("utf-8")


def escape_checksum_name(name):
    """Return (prefix, name) escaped the way GNU sha256sum 9.1 escapes file names.

    A name that contains a backslash, newline or carriage return gets a leading
    backslash on its line, and those characters are written as \\\\, \\n and \\r.
    """
    if not any(char in name for char in "\\\n\r"):
        return "", name
    escaped = name.replace("\\", "\\\\").replace("\n", "\\n").replace("\r", "\\r")
    return "\\", escaped


def render_checksums(entries):
    lines = []
    for entry in entries:
        if entry["type"] != "file":
            continue
        prefix, name = escape_checksum_name(entry["path"])
        lines.append(f"{prefix}{entry['sha256']}  {name}\n")
    # Names that are not valid UTF-8 reach Python as surrogate escapes. Writing them
    # back with surrogateescape keeps the bytes that sha256sum -c opens.
    return "".join(lines).encode("utf-8", errors="surrogateescape")


def render_listing(entries):
    """Return the entries as text for the diff, one line each."""
    lines = []
    for entry in entries:
        if entry.get("type") == "symlink":
            lines.append(f"symlink  {entry['path']} -> {entry.get('target')}\n")
        else:
            lines.append(f"{entry.get('sha256')}  {entry['path']}\n")
    return "".join(lines)


def normalize_metadata(metadata):
    """Return metadata as it reads back from JSON, so that comparisons are exact."""
    try:
        return json.loads(json.dumps(metadata, sort_keys=True))
    except (TypeError, ValueError) as error:
        raise ManifestError(
            f"metadata cannot be written as JSON: {error}; pass only strings, "
            "numbers, booleans, lists and dicts"
        ) from error


def check_not_symlink(path):
    if os.path.islink(path):
        raise ManifestError(
            f"{path} is a symlink; remove it so that the manifest is written inside "
            "the folder"
        )


class DamagedManifestError(ManifestError):
    """An existing manifest.json that cannot be read as a format 1 manifest."""

    def __init__(self, detail):
        super().__init__(f"{detail}; remove it and run state=present again")
        self.detail = detail


def load_manifest(manifest_path):
    """Return the parsed manifest, or None when the file does not exist."""
    try:
        with open(manifest_path, "rb") as stream:
            content = stream.read()
    except FileNotFoundError:
        return None
    try:
        manifest = json.loads(content)
    except ValueError as error:
        raise DamagedManifestError(
            f"{manifest_path} is not valid JSON ({error})"
        ) from error
    if not isinstance(manifest, dict) or manifest.get("format") != MANIFEST_FORMAT:
        found = manifest.get("format") if isinstance(manifest, dict) else None
        raise DamagedManifestError(
            f"{manifest_path} has format {found!r}, expected {MANIFEST_FORMAT}"
        )
    return manifest


def read_bytes(path):
    try:
        with open(path, "rb") as stream:
            return stream.read()
    except FileNotFoundError:
        return None


def file_mode(path):
    return stat.S_IMODE(os.stat(path).st_mode)


def plan_present(root, metadata, exclude):
    """Compare the folder with the existing manifest files and return the plan.

    The plan names the files to write (path -> bytes) and the files whose content
    is right but whose mode is not 0600.
    """
    manifest_path = os.path.join(root, MANIFEST_NAME)
    checksums_path = os.path.join(root, CHECKSUMS_NAME)
    check_not_symlink(manifest_path)
    check_not_symlink(checksums_path)

    entries, warnings = scan_folder(root, exclude)
    existing = None
    try:
        existing = load_manifest(manifest_path)
    except DamagedManifestError as error:
        # state=present replaces a damaged manifest instead of failing on it.
        warnings.append(f"replacing the damaged manifest: {error.detail}")

    unchanged = (
        existing is not None
        and existing.get("files") == entries
        and existing.get("metadata") == metadata
        and existing.get("exclude", []) == exclude
    )
    if unchanged:
        manifest = existing
    else:
        manifest = build_manifest(entries, metadata, exclude, utc_now())

    writes = {}
    if not unchanged:
        writes[manifest_path] = render_manifest(manifest)
    checksums = render_checksums(entries)
    if read_bytes(checksums_path) != checksums:
        writes[checksums_path] = checksums

    chmods = [
        path
        for path in (manifest_path, checksums_path)
        if path not in writes and file_mode(path) != FILE_MODE
    ]
    return {
        "manifest_path": manifest_path,
        "checksums_path": checksums_path,
        "entries": entries,
        "previous_entries": existing.get("files", []) if existing else [],
        "writes": writes,
        "chmods": chmods,
        "warnings": warnings,
    }


def apply_plan(plan):
    # The manifest goes first: a SHA256SUMS newer than its manifest would pass
    # sha256sum -c while the manifest still describes the old folder.
    for path in (plan["manifest_path"], plan["checksums_path"]):
        if path in plan["writes"]:
            atomic_write(path, plan["writes"][path], backup=False, mode=FILE_MODE)
    for path in plan["chmods"]:
        os.chmod(path, FILE_MODE)


def compare_entries(expected_entries, actual_entries):
    """Return the mismatches between manifest entries and the folder, by path."""
    expected = {entry["path"]: entry for entry in expected_entries}
    actual = {entry["path"]: entry for entry in actual_entries}
    mismatches = []
    for path in sorted(set(expected) | set(actual)):
        want = expected.get(path)
        have = actual.get(path)
        if have is None:
            mismatches.append(mismatch(path, "missing", want.get("type"), None))
        elif want is None:
            mismatches.append(mismatch(path, "unlisted", None, have["type"]))
        elif want.get("type", "file") != have["type"]:
            mismatches.append(mismatch(path, "type", want.get("type"), have["type"]))
        elif have["type"] == "symlink":
            if want.get("target") != have["target"]:
                mismatches.append(
                    mismatch(path, "target", want.get("target"), have["target"])
                )
        elif want.get("size") != have["size"]:
            mismatches.append(mismatch(path, "size", want.get("size"), have["size"]))
        elif want.get("sha256") != have["sha256"]:
            mismatches.append(
                mismatch(path, "checksum", want.get("sha256"), have["sha256"])
            )
    return mismatches


def mismatch(path, problem, expected, actual):
    return {"path": path, "problem": problem, "expected": expected, "actual": actual}


def list_names(names):
    listing = ", ".join(names[:MAX_NAMES_IN_MESSAGE])
    if len(names) > MAX_NAMES_IN_MESSAGE:
        listing += f" and {len(names) - MAX_NAMES_IN_MESSAGE} more"
    return listing


def build_mismatch_message(root, mismatches):
    """Return one sentence that groups the mismatches by kind."""
    missing = [item["path"] for item in mismatches if item["problem"] == "missing"]
    unlisted = [item["path"] for item in mismatches if item["problem"] == "unlisted"]
    changed = [
        f"{item['path']}: {item['problem']}"
        for item in mismatches
        if item["problem"] not in ("missing", "unlisted")
    ]
    parts = []
    if missing:
        parts.append(f"{len(missing)} missing ({list_names(missing)})")
    if changed:
        parts.append(f"{len(changed)} changed ({list_names(changed)})")
    if unlisted:
        parts.append(f"{len(unlisted)} unlisted ({list_names(unlisted)})")
    return (
        f"{root} does not match its manifest: " + ", ".join(parts) + "; restore the "
        "files from a copy you trust, or record the folder again with state=present "
        "if the change is intended"
    )


def verify_folder(root, exclude):
    """Return the verification result of root against its manifest."""
    manifest_path = os.path.join(root, MANIFEST_NAME)
    checksums_path = os.path.join(root, CHECKSUMS_NAME)
    manifest = load_manifest(manifest_path)
    if manifest is None:
        raise ManifestError(
            f"{manifest_path} not found; create it with state=present first"
        )
    listed = manifest.get("files", [])
    stored_exclude = manifest.get("exclude", [])
    entries, warnings = scan_folder(root, sorted(set(stored_exclude) | set(exclude)))
    mismatches = compare_entries(listed, entries)
    if read_bytes(checksums_path) != render_checksums(listed):
        mismatches.append(mismatch(CHECKSUMS_NAME, "checksums_file", None, None))
    return {
        "manifest_path": manifest_path,
        "checksums_path": checksums_path,
        "files": len(listed),
        "total_bytes": total_bytes(listed),
        "verified": not mismatches,
        "mismatches": mismatches,
        "warnings": warnings,
    }


def document_path(root, relative):
    """Return the absolute path of a document, which must stay inside root."""
    cleaned = str(relative).strip()
    if "\x00" in cleaned:
        raise ManifestError(
            f"documents key {relative!r} contains a NUL byte, which no file name"
            " can contain; remove it from the key"
        )
    parts = cleaned.split("/")
    if not cleaned or cleaned.startswith("/") or ".." in parts or "" in parts:
        raise ManifestError(
            f"documents key {relative!r} is not a path inside the folder; give a "
            "relative path such as 'containers.json'"
        )
    if is_reserved(cleaned):
        raise ManifestError(
            f"documents key {relative!r} names a file the module writes itself"
        )
    target = os.path.join(root, *parts)
    parent = os.path.realpath(os.path.dirname(target))
    if parent != os.path.realpath(root) and not parent.startswith(
        os.path.realpath(root) + os.sep
    ):
        raise ManifestError(
            f"documents key {relative!r} leads outside {root!r} through a symlink"
        )
    return target


def write_documents(root, documents, check_mode):
    """Write the documents that differ and return their relative paths."""
    written = []
    for relative in sorted(documents):
        target = document_path(root, relative)
        data = documents[relative]
        if not isinstance(data, bytes):
            data = str(data).encode("utf-8")
        exists = os.path.lexists(target)
        if exists and os.path.islink(target):
            raise ManifestError(f"documents key {relative!r} names a symlink")
        if exists and read_bytes(target) == data and file_mode(target) == FILE_MODE:
            continue
        written.append(relative)
        if not check_mode:
            os.makedirs(os.path.dirname(target), mode=0o700, exist_ok=True)
            atomic_write(target, data, backup=False, mode=FILE_MODE)
    return written


def read_copies(copies):
    """Return the contents of the copies' sources by destination, and the missing ones."""
    contents = {}
    missing = []
    for copy in copies:
        source = copy["src"]
        if "\x00" in source:
            raise ManifestError(
                f"copies src {source!r} contains a NUL byte, which no path can"
                " contain; remove it from the path"
            )
        if not os.path.isabs(source):
            raise ManifestError(f"copies src {source!r} must be an absolute path")
        try:
            with open(source, "rb") as stream:
                contents[copy["dest"]] = stream.read()
        except FileNotFoundError:
            if copy["missing"] == "fail":
                raise ManifestError(
                    f"copies src {source!r} does not exist; fix the path or set "
                    "missing=skip for a file that is optional"
                ) from None
            missing.append(source)
    return contents, missing


def run_present(module, root, exclude):
    metadata = normalize_metadata(module.params["metadata"])
    copied, missing = read_copies(module.params["copies"])
    documents = {key: value for key, value in module.params["documents"].items()}
    documents.update(copied)
    documents = write_documents(root, documents, module.check_mode)
    plan = plan_present(root, metadata, exclude)
    for warning in plan["warnings"]:
        module.warn(warning)
    changed = bool(documents or plan["writes"] or plan["chmods"])
    if changed and not module.check_mode:
        apply_plan(plan)
    result = {
        "changed": changed,
        "manifest_path": plan["manifest_path"],
        "checksums_path": plan["checksums_path"],
        "files": len(plan["entries"]),
        "total_bytes": total_bytes(plan["entries"]),
        "documents": documents,
        "missing": missing,
    }
    if module._diff:
        result["diff"] = {
            "before": render_listing(plan["previous_entries"]),
            "after": render_listing(plan["entries"]),
            "before_header": plan["manifest_path"],
            "after_header": plan["manifest_path"],
        }
    return result


def run_verified(module, root, exclude):
    result = verify_folder(root, exclude)
    for warning in result.pop("warnings"):
        module.warn(warning)
    result["changed"] = False
    if not result["verified"]:
        module.fail_json(
            msg=build_mismatch_message(root, result["mismatches"]), **result
        )
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "state": {
                "type": "str",
                "choices": ["present", "verified"],
                "default": "present",
            },
            "metadata": {"type": "dict", "default": {}},
            "exclude": {"type": "list", "elements": "str", "default": []},
            "documents": {"type": "dict", "default": {}},
            "copies": {
                "type": "list",
                "elements": "dict",
                "default": [],
                "options": {
                    "src": {"type": "path", "required": True},
                    "dest": {"type": "str", "required": True},
                    "missing": {
                        "type": "str",
                        "choices": ["fail", "skip"],
                        "default": "fail",
                    },
                },
            },
        },
        supports_check_mode=True,
    )
    root = module.params["path"]

    try:
        if not os.path.isdir(root):
            raise ManifestError(
                f"path {root!r} does not exist or is not a directory; give the "
                "incident folder"
            )
        exclude = normalize_exclude(module.params["exclude"])
        if module.params["state"] == "present":
            result = run_present(module, root, exclude)
        else:
            result = run_verified(module, root, exclude)
    except ManifestError as error:
        module.fail_json(msg=str(error))
    except OSError as error:
        if is_disk_full(error):
            module.fail_json(
                msg=f"writing in {root!r} failed because the disk is full: {error}. "
                f"{free_space_text(root)}. The records and the manifest of the "
                "folder are incomplete. Free space there, then run again."
            )
        module.fail_json(
            msg=f"reading or writing in {root!r} failed: {error}; check that the "
            "folder and its files are readable and the folder is writable"
        )
    except Exception as error:  # noqa: BLE001 - report any bug with its traceback
        module.fail_json(
            msg=f"capture_manifest failed unexpectedly on {root!r}: {error}",
            exception=traceback.format_exc(),
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
