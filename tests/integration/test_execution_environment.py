# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""ansible-builder renders the execution environment of playbooks/awx.

`ansible-builder create` only writes the build context (the Containerfile and the
_build folder), so these tests need no container runtime, registry or network. The
collection tarball is built first into tests/output, where `make build` puts it and
where the definition reads it from. The collection's own Python packages are added
at image build time by ansible-builder's introspection of the installed collection,
so the last test runs that introspection on the tarball installed into a folder.
"""

from __future__ import annotations

import tarfile
from pathlib import Path

import pytest
import yaml
from drill_helpers import REPO, VENV_BIN, run_command
from packaging.requirements import Requirement

DEFINITION = REPO / "playbooks" / "awx" / "execution-environment.yml"
TARBALL_DIR = REPO / "tests" / "output"
BUILDER = VENV_BIN / "ansible-builder"


def collection_version() -> str:
    return str(yaml.safe_load((REPO / "galaxy.yml").read_text())["version"])


def python_pins(path: Path) -> dict[str, str]:
    """Return name -> exact version of the ``==`` pins in a requirements file."""
    pins = {}
    for line in path.read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        requirement = Requirement(text)
        for specifier in requirement.specifier:
            if specifier.operator == "==":
                pins[requirement.name.lower()] = specifier.version
    return pins


def pip_pin(reference: str) -> tuple[str, str]:
    """Return (name, version) of a pip reference such as 'ansible-core==2.19.14'."""
    requirement = Requirement(reference)
    versions = [s.version for s in requirement.specifier if s.operator == "=="]
    assert len(versions) == 1, f"{reference!r} is not pinned with =="
    return requirement.name.lower(), versions[0]


@pytest.fixture(scope="module")
def tarball() -> Path:
    """Build the collection tarball the way `make build` does."""
    if not BUILDER.is_file():
        pytest.fail(
            f"{BUILDER} is missing; install the pinned ansible-builder with: "
            "make host (or .venv/bin/pip install -r tests/requirements.txt)"
        )
    TARBALL_DIR.mkdir(parents=True, exist_ok=True)
    build = run_command(
        [
            str(VENV_BIN / "ansible-galaxy"),
            "collection",
            "build",
            "--force",
            "--output-path",
            str(TARBALL_DIR),
            str(REPO),
        ],
        timeout=120,
    )
    assert build.rc == 0, build.describe()
    path = TARBALL_DIR / f"truebond-rollback-{collection_version()}.tar.gz"
    assert path.is_file(), build.describe()
    return path


@pytest.fixture(scope="module")
def definition() -> dict:
    return yaml.safe_load(DEFINITION.read_text())


@pytest.fixture(scope="module")
def context(tarball, tmp_path_factory) -> Path:
    """Render the build context with ansible-builder create."""
    folder = tmp_path_factory.mktemp("ee-context") / "context"
    create = run_command(
        [
            str(BUILDER),
            "create",
            "--file",
            str(DEFINITION),
            "--context",
            str(folder),
            "--output-filename",
            "Containerfile",
        ],
        timeout=120,
    )
    assert create.rc == 0, create.describe()
    assert "No matches for" not in create.output, create.describe()
    return folder


def test_definition_uses_schema_version_3(definition):
    assert definition["version"] == 3


def test_collection_metadata_names_requirements():
    metadata = yaml.safe_load((REPO / "meta" / "execution-environment.yml").read_text())
    python_file = metadata["dependencies"]["python"]
    assert python_file == "meta/requirements.txt"
    assert (REPO / python_file).is_file()


def test_tarball_name_matches_galaxy_version(definition):
    expected = f"truebond-rollback-{collection_version()}.tar.gz"
    sources = [entry["src"] for entry in definition["additional_build_files"]]
    assert sources == [f"../../tests/output/{expected}"]
    names = [
        entry["name"] for entry in definition["dependencies"]["galaxy"]["collections"]
    ]
    assert f"collections/{expected}" in names


def test_core_and_runner_pins_match_tests(definition):
    test_pins = python_pins(REPO / "tests" / "requirements.txt")
    for key in ("ansible_core", "ansible_runner"):
        name, version = pip_pin(definition["dependencies"][key]["package_pip"])
        assert test_pins[name] == version, f"{key}: {name}=={version}"


def test_collection_pins_match_requirements_yml(definition):
    pinned = yaml.safe_load((REPO / "requirements.yml").read_text())["collections"]
    expected = {entry["name"]: str(entry["version"]) for entry in pinned}
    in_definition = {
        entry["name"]: str(entry["version"])
        for entry in definition["dependencies"]["galaxy"]["collections"]
        if entry.get("type") != "file"
    }
    assert in_definition == expected


def test_python_pins_match_requirements(definition):
    """Each package of the definition has the pin of the tests or of the collection."""
    pins = python_pins(REPO / "tests" / "requirements.txt")
    pins.update(python_pins(REPO / "meta" / "requirements.txt"))
    for reference in definition["dependencies"]["python"]:
        name, version = pip_pin(reference)
        assert pins.get(name) == version, reference


def test_context_has_containerfile_stages(context):
    containerfile = (context / "Containerfile").read_text()
    assert 'ARG EE_BASE_IMAGE="docker.io/redhat/ubi9:latest"' in containerfile
    assert 'ARG PYCMD="/usr/bin/python3.11"' in containerfile
    assert (
        'ARG ANSIBLE_INSTALL_REFS="ansible-core==2.19.14 ansible-runner==2.4.3"'
        in containerfile
    )
    stages = [line for line in containerfile.splitlines() if line.startswith("FROM ")]
    assert stages == [
        "FROM $EE_BASE_IMAGE AS base",
        "FROM base AS galaxy",
        "FROM base AS builder",
        "FROM base AS final",
    ]
    assert "ansible-galaxy collection install" in containerfile
    assert "introspect.py introspect" in containerfile
    assert "LABEL ansible-execution-environment=true" in containerfile


def test_context_carries_collection_tarball(context, tarball):
    copied = context / "_build" / "collections" / tarball.name
    assert copied.is_file()
    assert copied.read_bytes() == tarball.read_bytes()


def test_context_galaxy_requirements(context, tarball):
    requirements = yaml.safe_load((context / "_build" / "requirements.yml").read_text())
    entries = requirements["collections"]
    assert {"name": f"collections/{tarball.name}", "type": "file"} in entries
    assert {"name": "community.docker", "version": "4.8.5"} in entries
    # The galaxy stage installs from /build, where _build is copied, so the relative
    # file path must resolve inside the context folder.
    for entry in entries:
        if entry.get("type") == "file":
            assert (context / "_build" / entry["name"]).is_file(), entry


def test_context_python_and_system_requirements(context):
    python = (context / "_build" / "requirements.txt").read_text().split()
    assert python == ["matplotlib==3.11.2", "PyYAML==6.0.4"]
    system = (context / "_build" / "bindep.txt").read_text()
    assert "openssh-clients [platform:rpm]" in system


def test_tarball_ships_metadata_files(tarball):
    with tarfile.open(tarball) as archive:
        names = set(archive.getnames())
    assert "meta/execution-environment.yml" in names
    assert "meta/requirements.txt" in names
    assert "playbooks/awx/execution-environment.yml" in names


def test_introspection_finds_collection_requirements(context, tarball, tmp_path):
    """Install the tarball offline and run the introspection the builder stage runs."""
    collections = tmp_path / "collections"
    install = run_command(
        [
            str(VENV_BIN / "ansible-galaxy"),
            "collection",
            "install",
            "--offline",
            "--no-deps",
            "--force",
            "-p",
            str(collections),
            str(tarball),
        ],
        timeout=120,
    )
    assert install.rc == 0, install.describe()
    introspect = run_command(
        [
            str(BUILDER),
            "introspect",
            "--user-pip",
            str(context / "_build" / "requirements.txt"),
            "--user-bindep",
            str(context / "_build" / "bindep.txt"),
            str(collections),
        ],
        timeout=120,
    )
    assert introspect.rc == 0, introspect.describe()
    # The output is a comment line followed by a YAML document.
    found = yaml.safe_load(introspect.stdout.split("\n", 1)[1])
    python = found["python"]
    for name, version in python_pins(REPO / "meta" / "requirements.txt").items():
        if name == "pyyaml":
            # ansible-builder drops PyYAML from collection requirements, so the
            # definition pins it as a user requirement (checked below).
            continue
        line = f"{name}=={version}  # from collection truebond.rollback"
        assert line in python, f"{line!r} not in {python}"
    assert "matplotlib==3.11.2  # from collection user" in python
    assert "PyYAML==6.0.4  # from collection user" in python
