# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for the compose_image module."""

from __future__ import annotations

import json
import os
import re
import shutil
import stat
import subprocess

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.truebond.rollback.plugins.modules import compose_image

DRILL_COMPOSE_FILE = "/var/tmp/truebond-drill/truebond/docker-compose.production.yml"

# Shaped like the drill stack's compose file, with comments in the places where an
# edit could disturb them.
LITERAL_COMPOSE = """\
# TrueBond production stack.
name: truebond

services:
  # The API. Its image is switched during a rollback.
  backend:
    image: truebond-backend:v1.0.0  # switched by the rollback playbook
    container_name: truebond-backend
    env_file: .env.production
    network_mode: host
    healthcheck:
      test: ["CMD", "python3", "-c", "print('image: truebond-backend:v0.0.1')"]
      interval: 5s

  frontend:
    image: truebond-frontend:v2.3.1
    container_name: truebond-frontend
    network_mode: host
"""

VARIABLE_COMPOSE = """\
name: truebond
services:
  backend:
    image: truebond-backend:${BACKEND_TAG}
    network_mode: host
  frontend:
    image: "truebond-frontend:${FRONTEND_TAG:-v2.3.1}"
    network_mode: host
"""

BACKUP_NAME = re.compile(r"\.[0-9]{8}T[0-9]{6}Z\.bak\Z")


def compose_available() -> bool:
    docker = shutil.which("docker")
    if docker is None:
        return False
    probe = subprocess.run(
        [docker, "compose", "version"], capture_output=True, check=False
    )
    return probe.returncode == 0


requires_compose = pytest.mark.skipif(
    not compose_available(), reason="needs the docker compose plugin"
)


def compose_images(compose_file) -> dict:
    """Return each service's image as docker compose resolves it."""
    environment = {
        key: value for key, value in os.environ.items() if not key.endswith("_TAG")
    }
    completed = subprocess.run(
        ["docker", "compose", "-f", str(compose_file), "config", "--format", "json"],
        capture_output=True,
        text=True,
        check=True,
        env=environment,
    )
    services = json.loads(completed.stdout)["services"]
    return {name: service["image"] for name, service in services.items()}


def write_project(tmp_path, compose_text, env_text=None):
    compose_file = tmp_path / "docker-compose.production.yml"
    compose_file.write_text(compose_text)
    if env_text is not None:
        (tmp_path / ".env").write_text(env_text)
    return compose_file


def backups(tmp_path):
    return sorted(name for name in os.listdir(tmp_path) if name.endswith(".bak"))


def run_main(args, capsys, check_mode=False, diff=False):
    args = dict(args)
    if check_mode:
        args["_ansible_check_mode"] = True
    if diff:
        args["_ansible_diff"] = True
    with patch_module_args(args), pytest.raises(SystemExit):
        compose_image.main()
    return json.loads(capsys.readouterr().out)


def warning_messages(result):
    """Return the warning texts, which ansible-core 2.19 wraps in event objects."""
    return [warning["event"]["msg"] for warning in result.get("warnings", [])]


def test_literal_read(tmp_path, capsys):
    compose_file = write_project(tmp_path, LITERAL_COMPOSE)
    os.chmod(compose_file, 0o644)
    result = run_main({"file": str(compose_file), "service": "backend"}, capsys)
    assert result["changed"] is False
    assert result["service"] == "backend"
    assert result["repository"] == "truebond-backend"
    assert result["tag"] == "v1.0.0"
    assert result["previous_tag"] == "v1.0.0"
    assert result["image"] == "truebond-backend:v1.0.0"
    assert result["tag_mode"] == "literal"
    assert result["variable"] is None
    assert result["tag_source"] == "compose_file"
    assert result["path"] == str(compose_file)
    assert result["mode"] == "0644"
    assert result["backup_file"] is None
    assert compose_file.read_text() == LITERAL_COMPOSE


