# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: compose_image
short_description: Read or set the image tag of one service in a Docker Compose file
version_added: 0.1.0
description:
  - Reads the image tag of one service in a Docker Compose file and, when O(tag) is
    given, sets it.
  - When the tag part of the image is written literally, as in C(app:v1.0.0), the
    module edits only that tag in the Compose file. Quotes, comments, indentation and
    all other lines stay as they are.
  - When the tag part is a variable (C(app:${BACKEND_TAG}), C(app:${BACKEND_TAG:-v1.0.0})
    or C(app:$BACKEND_TAG)), the module reads and writes that variable in the
    interpolation env file O(env_file) and leaves the Compose file unchanged.
  - The module only edits files. It does not pull, build or recreate containers. Run
    M(community.docker.docker_compose_v2) afterwards to apply the change.
options:
  file:
    description:
      - Path of the Compose file, for example C(docker-compose.production.yml).
    type: path
    required: true
  service:
    description:
      - Name of the service under the top-level C(services) key.
    type: str
    required: true
  tag:
    description:
      - Image tag to set, for example C(v0.9.5).
      - Must match Docker's tag grammar C([A-Za-z0-9_][A-Za-z0-9_.-]{0,127}).
      - When omitted, the module only reads the current tag.
    type: str
  env_file:
    description:
      - Path of the env file that Compose reads for variable interpolation, the file
        that C(docker compose --env-file) selects.
      - Defaults to C(.env) in the directory of O(file), which is where Compose looks
        for it when the project directory is the directory of the Compose file.
      - This is not the C(env_file) key of a service, which sets container
        environment variables.
      - Only used when the tag part of the image is a variable. If the file does not
        exist, setting a tag creates it with mode C(0600).
    type: path
  backup:
    description:
      - Copy the file to C(<file>.<UTC timestamp>.bak) before changing it.
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
      - The diff shows the Compose file in literal mode and the env file in variable
        mode.
  platform:
    platforms: posix
requirements:
  - PyYAML on the target host
notes:
  - Only O(file) is read. Override files such as C(docker-compose.override.yml), other
    files passed to C(docker compose -f), and the C(extends) and C(include) keys are
    not taken into account.
  - The Compose file is parsed with PyYAML (YAML 1.1). A service that gets its
    C(image) from a YAML merge key (C(<<)) cannot be edited. Before writing, the
    module parses the edited text again and fails without writing unless the only
    difference is the image of O(service).
  - In variable mode, a variable set in the shell environment of whoever runs
    C(docker compose) overrides the env file, and this module cannot see that
    environment. The module warns when the variable is set in its own environment on
    the target host.
  - The env file is parsed the way Docker Compose reads it. Quoted values that span
    several lines are not supported and make the module fail.
  - A digest in the image (C(app:v1.0.0@sha256:...)) makes Docker ignore the tag, so
    the module fails instead of changing the tag of such an image.
seealso:
  - module: community.docker.docker_compose_v2
  - module: truebond.rollback.rollback_target_info
author:
  - TrueBond SRE team (@truebond-sre)
"""

EXAMPLES = r"""
- name: Read the image tag of the backend service
  truebond.rollback.compose_image:
    file: /var/tmp/truebond-drill/truebond/docker-compose.production.yml
    service: backend
  register: backend_image

- name: Switch the backend service to v0.9.5
  truebond.rollback.compose_image:
    file: /var/tmp/truebond-drill/truebond/docker-compose.production.yml
    service: backend
    tag: v0.9.5
  register: backend_switch

- name: Recreate the backend container with the new image
  community.docker.docker_compose_v2:
    project_src: /var/tmp/truebond-drill/truebond
    files:
      - docker-compose.production.yml
    services:
      - backend
    pull: never
  when: backend_switch.changed

- name: Set the tag variable in a separate interpolation env file
  truebond.rollback.compose_image:
    file: /srv/truebond/docker-compose.production.yml
    service: backend
    tag: "{{ rollback_target.target_version }}"
    env_file: /srv/truebond/release.env
    backup: false
