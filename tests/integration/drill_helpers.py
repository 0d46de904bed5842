# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Helpers for the integration tests against the local drill stack.

The tests run the playbooks as subprocesses against the drill stack that
tests/stack/stack.sh manages (`make stack` starts it) and read the real state
afterwards: containers with docker inspect, file bytes, incident folders and logs.

The helpers live here and not in conftest.py because tests/unit has a conftest.py
too: when both folders are collected in one run, `from conftest import ...` gets
whichever conftest module was imported first.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = REPO / ".venv" / "bin"
STACK_SCRIPT = REPO / "tests" / "stack" / "stack.sh"
PLAYBOOK = "playbooks/rollback_app.yml"

DRILL_HOME = Path(os.environ.get("TRUEBOND_DRILL_HOME", "/var/tmp/truebond-drill"))
PROJECT_DIR = DRILL_HOME / "truebond"
COMPOSE_FILE = PROJECT_DIR / "docker-compose.production.yml"
ENV_PRODUCTION = PROJECT_DIR / ".env.production"
BACKUP_ROOT = DRILL_HOME / "backup"

BACKEND_CONTAINER = "truebond-backend"
FRONTEND_CONTAINER = "truebond-frontend"
BACKEND_REPOSITORY = "truebond-backend"
BACKEND_URL = "http://127.0.0.1:18080"
# The release the drill stack starts on and the session leaves it at.
STACK_DEFAULT_VERSION = "v1.0.0"
# Release versions of the drill project that exist as git tags (v1.0.0-rc.1 is a
# pre-release, so it never counts as a known version).
KNOWN_VERSIONS = ("v0.9.4", "v0.9.5", "v1.0.0")
KNOWN_VERSIONS_TEXT = "known versions: " + ", ".join(KNOWN_VERSIONS)
# Seconds the health verification may take in runs whose verification is expected
# to fail. The automatic recovery's probe and the reruns of some tests have the same
# deadline, and a fresh v0.9.5 container passes the probe in about 2 s.
FAST_HEALTH_DEADLINE = 5

# Backups that compose_image writes beside a file: <file>.<UTC timestamp>[.<n>].bak
BACKUP_SUFFIX = re.compile(r"\.\d{8}T\d{6}Z(?:\.\d+)?\.bak\Z")
_RECAP_LINE = re.compile(
    r"^(?P<host>\S+)\s*:\s*ok=(?P<ok>\d+)\s+changed=(?P<changed>\d+)\s+"
    r"unreachable=(?P<unreachable>\d+)\s+failed=(?P<failed>\d+)\s+"
    r"skipped=(?P<skipped>\d+)\s+rescued=(?P<rescued>\d+)\s+ignored=(?P<ignored>\d+)",
    re.MULTILINE,
)


@dataclass
class CommandResult:
    """Exit code and output of one command, such as an ansible-playbook run."""

    command: list[str]
    rc: int
    stdout: str
    stderr: str

    @property
    def output(self) -> str:
        """Stdout and stderr together, because Ansible prints errors on both."""
        return self.stdout + "\n" + self.stderr

    @property
    def flat_output(self) -> str:
        """The output with every run of whitespace made one space.

        The YAML result format wraps long messages, so a phrase may span lines.
        """
        return " ".join(self.output.split())

    def recap(self) -> dict[str, int]:
        """Return the counts of the last PLAY RECAP line, such as changed=13."""
        return parse_recap(self.stdout)

    def describe(self) -> str:
        """Return the command and the end of its output, for assertion messages."""
        tail = "\n".join(self.output.splitlines()[-60:])
        return f"command: {self.command}\nrc: {self.rc}\n--- output (end) ---\n{tail}"


@dataclass
class ContainerState:
    """What docker inspect reports about one container."""

    id: str
    image: str
    image_id: str
    status: str
    labels: dict = field(default_factory=dict)


@dataclass
class StackSnapshot:
    """The state that a run that changes nothing must leave exactly as it was."""

    backend: ContainerState
    frontend: ContainerState
    compose_bytes: bytes
    env_production_bytes: bytes
    incident_folders: set[str]
    compose_backups: set[str]
    images: list[str]


def parse_recap(stdout: str) -> dict[str, int]:
    """Return the counts of the last PLAY RECAP host line in ``stdout``."""
    matches = list(_RECAP_LINE.finditer(stdout))
    if not matches:
        raise AssertionError(f"no PLAY RECAP line in the output:\n{stdout[-3000:]}")
    counts = matches[-1].groupdict()
    counts.pop("host")
    return {name: int(value) for name, value in counts.items()}


def playbook_environment(**overrides: str | None) -> dict[str, str]:
    """Return the environment for ansible-playbook.

    An override of None removes that variable.
    """
    environment = dict(os.environ)
    environment.update(
        {
            "PATH": f"{VENV_BIN}:{environment.get('PATH', '/usr/bin:/bin')}",
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_FORCE_COLOR": "0",
            "ANSIBLE_NOCOLOR": "1",
        }
    )
    for name, value in overrides.items():
        if value is None:
            environment.pop(name, None)
        else:
            environment[name] = value
    return environment


