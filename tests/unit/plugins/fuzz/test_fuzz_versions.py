# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Property-based tests of version strings and image tags.

Covers _versions (validate_release_version, parse_version, sort_versions,
parse_image_reference, resolve_target), rollback_target_info through main(), and
compose_image (validate_tag, and main() in literal and variable mode).
"""

from __future__ import annotations

import itertools
import re
import tempfile
from pathlib import Path

import pytest
import yaml
from ansible_collections.truebond.rollback.plugins.module_utils import _envfile
from ansible_collections.truebond.rollback.plugins.module_utils._versions import (
    InvalidImageReferenceError,
    InvalidVersionError,
    VersionError,
    parse_image_reference,
    parse_version,
    resolve_target,
    sort_versions,
    validate_release_version,
)
from ansible_collections.truebond.rollback.plugins.modules import (
    compose_image,
    rollback_target_info,
)
from fuzz_support import assert_no_traceback, run_module_main
from hypothesis import example, given, settings
from hypothesis import strategies as st

# vMAJOR.MINOR.PATCH as _versions defines a release: ASCII digits, no leading zeros.
ASCII_RELEASE = re.compile(r"v(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)\.(0|[1-9][0-9]*)")
# Docker's tag grammar, spelled with ASCII classes.
ASCII_DOCKER_TAG = re.compile(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}")

# Characters that must never pass as part of a version: shell metacharacters,
# whitespace including line breaks, NUL and other control characters, and digits
# outside ASCII (Arabic-Indic, Devanagari, fullwidth, superscript).
HOSTILE_CHARACTERS = (
    "|&;<>()$`\\\"'*?[]{}!#~= \t\n\r\x0b\x0c\x00\x1b\x7f\x85\xa0\u2028\u3000"
    "\u0661\u0967\uff11\u00b9"
)

FAST = settings(max_examples=200, derandomize=True, deadline=None)
# Tests that build many lists of versions per example.
LISTS = settings(max_examples=100, derandomize=True, deadline=None)
MODULE_RUNS = settings(max_examples=60, derandomize=True, deadline=None)

release_numbers = st.integers(min_value=0, max_value=10**6)
releases = st.builds(
    "v{}.{}.{}".format, release_numbers, release_numbers, release_numbers
)


@st.composite
def tainted_releases(draw):
    """Draw a release version with hostile characters inserted at random places."""
    text = draw(releases)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        position = draw(st.integers(min_value=0, max_value=len(text)))
        char = draw(st.sampled_from(HOSTILE_CHARACTERS))
        text = text[:position] + char + text[position:]
    return text


version_texts = st.one_of(
    releases,
    tainted_releases(),
    st.text(max_size=40),
    st.text(alphabet="v0123456789.-+rcalph" + HOSTILE_CHARACTERS, max_size=30),
    st.text(min_size=300, max_size=3000),
)


@FAST
@given(version_texts)
@example("v1.0.0\n")
@example("v1.0.0\x00")
@example("v\u0661.0.0")
@example("v1.0.0;reboot")
@example("$(id)")
@example("latest")
@example("")
def test_release_version_only_ascii_form(value):
    try:
        accepted = validate_release_version(value, ["v0.9.5"])
    except InvalidVersionError as error:
        assert ASCII_RELEASE.fullmatch(value) is None
        assert repr(value) in str(error)
    else:
        assert accepted == value
        assert ASCII_RELEASE.fullmatch(value) is not None


@FAST
@given(
    st.one_of(
        st.integers(), st.floats(), st.lists(st.text(max_size=5), max_size=3)
    ).filter(lambda value: value != 0)
)
def test_release_version_rejects_non_strings(value):
    with pytest.raises(InvalidVersionError) as raised:
        validate_release_version(value, [])
    assert repr(value) in str(raised.value)


def test_release_version_rejects_huge_prerelease():
    value = "v" + "1" * 4301 + ".0.0-rc"
    with pytest.raises(InvalidVersionError):
        validate_release_version(value, [])


@FAST
@given(version_texts.filter(lambda text: len(text) < 4000))
def test_parse_version_returns_none_or_same_text(text):
    parsed = parse_version(text)
    if parsed is not None:
        assert str(parsed) == text
        assert text.isascii()


@LISTS
@given(st.lists(version_texts.filter(lambda text: len(text) < 100), max_size=12))
def test_sort_versions_ordered_semver_only(texts):
    ordered = sort_versions(texts)
    parsed = [parse_version(text) for text in ordered]
    assert all(version is not None for version in parsed)
    assert all(a <= b for a, b in itertools.pairwise(parsed))
    assert set(ordered) == {text for text in texts if parse_version(text)}


image_references = st.one_of(
    st.text(max_size=40),
    st.builds(
        "{}:{}".format,
        st.sampled_from(["truebond-backend", "registry:5000/team/app", ""]),
        version_texts.filter(lambda text: len(text) < 100),
    ),
)


@FAST
@given(image_references)
@example("repo@")
@example(":v1")
@example("repo:")
def test_image_reference_error_names_value(reference):
    try:
        repository, tag, digest = parse_image_reference(reference)
    except InvalidImageReferenceError as error:
        assert repr(reference) in str(error)
    else:
        assert repository
        assert tag is None or tag
        assert digest is None or digest
        assert not any(char.isspace() for char in repository)


short_versions = version_texts.filter(lambda text: len(text) < 100)


@LISTS
@given(
    requested=st.one_of(st.none(), short_versions),
    running_image=st.one_of(st.none(), image_references),
    image_tags=st.lists(st.one_of(short_versions, image_references), max_size=6),
    git_tags=st.lists(short_versions, max_size=6),
)
def test_resolve_target_raises_only_own_errors(
    requested, running_image, image_tags, git_tags
):
    try:
        target = resolve_target(
            requested, running_image, image_tags, git_tags, "truebond-backend"
        )
    except (VersionError, InvalidImageReferenceError):
        return
    assert ASCII_RELEASE.fullmatch(target["target_version"])
    assert target["target_version"] in target["known_versions"]
    if requested is not None:
        assert target["target_version"] == requested


TARGET_INFO_TAGS = ["v0.9.4", "v0.9.5", "v1.0.0"]


@MODULE_RUNS
@given(tainted_releases() | st.text(max_size=40) | st.sampled_from(TARGET_INFO_TAGS))
@example("v0.9.5\n")
@example("v0.9.5 && rm -rf /")
def test_target_info_main_version(version):
    result = run_module_main(
        rollback_target_info.main,
        {
            "version": version,
            "running_image": "truebond-backend:v1.0.0",
            "image_tags": TARGET_INFO_TAGS,
        },
    )
    assert_no_traceback(result)
    if version in TARGET_INFO_TAGS:
        assert result["target_version"] == version
        assert not result.get("failed")
    else:
        assert result["failed"] is True
        assert repr(version) in result["msg"]


@MODULE_RUNS
@given(image_references)
def test_target_info_main_running_image(running_image):
    result = run_module_main(
        rollback_target_info.main,
        {"running_image": running_image, "image_tags": TARGET_INFO_TAGS},
    )
    assert_no_traceback(result)


def test_target_info_main_huge_image_tag():
    huge = "v" + "1" * 4301 + ".0.0"
    result = run_module_main(
        rollback_target_info.main,
        {"running_image": "truebond-backend:v1.0.0", "image_tags": [huge]},
    )
    assert_no_traceback(result)


@FAST
@given(st.one_of(st.text(max_size=140), tainted_releases(), releases))
@example("v1.0.0\n")
@example("a" * 129)
@example("\u0661")
def test_compose_tag_only_docker_grammar(tag):
    try:
        accepted = compose_image.validate_tag(tag)
    except compose_image.ComposeImageError as error:
        assert ASCII_DOCKER_TAG.fullmatch(tag) is None
        assert repr(tag) in str(error)
    else:
        assert accepted == tag
        assert ASCII_DOCKER_TAG.fullmatch(tag) is not None


LITERAL_COMPOSE = """\
services:
  backend:
    image: truebond-backend:v1.0.0
    env_file: .env
  frontend:
    image: truebond-frontend:v1.0.0