def test_literal_set_changes_only_the_tag(tmp_path, capsys):
    compose_file = write_project(tmp_path, LITERAL_COMPOSE)
    result = run_main(
        {"file": str(compose_file), "service": "backend", "tag": "v0.9.5"}, capsys
    )
    assert result["changed"] is True
    assert result["tag"] == "v0.9.5"
    assert result["previous_tag"] == "v1.0.0"
    assert result["image"] == "truebond-backend:v0.9.5"
    assert result["tag_source"] == "compose_file"
    expected = LITERAL_COMPOSE.replace(
        "image: truebond-backend:v1.0.0  # switched",
        "image: truebond-backend:v0.9.5  # switched",
    )
    assert compose_file.read_text() == expected


def test_literal_set_keeps_backup(tmp_path, capsys):
    compose_file = write_project(tmp_path, LITERAL_COMPOSE)
    os.chmod(compose_file, 0o640)
    result = run_main(
        {"file": str(compose_file), "service": "backend", "tag": "v0.9.5"}, capsys
    )
    backup = result["backup_file"]
    assert backup.startswith(f"{compose_file}.")
    assert BACKUP_NAME.search(backup)
    with open(backup) as stream:
        assert stream.read() == LITERAL_COMPOSE
    assert stat.S_IMODE(os.stat(compose_file).st_mode) == 0o640


def test_literal_set_without_backup(tmp_path, capsys):
    compose_file = write_project(tmp_path, LITERAL_COMPOSE)
    args = {"file": str(compose_file), "service": "backend", "tag": "v0.9.5"}
    result = run_main({**args, "backup": False}, capsys)
    assert result["changed"] is True
    assert result["backup_file"] is None
    assert backups(tmp_path) == []


def test_literal_second_set_is_unchanged(tmp_path, capsys):
    compose_file = write_project(tmp_path, LITERAL_COMPOSE)
    args = {"file": str(compose_file), "service": "backend", "tag": "v0.9.5"}
    run_main(args, capsys)
    after_first = compose_file.read_bytes()
    second = run_main(args, capsys)
    assert second["changed"] is False
    assert second["previous_tag"] == "v0.9.5"
    assert second["backup_file"] is None
    assert compose_file.read_bytes() == after_first
    assert len(backups(tmp_path)) == 1


def test_literal_check_mode_writes_nothing(tmp_path, capsys):
    compose_file = write_project(tmp_path, LITERAL_COMPOSE)
    before = os.stat(compose_file)
    result = run_main(
        {"file": str(compose_file), "service": "backend", "tag": "v0.9.5"},
        capsys,
        check_mode=True,
        diff=True,
    )
    assert result["changed"] is True
    assert result["tag"] == "v0.9.5"
    assert result["backup_file"] is None
    assert result["diff"]["before"] == LITERAL_COMPOSE
    assert "image: truebond-backend:v0.9.5  # switched" in result["diff"]["after"]
    assert result["diff"]["before_header"] == str(compose_file)
    assert result["diff"]["after_header"] == str(compose_file)
    assert compose_file.read_text() == LITERAL_COMPOSE
    assert os.stat(compose_file).st_mtime_ns == before.st_mtime_ns
    assert sorted(os.listdir(tmp_path)) == ["docker-compose.production.yml"]


def test_literal_without_diff_returns_no_diff(tmp_path, capsys):
    compose_file = write_project(tmp_path, LITERAL_COMPOSE)
    result = run_main(
        {"file": str(compose_file), "service": "backend", "tag": "v0.9.5"},
        capsys,
        check_mode=True,
    )
    assert "diff" not in result