def run_command(
    argv: list[str],
    cwd: Path | str = REPO,
    environment: dict[str, str] | None = None,
    timeout: float = 300,
) -> CommandResult:
    """Run ``argv`` and return its exit code and output. A non-zero exit is returned."""
    completed = subprocess.run(
        argv,
        cwd=cwd,
        env=environment if environment is not None else playbook_environment(),
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )
    return CommandResult(argv, completed.returncode, completed.stdout, completed.stderr)


def run_playbook(
    extra_vars: dict | None = None,
    *options: str,
    playbook: str = PLAYBOOK,
    timeout: float = 300,
) -> CommandResult:
    """Run ``playbook`` from the repository root with the drill inventory.

    ``extra_vars`` goes to -e as one JSON document, so that values with spaces or
    shell characters arrive unchanged (-e key=value would split them at spaces and
    strip them). ``options`` are further ansible-playbook options such as --check.
    """
    argv = [str(VENV_BIN / "ansible-playbook"), playbook]
    if extra_vars:
        argv += ["-e", json.dumps(extra_vars)]
    argv += list(options)
    return run_command(argv, timeout=timeout)


def run_checked(argv: list[str], cwd: Path | str = REPO) -> str:
    """Run a helper command that must succeed and return its stdout."""
    completed = subprocess.run(
        argv, cwd=cwd, capture_output=True, text=True, check=False, timeout=120
    )
    if completed.returncode != 0:
        raise AssertionError(
            f"{argv} failed with exit {completed.returncode}:\n{completed.stderr}"
        )
    return completed.stdout


def compose(*arguments: str) -> str:
    """Run docker compose on the drill project and return its stdout."""
    return run_checked(
        [
            "docker",
            "compose",
            "--project-directory",
            str(PROJECT_DIR),
            "-f",
            str(COMPOSE_FILE),
            *arguments,
        ]
    )


def reset_stack(version: str) -> None:
    """Point the drill backend at ``version`` with stack.sh, and wait until it is up.

    stack.sh is skipped when the stack is already in that state, because each call
    runs docker compose up and waits for the health endpoint. Either way a backend
    that already runs ``version`` keeps its container.
    """
    if not stack_runs(version):
        run_checked(["bash", str(STACK_SCRIPT), "set", version])


def stack_runs(version: str) -> bool:
    """Return whether the stack is as `stack.sh set version` leaves it.

    That is: the compose file names ``version`` literally, both containers run, the
    backend runs the local image of that tag, and /api/health returns 200 with
    that version.
    """
    compose_tags = re.findall(
        rf"^\s*image: {re.escape(BACKEND_REPOSITORY)}:(\S+)$",
        COMPOSE_FILE.read_text(),
        re.MULTILINE,
    )
    if compose_tags != [version]:
        return False
    try:
        backend = inspect_container(BACKEND_CONTAINER)
        frontend = inspect_container(FRONTEND_CONTAINER)
    except AssertionError:
        return False
    reference = f"{BACKEND_REPOSITORY}:{version}"
    if backend.image != reference or backend.image_id != image_id(reference):
        return False
    if backend.status != "running" or frontend.status != "running":
        return False
    try:
        status, body = fetch_json("/api/health")
    except (OSError, ValueError):
        return False
    return status == 200 and body.get("version") == version


def inspect_container(name: str) -> ContainerState:
    """Return the docker inspect state of container ``name``."""
    data = json.loads(run_checked(["docker", "inspect", "--type", "container", name]))[
        0
    ]
    return ContainerState(
        id=data["Id"],
        image=data["Config"]["Image"],
        image_id=data["Image"],
        status=data["State"]["Status"],
        labels=data["Config"].get("Labels") or {},
    )


def image_id(reference: str) -> str | None:
    """Return the ID of the local image ``reference``, or None if it does not exist."""
    completed = subprocess.run(
        ["docker", "image", "inspect", "--format", "{{.Id}}", reference],
        capture_output=True,
        text=True,
        check=False,
    )
    return completed.stdout.strip() if completed.returncode == 0 else None


def image_labels(reference: str) -> dict[str, str]:
    """Return the labels of the local image ``reference``."""
    output = run_checked(
        ["docker", "image", "inspect", "--format", "{{json .Config.Labels}}", reference]
    )
    return json.loads(output) or {}


def list_images() -> list[str]:
    """Return every local image as 'repository:tag id', sorted."""
    output = run_checked(
        [
            "docker",
            "image",
            "ls",
            "--all",
            "--format",
            "{{.Repository}}:{{.Tag}} {{.ID}}",
        ]
    )
    return sorted(output.splitlines())


def dangling_image_ids() -> set[str]:
    """Return the IDs of the untagged images that no other image uses."""
    output = run_checked(["docker", "image", "ls", "-q", "--filter", "dangling=true"])
    return set(output.split())


