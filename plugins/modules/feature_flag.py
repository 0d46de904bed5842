# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: feature_flag
short_description: Set feature flags in the env file that a Docker Compose service uses
version_added: 0.1.0
description:
  - Sets one or more feature flags, such as C(REALTIME_MESSAGING_ENABLED=false), in
    the env files that one service of a Docker Compose file reads through its
    C(env_file) key.
  - The module reads the service's C(env_file) entries in the Compose file. Like
    Compose, it takes a key's value from the last env file that defines the key, so
    it edits that file. Every statement of the key in that file gets the new value.
    Keys that only start with the flag's name, other lines, C(export), quotes and
    comments stay byte for byte the same.
  - Before writing anything, the module checks every flag. A flag must be defined in
    one of the service's env files, match O(known_pattern) and, when O(allowed) is
    given, be listed there. A flag that the service also sets under C(environment) in
    the Compose file is rejected, because that value wins over every env file. When
    one flag fails a check, no file is written.
  - The module only edits files. A container's environment is fixed when the
    container is created, so the change takes effect only after the service is
    recreated, for example with M(community.docker.docker_compose_v2) and
    C(recreate=always).
options:
  compose_file:
    description:
      - Path of the Compose file, for example C(docker-compose.production.yml).
      - Relative C(env_file) paths are resolved against the folder of this file.
    type: path
    required: true
  service:
    description:
      - Name of the service under the top-level C(services) key.
    type: str
    required: true
  flags:
    description:
      - The flags to set, as a dict that maps each flag name to its value.
      - A boolean is written as C(true) or C(false), and a number as its decimal
        text. A string is written as given, quoted when the env file format needs it.
      - Must contain at least one flag.
    type: dict
    required: true
  allowed:
    description:
      - Names of the flags that may be set. When given, a flag that is not in the
        list is rejected even if it is a known flag.
      - When omitted, every known flag may be set.
    type: list
    elements: str
  known_pattern:
    description:
      - Python regular expression, searched in each key of the service's env files
        with C(re.search). The keys that match are the known flags.
      - The default matches keys that end with C(_ENABLED), so that a typo cannot
        change a setting such as C(JWT_SECRET).
    type: str
    default: _ENABLED$
  backup:
    description:
      - Copy each env file to C(<file>.<UTC timestamp>.bak) before changing it.
      - The timestamp has the form C(YYYYmmddTHHMMSSZ).
    type: bool
    default: true
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: full
    details:
      - The diff is a list with one unified diff per env file that changes. It shows
        only the changed lines, without context lines, because env files usually
        contain secrets next to the flags.
  platform:
    platforms: posix
requirements:
  - PyYAML on the target host
notes:
  - Only O(compose_file) is read. Override files such as
    C(docker-compose.override.yml), other files passed to C(docker compose -f), and
    the C(extends) and C(include) keys are not taken into account. Run
    C(docker compose config) afterwards to see the value Compose resolves.
  - An C(env_file) path that contains a variable (C($)) and an entry with a
    C(format) key (such as C(format=raw)) are rejected.
  - An entry with C(required=false) whose file does not exist is skipped, as
    Compose skips it. A missing file with C(required=true) (the default) fails.
  - Values are reported as written in the env file, before Compose interpolates
    C($VAR) in them. A line with only the key takes the value from the earlier env
    files, or else from the shell environment of C(docker compose), which this
    module cannot see.
  - Other services that read a changed env file keep the old values in their
    containers until they are recreated. The module warns about them.
  - Env files are parsed the way Docker Compose reads them. Quoted values that span
    several lines are not supported and make the module fail.
  - The file is replaced atomically and keeps its mode, and its owner where the
    remote user may set it.
seealso:
  - module: truebond.rollback.compose_image
  - module: community.docker.docker_compose_v2
author:
  - TrueBond SRE team (@truebond-sre)
