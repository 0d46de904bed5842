# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: redis_restore
short_description: Put the RDB file of a Redis snapshot in place while Redis is stopped
description:
  - The file side of a Redis restore. Redis must already be stopped without saving
    (C(SHUTDOWN NOSAVE), or saving disabled before the service stops), because a
    running Redis writes its memory over the RDB file when it shuts down.
  - In this order, and before anything in O(data_dir) changes, the module checks
    that the snapshot folder O(src) has a C(snapshot.json) with C(complete) true,
    that every file listed there has the recorded size and SHA-256, that nothing
    accepts connections on O(host):O(port), and that C(redis-check-rdb) accepts the
    RDB file when O(check_rdb) is true and the program is installed.
  - It then copies the RDB file to a temporary file in O(data_dir), fsyncs it, sets
    owner, group and mode, and renames it over the RDB file. The file it replaces is
    kept as C(<file>.<UTC timestamp>.replaced).
  - Append-only files in O(data_dir) (the Redis 7 append-only folder, or a single
    append-only file of older versions) are renamed to
    C(<name>.<UTC timestamp>.aside), because Redis with append-only on loads them
    and ignores the RDB file. Nothing is deleted.
version_added: 0.2.0
author: TrueBond SRE team (@truebond)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - Runs every check (including C(redis-check-rdb)) and reports the plan in
        RV(actions) without changing anything.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  src:
    description: Snapshot folder written by M(truebond.rollback.redis_snapshot).
    type: path
    required: true
  data_dir:
    description: Redis data folder (C(CONFIG GET dir) of the server).
    type: path
    required: true
  dbfilename:
    description:
      - Name of the RDB file in O(data_dir) (C(CONFIG GET dbfilename)).
      - A plain file name. A name with C(/) or a NUL byte, and C(.) or C(..), are
        rejected.
    type: str
    default: dump.rdb
  appenddirname:
    description:
      - Name of the Redis 7 append-only folder in O(data_dir).
      - A plain file name, as for O(dbfilename).
    type: str
    default: appendonlydir
  appendfilename:
    description:
      - Name of the single append-only file of Redis 6 and older.
      - A plain file name, as for O(dbfilename).
    type: str
    default: appendonly.aof
  host:
    description: Address that Redis listens on. Used only to check that it is stopped.
    type: str
    default: 127.0.0.1
  port:
    description: Port that Redis listens on. Used only to check that it is stopped.
    type: int
    default: 6379
  owner:
    description:
      - Owner of the restored file, as a user name or a numeric ID in ASCII digits
        from 0 to 4294967294. Defaults to the owner of the file it replaces, else
        the owner of O(data_dir).
    type: str
  group:
    description:
      - Group of the restored file, as a group name or a numeric ID in ASCII digits
        from 0 to 4294967294. Defaults to the group of the file it replaces, else
        the group of O(data_dir).
    type: str
  mode:
    description:
      - Mode of the restored file, as an octal string such as C('0660') or an
        integer, from C('0000') to C('0777'). Defaults to the mode of the file it
        replaces, else C('0600').
      - Setuid, setgid and the sticky bit are rejected, and so are negative
        numbers and booleans.
    type: raw
  check_rdb:
    description:
      - Run C(redis-check-rdb) on the RDB file of the snapshot first. Its failure
        fails the task and quotes its output.
      - When the program is not installed, the module warns and goes on with the
        SHA-256 check alone.
    type: bool
    default: true
  redis_check_rdb:
    description: Path or name of the C(redis-check-rdb) program.
    type: str
    default: redis-check-rdb
  step:
    description:
      - C(place) runs every check and then puts the file in place.
      - C(check) checks the snapshot (C(snapshot.json), sizes, SHA-256 and
        C(redis-check-rdb)) and changes nothing. It does not check that Redis is
        stopped, so a role can run it while Redis still runs, before stopping it.
    type: str
    choices: [check, place]
    default: place