"""

RETURN = r"""
service:
  description: Name of the service.
  type: str
  returned: success
  sample: backend
repository:
  description:
    - Repository part of the image, as written in the Compose file.
    - Variables in the repository part are not expanded.
  type: str
  returned: success
  sample: truebond-backend
tag:
  description:
    - Tag of the image after the module ran. In check mode, the tag it would have.
    - C(null) when the image has no tag, which Docker treats as C(latest), or when
      the tag variable is unset and has no default.
  type: str
  returned: success
  sample: v0.9.5
previous_tag:
  description: Tag of the image before the module ran. C(null) as for RV(tag).
  type: str
  returned: success
  sample: v1.0.0
image:
  description:
    - Full image reference after the module ran, with the tag variable resolved.
  type: str
  returned: success
  sample: truebond-backend:v0.9.5
tag_mode:
  description:
    - V(literal) when the tag is written in the Compose file.
    - V(variable) when the tag comes from a variable.
    - Not named C(mode) because Ansible returns the permissions of RV(path) as
      C(mode).
  type: str
  returned: success
  sample: literal
variable:
  description: Name of the tag variable when RV(tag_mode=variable), else C(null).
  type: str
  returned: success
  sample: BACKEND_TAG
tag_source:
  description:
    - Where RV(tag) comes from.
    - V(compose_file) in literal mode.
    - V(env_file) when the env file sets the variable.
    - V(default) when the default of C(${VAR:-default}) or C(${VAR-default}) applies.
    - C(null) when the variable is unset and has no default.
  type: str
  returned: success
  sample: compose_file
path:
  description:
    - The file that holds the tag, which is the file written or that would be
      written. The Compose file in literal mode, the env file in variable mode.
    - When that file exists, Ansible adds its C(owner), C(group), C(mode), C(uid),
      C(gid), C(size) and C(state) to the result.
  type: str
  returned: success
  sample: /var/tmp/truebond-drill/truebond/docker-compose.production.yml
backup_file:
  description: Path of the backup made before writing, else C(null).
  type: str
  returned: success
  sample: /var/tmp/truebond-drill/truebond/docker-compose.production.yml.20260112T093000Z.bak
"""

import copy
import os
import re

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.truebond.rollback.plugins.module_utils import _envfile
from ansible_collections.truebond.rollback.plugins.module_utils._compose import (
    ComposeFileError,
    ComposeLoader,
    load_compose,
    read_text,
    run_and_exit,
    yaml,
)
from ansible_collections.truebond.rollback.plugins.module_utils._files import (
    atomic_write,
)
from ansible_collections.truebond.rollback.plugins.module_utils._versions import (
    InvalidImageReferenceError,
    parse_image_reference,
)

# Docker's image tag grammar: 1 to 128 word characters, dots and dashes, the first not
# a dot or a dash.
DOCKER_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}\Z")

# A tag that is one Compose variable: ":${NAME}", ":${NAME:-default}",
# ":${NAME-default}", ":${NAME:?message}", ":${NAME?message}" or ":$NAME", at the
# end of the image.
_TAG_VARIABLE = re.compile(
    r":(?:\$\{(?P<braced>[A-Za-z_][A-Za-z0-9_]*)"
    r"(?:(?P<operator>:?[-?])(?P<argument>[^}$]*))?\}"
    r"|\$(?P<bare>[A-Za-z_][A-Za-z0-9_]*))\Z"
)

ENV_FILE_MODE = 0o600


class ComposeImageError(ComposeFileError):
    """A failure to report with fail_json. The message is the whole report."""


class ImageTemplate:
    """The image of a service, split into repository, tag and digest.

    In variable mode, ``tag`` is None and ``variable``, ``operator`` and
    ``argument`` describe the expression. ``operator`` is one of None, ":-", "-",
    ":?" and "?", and ``argument`` is the default or the error message.
    """

    def __init__(
        self, repository, tag, digest, variable=None, operator=None, argument=None
    ):
        self.repository = repository
        self.tag = tag
        self.digest = digest
        self.variable = variable
        self.operator = operator
        self.argument = argument

    @property
    def mode(self) -> str:
        return "variable" if self.variable else "literal"

    def reference(self, tag) -> str:
        """Return the image reference with ``tag``, or without a tag if None."""
        reference = self.repository if tag is None else f"{self.repository}:{tag}"
        return f"{reference}@{self.digest}" if self.digest else reference


def validate_tag(tag) -> str:
    """Return ``tag`` if it matches Docker's tag grammar, else raise."""
    if not isinstance(tag, str) or not DOCKER_TAG.match(tag):
        raise ComposeImageError(
            f"tag {tag!r} is not a valid Docker image tag: a tag has 1 to 128"
            " characters from A-Z, a-z, 0-9, '_', '.' and '-' and does not start"
            " with '.' or '-'"
        )
    return tag


