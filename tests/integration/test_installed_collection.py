# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The collection as users get it: built with ansible-galaxy, installed, then run.

The playbook runs from an empty folder with an empty ansible.cfg, so that nothing of
the checkout (its ansible.cfg, roles_path or .collections symlink) can help it.
"""

from __future__ import annotations

import shutil
import tarfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import pytest
from drill_helpers import (
    BACKEND_CONTAINER,
    REPO,
    VENV_BIN,
    image_id,
    inspect_container,
    playbook_environment,
    reset_stack,
    run_command,
)

pytestmark = pytest.mark.usefixtures("drill_stack")

COLLECTION_SUBPATH = Path("ansible_collections") / "truebond" / "rollback"
# Local folders of the checkout that must never ship in the tarball.
EXCLUDED_FOLDERS = {".venv", ".git", ".collections"}


@dataclass
class InstalledCollection:
    """A built tarball and the collections folder it was installed into."""

    tarball: Path
    collections_dir: Path
    workdir: Path
    config_file: Path

    @property
    def install_dir(self) -> Path:
        return self.collections_dir / COLLECTION_SUBPATH

    def environment(self) -> dict[str, str]:
        """Return an environment in which only the installed copy is found."""
        return playbook_environment(
            ANSIBLE_CONFIG=str(self.config_file),
            ANSIBLE_COLLECTIONS_PATH=str(self.collections_dir),
        )


@pytest.fixture(scope="module")
def installed_collection(tmp_path_factory) -> InstalledCollection:
    root = tmp_path_factory.mktemp("installed-collection")
    build = run_command(
        [
            str(VENV_BIN / "ansible-galaxy"),
            "collection",
            "build",
            "--output-path",
            str(root),
            ".",
        ]
    )
    assert build.rc == 0, build.describe()
    tarballs = sorted(root.glob("truebond-rollback-*.tar.gz"))
    assert len(tarballs) == 1, tarballs

    collections_dir = root / "collections"
    workdir = root / "workdir"
    workdir.mkdir()
    config_file = root / "empty-ansible.cfg"
    config_file.write_text("")
    installed = InstalledCollection(tarballs[0], collections_dir, workdir, config_file)

    # The install runs in the isolated environment too: with the checkout's
    # ansible.cfg, ansible-galaxy finds the .collections symlink and reports the
    # collection as already installed. --offline keeps it from asking a Galaxy
    # server for the dependencies, because community.docker comes from the
    # virtualenv.
    install = run_command(
        [
            str(VENV_BIN / "ansible-galaxy"),
            "collection",
            "install",
            "--offline",
            "-p",
            str(collections_dir),
            str(tarballs[0]),
        ],
        cwd=workdir,
        environment=installed.environment(),
    )
    assert install.rc == 0, install.describe()
    assert (installed.install_dir / "MANIFEST.json").is_file(), install.describe()
    return installed


def test_tarball_excludes_local_folders(installed_collection):
    with tarfile.open(installed_collection.tarball) as archive:
        names = archive.getnames()

    assert names, "the tarball is empty"
    shipped = sorted(
        name for name in names if EXCLUDED_FOLDERS & set(PurePosixPath(name).parts)
    )
    assert shipped == []


def test_installed_playbook_rolls_back(installed_collection):
    reset_stack("v1.0.0")

    result = run_command(
        [
            str(VENV_BIN / "ansible-playbook"),
            "truebond.rollback.rollback_app",
            "-i",
            str(REPO / "inventories" / "drill"),
            "-e",
            "version=v0.9.5",
        ],
        cwd=installed_collection.workdir,
        environment=installed_collection.environment(),
    )

    assert result.rc == 0, result.describe()
    backend = inspect_container(BACKEND_CONTAINER)
    assert backend.image == "truebond-backend:v0.9.5"
    assert backend.image_id == image_id("truebond-backend:v0.9.5")
    # Included task files are printed with their path, which shows which copy ran.
    assert str(installed_collection.install_dir) in result.stdout
    assert str(REPO / ".collections") not in result.stdout


def test_installed_module_doc_renders(installed_collection):
    result = run_command(
        [
            str(VENV_BIN / "ansible-doc"),
            "-t",
            "module",
            "truebond.rollback.compose_image",
        ],
        cwd=installed_collection.workdir,
        environment=installed_collection.environment(),
    )

    assert result.rc == 0, result.describe()
    assert "truebond.rollback.compose_image" in result.stdout
    assert str(installed_collection.install_dir) in result.stdout
    assert "[ERROR]" not in result.output


def test_build_skips_ansible_lint_cache(tmp_path):
    # ansible-lint keeps a copy of the collection in .ansible/ of the checkout, so a
    # build after `make lint` must leave that folder out.
    source = tmp_path / "source"
    shutil.copytree(
        REPO,
        source,
        symlinks=True,
        ignore=shutil.ignore_patterns(
            ".venv", ".git", ".collections", ".ansible", "__pycache__", "*_cache"
        ),
    )
    cached_copy = source / ".ansible" / "collections" / COLLECTION_SUBPATH
    cached_copy.mkdir(parents=True)
    (cached_copy / "galaxy.yml").write_text("# the copy that ansible-lint keeps\n")

    build = run_command(
        [
            str(VENV_BIN / "ansible-galaxy"),
            "collection",
            "build",
            "--output-path",
            str(tmp_path / "output"),
            str(source),
        ]
    )

    assert build.rc == 0, build.describe()
    tarballs = sorted((tmp_path / "output").glob("truebond-rollback-*.tar.gz"))
    assert len(tarballs) == 1, tarballs
    with tarfile.open(tarballs[0]) as archive:
        names = archive.getnames()
    assert [name for name in names if PurePosixPath(name).parts[0] == ".ansible"] == []