notes:
  - Only the RDB file is restored. Append-only files of the snapshot are not put
    back, since Redis loads the RDB file only while append-only is off. The role
    C(truebond.rollback.restore_redis) starts Redis with append-only off and turns it
    back on afterwards.
"""

EXAMPLES = r"""
- name: Put the snapshot's RDB file in place (Redis is stopped)
  truebond.rollback.redis_restore:
    src: /var/backups/truebond/incident-20261204T173000Z/datastores/sessions
    data_dir: /var/lib/redis
    dbfilename: dump.rdb
    port: 6379
    owner: redis
    group: redis
    mode: "0660"
  register: redis_file
"""

RETURN = r"""
rdb_path:
  description: The RDB file that was replaced or created.
  type: str
  returned: always
  sample: /var/lib/redis/dump.rdb
replaced:
  description: Where the file that was replaced is kept, or null when there was none.
  type: str
  returned: success
  sample: /var/lib/redis/dump.rdb.20261204T174512Z.replaced
aside:
  description: Append-only files or folders moved aside, old path to new path.
  type: dict
  returned: success
  sample: {/var/lib/redis/appendonlydir: /var/lib/redis/appendonlydir.20261204T174512Z.aside}
check_rdb_output:
  description: Output of C(redis-check-rdb), or null when it did not run.
  type: str
  returned: success
  sample: "[offset 0] Checking RDB file dump.rdb ... \\o/ RDB looks OK! \\o/"
actions:
  description: What the module did, or in check mode would do, in order.
  type: list
  elements: str
  returned: success
  sample:
    - keep /var/lib/redis/dump.rdb as /var/lib/redis/dump.rdb.20261204T174512Z.replaced
    - put the snapshot's dump.rdb in place as /var/lib/redis/dump.rdb
snapshot:
  description: The content of C(snapshot.json) in O(src).
  type: dict
  returned: when snapshot.json could be read