"""
VARIABLE_COMPOSE = LITERAL_COMPOSE.replace(
    "truebond-backend:v1.0.0", "truebond-backend:${BACKEND_TAG:-v1.0.0}"
)
ENV_TEXT = "JWT_SECRET=s3cret-value\nBACKEND_TAG=v1.0.0\nSEARCH_ENABLED=true\n"
compose_tags = st.one_of(
    releases, tainted_releases(), st.text(max_size=20), st.text(min_size=120)
)


def run_compose_image(folder, compose_text, tag):
    Path(folder, "docker-compose.yml").write_text(compose_text)
    Path(folder, ".env").write_text(ENV_TEXT)
    return run_module_main(
        compose_image.main,
        {
            "file": str(Path(folder, "docker-compose.yml")),
            "service": "backend",
            "tag": tag,
            "backup": False,
        },
    )


@MODULE_RUNS
@given(compose_tags)
@example("v0.9.5\nservices: {}")
@example("v0.9.5 # comment")
@example("v0.9.5\x00")
def test_compose_image_literal_tag_edit(tag):
    with tempfile.TemporaryDirectory() as folder:
        result = run_compose_image(folder, LITERAL_COMPOSE, tag)
        assert_no_traceback(result)
        written = Path(folder, "docker-compose.yml").read_text()

    if ASCII_DOCKER_TAG.fullmatch(tag) is None:
        assert result["failed"] is True
        assert repr(tag) in result["msg"]
        assert written == LITERAL_COMPOSE
        return
    assert not result.get("failed"), result["msg"]
    expected = yaml.safe_load(LITERAL_COMPOSE)
    expected["services"]["backend"]["image"] = f"truebond-backend:{tag}"
    assert yaml.safe_load(written) == expected


@MODULE_RUNS
@given(compose_tags)
@example("v0.9.5\nJWT_SECRET=owned")
@example("v0.9.5=")
def test_compose_image_variable_tag_edit(tag):
    with tempfile.TemporaryDirectory() as folder:
        result = run_compose_image(folder, VARIABLE_COMPOSE, tag)
        assert_no_traceback(result)
        written = Path(folder, ".env").read_text()

    if ASCII_DOCKER_TAG.fullmatch(tag) is None:
        assert result["failed"] is True
        assert repr(tag) in result["msg"]
        assert written == ENV_TEXT
        return
    assert not result.get("failed"), result["msg"]
    assert _envfile.values(written) == {
        "JWT_SECRET": "s3cret-value",
        "BACKEND_TAG": tag,
        "SEARCH_ENABLED": "true",
    }
    assert written.count("\n") == ENV_TEXT.count("\n")