"""

EXAMPLES = r"""
- name: Turn realtime messaging off for the backend
  truebond.rollback.feature_flag:
    compose_file: /var/tmp/truebond-drill/truebond/docker-compose.production.yml
    service: backend
    flags:
      REALTIME_MESSAGING_ENABLED: false
  register: backend_flags

- name: Recreate the backend so that its container gets the new environment
  community.docker.docker_compose_v2:
    project_src: /var/tmp/truebond-drill/truebond
    files:
      - docker-compose.production.yml
    services:
      - backend
    dependencies: false
    pull: never
    recreate: always
  when: backend_flags.changed

- name: Check two flags without writing, and allow only these two
  truebond.rollback.feature_flag:
    compose_file: /srv/truebond/docker-compose.production.yml
    service: backend
    flags:
      PAYMENTS_ENABLED: false
      REALTIME_MESSAGING_ENABLED: false
    allowed:
      - PAYMENTS_ENABLED
      - REALTIME_MESSAGING_ENABLED
    backup: false
  check_mode: true
  register: flag_plan
"""

RETURN = r"""
changed:
  description: Whether an env file was changed, or in check mode would be.
  type: bool
  returned: always
  sample: true
files:
  description:
    - The env files that the service reads and that exist, in the order Compose
      reads them.
  type: list
  elements: dict
  returned: success
  contains:
    path:
      description: Absolute path of the env file.
      type: str
      sample: /var/tmp/truebond-drill/truebond/.env.production
    changed:
      description: Whether the module changed the file, or in check mode would change it.
      type: bool
      sample: true
    backup_file:
      description:
        - Path of the backup made before writing, else C(null).
        - Always C(null) in check mode.
      type: str
      sample: /var/tmp/truebond-drill/truebond/.env.production.20260112T093000Z.bak
    services:
      description: Every service of the Compose file that reads the file.
      type: list
      elements: str
      sample: [backend, frontend]
flags:
  description:
    - One entry per flag in O(flags), keyed by the flag's name.
    - C(previous) is the value Compose read before the change, as written in the env
      file before interpolation, or C(null) when no env file gives the key a value.
    - C(value) is the value written, or in check mode the value that would be written.
    - C(file) is the env file that holds the flag, the last one that defines it.
  type: dict
  returned: success
  sample:
    REALTIME_MESSAGING_ENABLED:
      previous: "true"
      value: "false"
      file: /var/tmp/truebond-drill/truebond/.env.production
known_flags:
  description:
    - The keys of the service's env files that match O(known_pattern) and, when
      O(allowed) is given, are listed there. These are the flags the module may set.
  type: list
  elements: str
  returned: success
  sample: [PAYMENTS_ENABLED, REALTIME_MESSAGING_ENABLED]
