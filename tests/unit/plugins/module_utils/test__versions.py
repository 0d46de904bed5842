# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for the _versions module_utils: parsing, ordering and rollback targets."""

from __future__ import annotations

import random

import pytest
from ansible_collections.truebond.rollback.plugins.module_utils._versions import (
    InvalidImageReferenceError,
    InvalidVersionError,
    RunningVersionError,
    VersionNotFoundError,
    is_image_id,
    is_release,
    parse_image_reference,
    parse_version,
    resolve_target,
    sort_versions,
    validate_release_version,
)

KNOWN = ["v0.9.4", "v0.9.5", "v1.0.0"]
KNOWN_SUFFIX = "known versions: v0.9.4, v0.9.5, v1.0.0"
EXPECTED_FORM = "expected the form vMAJOR.MINOR.PATCH, e.g. v0.9.5"

# The drill stack: local images and git tags of truebond-backend.
DRILL_IMAGE_TAGS = ["v0.9.5", "v1.0.0-rc.1", "v1.0.0", "latest"]
DRILL_GIT_TAGS = ["v0.9.4", "v0.9.5", "v1.0.0-rc.1", "v1.0.0"]


# The precedence example of SemVer 2.0 item 11, with a leading v, plus the
# release boundaries around it.
SEMVER_ORDER = [
    "v0.9.4",
    "v0.9.5",
    "v0.10.0",
    "v1.0.0-alpha",
    "v1.0.0-alpha.1",
    "v1.0.0-alpha.beta",
    "v1.0.0-beta",
    "v1.0.0-beta.2",
    "v1.0.0-beta.11",
    "v1.0.0-rc.1",
    "v1.0.0",
    "v1.0.1",
    "v1.10.0",
    "v2.0.0",
]


def test_sort_versions_follows_semver_precedence():
    shuffled = list(SEMVER_ORDER)
    random.Random(4).shuffle(shuffled)
    assert sort_versions(shuffled) == SEMVER_ORDER


def test_sort_versions_drops_invalid_and_duplicates():
    tags = ["latest", "v1.0.0", "1.0.0", "v1.0.0", "v01.0.0", "", "v0.9.5"]
    assert sort_versions(tags) == ["v0.9.5", "v1.0.0"]


@pytest.mark.parametrize(
    "lower, higher",
    [
        pytest.param("v1.0.0-rc.1", "v1.0.0", id="prerelease-below-release"),
        pytest.param("v1.0.0-2", "v1.0.0-10", id="numeric-ids-compare-as-numbers"),
        pytest.param("v1.0.0-10", "v1.0.0-a", id="numeric-below-alphanumeric"),
        pytest.param("v1.0.0-rc", "v1.0.0-rc.1", id="shorter-prerelease-lower"),
        pytest.param("v1.0.0-RC", "v1.0.0-rc", id="ascii-order-uppercase-first"),
        pytest.param("v0.9.5", "v1.0.0-rc.1", id="prerelease-above-older-release"),
        pytest.param("v1.9.9", "v1.10.0", id="minor-compares-as-number"),
    ],
)
def test_parse_version_orders(lower, higher):
    assert parse_version(lower) < parse_version(higher)
    assert parse_version(higher) > parse_version(lower)


def test_parse_version_ignores_build_metadata_in_comparison():
    assert parse_version("v1.0.0+build.1") == parse_version("v1.0.0+build.2")
    assert parse_version("v1.0.0+build.1").build == ("build", "1")


def test_parse_version_fields():
    version = parse_version("v1.2.3-rc.1+sha.5114f85")
    assert (version.major, version.minor, version.patch) == (1, 2, 3)
    assert version.prerelease == ("rc", "1")
    assert version.build == ("sha", "5114f85")
    assert str(version) == "v1.2.3-rc.1+sha.5114f85"
    assert not version.is_release


@pytest.mark.parametrize(
    "text",
    [
        pytest.param("1.0.0", id="missing-v"),
        pytest.param("V1.0.0", id="capital-v"),
        pytest.param("v1.0", id="two-parts"),
        pytest.param("v01.0.0", id="leading-zero-major"),
        pytest.param("v1.0.0-01", id="leading-zero-prerelease-number"),
        pytest.param("v1.0.0-", id="empty-prerelease"),
        pytest.param("v1.0.0+", id="empty-build"),
        pytest.param("v1.0.0\n", id="trailing-newline"),
        pytest.param("v\u0661.0.0", id="non-ascii-digit"),
        pytest.param("latest", id="latest"),
        pytest.param(None, id="none"),
        pytest.param(100, id="integer"),
        pytest.param("v" + "1" * 4301 + ".0.0-rc", id="over-int-digit-limit"),
        pytest.param("v1.0.0-" + "a" * 122, id="over-max-length"),
    ],
)
def test_parse_version_rejects(text):
    assert parse_version(text) is None


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param("v0.9.5", True, id="release"),
        pytest.param("v0.0.0", True, id="zeros"),
        pytest.param("v10.20.30", True, id="multi-digit"),
        pytest.param("v1.0.0-rc.1", False, id="prerelease"),
        pytest.param("v1.0.0+build", False, id="build-metadata"),
        pytest.param("v1.0.00", False, id="leading-zero-patch"),
        pytest.param("1.0.0", False, id="missing-v"),
        pytest.param("latest", False, id="latest"),
        pytest.param(None, False, id="none"),
        pytest.param("v" + "1" * 125 + ".0.0", False, id="over-max-length"),
    ],
)
def test_is_release(text, expected):
    assert is_release(text) is expected


