# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rollback_target_info
short_description: Choose the version that a rollback switches an image to
version_added: 0.1.0
description:
  - Chooses the target version of an application rollback from the running image,
    the local image tags and the git tags, and reports where the target comes from.
  - Versions are semantic versions with a leading C(v). Only release versions of
    the form C(vMAJOR.MINOR.PATCH) are targets. Pre-releases such as
    C(v1.0.0-rc.1) and tags such as C(latest) are ignored.
  - With O(version), the module validates it and checks that it exists as a local
    image tag or a git tag. Without it, the target is the greatest release version
    lower than the running version.
  - The module only computes. It never changes anything.
options:
  version:
    description:
      - Release version to switch to, for example C(v0.9.5).
      - C(latest), pre-releases, values with whitespace or shell
        metacharacters, and values longer than 128 characters are rejected.
      - When omitted, the previous release before the running version is chosen.
    type: str
  running_image:
    description:
      - Image reference of the running container, for example
        C(truebond-backend:v1.0.0), as shown by C(docker inspect) in
        C(.Config.Image).
      - Its tag is the running version. Use the container's image rather than the
        Compose file, which may have been edited since the container started.
      - When omitted, for example because no container exists, the running version
        is unknown, so O(version) and O(repository) are required.
      - An image ID (C(sha256:...)) is accepted, but then the running version is
        unknown and O(repository) is required.
      - One of O(running_image) and O(repository) is required.
    type: str
  repository:
    description:
      - Image repository of the target, for example C(truebond-backend).
      - Defaults to the repository of O(running_image). When both are given and
        differ, the module warns and uses O(repository).
    type: str
  image_tags:
    description:
      - Tags of the local images of the repository of O(running_image).
      - Each item is a tag (C(v0.9.5)) or a full reference (C(truebond-backend:v0.9.5),
        as in the C(RepoTags) of C(docker image inspect)). Full references of other
        repositories are ignored.
      - Tags longer than 128 characters, the maximum length of a Docker tag, are
        ignored.
    type: list
    elements: str
    default: []
  git_tags:
    description:
      - Tags of the application's git repository, for example from C(git tag).
      - A C(refs/tags/) prefix is removed.
    type: list
    elements: str
    default: []
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
  diff_mode:
    support: none
  platform:
    platforms: all
notes:
  - When the target version exists both as a local image and as a git tag, the
    local image wins (RV(source=image)).
  - The module warns when the target is newer than the running version.
  - When the running version is unknown, for example C(truebond-backend:latest) or
    no O(running_image), O(version) is required and RV(direction) is V(unknown).
seealso:
  - module: truebond.rollback.compose_image
author:
  - TrueBond SRE team (@truebond-sre)
"""

EXAMPLES = r"""
- name: Read the image of the running backend container
  community.docker.docker_container_info:
    name: truebond-backend
  register: backend_container

- name: List the local backend image tags
  ansible.builtin.command:
    cmd: docker image ls truebond-backend --format '{{ "{{.Tag}}" }}'
  register: backend_image_tags
  changed_when: false
  check_mode: false

- name: List the git tags of the application
  ansible.builtin.command:
    cmd: git -C /var/tmp/truebond-drill/truebond tag --list
  register: app_git_tags
  changed_when: false
  check_mode: false

- name: Choose the rollback target
  truebond.rollback.rollback_target_info:
    version: "{{ version | default(omit) }}"
    running_image: "{{ backend_container.container.Config.Image }}"
    image_tags: "{{ backend_image_tags.stdout_lines }}"
    git_tags: "{{ app_git_tags.stdout_lines }}"
  register: rollback_target

- name: Show the plan
  ansible.builtin.debug:
    msg: "{{ rollback_target.msg }}"
"""

RETURN = r"""
msg:
  description: One sentence that describes the planned switch.
  type: str
  returned: success
  sample: Rolling back truebond-backend from v1.0.0 to v0.9.5 (previous release, image present locally)
current_version:
  description:
    - Running version, the tag of O(running_image).
    - C(null) when that tag is not a semantic version or O(running_image) is
      omitted.
  type: str
  returned: success
  sample: v1.0.0
target_version:
  description: Version to switch to.
  type: str
  returned: success
  sample: v0.9.5
repository:
  description: Image repository of the target, O(repository) or the repository of
    O(running_image).
  type: str
  returned: success
  sample: truebond-backend
target_image:
  description: Image reference of the target, C(repository:target_version).
  type: str
  returned: success
  sample: truebond-backend:v0.9.5