def _mapping_value(node, key: str):
    """Return the value node of ``key`` in a YAML mapping node, or None.

    A repeated key yields its last value, as in yaml.safe_load.
    """
    if not isinstance(node, yaml.MappingNode):
        return None
    found = None
    for key_node, value_node in node.value:
        if isinstance(key_node, yaml.ScalarNode) and key_node.value == key:
            found = value_node
    return found


def _has_merge_key(node) -> bool:
    return isinstance(node, yaml.MappingNode) and any(
        key_node.tag == "tag:yaml.org,2002:merge" for key_node, _value in node.value
    )


def find_image(document, path: str, service: str) -> str:
    """Return the image string of ``service``, or raise naming the problem."""
    services = document["services"]
    if service not in services:
        names = ", ".join(str(name) for name in services)
        raise ComposeImageError(
            f"service {service!r} was not found in compose file {path!r}; services"
            f" in the file: {names}"
        )
    definition = services[service]
    if not isinstance(definition, dict) or "image" not in definition:
        raise ComposeImageError(
            f"service {service!r} in compose file {path!r} has no image key; this"
            " module only reads and sets the tag of a service that sets image"
        )
    image = definition["image"]
    if not isinstance(image, str):
        raise ComposeImageError(
            f"the image of service {service!r} in compose file {path!r} is"
            f" {image!r}, expected a string such as truebond-backend:v1.0.0"
        )
    return image


def find_image_node(root, path: str, service: str):
    """Return the YAML scalar node that contains the image of ``service``."""
    service_node = _mapping_value(_mapping_value(root, "services"), service)
    image_node = _mapping_value(service_node, "image")
    if image_node is None and _has_merge_key(service_node):
        raise ComposeImageError(
            f"service {service!r} in compose file {path!r} gets its image from a"
            " YAML merge key (<<); set image in the service itself to edit it"
        )
    if not isinstance(image_node, yaml.ScalarNode):
        raise ComposeImageError(
            f"the image of service {service!r} in compose file {path!r} was not"
            " found as a plain or quoted string"
        )
    return image_node


def describe_image(image: str, path: str, service: str) -> ImageTemplate:
    """Split the image string of ``service`` into an ImageTemplate."""
    variable = _TAG_VARIABLE.search(image)
    if variable is not None:
        repository = image[: variable.start()]
        if not repository:
            raise ComposeImageError(
                f"image {image!r} of service {service!r} in compose file {path!r}"
                " has no repository name before the tag variable"
            )
        return ImageTemplate(
            repository,
            None,
            None,
            variable=variable.group("braced") or variable.group("bare"),
            operator=variable.group("operator"),
            argument=variable.group("argument"),
        )

    try:
        repository, tag, digest = parse_image_reference(image)
    except InvalidImageReferenceError as exc:
        raise ComposeImageError(
            f"service {service!r} in compose file {path!r}: {exc}"
        ) from None
    if tag is not None and "$" in tag:
        raise ComposeImageError(
            f"the tag of image {image!r} of service {service!r} in compose file"
            f" {path!r} uses variables in a form this module cannot edit; use a single"
            " variable such as ${BACKEND_TAG} or ${BACKEND_TAG:-v1.0.0}, or a literal"
            " tag"
        )
    return ImageTemplate(repository, tag, digest)