"""

import difflib
import os
import re
from dataclasses import dataclass, field

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.truebond.rollback.plugins.module_utils import _envfile
from ansible_collections.truebond.rollback.plugins.module_utils._compose import (
    ComposeFileError,
    load_compose,
    read_text,
    run_and_exit,
)
from ansible_collections.truebond.rollback.plugins.module_utils._files import (
    atomic_write,
)


class FeatureFlagError(ComposeFileError):
    """A failure to report with fail_json. The message is the whole report."""


@dataclass
class EnvFile:
    """One env file of the service, in the order Compose reads them."""

    path: str
    text: str
    entries: list
    keys: set = field(default_factory=set)


def load_services(path: str) -> dict:
    """Return the ``services`` mapping of the Compose file at ``path``."""
    return load_compose(path)[1]["services"]


def find_service(services: dict, path: str, service: str) -> dict:
    """Return the definition of ``service``, or raise naming the services."""
    if service not in services:
        names = ", ".join(str(name) for name in services)
        raise FeatureFlagError(
            f"service {service!r} was not found in compose file {path!r}; services"
            f" in the file: {names}"
        )
    definition = services[service]
    if definition is None:
        return {}
    if not isinstance(definition, dict):
        raise FeatureFlagError(
            f"service {service!r} in compose file {path!r} is {definition!r},"
            " expected a mapping"
        )
    return definition


def env_file_refs(definition: dict, compose_dir: str, path: str, service: str):
    """Return the service's env files as (absolute path, required) pairs, in order.

    Compose accepts a string, a list of strings, and a list of mappings with
    ``path`` and ``required`` (default true).
    """
    declared = definition.get("env_file")
    if declared is None:
        return []
    items = [declared] if isinstance(declared, str) else declared
    if not isinstance(items, list):
        raise FeatureFlagError(
            f"env_file of service {service!r} in compose file {path!r} is"
            f" {declared!r}, expected a path or a list of paths"
        )

    refs = []
    for item in items:
        required = True
        if isinstance(item, dict):
            if item.get("format") not in (None, ""):
                raise FeatureFlagError(
                    f"env_file entry {item!r} of service {service!r} in compose file"
                    f" {path!r} has format {item['format']!r}; this module edits only"
                    " env files in the default dotenv format"
                )
            required = item.get("required", True)
            if not isinstance(required, bool):
                raise FeatureFlagError(
                    f"env_file entry {item!r} of service {service!r} in compose file"
                    f" {path!r} has required {required!r}, expected true or false"
                )
            item = item.get("path")
        if not isinstance(item, str) or not item:
            raise FeatureFlagError(
                f"env_file entry {item!r} of service {service!r} in compose file"
                f" {path!r} is not a path"
            )
        if "$" in item:
            raise FeatureFlagError(
                f"env_file path {item!r} of service {service!r} in compose file"
                f" {path!r} contains a variable, which this module does not"
                " interpolate; write the path without variables"
            )
        refs.append((os.path.normpath(os.path.join(compose_dir, item)), required))
    return refs


def environment_keys(definition: dict, path: str, service: str) -> set:
    """Return the keys that the service sets under ``environment``.

    A key listed without a value counts too: Compose then takes the value from its
    own shell environment, which also overrides the env files.
    """
    environment = definition.get("environment")
    if environment is None:
        return set()
    if isinstance(environment, dict):
        return {str(key) for key in environment}
    if isinstance(environment, list):
        return {str(item).split("=", 1)[0].strip() for item in environment}
    raise FeatureFlagError(
        f"environment of service {service!r} in compose file {path!r} is"
        f" {environment!r}, expected a mapping or a list"
    )


def read_env_files(refs, service: str) -> list:
    """Read and parse each env file. A missing optional file is skipped."""
    env_files = []
    for env_path, required in refs:
        if not required and not os.path.exists(env_path):
            continue
        if required and not os.path.exists(env_path):
            raise FeatureFlagError(
                f"env file {env_path!r} of service {service!r} was not found, and"
                " Compose requires it; create it or mark the entry required: false"
            )
        text = read_text(env_path, "env file")
        try:
            entries = _envfile.parse(text)
        except _envfile.EnvFileError as exc:
            raise FeatureFlagError(
                f"env file {env_path!r} cannot be parsed: {exc}"
            ) from None
        env_files.append(
            EnvFile(env_path, text, entries, {entry.key for entry in entries})
        )
    return env_files


def services_reading(services: dict, compose_dir: str, path: str) -> dict:
    """Return a dict of env file path to the names of the services that read it.

    Services whose env_file cannot be read as this module reads it are left out.
    """
    readers = {}
    for name, definition in services.items():
        if not isinstance(definition, dict):
            continue
        try:
            refs = env_file_refs(definition, compose_dir, path, str(name))
        except FeatureFlagError:
            continue
        for env_path, _required in refs:
            names = readers.setdefault(env_path, [])
            if str(name) not in names:
                names.append(str(name))
    return readers


def flag_text(name: str, value) -> str:
    """Return ``value`` as the text to write into the env file."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return str(value)
    if isinstance(value, str):
        return value
    raise FeatureFlagError(
        f"the value {value!r} of flag {name!r} is a {type(value).__name__}, expected"
        " a boolean, a number or a string"
    )