source:
  description:
    - V(image) when the target exists as a local image tag.
    - V(git) when it exists only as a git tag, so the image must be built first.
  type: str
  returned: success
  sample: image
same_as_running:
  description: Whether the target version is the running version.
  type: bool
  returned: success
  sample: false
direction:
  description:
    - V(rollback) when the target is older than the running version.
    - V(roll-forward) when it is newer, V(none) when it is the same.
    - V(unknown) when the running version is not a semantic version.
  type: str
  returned: success
  sample: rollback
resolved_by:
  description:
    - V(request) when O(version) chose the target.
    - V(previous-release) when the module chose the previous release.
  type: str
  returned: success
  sample: previous-release
known_versions:
  description:
    - Release versions found as local image tags or git tags, oldest first.
    - Also returned when the module fails because the version is invalid, unknown
      or cannot be chosen.
  type: list
  elements: str
  returned: success and on version errors
  sample: [v0.9.4, v0.9.5, v1.0.0]
image_versions:
  description: Release versions found as local image tags, oldest first.
  type: list
  elements: str
  returned: success
  sample: [v0.9.5, v1.0.0]
git_versions:
  description: Release versions found as git tags, oldest first.
  type: list
  elements: str
  returned: success
  sample: [v0.9.4, v0.9.5, v1.0.0]
"""

import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible_collections.truebond.rollback.plugins.module_utils._versions import (
    InvalidImageReferenceError,
    VersionError,
    is_image_id,
    parse_image_reference,
    resolve_target,
)


def describe_target(target: dict) -> str:
    """Return the one-sentence summary of a resolve_target result."""
    repository = target["repository"]
    current = target["current_version"]
    version = target["target_version"]

    if target["same_as_running"]:
        return f"{repository} already runs {version}; nothing to change"

    reason = (
        "previous release"
        if target["resolved_by"] == "previous-release"
        else "requested version"
    )
    if target["source"] == "image":
        origin = f"({reason}, image present locally)"
    else:
        origin = (
            f"({reason}, no local image): {version} will be built from git tag"
            f" {version}"
        )

    if target["direction"] == "rollback":
        action = f"Rolling back {repository} from {current} to {version}"
    elif target["direction"] == "roll-forward":
        action = f"Rolling forward {repository} from {current} to {version}"
    else:
        action = f"Switching {repository} from an unknown running version to {version}"
    return f"{action} {origin}"


def target_warnings(target: dict, running_image: str | None) -> list[str]:
    """Return the warnings about a resolved target.

    They cover a running image of another repository, a roll-forward and an unknown
    running version.
    """
    warnings = []
    if running_image is not None and not is_image_id(running_image):
        running_repository = parse_image_reference(running_image)[0]
        if running_repository != target["repository"]:
            warnings.append(
                f"the running image {running_image!r} belongs to repository"
                f" {running_repository}, but the target uses repository"
                f" {target['repository']}"
            )

    if target["direction"] == "roll-forward":
        warnings.append(
            f"version {target['target_version']} is newer than the running version"
            f" {target['current_version']}, so this is a roll-forward, not a rollback"
        )
    elif target["direction"] == "unknown":
        shown = "no running image" if running_image is None else repr(running_image)
        warnings.append(
            f"the running version cannot be determined from {shown}, so the module"
            f" cannot tell whether {target['target_version']} is older or newer"
        )
    return warnings


def main():
    module = AnsibleModule(
        argument_spec={
            "version": {"type": "str"},
            "running_image": {"type": "str"},
            "repository": {"type": "str"},
            "image_tags": {"type": "list", "elements": "str", "default": []},
            "git_tags": {"type": "list", "elements": "str", "default": []},
        },
        required_one_of=[("running_image", "repository")],
        supports_check_mode=True,
    )
    params = module.params

    try:
        target = resolve_target(
            params["version"],
            params["running_image"],
            params["image_tags"],
            params["git_tags"],
            repository=params["repository"],
        )
    except VersionError as exc:
        module.fail_json(msg=str(exc), known_versions=exc.known_versions)
    except InvalidImageReferenceError as exc:
        module.fail_json(msg=f"running_image: {exc}", known_versions=[])
    except Exception as exc:  # noqa: BLE001 - report any bug with its traceback
        module.fail_json(
            msg=f"unexpected error: {type(exc).__name__}: {exc}",
            exception=traceback.format_exc(),
        )

    for warning in target_warnings(target, params["running_image"]):
        module.warn(warning)
    module.exit_json(changed=False, msg=describe_target(target), **target)


if __name__ == "__main__":
    main()