@pytest.mark.parametrize(
    "line, edited",
    [
        pytest.param(
            "image: 'truebond-backend:v1.0.0' # quoted",
            "image: 'truebond-backend:v0.9.5' # quoted",
            id="single-quoted",
        ),
        pytest.param(
            'image: "truebond-backend:v1.0.0"',
            'image: "truebond-backend:v0.9.5"',
            id="double-quoted",
        ),
        pytest.param(
            "image: truebond-backend",
            "image: truebond-backend:v0.9.5",
            id="no-tag",
        ),
        pytest.param(
            "image: registry.example:5000/team/truebond-backend:v1.0.0",
            "image: registry.example:5000/team/truebond-backend:v0.9.5",
            id="registry-port",
        ),
        pytest.param(
            "image: !!str truebond-backend:v1.0.0",
            "image: !!str truebond-backend:v0.9.5",
            id="yaml-tag",
        ),
    ],
)
def test_literal_set_styles(tmp_path, capsys, line, edited):
    text = LITERAL_COMPOSE.replace(
        "image: truebond-backend:v1.0.0  # switched by the rollback playbook", line
    )
    compose_file = write_project(tmp_path, text)
    result = run_main(
        {"file": str(compose_file), "service": "backend", "tag": "v0.9.5"}, capsys
    )
    assert result["changed"] is True
    assert compose_file.read_text() == text.replace(line, edited, 1)


def test_literal_flow_mapping_service(tmp_path, capsys):
    text = "services:\n  backend: {image: truebond-backend:v1.0.0, init: true}\n"
    compose_file = write_project(tmp_path, text)
    run_main({"file": str(compose_file), "service": "backend", "tag": "v0.9.5"}, capsys)
    assert compose_file.read_text() == (
        "services:\n  backend: {image: truebond-backend:v0.9.5, init: true}\n"
    )


def test_literal_digest_is_rejected(tmp_path, capsys):
    digest = "sha256:" + "a" * 64
    text = f"services:\n  backend:\n    image: truebond-backend:v1.0.0@{digest}\n"
    compose_file = write_project(tmp_path, text)
    result = run_main(
        {"file": str(compose_file), "service": "backend", "tag": "v0.9.5"}, capsys
    )
    assert result["failed"] is True
    assert result["msg"] == (
        f"image 'truebond-backend:v1.0.0@{digest}' of service 'backend' in compose"
        f" file {str(compose_file)!r} is pinned by digest, so Docker ignores its"
        " tag; remove the digest to switch the image by tag"
    )
    assert compose_file.read_text() == text


def test_literal_shared_anchor_is_rejected(tmp_path, capsys):
    text = (
        "services:\n"
        "  backend:\n"
        "    image: &app truebond-backend:v1.0.0\n"
        "  worker:\n"
        "    image: *app\n"
    )
    compose_file = write_project(tmp_path, text)
    result = run_main(
        {"file": str(compose_file), "service": "backend", "tag": "v0.9.5"}, capsys
    )
    assert result["failed"] is True
    assert result["msg"] == (
        f"refusing to write {str(compose_file)!r}: the edit would change more than"
        " the image of service 'backend'"
    )
    assert compose_file.read_text() == text


def test_literal_anchor_used_once_is_edited(tmp_path, capsys):
    text = "services:\n  backend:\n    image: &app truebond-backend:v1.0.0\n"
    compose_file = write_project(tmp_path, text)
    result = run_main(
        {"file": str(compose_file), "service": "backend", "tag": "v0.9.5"}, capsys
    )
    assert result["changed"] is True
    assert compose_file.read_text() == text.replace("v1.0.0", "v0.9.5")


def test_literal_merge_key_is_rejected(tmp_path, capsys):
    text = (
        "x-app: &app\n"
        "  image: truebond-backend:v1.0.0\n"
        "services:\n"
        "  backend:\n"
        "    <<: *app\n"
    )
    compose_file = write_project(tmp_path, text)
    result = run_main(
        {"file": str(compose_file), "service": "backend", "tag": "v0.9.5"}, capsys
    )
    assert result["failed"] is True
    assert result["msg"] == (
        f"service 'backend' in compose file {str(compose_file)!r} gets its image"
        " from a YAML merge key (<<); set image in the service itself to edit it"
    )