"""

import grp
import json
import os
import pwd
import re
import shutil
import stat
import subprocess
import tempfile
import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.truebond.rollback.plugins.module_utils import _redis
from ansible_collections.truebond.rollback.plugins.module_utils._files import (
    BACKUP_TIMESTAMP_FORMAT,
    sha256_file,
)

CHECK_RDB_TIMEOUT = 600

# Redis takes dbfilename, appenddirname and appendfilename as plain names inside its
# data folder, so a name that could lead elsewhere is rejected.
FILE_NAME_OPTIONS = ("dbfilename", "appenddirname", "appendfilename")
# The maximum user and group ID on Linux. 2**32 - 1 is reserved as "no change" for
# chown(2), and os.chown raises OverflowError above it.
MAX_ID = 2**32 - 2
MAX_MODE = 0o777
OCTAL_MODE = re.compile(r"[0-7]{1,4}\Z")


class RestoreError(Exception):
    """The restore was rejected or failed. The message names the fix."""


def load_snapshot(src) -> dict:
    """Read snapshot.json of a Redis snapshot and check every file it lists.

    Raises RestoreError for a missing or incomplete snapshot, a snapshot of another
    kind, and a file whose size or SHA-256 differs from the record.
    """
    manifest = os.path.join(src, "snapshot.json")
    if not os.path.isdir(src):
        raise RestoreError(f"snapshot folder {src!r} not found")
    if not os.path.isfile(manifest):
        raise RestoreError(
            f"{manifest!r} not found, so the snapshot in {src!r} is incomplete "
            "(snapshot.json is written last). Restore from another snapshot."
        )
    try:
        with open(manifest, "rb") as stream:
            snapshot = json.load(stream)
    except ValueError as error:
        raise RestoreError(f"{manifest!r} is not valid JSON: {error}") from None
    if not isinstance(snapshot, dict) or snapshot.get("kind") != "redis":
        kind = snapshot.get("kind") if isinstance(snapshot, dict) else None
        raise RestoreError(
            f"{manifest!r} describes a snapshot of kind {kind!r}, expected 'redis'"
        )
    if snapshot.get("format") != 1:
        raise RestoreError(
            f"{manifest!r} has format {snapshot.get('format')!r}, but this module "
            "reads only format 1"
        )
    if snapshot.get("complete") is not True:
        raise RestoreError(
            f"{manifest!r} records an incomplete snapshot (complete: "
            f"{snapshot.get('complete')!r}), for example after a full disk. Restore "
            "from another snapshot."
        )
    files = snapshot.get("files") or {}
    rdb_file = snapshot.get("rdb_file")
    if rdb_file not in files:
        raise RestoreError(
            f"{manifest!r} lists no entry for its RDB file {rdb_file!r} in files"
        )
    for relative, record in sorted(files.items()):
        path = os.path.join(src, relative)
        if not os.path.isfile(path):
            raise RestoreError(f"{path!r} is listed in {manifest!r} but not found")
        size = os.path.getsize(path)
        if size != record.get("bytes"):
            raise RestoreError(
                f"{path!r} has {size} bytes, snapshot.json records "
                f"{record.get('bytes')!r}. The snapshot is damaged."
            )
        digest = sha256_file(path)
        if digest != record.get("sha256"):
            raise RestoreError(
                f"SHA-256 of {path!r} is {digest}, snapshot.json records "
                f"{record.get('sha256')!r}. The snapshot is damaged."
            )
    return snapshot


def check_rdb_file(path, program) -> str:
    """Run redis-check-rdb on path and return its output, or raise RestoreError."""
    try:
        completed = subprocess.run(
            [program, path],
            capture_output=True,
            text=True,
            timeout=CHECK_RDB_TIMEOUT,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise RestoreError(
            f"{program} did not finish within {CHECK_RDB_TIMEOUT} s on {path!r}"
        ) from None
    output = (completed.stdout + completed.stderr).strip()
    if completed.returncode != 0:
        raise RestoreError(
            f"{program} rejected {path!r} (exit status {completed.returncode}), so "
            f"nothing was replaced. Its output: {output}"
        )
    return output


def check_file_name(option, name) -> None:
    """Raise RestoreError unless name is a plain file name inside the data folder."""
    if (
        not isinstance(name, str)
        or name in ("", ".", "..")
        or "/" in name
        or "\x00" in name
    ):
        raise RestoreError(
            f"{option} {name!r} is not a plain file name in the data folder; give"
            f" the name as CONFIG GET {option} returns it, without '/' or a NUL byte"
            " and not '', '.' or '..'"
        )


def lookup_id(option, value, account, lookup) -> int:
    """Return the ID that value names: ASCII digits, or an account name for lookup.

    ``account`` is "user" or "group", for the messages.
    """
    text = str(value)
    if "\x00" in text:
        raise RestoreError(
            f"{option} {value!r} contains a NUL byte; give a {account} name or a"
            " numeric ID"
        )
    # str.isdigit() alone also accepts digits outside ASCII, such as U+0663, which
    # int() would turn into another account's ID.
    if text.isascii() and text.isdigit():
        number = int(text)
        if number > MAX_ID:
            raise RestoreError(
                f"{option} {value!r} is larger than the maximum ID {MAX_ID}; give a"
                f" {account} name or a numeric ID from 0 to {MAX_ID}"
            )
        return number
    try:
        return lookup(text)
    except KeyError:
        raise RestoreError(f"{option} {value!r} not found on this host") from None


def user_id(owner) -> int:
    return lookup_id("owner", owner, "user", lambda name: pwd.getpwnam(name).pw_uid)


def group_id(group) -> int:
    return lookup_id("group", group, "group", lambda name: grp.getgrnam(name).gr_gid)


def resolve_owner(owner, group, existing: os.stat_result):
    """Return (uid, gid) from names or numbers, defaulting to the existing file's."""
    uid = user_id(owner) if owner else existing.st_uid
    gid = group_id(group) if group else existing.st_gid
    return uid, gid


