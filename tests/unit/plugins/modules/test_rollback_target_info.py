# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for the rollback_target_info module."""

from __future__ import annotations

import json

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.truebond.rollback.plugins.module_utils._versions import (
    resolve_target,
)
from ansible_collections.truebond.rollback.plugins.modules import rollback_target_info

# The drill stack: local images and git tags of truebond-backend.
DRILL_IMAGE_TAGS = ["v0.9.5", "v1.0.0-rc.1", "v1.0.0", "latest"]
DRILL_GIT_TAGS = ["v0.9.4", "v0.9.5", "v1.0.0-rc.1", "v1.0.0"]
KNOWN = ["v0.9.4", "v0.9.5", "v1.0.0"]


def drill_args(**overrides):
    args = {
        "running_image": "truebond-backend:v1.0.0",
        "image_tags": DRILL_IMAGE_TAGS,
        "git_tags": DRILL_GIT_TAGS,
    }
    args.update(overrides)
    return args


def warning_messages(result):
    """Return the warning texts, which ansible-core 2.19 wraps in event objects."""
    return [warning["event"]["msg"] for warning in result.get("warnings", [])]


def run_main(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        rollback_target_info.main()
    return json.loads(capsys.readouterr().out)


@pytest.mark.parametrize(
    "version, running, message",
    [
        pytest.param(
            None,
            "v1.0.0",
            "Rolling back truebond-backend from v1.0.0 to v0.9.5 (previous release,"
            " image present locally)",
            id="previous-release-image",
        ),
        pytest.param(
            "v0.9.4",
            "v1.0.0",
            "Rolling back truebond-backend from v1.0.0 to v0.9.4 (requested version,"
            " no local image): v0.9.4 will be built from git tag v0.9.4",
            id="requested-git",
        ),
        pytest.param(
            "v0.9.5",
            "v0.9.5",
            "truebond-backend already runs v0.9.5; nothing to change",
            id="same-as-running",
        ),
        pytest.param(
            "v1.0.0",
            "v0.9.5",
            "Rolling forward truebond-backend from v0.9.5 to v1.0.0 (requested"
            " version, image present locally)",
            id="roll-forward",
        ),
        pytest.param(
            "v0.9.5",
            "latest",
            "Switching truebond-backend from an unknown running version to v0.9.5"
            " (requested version, image present locally)",
            id="unknown-running",
        ),
    ],
)
def test_describe_target(version, running, message):
    target = resolve_target(
        version, f"truebond-backend:{running}", DRILL_IMAGE_TAGS, DRILL_GIT_TAGS
    )
    assert rollback_target_info.describe_target(target) == message


def test_target_warnings_rollback_has_none():
    target = resolve_target(
        None, "truebond-backend:v1.0.0", DRILL_IMAGE_TAGS, DRILL_GIT_TAGS
    )
    running_image = "truebond-backend:v1.0.0"
    assert rollback_target_info.target_warnings(target, running_image) == []


def test_main_previous_release_from_image(capsys):
    result = run_main(drill_args(), capsys)
    assert result["changed"] is False
    assert result["current_version"] == "v1.0.0"
    assert result["target_version"] == "v0.9.5"
    assert result["target_image"] == "truebond-backend:v0.9.5"
    assert result["source"] == "image"
    assert result["resolved_by"] == "previous-release"
    assert result["direction"] == "rollback"
    assert result["same_as_running"] is False
    assert result["known_versions"] == KNOWN
    assert result["image_versions"] == ["v0.9.5", "v1.0.0"]
    assert result["git_versions"] == KNOWN
    assert result["msg"] == (
        "Rolling back truebond-backend from v1.0.0 to v0.9.5 (previous release,"
        " image present locally)"
    )
    assert "warnings" not in result


def test_main_ignores_too_long_image_tag(capsys):
    huge = "v" + "1" * 4301 + ".0.0"
    result = run_main(drill_args(image_tags=[*DRILL_IMAGE_TAGS, huge]), capsys)
    assert "failed" not in result
    assert result["target_version"] == "v0.9.5"
    assert result["image_versions"] == ["v0.9.5", "v1.0.0"]


def test_main_requested_version_from_git(capsys):
    result = run_main(drill_args(version="v0.9.4"), capsys)
    assert result["target_version"] == "v0.9.4"
    assert result["source"] == "git"
    assert result["resolved_by"] == "request"
    assert result["msg"].endswith("v0.9.4 will be built from git tag v0.9.4")


def test_main_same_as_running(capsys):
    result = run_main(
        drill_args(version="v0.9.5", running_image="truebond-backend:v0.9.5"), capsys
    )
    assert result["changed"] is False
    assert result["same_as_running"] is True
    assert result["direction"] == "none"
    assert result["msg"] == "truebond-backend already runs v0.9.5; nothing to change"


def test_main_roll_forward_warns(capsys):
    result = run_main(
        drill_args(version="v1.0.0", running_image="truebond-backend:v0.9.5"), capsys
    )
    assert result["direction"] == "roll-forward"
    assert warning_messages(result) == [
        (
            "version v1.0.0 is newer than the running version v0.9.5, so this is a"
            " roll-forward, not a rollback"
        )
    ]


def test_main_check_mode_reports_same_result(capsys):
    result = run_main(drill_args(_ansible_check_mode=True), capsys)
    assert result["changed"] is False
    assert result["target_version"] == "v0.9.5"


@pytest.mark.parametrize(
    "overrides, message",
    [
        pytest.param(
            {"version": "v9.9.9"},
            "version 'v9.9.9' was not found as a local image tag of truebond-backend"
            " or as a git tag; known versions: v0.9.4, v0.9.5, v1.0.0",
            id="unknown-version",
        ),
        pytest.param(
            {"version": "latest"},
            "version 'latest' is not allowed because it does not name a fixed"
            " release, expected the form vMAJOR.MINOR.PATCH, e.g. v0.9.5; known"
            " versions: v0.9.4, v0.9.5, v1.0.0",
            id="latest",
        ),
        pytest.param(
            {"version": "v0.9.5 && reboot"},
            "version 'v0.9.5 && reboot' contains characters that are not allowed"
            " (whitespace, control characters or shell metacharacters), expected the"
            " form vMAJOR.MINOR.PATCH, e.g. v0.9.5; known versions: v0.9.4, v0.9.5,"
            " v1.0.0",
            id="shell",
        ),
        pytest.param(
            {"version": ""},
            "version '' is empty, expected the form vMAJOR.MINOR.PATCH, e.g. v0.9.5;"
            " known versions: v0.9.4, v0.9.5, v1.0.0",
            id="empty",
        ),
        pytest.param(
            {"version": "v0.9.5-" + "a" * 122},
            "version 'v0.9.5-" + "a" * 122 + "' is 129 characters long, more than"
            " the maximum of 128 (the maximum length of a Docker tag), expected the"
            " form vMAJOR.MINOR.PATCH, e.g. v0.9.5; known versions: v0.9.4, v0.9.5,"
            " v1.0.0",
            id="too-long",
        ),
        pytest.param(
            {"running_image": "truebond-backend:latest"},
            "the running version cannot be determined from image"
            " 'truebond-backend:latest' because its tag 'latest' is not a semantic"
            " version, pass the version explicitly (-e version=vX.Y.Z); known"
            " versions: v0.9.4, v0.9.5, v1.0.0",
            id="running-latest",
        ),
        pytest.param(
            {"running_image": "truebond-backend:v0.9.4"},
            "no release version older than the running version 'v0.9.4' of"
            " truebond-backend was found among the local image tags and git tags,"
            " pass the version explicitly (-e version=vX.Y.Z); known versions:"
            " v0.9.4, v0.9.5, v1.0.0",
            id="nothing-older",
        ),
    ],
)
def test_main_fails_with_known_versions(overrides, message, capsys):
    result = run_main(drill_args(**overrides), capsys)
    assert result["failed"] is True
    assert result["msg"] == message
    assert result["known_versions"] == KNOWN


def test_main_fails_on_invalid_running_image(capsys):
    result = run_main(drill_args(running_image=""), capsys)
    assert result["failed"] is True
    assert result["msg"] == (
        "running_image: image reference '' is empty, expected a reference such as"
        " truebond-backend:v1.0.0"
    )
    assert result["known_versions"] == []


def test_main_without_running_image_uses_repository(capsys):
    args = drill_args(version="v0.9.5", repository="truebond-backend")
    del args["running_image"]
    result = run_main(args, capsys)
    assert result["target_image"] == "truebond-backend:v0.9.5"
    assert result["current_version"] is None
    assert result["direction"] == "unknown"
    assert warning_messages(result) == [
        (
            "the running version cannot be determined from no running image, so the"
            " module cannot tell whether v0.9.5 is older or newer"
        )
    ]


def test_main_without_running_image_needs_version(capsys):
    args = drill_args(repository="truebond-backend")
    del args["running_image"]
    result = run_main(args, capsys)
    assert result["failed"] is True
    assert result["msg"] == (
        "the running version cannot be determined because no running image was"
        " given, pass the version explicitly (-e version=vX.Y.Z); known versions:"
        " v0.9.4, v0.9.5, v1.0.0"
    )


def test_main_needs_running_image_or_repository(capsys):
    args = drill_args(version="v0.9.5")
    del args["running_image"]
    result = run_main(args, capsys)
    assert result["failed"] is True
    assert (
        result["msg"] == "one of the following is required: running_image, repository"
    )


def test_main_repository_filters_full_image_references(capsys):
    result = run_main(
        drill_args(
            repository="registry.example:5000/truebond-backend",
            running_image="registry.example:5000/truebond-backend:v1.0.0",
            image_tags=[
                "registry.example:5000/truebond-backend:v0.9.5",
                "truebond-backend:v0.9.4",
            ],
            git_tags=[],
        ),
        capsys,
    )
    assert result["image_versions"] == ["v0.9.5"]
    assert result["target_image"] == "registry.example:5000/truebond-backend:v0.9.5"


def test_main_warns_on_other_running_repository(capsys):
    result = run_main(
        drill_args(repository="truebond-backend", running_image="old-backend:v1.0.0"),
        capsys,
    )
    assert result["target_image"] == "truebond-backend:v0.9.5"
    assert warning_messages(result) == [
        (
            "the running image 'old-backend:v1.0.0' belongs to repository old-backend,"
            " but the target uses repository truebond-backend"
        )
    ]


def test_main_image_id_with_repository(capsys):
    image_id = "sha256:" + "e" * 64
    result = run_main(
        drill_args(
            version="v0.9.5", running_image=image_id, repository="truebond-backend"
        ),
        capsys,
    )
    assert result["target_image"] == "truebond-backend:v0.9.5"
    assert result["direction"] == "unknown"
    assert warning_messages(result) == [
        (
            f"the running version cannot be determined from {image_id!r}, so the"
            " module cannot tell whether v0.9.5 is older or newer"
        )
    ]


def test_main_image_id_needs_version(capsys):
    image_id = "sha256:" + "e" * 64
    result = run_main(
        drill_args(running_image=image_id, repository="truebond-backend"), capsys
    )
    assert result["msg"] == (
        f"the running version cannot be determined from {image_id!r} because it is"
        " an image ID, not a tagged name, pass the version explicitly"
        " (-e version=vX.Y.Z); known versions: v0.9.4, v0.9.5, v1.0.0"
    )


def test_main_image_id_without_repository(capsys):
    image_id = "sha256:" + "e" * 64
    result = run_main(drill_args(running_image=image_id), capsys)
    assert result["failed"] is True
    assert result["msg"] == (
        f"running_image: image reference {image_id!r} is an image ID, which names"
        " no repository; pass the repository, e.g. truebond-backend"
    )