def test_literal_block_scalar_is_rejected(tmp_path, capsys):
    text = "services:\n  backend:\n    image: >-\n      truebond-backend:v1.0.0\n"
    compose_file = write_project(tmp_path, text)
    result = run_main(
        {"file": str(compose_file), "service": "backend", "tag": "v0.9.5"}, capsys
    )
    assert result["failed"] is True
    assert result["msg"] == (
        f"the image of service 'backend' in compose file {str(compose_file)!r} is a"
        " block scalar (| or >), which this module cannot edit; write it on one line"
    )


def test_compose_override_tags_are_accepted(tmp_path, capsys):
    text = (
        "services:\n"
        "  backend:\n"
        "    image: truebond-backend:v1.0.0\n"
        "    ports: !reset []\n"
        "    environment: !override\n"
        "      A: b\n"
    )
    compose_file = write_project(tmp_path, text)
    result = run_main(
        {"file": str(compose_file), "service": "backend", "tag": "v0.9.5"}, capsys
    )
    assert result["changed"] is True
    assert compose_file.read_text() == text.replace("v1.0.0", "v0.9.5")


def test_unknown_service_lists_services(tmp_path, capsys):
    compose_file = write_project(tmp_path, LITERAL_COMPOSE)
    result = run_main({"file": str(compose_file), "service": "api"}, capsys)
    assert result["failed"] is True
    assert result["msg"] == (
        f"service 'api' was not found in compose file {str(compose_file)!r};"
        " services in the file: backend, frontend"
    )


@pytest.mark.parametrize(
    "tag",
    [
        pytest.param("v0.9.5 ", id="trailing-space"),
        pytest.param("-v1", id="leading-dash"),
        pytest.param(".v1", id="leading-dot"),
        pytest.param("v1:2", id="colon"),
        pytest.param("v1;reboot", id="semicolon"),
        pytest.param("", id="empty"),
        pytest.param("v" * 129, id="too-long"),
    ],
)
def test_bad_tag_is_rejected(tmp_path, capsys, tag):
    compose_file = write_project(tmp_path, LITERAL_COMPOSE)
    result = run_main(
        {"file": str(compose_file), "service": "backend", "tag": tag}, capsys
    )
    assert result["failed"] is True
    assert result["msg"] == (
        f"tag {tag!r} is not a valid Docker image tag: a tag has 1 to 128"
        " characters from A-Z, a-z, 0-9, '_', '.' and '-' and does not start with"
        " '.' or '-'"
    )
    assert compose_file.read_text() == LITERAL_COMPOSE


def test_tag_of_128_characters_is_accepted():
    assert compose_image.validate_tag("v" * 128) == "v" * 128


@pytest.mark.parametrize(
    "text, message",
    [
        pytest.param(
            "services: [unclosed\n",
            "is not valid YAML at line 2, column 1: expected ',' or ']', but got"
            " '<stream end>'",
            id="invalid-yaml",
        ),
        pytest.param(
            "name: truebond\n",
            "has no services: expected a top-level 'services' mapping with one entry"
            " per service",
            id="no-services",
        ),
        pytest.param(
            "",
            "has no services: expected a top-level 'services' mapping with one entry"
            " per service",
            id="empty-file",
        ),
    ],
)
def test_invalid_compose_file(tmp_path, capsys, text, message):
    compose_file = write_project(tmp_path, text)
    result = run_main({"file": str(compose_file), "service": "backend"}, capsys)
    assert result["failed"] is True
    assert result["msg"] == f"compose file {str(compose_file)!r} {message}"


def test_missing_compose_file(tmp_path, capsys):
    missing = tmp_path / "nope.yml"
    result = run_main({"file": str(missing), "service": "backend"}, capsys)
    assert result["msg"] == f"compose file {str(missing)!r} was not found"