def compile_pattern(pattern: str):
    try:
        return re.compile(pattern)
    except re.error as exc:
        raise FeatureFlagError(
            f"known_pattern {pattern!r} is not a valid regular expression: {exc}"
        ) from None


def compose_values(env_files) -> dict:
    """Return the value Compose reads for each key, before interpolation.

    Later statements win. A line with only a key keeps the value of the earlier
    statements, which is None when there is none.
    """
    resolved = {}
    for env_file in env_files:
        for entry in env_file.entries:
            if entry.inherited:
                resolved.setdefault(entry.key, None)
            else:
                resolved[entry.key] = entry.value
    return resolved


def last_defining_file(env_files, key: str):
    """Return the last env file that contains a statement of ``key``, or None."""
    found = None
    for env_file in env_files:
        if key in env_file.keys:
            found = env_file
    return found


def describe_files(env_files) -> str:
    return ", ".join(env_file.path for env_file in env_files) or "none"


def reject_reason(name, env_files, pattern, allowed, known_pattern) -> str | None:
    """Return why flag ``name`` may not be set, or None when it may."""
    if last_defining_file(env_files, name) is None:
        return (
            f"{name!r} is not defined in any env file of the service"
            f" ({describe_files(env_files)})"
        )
    if not pattern.search(name):
        return f"{name!r} does not match known_pattern {known_pattern!r}"
    if allowed is not None and name not in allowed:
        return f"{name!r} is not in the allowed list ({', '.join(allowed) or 'empty'})"
    return None


def check_flags(params, pattern, env_files, environment, compose_path, known_flags):
    """Raise FeatureFlagError naming every flag that may not be set."""
    service = params["service"]
    allowed = params["allowed"]

    unknown = []
    overridden = []
    for name in params["flags"]:
        reason = reject_reason(
            name, env_files, pattern, allowed, params["known_pattern"]
        )
        if reason is not None:
            # A cutoff of 0.75 suggests REALTIME_MESSAGING_ENABLED for the prefix
            # REALTIME_MESSAGING, but no unrelated flag that shares only _ENABLED.
            close = difflib.get_close_matches(name, known_flags, n=1, cutoff=0.75)
            hint = f" (did you mean {close[0]}?)" if close else ""
            unknown.append(reason + hint)
        elif name in environment:
            overridden.append(name)

    if unknown:
        noun = "flag" if len(unknown) == 1 else "flags"
        raise FeatureFlagError(
            f"unknown feature {noun} for service {service!r}: {'; '.join(unknown)}."
            f" Known flags: {', '.join(known_flags) or 'none'}. Nothing was written."
        )
    if overridden:
        keys = ", ".join(
            f"services.{service}.environment.{name}" for name in overridden
        )
        raise FeatureFlagError(
            f"compose file {compose_path!r} sets {keys}, which overrides every env"
            " file, so changing the env file would not change the container."
            " Nothing was written. Remove the key from the service's environment so"
            " that the env file sets it, or change the value in the compose file."
        )


def prepared_diff(path: str, before: str, after: str) -> str:
    """Return a unified diff of the changed lines only, without context lines."""
    lines = difflib.unified_diff(
        before.splitlines(keepends=True),
        after.splitlines(keepends=True),
        fromfile=f"before: {path}",
        tofile=f"after: {path}",
        n=0,
    )
    return "".join(line if line.endswith("\n") else line + "\n" for line in lines)