def _render_scalar(node, value: str, path: str, service: str) -> str:
    """Return ``value`` written in the YAML style of ``node``."""
    if node.style is None:
        return value
    if node.style == "'":
        return "'" + value.replace("'", "''") + "'"
    if node.style == '"':
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'
    raise ComposeImageError(
        f"the image of service {service!r} in compose file {path!r} is a block"
        " scalar (| or >), which this module cannot edit; write it on one line"
    )


def edit_literal_tag(text, document, root, template, tag, path, service) -> str:
    """Return the Compose text with the tag of ``service`` replaced by ``tag``.

    Only the characters of the image scalar change. The edited text is parsed again
    and must equal the original document except for that one image value.
    """
    if template.digest:
        raise ComposeImageError(
            f"image {template.reference(template.tag)!r} of service {service!r} in"
            f" compose file {path!r} is pinned by digest, so Docker ignores its tag;"
            " remove the digest to switch the image by tag"
        )
    node = find_image_node(root, path, service)
    start, end = node.start_mark.index, node.end_mark.index
    # The node's span starts at an anchor (&name) or tag (!!str) if the scalar has
    # one, so locate the scalar itself at the end of the span. A scalar written with
    # escapes or over several lines does not match and is not edited.
    written = _render_scalar(node, node.value, path, service)
    if not text[start:end].endswith(written):
        raise ComposeImageError(
            f"the image of service {service!r} in compose file {path!r} is written"
            " with escape sequences or over several lines, which this module cannot"
            " edit; write it on one line as a plain or quoted string"
        )
    start = end - len(written)

    new_image = template.reference(tag)
    new_text = (
        text[:start] + _render_scalar(node, new_image, path, service) + text[end:]
    )

    expected = copy.deepcopy(document)
    expected["services"][service]["image"] = new_image
    try:
        edited = yaml.load(new_text, Loader=ComposeLoader)
    except yaml.YAMLError:
        edited = None
    if edited != expected:
        raise ComposeImageError(
            f"refusing to write {path!r}: the edit would change more than the image"
            f" of service {service!r}"
        )
    return new_text


def resolve_variable_tag(template, env_value):
    """Return (tag, tag_source) the way Compose interpolates the tag variable.

    ``env_value`` is the variable's value in the env file, or None when unset.
    """
    operator = template.operator
    empty_counts_as_unset = operator in (":-", ":?")
    if env_value is not None and not (empty_counts_as_unset and env_value == ""):
        return env_value, "env_file"
    if operator in (":-", "-"):
        return template.argument, "default"
    return None, None


def read_env_text(env_path: str) -> str | None:
    """Return the text of the env file, or None if it does not exist."""
    if not os.path.exists(env_path):
        return None
    return read_text(env_path, "env file")


def get_env_value(env_text, env_path: str, variable: str):
    if env_text is None:
        return None
    try:
        return _envfile.get(env_text, variable)
    except _envfile.EnvFileError as exc:
        raise ComposeImageError(
            f"env file {env_path!r} cannot be parsed: {exc}"
        ) from None


def set_env_value(env_text, env_path: str, variable: str, tag: str) -> str:
    try:
        return _envfile.set_value(env_text or "", variable, tag)
    except _envfile.EnvFileError as exc:
        raise ComposeImageError(
            f"env file {env_path!r} cannot be edited: {exc}"
        ) from None