@pytest.mark.parametrize(
    "reference, expected",
    [
        pytest.param("truebond-backend", ("truebond-backend", None, None), id="name"),
        pytest.param(
            "truebond-backend:v1.0.0",
            ("truebond-backend", "v1.0.0", None),
            id="name-tag",
        ),
        pytest.param(
            "registry.example:5000/team/truebond-backend:v1.0.0",
            ("registry.example:5000/team/truebond-backend", "v1.0.0", None),
            id="registry-port-tag",
        ),
        pytest.param(
            "registry.example:5000/team/truebond-backend",
            ("registry.example:5000/team/truebond-backend", None, None),
            id="registry-port-no-tag",
        ),
        pytest.param(
            "truebond-backend@sha256:" + "a" * 64,
            ("truebond-backend", None, "sha256:" + "a" * 64),
            id="name-digest",
        ),
        pytest.param(
            "truebond-backend:v1.0.0@sha256:" + "b" * 64,
            ("truebond-backend", "v1.0.0", "sha256:" + "b" * 64),
            id="name-tag-digest",
        ),
        pytest.param(
            "localhost:5000/app@sha256:" + "c" * 64,
            ("localhost:5000/app", None, "sha256:" + "c" * 64),
            id="registry-port-digest",
        ),
    ],
)
def test_parse_image_reference(reference, expected):
    assert parse_image_reference(reference) == expected


@pytest.mark.parametrize(
    "reference, message",
    [
        pytest.param(
            "",
            "image reference '' is empty, expected a reference such as"
            " truebond-backend:v1.0.0",
            id="empty",
        ),
        pytest.param(
            "truebond backend:v1",
            "image reference 'truebond backend:v1' contains whitespace, expected a"
            " reference such as truebond-backend:v1.0.0",
            id="whitespace",
        ),
        pytest.param(
            "truebond-backend:",
            "image reference 'truebond-backend:' has an empty tag after ':', expected"
            " NAME:TAG",
            id="empty-tag",
        ),
        pytest.param(
            "truebond-backend@",
            "image reference 'truebond-backend@' has an invalid digest, expected"
            " NAME@sha256:HEX",
            id="empty-digest",
        ),
        pytest.param(
            ":v1.0.0",
            "image reference ':v1.0.0' has no repository name, expected a reference"
            " such as truebond-backend:v1.0.0",
            id="missing-repository",
        ),
    ],
)
def test_parse_image_reference_rejects(reference, message):
    with pytest.raises(InvalidImageReferenceError) as error:
        parse_image_reference(reference)
    assert str(error.value) == message


def test_validate_release_version_returns_value():
    assert validate_release_version("v0.9.5", KNOWN) == "v0.9.5"