def plan_change(params) -> dict:
    """Check the flags and compute the edits, without writing anything.

    Returns a dict with the result keys for exit_json, plus ``writes`` (a list of
    dicts with path, before and after text) and ``warnings``.
    """
    compose_path = os.path.abspath(params["compose_file"])
    compose_dir = os.path.dirname(compose_path)
    service = params["service"]
    flags = params["flags"]
    if not flags:
        raise FeatureFlagError(
            "flags is empty; give at least one flag, such as"
            " {'REALTIME_MESSAGING_ENABLED': false}"
        )
    values = {}
    for name, value in flags.items():
        try:
            _envfile.validate_key(name)
        except _envfile.EnvFileError as exc:
            raise FeatureFlagError(f"invalid flag name: {exc}") from None
        values[name] = flag_text(name, value)

    services = load_services(compose_path)
    definition = find_service(services, compose_path, service)
    refs = env_file_refs(definition, compose_dir, compose_path, service)
    environment = environment_keys(definition, compose_path, service)
    env_files = read_env_files(refs, service)

    pattern = compile_pattern(params["known_pattern"])
    allowed = params["allowed"]
    defined = set().union(*(env_file.keys for env_file in env_files))
    known_flags = sorted(
        key
        for key in defined
        if pattern.search(key) and (allowed is None or key in allowed)
    )
    check_flags(params, pattern, env_files, environment, compose_path, known_flags)

    previous_values = compose_values(env_files)
    after_text = {env_file.path: env_file.text for env_file in env_files}
    flag_results = {}
    for name, value in values.items():
        target = last_defining_file(env_files, name)
        try:
            after_text[target.path] = _envfile.set_value(
                after_text[target.path], name, value
            )
        except _envfile.EnvFileError as exc:
            raise FeatureFlagError(
                f"env file {target.path!r} cannot be edited: {exc}"
            ) from None
        flag_results[name] = {
            "previous": previous_values.get(name),
            "value": value,
            "file": target.path,
        }

    readers = services_reading(services, compose_dir, compose_path)
    files = []
    writes = []
    warnings = []
    seen = set()
    for env_file in env_files:
        if env_file.path in seen:
            continue
        seen.add(env_file.path)
        changed = after_text[env_file.path] != env_file.text
        files.append(
            {
                "path": env_file.path,
                "changed": changed,
                "backup_file": None,
                "services": readers.get(env_file.path, [service]),
            }
        )
        if not changed:
            continue
        writes.append(
            {
                "path": env_file.path,
                "before": env_file.text,
                "after": after_text[env_file.path],
            }
        )
        others = [name for name in readers.get(env_file.path, []) if name != service]
        if others:
            warnings.append(
                f"env file {env_file.path!r} is also read by service(s)"
                f" {', '.join(others)}; their containers keep the old values until"
                " they are recreated"
            )

    return {
        "changed": bool(writes),
        "files": files,
        "flags": flag_results,
        "known_flags": known_flags,
        "writes": writes,
        "warnings": warnings,
    }


def write_file(write, backup: bool):
    """Write the planned text and return the backup path, or None."""
    try:
        return atomic_write(write["path"], write["after"].encode("utf-8"), backup)
    except OSError as exc:
        raise FeatureFlagError(
            f"failed to write {write['path']!r}: {exc.strerror or exc}"
        ) from None


def run_module(module) -> dict:
    result = plan_change(module.params)
    writes = result.pop("writes")
    for warning in result.pop("warnings"):
        module.warn(warning)

    if writes and module._diff:
        result["diff"] = [
            {"prepared": prepared_diff(write["path"], write["before"], write["after"])}
            for write in writes
        ]
    if writes and not module.check_mode:
        backups = {}
        for write in writes:
            backups[write["path"]] = write_file(write, module.params["backup"])
        for entry in result["files"]:
            entry["backup_file"] = backups.get(entry["path"])
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "compose_file": {"type": "path", "required": True},
            "service": {"type": "str", "required": True},
            "flags": {"type": "dict", "required": True},
            "allowed": {"type": "list", "elements": "str"},
            "known_pattern": {"type": "str", "default": "_ENABLED$"},
            "backup": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    run_and_exit(module, run_module)


if __name__ == "__main__":
    main()