def test_service_without_image(tmp_path, capsys):
    compose_file = write_project(
        tmp_path, "services:\n  backend:\n    build: ./backend\n"
    )
    result = run_main({"file": str(compose_file), "service": "backend"}, capsys)
    assert result["msg"] == (
        f"service 'backend' in compose file {str(compose_file)!r} has no image key;"
        " this module only reads and sets the tag of a service that sets image"
    )


def test_variable_read_from_env_file(tmp_path, capsys):
    compose_file = write_project(tmp_path, VARIABLE_COMPOSE, "BACKEND_TAG=v1.0.0\n")
    result = run_main({"file": str(compose_file), "service": "backend"}, capsys)
    assert result["changed"] is False
    assert result["tag_mode"] == "variable"
    assert result["variable"] == "BACKEND_TAG"
    assert result["tag"] == "v1.0.0"
    assert result["tag_source"] == "env_file"
    assert result["image"] == "truebond-backend:v1.0.0"
    assert result["repository"] == "truebond-backend"
    assert result["path"] == str(tmp_path / ".env")


def test_variable_set_writes_env_file_only(tmp_path, capsys):
    env_text = "# release pins\nexport BACKEND_TAG=v1.0.0 # current\nBACKEND_TAG_X=1\n"
    compose_file = write_project(tmp_path, VARIABLE_COMPOSE, env_text)
    os.chmod(tmp_path / ".env", 0o600)
    result = run_main(
        {"file": str(compose_file), "service": "backend", "tag": "v0.9.5"}, capsys
    )
    assert result["changed"] is True
    assert result["tag"] == "v0.9.5"
    assert result["previous_tag"] == "v1.0.0"
    assert result["tag_source"] == "env_file"
    assert (tmp_path / ".env").read_text() == env_text.replace(
        "BACKEND_TAG=v1.0.0", "BACKEND_TAG=v0.9.5"
    )
    assert stat.S_IMODE(os.stat(tmp_path / ".env").st_mode) == 0o600
    assert compose_file.read_text() == VARIABLE_COMPOSE
    with open(result["backup_file"]) as stream:
        assert stream.read() == env_text


def test_variable_second_set_is_unchanged(tmp_path, capsys):
    compose_file = write_project(tmp_path, VARIABLE_COMPOSE, "BACKEND_TAG=v1.0.0\n")
    args = {"file": str(compose_file), "service": "backend", "tag": "v0.9.5"}
    assert run_main(args, capsys)["changed"] is True
    second = run_main(args, capsys)
    assert second["changed"] is False
    assert second["tag_source"] == "env_file"
    assert len(backups(tmp_path)) == 1


def test_variable_check_mode_writes_nothing(tmp_path, capsys):
    compose_file = write_project(tmp_path, VARIABLE_COMPOSE, "BACKEND_TAG=v1.0.0\n")
    result = run_main(
        {"file": str(compose_file), "service": "backend", "tag": "v0.9.5"},
        capsys,
        check_mode=True,
        diff=True,
    )
    assert result["changed"] is True
    assert result["diff"] == {
        "before": "BACKEND_TAG=v1.0.0\n",
        "after": "BACKEND_TAG=v0.9.5\n",
        "before_header": str(tmp_path / ".env"),
        "after_header": str(tmp_path / ".env"),
    }
    assert (tmp_path / ".env").read_text() == "BACKEND_TAG=v1.0.0\n"
    assert backups(tmp_path) == []


def test_variable_default_read(tmp_path, capsys):
    compose_file = write_project(tmp_path, VARIABLE_COMPOSE)
    result = run_main({"file": str(compose_file), "service": "frontend"}, capsys)
    assert result["variable"] == "FRONTEND_TAG"
    assert result["tag"] == "v2.3.1"
    assert result["tag_source"] == "default"
    assert result["image"] == "truebond-frontend:v2.3.1"