@pytest.mark.parametrize(
    "value, message",
    [
        pytest.param("", f"version '' is empty, {EXPECTED_FORM}", id="empty"),
        pytest.param(None, f"version '' is empty, {EXPECTED_FORM}", id="none"),
        pytest.param(
            "latest",
            "version 'latest' is not allowed because it does not name a fixed"
            f" release, {EXPECTED_FORM}",
            id="latest",
        ),
        pytest.param(
            "LATEST",
            "version 'LATEST' is not allowed because it does not name a fixed"
            f" release, {EXPECTED_FORM}",
            id="latest-uppercase",
        ),
        pytest.param(
            "v1.0.0; rm -rf /",
            "version 'v1.0.0; rm -rf /' contains characters that are not allowed"
            " (whitespace, control characters or shell metacharacters),"
            f" {EXPECTED_FORM}",
            id="shell-command",
        ),
        pytest.param(
            "$(id)",
            "version '$(id)' contains characters that are not allowed (whitespace,"
            f" control characters or shell metacharacters), {EXPECTED_FORM}",
            id="command-substitution",
        ),
        pytest.param(
            " v1.0.0",
            "version ' v1.0.0' contains characters that are not allowed (whitespace,"
            f" control characters or shell metacharacters), {EXPECTED_FORM}",
            id="leading-space",
        ),
        pytest.param(
            "v1.0.0\n",
            "version 'v1.0.0\\n' contains characters that are not allowed"
            " (whitespace, control characters or shell metacharacters),"
            f" {EXPECTED_FORM}",
            id="trailing-newline",
        ),
        pytest.param(
            "v1.0.0-rc.1",
            "version 'v1.0.0-rc.1' is a pre-release or has build metadata, not a"
            f" release version, {EXPECTED_FORM}",
            id="prerelease",
        ),
        pytest.param(
            "1.0.0",
            f"version '1.0.0' is not a release version, {EXPECTED_FORM}",
            id="missing-v",
        ),
        pytest.param(
            "v1.0",
            f"version 'v1.0' is not a release version, {EXPECTED_FORM}",
            id="two-parts",
        ),
        pytest.param(
            "v01.0.0",
            f"version 'v01.0.0' is not a release version, {EXPECTED_FORM}",
            id="leading-zero",
        ),
        pytest.param(
            100,
            f"version 100 is not a string, {EXPECTED_FORM}",
            id="integer",
        ),
    ],
)
def test_validate_release_version_rejects(value, message):
    with pytest.raises(InvalidVersionError) as error:
        validate_release_version(value, KNOWN)
    assert str(error.value) == f"{message}; {KNOWN_SUFFIX}"
    assert error.value.known_versions == KNOWN


def test_validate_release_version_accepts_max_length():
    value = "v" + "1" * 123 + ".0.0"
    assert len(value) == 128
    assert validate_release_version(value, KNOWN) == value


def test_validate_release_version_rejects_too_long():
    value = "v1.0.0" + "0" * 123
    with pytest.raises(InvalidVersionError) as error:
        validate_release_version(value, KNOWN)
    assert str(error.value) == (
        f"version {value!r} is 129 characters long, more than the maximum of 128"
        f" (the maximum length of a Docker tag), {EXPECTED_FORM}; {KNOWN_SUFFIX}"
    )


def test_validate_release_version_cuts_huge_value():
    value = "v" + "1" * 5000 + ".0.0-rc"
    with pytest.raises(InvalidVersionError) as error:
        validate_release_version(value, KNOWN)
    shown = repr("v" + "1" * 4095)
    assert str(error.value).startswith(
        f"version {shown}... (cut) is 5008 characters long, more than the maximum"
    )


def test_sort_versions_drops_too_long():
    huge = "v" + "1" * 4301 + ".0.0"
    assert sort_versions(["v1.0.0", huge]) == ["v1.0.0"]


def test_validate_release_version_without_known_versions():
    with pytest.raises(InvalidVersionError) as error:
        validate_release_version("latest", [])
    assert str(error.value).endswith("; known versions: none")


def test_invalid_version_error_is_value_error():
    assert issubclass(InvalidVersionError, ValueError)


def test_resolve_target_previous_release_from_image():
    target = resolve_target(
        None, "truebond-backend:v1.0.0", DRILL_IMAGE_TAGS, DRILL_GIT_TAGS
    )
    assert target == {
        "current_version": "v1.0.0",
        "target_version": "v0.9.5",
        "repository": "truebond-backend",
        "target_image": "truebond-backend:v0.9.5",
        "source": "image",
        "same_as_running": False,
        "direction": "rollback",
        "resolved_by": "previous-release",
        "known_versions": ["v0.9.4", "v0.9.5", "v1.0.0"],
        "image_versions": ["v0.9.5", "v1.0.0"],
        "git_versions": ["v0.9.4", "v0.9.5", "v1.0.0"],
    }


def test_resolve_target_request_from_git():
    target = resolve_target(
        "v0.9.4", "truebond-backend:v1.0.0", DRILL_IMAGE_TAGS, DRILL_GIT_TAGS
    )
    assert target["target_version"] == "v0.9.4"
    assert target["target_image"] == "truebond-backend:v0.9.4"
    assert target["source"] == "git"
    assert target["resolved_by"] == "request"
    assert target["direction"] == "rollback"


def test_resolve_target_request_same_as_running():
    target = resolve_target(
        "v0.9.5", "truebond-backend:v0.9.5", DRILL_IMAGE_TAGS, DRILL_GIT_TAGS
    )
    assert target["same_as_running"] is True
    assert target["direction"] == "none"
    assert target["source"] == "image"


def test_resolve_target_request_newer_is_roll_forward():
    target = resolve_target(
        "v1.0.0", "truebond-backend:v0.9.5", DRILL_IMAGE_TAGS, DRILL_GIT_TAGS
    )
    assert target["direction"] == "roll-forward"
    assert target["same_as_running"] is False