def remove_image(reference: str) -> None:
    """Remove the local image ``reference`` if it exists."""
    if image_id(reference) is not None:
        run_checked(["docker", "image", "rm", "--force", reference])


def incident_folders() -> set[str]:
    """Return the names of the incident folders under the backup root."""
    if not BACKUP_ROOT.is_dir():
        return set()
    return {
        entry.name
        for entry in BACKUP_ROOT.iterdir()
        if entry.is_dir() and entry.name.startswith("incident-")
    }


def new_incident_folder(before: set[str]) -> Path:
    """Return the one incident folder created since ``before`` was taken."""
    created = sorted(incident_folders() - before)
    assert len(created) == 1, f"expected one new incident folder, found {created}"
    return BACKUP_ROOT / created[0]


def compose_backups() -> set[str]:
    """Return the names of the timestamped backups beside the compose file."""
    prefix = COMPOSE_FILE.name
    return {
        entry.name
        for entry in PROJECT_DIR.iterdir()
        if entry.name.startswith(prefix)
        and BACKUP_SUFFIX.search(entry.name[len(prefix) :])
    }


def controller_chart_file(incident_dir: Path) -> Path:
    """Return where rollback_log draws the chart of ``incident_dir`` on the controller.

    The path follows the role defaults: rollback_log_chart_dir is $TMPDIR or /tmp,
    and the drill inventory's only host is drill-app.
    """
    chart_dir = Path(os.environ.get("TMPDIR", "/tmp"))
    return chart_dir / f"{incident_dir.name}-drill-app-timeline.png"


def controller_chart_files() -> set[Path]:
    """Return the charts of drill incidents in the controller's temporary folder."""
    chart_dir = Path(os.environ.get("TMPDIR", "/tmp"))
    return set(chart_dir.glob("incident-*-drill-app-timeline.png"))


def take_snapshot() -> StackSnapshot:
    """Record the state that a run which changes nothing must keep."""
    return StackSnapshot(
        backend=inspect_container(BACKEND_CONTAINER),
        frontend=inspect_container(FRONTEND_CONTAINER),
        compose_bytes=COMPOSE_FILE.read_bytes(),
        env_production_bytes=ENV_PRODUCTION.read_bytes(),
        incident_folders=incident_folders(),
        compose_backups=compose_backups(),
        images=list_images(),
    )


def fetch_json(path: str) -> tuple[int, dict]:
    """GET ``BACKEND_URL + path`` and return the status code and the JSON body."""
    request = urllib.request.Request(BACKEND_URL + path)
    try:
        with urllib.request.urlopen(request, timeout=5) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        return error.code, json.loads(error.read() or b"{}")


def read_rollback_log(incident_dir: Path) -> dict:
    """Return the parsed rollback-log.json of an incident folder."""
    return json.loads((incident_dir / "rollback-log.json").read_text(encoding="utf-8"))


def git(*args: str) -> str:
    """Run git in the drill project and return its stdout."""
    return run_checked(["git", "-C", str(PROJECT_DIR), *args])


def tag_commit(tag: str, files: dict[str, bytes], message: str) -> str:
    """Create ``tag`` in the drill project on a new parentless commit of ``files``.

    ``files`` maps paths with at most one folder level (``backend/Dockerfile``) to
    their bytes, and an empty dict makes a commit with an empty tree. Only git objects
    and the tag are written, so HEAD, the index and the working tree stay as they
    are. Returns the commit ID.
    """
    folders: dict[str, list[str]] = {}
    root_entries = []
    for path, data in sorted(files.items()):
        blob = (
            subprocess.run(
                ["git", "-C", str(PROJECT_DIR), "hash-object", "-w", "--stdin"],
                input=data,
                capture_output=True,
                check=True,
            )
            .stdout.decode()
            .strip()
        )
        folder, _, name = path.rpartition("/")
        entry = f"100644 blob {blob}\t{name}"
        if folder:
            folders.setdefault(folder, []).append(entry)
        else:
            root_entries.append(entry)
    for folder, entries in folders.items():
        tree = make_tree(entries)
        root_entries.append(f"040000 tree {tree}\t{folder}")
    root_tree = make_tree(root_entries)
    commit = run_checked(
        [
            "git",
            "-C",
            str(PROJECT_DIR),
            "-c",
            "user.name=integration tests",
            "-c",
            "user.email=tests@localhost",
            "commit-tree",
            root_tree,
            "-m",
            message,
        ]
    ).strip()
    git("tag", tag, commit)
    return commit


def make_tree(entries: list[str]) -> str:
    """Write a git tree from ls-tree style ``entries`` and return its ID."""
    return subprocess.run(
        ["git", "-C", str(PROJECT_DIR), "mktree"],
        input="".join(f"{entry}\n" for entry in entries),
        capture_output=True,
        text=True,
        check=True,
    ).stdout.strip()


def delete_tag(tag: str) -> None:
    """Delete ``tag`` from the drill project if it exists."""
    if git("tag", "--list", tag).strip():
        git("tag", "--delete", tag)
