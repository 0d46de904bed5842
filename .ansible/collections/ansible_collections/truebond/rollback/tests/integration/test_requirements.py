# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The pinned requirements match what the virtualenv really has installed.

requirements.yml pins the collections, galaxy.yml states the dependency ranges, and
tests/requirements.txt pins the Python packages.
"""

from __future__ import annotations

import importlib.metadata
import json
from pathlib import Path

import pytest
import yaml
from drill_helpers import REPO
from packaging.requirements import Requirement
from packaging.specifiers import SpecifierSet
from packaging.version import Version


def load_collection_pins() -> dict[str, str]:
    """Return the collections of requirements.yml with the versions they name."""
    document = yaml.safe_load((REPO / "requirements.yml").read_text())
    return {entry["name"]: str(entry["version"]) for entry in document["collections"]}


def load_galaxy_dependencies() -> dict[str, str]:
    """Return the dependency ranges of galaxy.yml."""
    document = yaml.safe_load((REPO / "galaxy.yml").read_text())
    return document.get("dependencies") or {}


def load_python_pins() -> list[Requirement]:
    """Return the requirements of tests/requirements.txt, without comments."""
    requirements = []
    for line in (REPO / "tests" / "requirements.txt").read_text().splitlines():
        text = line.split("#", 1)[0].strip()
        if text:
            requirements.append(Requirement(text))
    return requirements


def venv_collections_dirs() -> list[Path]:
    """Return the ansible_collections folders of the virtualenv's site-packages."""
    return sorted(
        (REPO / ".venv" / "lib").glob("python*/site-packages/ansible_collections")
    )


def installed_collection_version(name: str) -> str | None:
    """Return the version of collection ``name`` in the virtualenv, or None."""
    namespace, collection = name.split(".", 1)
    for collections_dir in venv_collections_dirs():
        manifest = collections_dir / namespace / collection / "MANIFEST.json"
        if manifest.is_file():
            return json.loads(manifest.read_text())["collection_info"]["version"]
    return None


def galaxy_range(text: str) -> SpecifierSet:
    """Return a galaxy.yml version range such as '>=4.8.5,<5.0.0' as a SpecifierSet.

    Galaxy reads '*' as any version and a bare version as an exact pin.
    """
    text = text.strip()
    if text == "*":
        return SpecifierSet()
    if text[0].isdigit():
        return SpecifierSet(f"=={text}")
    return SpecifierSet(text)


COLLECTION_PINS = load_collection_pins()
PYTHON_PINS = load_python_pins()


def test_requirements_files_not_empty():
    assert COLLECTION_PINS
    assert PYTHON_PINS
    assert venv_collections_dirs(), "the virtualenv has no ansible_collections folder"


@pytest.mark.parametrize(("name", "pinned"), sorted(COLLECTION_PINS.items()))
def test_collection_installed_at_pin(name, pinned):
    assert installed_collection_version(name) == pinned


@pytest.mark.parametrize(("name", "pinned"), sorted(COLLECTION_PINS.items()))
def test_collection_pin_within_galaxy_range(name, pinned):
    dependencies = load_galaxy_dependencies()

    assert name in dependencies, f"galaxy.yml has no dependency on {name}"
    installed = installed_collection_version(name)
    assert installed is not None
    assert Version(installed) in galaxy_range(dependencies[name])
    assert Version(pinned) in galaxy_range(dependencies[name])


@pytest.mark.parametrize(
    "requirement", PYTHON_PINS, ids=[requirement.name for requirement in PYTHON_PINS]
)
def test_python_pin_installed(requirement):
    pins = [spec for spec in requirement.specifier if spec.operator == "=="]

    assert len(pins) == 1, f"{requirement} is not pinned with =="
    assert importlib.metadata.version(requirement.name) == pins[0].version