def parse_mode(mode, default: int) -> int:
    """Return mode as an int from 0o000 to 0o777, or default when mode is unset.

    Setuid, setgid and the sticky bit are rejected, since an RDB file needs none.
    """
    if mode is None or mode == "":
        return default
    problem = f"mode {mode!r} is not an octal permission mode from 0000 to 0777"
    fix = "give a quoted octal string such as '0660'"
    if isinstance(mode, bool) or not isinstance(mode, (int, str)):
        raise RestoreError(f"{problem}; {fix}")
    if isinstance(mode, str):
        if not OCTAL_MODE.match(mode):
            raise RestoreError(f"{problem}; {fix}")
        value = int(mode, 8)
    else:
        value = mode
    if value < 0:
        raise RestoreError(f"{problem} because it is negative; {fix}")
    if value > MAX_MODE:
        raise RestoreError(
            f"{problem} because it is octal {value:o}, which sets setuid, setgid or"
            f" the sticky bit or is larger than 7777; {fix}"
        )
    return value


def check_params(params) -> None:
    """Check the file names, owner, group and mode before anything is read."""
    for option in FILE_NAME_OPTIONS:
        check_file_name(option, params[option])
    if params["owner"]:
        user_id(params["owner"])
    if params["group"]:
        group_id(params["group"])
    parse_mode(params["mode"], 0o600)


def _fsync_directory(directory) -> None:
    fd = os.open(directory, os.O_RDONLY | getattr(os, "O_DIRECTORY", 0))
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _unique(path) -> str:
    candidate = path
    counter = 0
    while os.path.lexists(candidate):
        counter += 1
        candidate = f"{path}.{counter}"
    return candidate


def plan_restore(params, snapshot, stamp) -> dict:
    """Work out the target file, the kept file and the files to move aside."""
    for option in FILE_NAME_OPTIONS:
        check_file_name(option, params[option])
    data_dir = params["data_dir"]
    rdb_path = os.path.join(data_dir, params["dbfilename"])
    replaced = None
    if os.path.lexists(rdb_path):
        replaced = _unique(f"{rdb_path}.{stamp}.replaced")
    aside = {}
    for name in (params["appenddirname"], params["appendfilename"]):
        path = os.path.join(data_dir, name)
        if os.path.lexists(path):
            aside[path] = _unique(f"{path}.{stamp}.aside")
    actions = []
    if replaced:
        actions.append(f"keep {rdb_path} as {replaced}")
    actions.append(f"put the snapshot's {snapshot['rdb_file']} in place as {rdb_path}")
    for old, new in aside.items():
        actions.append(f"move {old} aside to {new}")
    return {
        "rdb_path": rdb_path,
        "replaced": replaced,
        "aside": aside,
        "actions": actions,
    }


def place_rdb(source, plan, params, expected_sha256) -> None:
    """Copy source into the data folder atomically, keeping the replaced file."""
    rdb_path = plan["rdb_path"]
    data_dir = os.path.dirname(rdb_path)
    try:
        reference = os.stat(rdb_path)
        default_mode = stat.S_IMODE(reference.st_mode)
    except FileNotFoundError:
        reference = os.stat(data_dir)
        default_mode = 0o600
    uid, gid = resolve_owner(params["owner"], params["group"], reference)
    mode = parse_mode(params["mode"], default_mode)

    fd, temp_path = tempfile.mkstemp(
        dir=data_dir, prefix=f".{os.path.basename(rdb_path)}.", suffix=".restore"
    )
    try:
        with os.fdopen(fd, "wb") as out, open(source, "rb") as src:
            shutil.copyfileobj(src, out, 4 * 1024 * 1024)
            out.flush()
            os.fsync(out.fileno())
        if sha256_file(temp_path) != expected_sha256:
            raise RestoreError(
                f"the copy {temp_path!r} of {source!r} does not match the SHA-256 in "
                "snapshot.json. Check the disk of the data folder."
            )
        os.chown(temp_path, uid, gid)
        os.chmod(temp_path, mode)
        if plan["replaced"]:
            # A hard link keeps the old file under its new name without a copy, and
            # the rename below then swaps in the new file in one step.
            try:
                os.link(rdb_path, plan["replaced"])
            except OSError:
                shutil.copy2(rdb_path, plan["replaced"])
        os.replace(temp_path, rdb_path)
    except BaseException:
        if os.path.lexists(temp_path):
            os.unlink(temp_path)
        raise
    _fsync_directory(data_dir)


