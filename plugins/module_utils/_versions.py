# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Release versions of TrueBond images: parsing, ordering and rollback targets.

Versions are semantic versions (https://semver.org/spec/v2.0.0.html) with a leading
``v``. A release version is exactly ``vMAJOR.MINOR.PATCH``. Pre-release versions such
as ``v1.0.0-rc.1`` are parsed and ordered but are never chosen as rollback targets.
"""

from __future__ import annotations

import functools
import re

# A release version: no pre-release and no build metadata. Numbers have no leading
# zeros, except 0 itself.
RELEASE_VERSION = re.compile(
    r"\Av(?P<major>0|[1-9][0-9]*)\.(?P<minor>0|[1-9][0-9]*)\.(?P<patch>0|[1-9][0-9]*)\Z"
)

# The SemVer 2.0 grammar with a leading "v". Character classes are spelled out because
# \d also matches non-ASCII digits.
_NUMBER = r"0|[1-9][0-9]*"
_PRERELEASE_ID = r"(?:0|[1-9][0-9]*|[0-9]*[A-Za-z-][0-9A-Za-z-]*)"
_BUILD_ID = r"[0-9A-Za-z-]+"
SEMANTIC_VERSION = re.compile(
    rf"\Av(?P<major>{_NUMBER})\.(?P<minor>{_NUMBER})\.(?P<patch>{_NUMBER})"
    rf"(?:-(?P<prerelease>{_PRERELEASE_ID}(?:\.{_PRERELEASE_ID})*))?"
    rf"(?:\+(?P<build>{_BUILD_ID}(?:\.{_BUILD_ID})*))?\Z"
)

# Whitespace and the characters that a POSIX shell treats specially. A version that
# contains one of them gets its own error message, because it usually means that a
# command line or a template was pasted into the version.
_SHELL_METACHARACTERS = frozenset("|&;<>()$`\\\"'*?[]{}!#~=")

# An image ID as docker inspect shows it in .Image, with or without the algorithm.
IMAGE_ID = re.compile(r"\A(?:sha256:)?[0-9a-f]{64}\Z")

_EXPECTED_FORM = "expected the form vMAJOR.MINOR.PATCH, e.g. v0.9.5"

# The maximum length of a version, which is the maximum length of a Docker tag. A
# longer version can never name an image. The limit also keeps int() below the
# 4300-digit limit of Python 3.11 on integer conversion from strings.
MAX_VERSION_LENGTH = 128
# Messages show a value in full up to this many characters and cut longer ones, so
# that a pathological value does not flood the task output.
_MAX_SHOWN_LENGTH = 4096
_EXPLICIT_VERSION_HINT = "pass the version explicitly (-e version=vX.Y.Z)"


class VersionError(ValueError):
    """Base class for version errors. ``known_versions`` lists the release versions."""

    def __init__(self, message: str, known_versions: list[str] | None = None):
        super().__init__(message)
        self.known_versions = list(known_versions or [])


class InvalidVersionError(VersionError):
    """A requested version is empty, unsafe or not of the form vMAJOR.MINOR.PATCH."""


class VersionNotFoundError(VersionError):
    """A version is not available as a local image tag or as a git tag."""


class RunningVersionError(VersionError):
    """The running version is unknown, or no release is older than it."""


class InvalidImageReferenceError(ValueError):
    """An image reference is empty or malformed."""


@functools.total_ordering
class SemanticVersion:
    """A parsed semantic version that compares by SemVer 2.0 precedence.

    Build metadata is kept in ``build`` but ignored by comparisons, so v1.0.0+a equals
    v1.0.0+b, as SemVer 2.0 item 10 requires.
    """

    __slots__ = ("build", "major", "minor", "patch", "prerelease", "text")

    def __init__(self, text, major, minor, patch, prerelease=(), build=()):
        self.text = text
        self.major = major
        self.minor = minor
        self.patch = patch
        self.prerelease = tuple(prerelease)
        self.build = tuple(build)

    @property
    def is_release(self) -> bool:
        return not self.prerelease and not self.build

    def _precedence_key(self):
        # A version without pre-release identifiers ranks above all of its
        # pre-releases, hence the leading 1 or 0. Numeric identifiers rank below
        # alphanumeric ones and compare as numbers. A longer identifier list ranks
        # higher when all shared identifiers are equal, which tuple comparison does.
        if not self.prerelease:
            return (self.major, self.minor, self.patch, 1, ())
        identifiers = tuple(
            (0, int(part), "") if part.isdigit() else (1, 0, part)
            for part in self.prerelease
        )
        return (self.major, self.minor, self.patch, 0, identifiers)

    def __eq__(self, other):
        if not isinstance(other, SemanticVersion):
            return NotImplemented
        return self._precedence_key() == other._precedence_key()

    def __lt__(self, other):
        if not isinstance(other, SemanticVersion):
            return NotImplemented
        return self._precedence_key() < other._precedence_key()

    def __hash__(self):
        return hash(self._precedence_key())

    def __str__(self):
        return self.text

    def __repr__(self):
        return f"SemanticVersion({self.text!r})"


def parse_version(text) -> SemanticVersion | None:
    """Parse ``vMAJOR.MINOR.PATCH[-PRERELEASE][+BUILD]``, or return None if invalid.

    A text longer than MAX_VERSION_LENGTH is invalid.
    """
    if not isinstance(text, str) or len(text) > MAX_VERSION_LENGTH:
        return None
    match = SEMANTIC_VERSION.match(text)
    if match is None:
        return None
    prerelease = match.group("prerelease")
    build = match.group("build")
    return SemanticVersion(
        text,
        int(match.group("major")),
        int(match.group("minor")),
        int(match.group("patch")),
        prerelease.split(".") if prerelease else (),
        build.split(".") if build else (),
    )


def is_release(text) -> bool:
    """Return whether ``text`` is exactly ``vMAJOR.MINOR.PATCH``."""
    return (
        isinstance(text, str)
        and len(text) <= MAX_VERSION_LENGTH
        and RELEASE_VERSION.match(text) is not None
    )


def sort_versions(versions) -> list[str]:
    """Return the distinct semantic versions in ``versions``, oldest first.

    Strings that are not semantic versions, including those longer than
    MAX_VERSION_LENGTH, are left out. Versions of equal precedence (differing only
    in build metadata) are ordered by their text.
    """
    parsed = {text: parse_version(text) for text in versions}
    valid = [(key, text) for text, key in parsed.items() if key is not None]
    valid.sort(key=lambda pair: (pair[0]._precedence_key(), pair[1]))
    return [text for _key, text in valid]


def format_known_versions(known_versions) -> str:
    """Format the ``known versions: ...`` suffix of error messages."""
    listed = ", ".join(known_versions) if known_versions else "none"
    return f"known versions: {listed}"


def shown_value(value) -> str:
    """Return the repr of ``value``, cut after _MAX_SHOWN_LENGTH characters."""
    if isinstance(value, str) and len(value) > _MAX_SHOWN_LENGTH:
        return f"{value[:_MAX_SHOWN_LENGTH]!r}... (cut)"
    return repr(value)


def validate_release_version(value, known_versions) -> str:
    """Return ``value`` if it is a release version, else raise InvalidVersionError.

    ``known_versions`` is only used in the message. This function does not check
    that ``value`` is one of them.
    """
    known = list(known_versions)
    suffix = format_known_versions(known)

    if value is None or value == "":
        raise InvalidVersionError(
            f"version {value or ''!r} is empty, {_EXPECTED_FORM}; {suffix}", known
        )
    if not isinstance(value, str):
        raise InvalidVersionError(
            f"version {value!r} is not a string, {_EXPECTED_FORM}; {suffix}", known
        )
    if value.lower() == "latest":
        raise InvalidVersionError(
            f"version {value!r} is not allowed because it does not name a fixed"
            f" release, {_EXPECTED_FORM}; {suffix}",
            known,
        )
    if len(value) > MAX_VERSION_LENGTH:
        raise InvalidVersionError(
            f"version {shown_value(value)} is {len(value)} characters long, more than"
            f" the maximum of {MAX_VERSION_LENGTH} (the maximum length of a Docker"
            f" tag), {_EXPECTED_FORM}; {suffix}",
            known,
        )
    if any(
        char.isspace() or not char.isprintable() or char in _SHELL_METACHARACTERS
        for char in value
    ):
        raise InvalidVersionError(
            f"version {value!r} contains characters that are not allowed"
            f" (whitespace, control characters or shell metacharacters),"
            f" {_EXPECTED_FORM}; {suffix}",
            known,
        )
    if is_release(value):
        return value

    parsed = parse_version(value)
    if parsed is not None:
        raise InvalidVersionError(
            f"version {value!r} is a pre-release or has build metadata, not a release"
            f" version, {_EXPECTED_FORM}; {suffix}",
            known,
        )
    raise InvalidVersionError(
        f"version {value!r} is not a release version, {_EXPECTED_FORM}; {suffix}",
        known,
    )


def parse_image_reference(reference) -> tuple[str, str | None, str | None]:
    """Split an image reference into (repository, tag, digest).

    A missing tag is returned as None, which Docker treats as ``latest``. A colon
    before the last slash belongs to a registry host and port
    (``registry.example:5000/team/app``), not to a tag. The repository is returned as
    written: Docker's default registry and ``library/`` prefix are not added.
    """
    if not isinstance(reference, str) or not reference.strip():
        raise InvalidImageReferenceError(
            f"image reference {reference!r} is empty, expected a reference such as"
            " truebond-backend:v1.0.0"
        )
    if any(char.isspace() for char in reference):
        raise InvalidImageReferenceError(
            f"image reference {reference!r} contains whitespace, expected a reference"
            " such as truebond-backend:v1.0.0"
        )

    name, at, digest = reference.partition("@")
    if at and (not digest or "@" in digest):
        raise InvalidImageReferenceError(
            f"image reference {reference!r} has an invalid digest, expected"
            " NAME@sha256:HEX"
        )

    tag = None
    last_slash = name.rfind("/")
    last_colon = name.rfind(":")
    if last_colon > last_slash:
        name, tag = name[:last_colon], name[last_colon + 1 :]
        if not tag:
            raise InvalidImageReferenceError(
                f"image reference {reference!r} has an empty tag after ':', expected"
                " NAME:TAG"
            )
    if not name:
        raise InvalidImageReferenceError(
            f"image reference {reference!r} has no repository name, expected a"
            " reference such as truebond-backend:v1.0.0"
        )
    return name, tag, digest or None


def is_image_id(text) -> bool:
    """Return whether ``text`` is an image ID (``sha256:<64 hex digits>``)."""
    return isinstance(text, str) and IMAGE_ID.match(text) is not None


def _tags_of_repository(tags, repository) -> set[str]:
    """Return the tags in ``tags`` that belong to ``repository``.

    An entry is a bare tag (``v1.0.0``) or a full reference (``repo:v1.0.0``, as in
    the RepoTags of ``docker image inspect``). A full reference of another repository
    is left out.
    """
    result = set()
    for entry in tags:
        if not isinstance(entry, str) or not entry:
            continue
        if ":" not in entry and "/" not in entry:
            result.add(entry)
            continue
        try:
            entry_repository, entry_tag, _digest = parse_image_reference(entry)
        except InvalidImageReferenceError:
            continue
        if entry_repository == repository and entry_tag is not None:
            result.add(entry_tag)
    return result


def _git_tag_names(git_tags) -> set[str]:
    """Return the tag names, without a ``refs/tags/`` prefix."""
    prefix = "refs/tags/"
    names = set()
    for entry in git_tags:
        if not isinstance(entry, str):
            continue
        # str.removeprefix needs Python 3.9, and managed hosts may run 3.8.
        names.add(entry[len(prefix) :] if entry.startswith(prefix) else entry)  # noqa: FURB188
    return names


def _release_versions(tags) -> list[str]:
    return sort_versions(tag for tag in tags if is_release(tag))


def _direction(current: str | None, target: str) -> str:
    """Return 'rollback', 'roll-forward', 'none' or 'unknown' (running version unknown)."""
    current_key = parse_version(current)
    if current_key is None:
        return "unknown"
    target_key = parse_version(target)
    if target_key < current_key:
        return "rollback"
    if target_key > current_key:
        return "roll-forward"
    return "none"


def _unknown_reason(running_image, running_tag, running_digest) -> str:
    """Return why the running version is unknown, as the end of a sentence."""
    if running_image is None:
        return "because no running image was given"
    if is_image_id(running_image):
        return f"from {running_image!r} because it is an image ID, not a tagged name"
    if running_tag is not None:
        reason = f"its tag {running_tag!r} is not a semantic version"
    elif running_digest is not None:
        reason = "it names a digest and no tag"
    else:
        reason = "it has no tag, which Docker reads as 'latest'"
    return f"from image {running_image!r} because {reason}"


def resolve_target(
    requested, running_image, image_tags, git_tags, repository=None
) -> dict:
    """Choose the version to switch ``running_image`` to, and where it comes from.

    With ``requested`` set, it must be a release version found among ``image_tags``
    or ``git_tags``. Without it, the target is the greatest release version lower
    than the running one. The running version is the tag of ``running_image``, which
    must then be a semantic version. Raises a VersionError subclass, whose
    ``known_versions`` lists the release versions found.

    ``repository`` names the image repository of the target. It defaults to the
    repository of ``running_image`` and is required when ``running_image`` is None,
    for example because no container runs.
    """
    running_tag = running_digest = None
    if is_image_id(running_image):
        if not repository:
            raise InvalidImageReferenceError(
                f"image reference {running_image!r} is an image ID, which names no"
                " repository; pass the repository, e.g. truebond-backend"
            )
    elif running_image is not None:
        running_repository, running_tag, running_digest = parse_image_reference(
            running_image
        )
        repository = repository or running_repository
    if not repository:
        raise ValueError("resolve_target needs running_image or repository")

    image_versions = _release_versions(_tags_of_repository(image_tags, repository))
    git_versions = _release_versions(_git_tag_names(git_tags))
    known_versions = sort_versions(set(image_versions) | set(git_versions))
    suffix = format_known_versions(known_versions)

    current_version = running_tag if parse_version(running_tag) else None

    if requested is not None:
        target_version = validate_release_version(requested, known_versions)
        if target_version not in known_versions:
            raise VersionNotFoundError(
                f"version {target_version!r} was not found as a local image tag of"
                f" {repository} or as a git tag; {suffix}",
                known_versions,
            )
        resolved_by = "request"
    else:
        if current_version is None:
            reason = _unknown_reason(running_image, running_tag, running_digest)
            raise RunningVersionError(
                f"the running version cannot be determined {reason},"
                f" {_EXPLICIT_VERSION_HINT}; {suffix}",
                known_versions,
            )
        current_key = parse_version(current_version)
        older = [v for v in known_versions if parse_version(v) < current_key]
        if not older:
            raise RunningVersionError(
                f"no release version older than the running version"
                f" {current_version!r} of {repository} was found among the local"
                f" image tags and git tags, {_EXPLICIT_VERSION_HINT}; {suffix}",
                known_versions,
            )
        target_version = older[-1]
        resolved_by = "previous-release"

    return {
        "current_version": current_version,
        "target_version": target_version,
        "repository": repository,
        "target_image": f"{repository}:{target_version}",
        "source": "image" if target_version in image_versions else "git",
        "same_as_running": target_version == current_version,
        "direction": _direction(current_version, target_version),
        "resolved_by": resolved_by,
        "known_versions": known_versions,
        "image_versions": image_versions,
        "git_versions": git_versions,
    }