def test_variable_default_same_tag_is_unchanged(tmp_path, capsys):
    compose_file = write_project(tmp_path, VARIABLE_COMPOSE)
    result = run_main(
        {"file": str(compose_file), "service": "frontend", "tag": "v2.3.1"}, capsys
    )
    assert result["changed"] is False
    assert result["tag_source"] == "default"
    assert not (tmp_path / ".env").exists()


def test_variable_set_creates_env_file(tmp_path, capsys):
    compose_file = write_project(tmp_path, VARIABLE_COMPOSE)
    result = run_main(
        {"file": str(compose_file), "service": "frontend", "tag": "v2.3.0"}, capsys
    )
    env_file = tmp_path / ".env"
    assert result["changed"] is True
    assert result["previous_tag"] == "v2.3.1"
    assert result["tag_source"] == "env_file"
    assert result["backup_file"] is None
    assert env_file.read_text() == "FRONTEND_TAG=v2.3.0\n"
    assert stat.S_IMODE(os.stat(env_file).st_mode) == 0o600


def test_variable_custom_env_file(tmp_path, capsys):
    compose_file = write_project(tmp_path, VARIABLE_COMPOSE, "BACKEND_TAG=v9\n")
    release_env = tmp_path / "release.env"
    release_env.write_text("BACKEND_TAG=v1.0.0\n")
    result = run_main(
        {
            "file": str(compose_file),
            "service": "backend",
            "tag": "v0.9.5",
            "env_file": str(release_env),
        },
        capsys,
    )
    assert result["path"] == str(release_env)
    assert result["previous_tag"] == "v1.0.0"
    assert release_env.read_text() == "BACKEND_TAG=v0.9.5\n"
    assert (tmp_path / ".env").read_text() == "BACKEND_TAG=v9\n"


@pytest.mark.parametrize(
    "expression, env_text, tag, tag_source",
    [
        pytest.param("$BACKEND_TAG", "BACKEND_TAG=v1\n", "v1", "env_file", id="bare"),
        pytest.param("${BACKEND_TAG}", None, None, None, id="unset"),
        pytest.param("${BACKEND_TAG:-v1}", "BACKEND_TAG=\n", "v1", "default", id=":-"),
        pytest.param("${BACKEND_TAG-v1}", "BACKEND_TAG=\n", "", "env_file", id="-"),
        pytest.param("${BACKEND_TAG-v1}", None, "v1", "default", id="-unset"),
        pytest.param("${BACKEND_TAG:?set it}", "BACKEND_TAG=v2\n", "v2", "env_file"),
        pytest.param("${BACKEND_TAG:?set it}", None, None, None, id=":?unset"),
    ],
)
def test_variable_forms(tmp_path, capsys, expression, env_text, tag, tag_source):
    text = f"services:\n  backend:\n    image: truebond-backend:{expression}\n"
    compose_file = write_project(tmp_path, text, env_text)
    result = run_main({"file": str(compose_file), "service": "backend"}, capsys)
    assert result["tag_mode"] == "variable"
    assert result["variable"] == "BACKEND_TAG"
    assert result["tag"] == tag
    assert result["tag_source"] == tag_source


def test_variable_unset_without_default_warns(tmp_path, capsys):
    text = "services:\n  backend:\n    image: truebond-backend:${BACKEND_TAG}\n"
    compose_file = write_project(tmp_path, text)
    result = run_main({"file": str(compose_file), "service": "backend"}, capsys)
    env_file = str(tmp_path / ".env")
    assert warning_messages(result) == [
        (
            f"BACKEND_TAG is not set in {env_file!r} and has no default, so docker"
            " compose would fail or use the shell environment to build the image name"
        )
    ]