def move_aside(plan) -> None:
    for old, new in plan["aside"].items():
        os.rename(old, new)
    if plan["aside"]:
        _fsync_directory(os.path.dirname(next(iter(plan["aside"]))))


def restore(params, check_mode, warn, stamp=None) -> dict:
    """Check the snapshot and, unless in check mode, put its RDB file in place."""
    check_params(params)
    snapshot = load_snapshot(params["src"])
    if not os.path.isdir(params["data_dir"]):
        raise RestoreError(f"data folder {params['data_dir']!r} not found")
    where = _redis.address(params["host"], params["port"])
    placing = params["step"] == "place"
    if placing and _redis.port_accepts_connections(params["host"], params["port"]):
        raise RestoreError(
            f"something still accepts connections on {where}, so Redis looks "
            "running, and it would write its memory over the restored file when it "
            "stops. Stop it first with SHUTDOWN NOSAVE, or disable saving "
            "(CONFIG SET save '') and stop the service."
        )
    source = os.path.join(params["src"], snapshot["rdb_file"])
    output = None
    if params["check_rdb"]:
        program = shutil.which(params["redis_check_rdb"])
        if program is None:
            warn(
                f"{params['redis_check_rdb']} not found, so {source} was checked "
                "against its SHA-256 only. Install redis-tools to check the RDB "
                "structure too."
            )
        else:
            output = check_rdb_file(source, program)

    stamp = stamp or time.strftime(BACKUP_TIMESTAMP_FORMAT, time.gmtime())
    plan = plan_restore(params, snapshot, stamp)
    result = {
        "changed": placing,
        "snapshot": snapshot,
        "rdb_path": plan["rdb_path"],
        "replaced": plan["replaced"],
        "aside": plan["aside"],
        "actions": plan["actions"],
        "check_rdb_output": output,
    }
    if check_mode or not placing:
        return result
    expected = snapshot["files"][snapshot["rdb_file"]]["sha256"]
    place_rdb(source, plan, params, expected)
    move_aside(plan)
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "src": {"type": "path", "required": True},
            "data_dir": {"type": "path", "required": True},
            "dbfilename": {"type": "str", "default": "dump.rdb"},
            "appenddirname": {"type": "str", "default": "appendonlydir"},
            "appendfilename": {"type": "str", "default": "appendonly.aof"},
            "host": {"type": "str", "default": "127.0.0.1"},
            "port": {"type": "int", "default": 6379},
            "owner": {"type": "str"},
            "group": {"type": "str"},
            "mode": {"type": "raw"},
            "check_rdb": {"type": "bool", "default": True},
            "redis_check_rdb": {"type": "str", "default": "redis-check-rdb"},
            "step": {"type": "str", "choices": ["check", "place"], "default": "place"},
        },
        supports_check_mode=True,
    )
    params = module.params
    rdb_path = os.path.join(params["data_dir"], params["dbfilename"])
    where = f"Redis restore of {params['src']!r} into {rdb_path!r}"
    try:
        result = restore(params, module.check_mode, module.warn)
    except RestoreError as error:
        module.fail_json(msg=f"{where} failed: {error}", rdb_path=rdb_path)
    except OSError as error:
        module.fail_json(
            msg=f"{where} failed on a file: {error}. Check the permissions and the "
            "free space of the data folder.",
            rdb_path=rdb_path,
        )
    except Exception as error:  # noqa: BLE001 - report any bug with its traceback
        module.fail_json(
            msg=f"{where} failed unexpectedly: {error}",
            exception=traceback.format_exc(),
            rdb_path=rdb_path,
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