def test_resolve_target_previous_release_skips_prerelease():
    # v1.0.0-rc.1 lies between v0.9.5 and v1.0.0 but is never a target.
    target = resolve_target(None, "truebond-backend:v1.0.0", ["v1.0.0-rc.1"], KNOWN)
    assert target["target_version"] == "v0.9.5"


def test_resolve_target_running_prerelease_rolls_back_to_release():
    target = resolve_target(
        None, "truebond-backend:v1.0.0-rc.1", DRILL_IMAGE_TAGS, DRILL_GIT_TAGS
    )
    assert target["current_version"] == "v1.0.0-rc.1"
    assert target["target_version"] == "v0.9.5"


def test_resolve_target_accepts_full_image_references():
    image_tags = [
        "truebond-backend:v0.9.5",
        "truebond-frontend:v0.9.4",
        "registry.example:5000/truebond-backend:v0.9.4",
    ]
    target = resolve_target(None, "truebond-backend:v1.0.0", image_tags, [])
    assert target["image_versions"] == ["v0.9.5"]
    assert target["target_version"] == "v0.9.5"


def test_resolve_target_strips_refs_tags_prefix():
    git_tags = ["refs/tags/v0.9.4", "refs/tags/v1.0.0"]
    target = resolve_target(None, "truebond-backend:v1.0.0", [], git_tags)
    assert target["git_versions"] == ["v0.9.4", "v1.0.0"]
    assert target["target_version"] == "v0.9.4"
    assert target["source"] == "git"


def test_resolve_target_request_with_unknown_running_version():
    target = resolve_target(
        "v0.9.5", "truebond-backend:latest", DRILL_IMAGE_TAGS, DRILL_GIT_TAGS
    )
    assert target["current_version"] is None
    assert target["direction"] == "unknown"
    assert target["same_as_running"] is False


def test_resolve_target_rejects_unknown_version():
    with pytest.raises(VersionNotFoundError) as error:
        resolve_target(
            "v9.9.9", "truebond-backend:v1.0.0", DRILL_IMAGE_TAGS, DRILL_GIT_TAGS
        )
    assert str(error.value) == (
        "version 'v9.9.9' was not found as a local image tag of truebond-backend or"
        f" as a git tag; {KNOWN_SUFFIX}"
    )
    assert error.value.known_versions == KNOWN


def test_resolve_target_rejects_latest_request():
    with pytest.raises(InvalidVersionError) as error:
        resolve_target(
            "latest", "truebond-backend:v1.0.0", DRILL_IMAGE_TAGS, DRILL_GIT_TAGS
        )
    assert str(error.value) == (
        "version 'latest' is not allowed because it does not name a fixed release,"
        f" {EXPECTED_FORM}; {KNOWN_SUFFIX}"
    )


@pytest.mark.parametrize(
    "running_image, reason",
    [
        pytest.param(
            "truebond-backend:latest",
            "its tag 'latest' is not a semantic version",
            id="latest",
        ),
        pytest.param(
            "truebond-backend:main",
            "its tag 'main' is not a semantic version",
            id="branch-tag",
        ),
        pytest.param(
            "truebond-backend",
            "it has no tag, which Docker reads as 'latest'",
            id="no-tag",
        ),
        pytest.param(
            "truebond-backend@sha256:" + "a" * 64,
            "it names a digest and no tag",
            id="digest",
        ),
    ],
)
def test_resolve_target_rejects_unknown_running_version(running_image, reason):
    with pytest.raises(RunningVersionError) as error:
        resolve_target(None, running_image, DRILL_IMAGE_TAGS, DRILL_GIT_TAGS)
    assert str(error.value) == (
        f"the running version cannot be determined from image {running_image!r}"
        f" because {reason}, pass the version explicitly (-e version=vX.Y.Z);"
        f" {KNOWN_SUFFIX}"
    )


def test_resolve_target_rejects_oldest_running_version():
    with pytest.raises(RunningVersionError) as error:
        resolve_target(None, "truebond-backend:v0.9.4", [], DRILL_GIT_TAGS)
    assert str(error.value) == (
        "no release version older than the running version 'v0.9.4' of"
        " truebond-backend was found among the local image tags and git tags, pass"
        f" the version explicitly (-e version=vX.Y.Z); {KNOWN_SUFFIX}"
    )


@pytest.mark.parametrize(
    "text, expected",
    [
        pytest.param("sha256:" + "a" * 64, True, id="with-algorithm"),
        pytest.param("a" * 64, True, id="bare-hex"),
        pytest.param("sha256:" + "a" * 63, False, id="too-short"),
        pytest.param("truebond-backend:v1.0.0", False, id="reference"),
        pytest.param(None, False, id="none"),
    ],
)
def test_is_image_id(text, expected):
    assert is_image_id(text) is expected