def test_variable_in_module_environment_warns(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("BACKEND_TAG", "v1.0.0")
    compose_file = write_project(tmp_path, VARIABLE_COMPOSE, "BACKEND_TAG=v1.0.0\n")
    result = run_main(
        {"file": str(compose_file), "service": "backend", "tag": "v0.9.5"}, capsys
    )
    env_file = str(tmp_path / ".env")
    assert warning_messages(result) == [
        (
            "BACKEND_TAG is set in the environment of this module run ('v1.0.0');"
            " docker compose started with that environment uses it instead of the"
            f" value in {env_file!r}"
        )
    ]


def test_variable_mixed_with_text_is_rejected(tmp_path, capsys):
    text = "services:\n  backend:\n    image: truebond-backend:v${MINOR}\n"
    compose_file = write_project(tmp_path, text)
    result = run_main({"file": str(compose_file), "service": "backend"}, capsys)
    assert result["failed"] is True
    assert result["msg"] == (
        "the tag of image 'truebond-backend:v${MINOR}' of service 'backend' in"
        f" compose file {str(compose_file)!r} uses variables in a form this module"
        " cannot edit; use a single variable such as ${BACKEND_TAG} or"
        " ${BACKEND_TAG:-v1.0.0}, or a literal tag"
    )


def test_variable_unparsable_env_file(tmp_path, capsys):
    compose_file = write_project(tmp_path, VARIABLE_COMPOSE, 'BACKEND_TAG="v1\n')
    result = run_main({"file": str(compose_file), "service": "backend"}, capsys)
    assert result["failed"] is True
    assert result["msg"].startswith(
        f"env file {str(tmp_path / '.env')!r} cannot be parsed: line 1: the quoted"
        " value of 'BACKEND_TAG' is not closed on the same line"
    )


def test_describe_image_registry_variable():
    template = compose_image.describe_image(
        "${REGISTRY:-localhost:5000}/truebond-backend:${BACKEND_TAG:-v1.0.0}",
        "compose.yml",
        "backend",
    )
    assert template.repository == "${REGISTRY:-localhost:5000}/truebond-backend"
    assert template.variable == "BACKEND_TAG"
    assert template.operator == ":-"
    assert template.argument == "v1.0.0"


@pytest.mark.skipif(
    not os.path.exists(DRILL_COMPOSE_FILE), reason="needs the drill stack checkout"
)
def test_drill_compose_file_copy(tmp_path, capsys):
    # The drill may have switched the backend already, so read the tag first.
    compose_file = tmp_path / "docker-compose.production.yml"
    shutil.copyfile(DRILL_COMPOSE_FILE, compose_file)
    original = compose_file.read_text()
    current = run_main({"file": str(compose_file), "service": "backend"}, capsys)
    new_tag = "v0.9.4" if current["tag"] != "v0.9.4" else "v0.9.5"
    result = run_main(
        {"file": str(compose_file), "service": "backend", "tag": new_tag}, capsys
    )
    assert result["changed"] is True
    assert result["previous_tag"] == current["tag"]
    assert compose_file.read_text() == original.replace(
        f"image: truebond-backend:{current['tag']}",
        f"image: truebond-backend:{new_tag}",
    )


@requires_compose
def test_docker_compose_reads_literal_edit(tmp_path, capsys):
    compose_file = write_project(tmp_path, LITERAL_COMPOSE)
    (tmp_path / ".env.production").write_text("PORT=18080\n")
    run_main({"file": str(compose_file), "service": "backend", "tag": "v0.9.5"}, capsys)
    assert compose_images(compose_file) == {
        "backend": "truebond-backend:v0.9.5",
        "frontend": "truebond-frontend:v2.3.1",
    }


@requires_compose
def test_docker_compose_reads_variable_edit(tmp_path, capsys):
    compose_file = write_project(tmp_path, VARIABLE_COMPOSE, "BACKEND_TAG=v1.0.0\n")
    for service, tag in (("backend", "v0.9.5"), ("frontend", "v2.3.0")):
        run_main({"file": str(compose_file), "service": service, "tag": tag}, capsys)
    assert compose_images(compose_file) == {
        "backend": "truebond-backend:v0.9.5",
        "frontend": "truebond-frontend:v2.3.0",
    }