def plan_change(params) -> dict:
    """Read the current tag and compute the edit, without writing anything.

    Returns a dict with the result keys for exit_json, plus ``write`` (None, or a
    dict with path, before and after text, and whether the file exists).
    """
    path = os.path.abspath(params["file"])
    service = params["service"]
    tag = params["tag"]
    if tag is not None:
        validate_tag(tag)

    text, document, root = load_compose(path, with_nodes=True)
    image = find_image(document, path, service)
    template = describe_image(image, path, service)
    warnings = []

    if template.mode == "literal":
        previous_tag = template.tag
        previous_source = "compose_file"
        target_path = path
        before = text
        after = text
        exists = True
        if tag is not None and tag != previous_tag:
            after = edit_literal_tag(text, document, root, template, tag, path, service)
    else:
        target_path = os.path.abspath(
            params["env_file"] or os.path.join(os.path.dirname(path), ".env")
        )
        env_text = read_env_text(target_path)
        exists = env_text is not None
        env_value = get_env_value(env_text, target_path, template.variable)
        previous_tag, previous_source = resolve_variable_tag(template, env_value)
        if tag is None:
            warnings.extend(
                variable_warnings(template, env_value, previous_tag, target_path)
            )
        elif template.variable in os.environ:
            warnings.append(environment_warning(template.variable, target_path))

        before = env_text or ""
        after = before
        default_already_applies = env_value is None and previous_tag == tag
        if tag is not None and not default_already_applies:
            after = set_env_value(env_text, target_path, template.variable, tag)

    changed = after != before
    if changed:
        current_tag = tag
        current_source = "compose_file" if template.mode == "literal" else "env_file"
    else:
        current_tag = previous_tag
        current_source = previous_source

    return {
        "changed": changed,
        "service": service,
        "repository": template.repository,
        "tag": current_tag,
        "previous_tag": previous_tag,
        "image": template.reference(current_tag),
        "tag_mode": template.mode,
        "variable": template.variable,
        "tag_source": current_source,
        "path": target_path,
        "backup_file": None,
        "warnings": warnings,
        "write": (
            {"path": target_path, "before": before, "after": after, "exists": exists}
            if changed
            else None
        ),
    }


def environment_warning(variable: str, env_path: str) -> str:
    return (
        f"{variable} is set in the environment of this module run"
        f" ({os.environ[variable]!r}); docker compose started with that"
        f" environment uses it instead of the value in {env_path!r}"
    )


def variable_warnings(template, env_value, tag, env_path) -> list[str]:
    """Return warnings about how Compose may resolve the tag variable differently.

    ``tag`` is the tag that the module read, or None if it found none.
    """
    variable = template.variable
    warnings = []
    if variable in os.environ:
        warnings.append(environment_warning(variable, env_path))
    if env_value is not None and "$" in env_value:
        warnings.append(
            f"the value {env_value!r} of {variable} in {env_path!r} contains '$';"
            " docker compose interpolates it, but this module reports it unexpanded"
        )
    if tag is None:
        warnings.append(
            f"{variable} is not set in {env_path!r} and has no default, so docker"
            " compose would fail or use the shell environment to build the image"
            " name"
        )
    return warnings


def write_change(write, backup: bool):
    """Write the planned text and return the backup path, or None."""
    mode = None if write["exists"] else ENV_FILE_MODE
    try:
        return atomic_write(
            write["path"],
            write["after"].encode("utf-8"),
            backup=backup and write["exists"],
            mode=mode,
        )
    except OSError as exc:
        raise ComposeImageError(
            f"failed to write {write['path']!r}: {exc.strerror or exc}"
        ) from None


def run_module(module) -> dict:
    result = plan_change(module.params)
    write = result.pop("write")
    for warning in result.pop("warnings"):
        module.warn(warning)

    if write is not None:
        if module._diff:
            result["diff"] = {
                "before": write["before"],
                "after": write["after"],
                "before_header": write["path"],
                "after_header": write["path"],
            }
        if not module.check_mode:
            result["backup_file"] = write_change(write, module.params["backup"])
    return result


def main():
    module = AnsibleModule(
        argument_spec={
            "file": {"type": "path", "required": True},
            "service": {"type": "str", "required": True},
            "tag": {"type": "str"},
            "env_file": {"type": "path"},
            "backup": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    run_and_exit(module, run_module)


if __name__ == "__main__":
    main()
