# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Run the rollback procedures through ansible-runner, the way AWX runs them.

Controller-side command line tool, not an Ansible plugin:

    python -m ansible_collections.truebond.rollback.plugins.plugin_utils.runner_cli \\
        app --version v0.9.5 --severity high

Each subcommand runs one playbook of the collection. The tool writes an ansible-runner
private data directory (env/extravars, env/envvars) and runs the playbook with the
collection folder as the project. It prints one line as each phase of the rollback
log starts. At the end it prints the rollback log's summary and the paths of the log
and the artifacts (job_events/, stdout). The exit code is 0 on success and the
playbook's exit code otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import re
import sys
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

import yaml
from ansible_collections.truebond.rollback.plugins.plugin_utils._runner_progress import (
    NOT_CONFIRMED_TASK,
    ProgressPrinter,
    report_logs,
)

PROG = "truebond-rollback"

# The collection folder: plugins/plugin_utils/runner_cli.py is two levels below it.
COLLECTION_DIR = Path(__file__).resolve().parents[2]

# The values the playbooks' validate_argument_spec accepts. The unit tests compare
# them with the playbooks, so a change there shows up as a test failure here.
SEVERITIES = ("critical", "high", "medium", "low", "unknown")
STRATEGIES = ("recreate", "stop-first")
DB_METHODS = ("full", "migration_undo", "atlas")
FULL_METHODS = ("full", "atlas")
FEATURE_APPLY = ("recreate", "sighup", "none")
SNAPSHOT_STORES = ("mongodb", "redis", "atlas")


# The confirmation prompt of rollback_db.yml and rollback_full.yml. ansible-runner
# runs the playbook on a pseudo-terminal, so the prompt would wait for input that
# never comes. Without --yes the tool sends "no", so the run shows the plan and
# stops before anything changes.
CONFIRM_PROMPT = r"Type yes to go on with the .* rollback of .*"


@dataclass(frozen=True)
class Procedure:
    """One subcommand: the playbook it runs and its help text."""

    playbook: str
    help: str


PROCEDURES = {
    "app": Procedure(
        "playbooks/rollback_app.yml",
        "Roll the backend back to a previous release (Type 1).",
    ),
    "db": Procedure(
        "playbooks/rollback_db.yml",
        "Roll the application, then the MongoDB database back (Type 2).",
    ),
    "full": Procedure(
        "playbooks/rollback_full.yml",
        "Roll MongoDB, Redis and the application back together (Type 3).",
    ),
    "feature": Procedure(
        "playbooks/disable_feature.yml",
        "Turn features off with their feature flags (Type 4).",
    ),
    "decide": Procedure(
        "playbooks/decide.yml",
        "Apply the rollback decision matrix to the current metrics.",
    ),
    "snapshot": Procedure(
        "playbooks/snapshot.yml",
        "Take a backup of the data stores before a deploy.",
    ),
    "drill": Procedure(
        "playbooks/drill.yml",
        "Run the scheduled rollback drill on a drill or staging inventory.",
    ),
}


class UsageError(Exception):
    """Invalid command line value. The message names the value and the fix."""


# ---------------------------------------------------------------------------
# Command line parsing and the mapping to extra vars


def build_parser() -> argparse.ArgumentParser:
    """Return the argument parser with one subparser per procedure."""
    parser = argparse.ArgumentParser(
        prog=PROG,
        description=(
            "Run a truebond.rollback procedure through ansible-runner, show its "
            "phases, and print the rollback log's summary."
        ),
    )
    subparsers = parser.add_subparsers(dest="command", metavar="COMMAND")
    subparsers.required = True

    for name, procedure in PROCEDURES.items():
        subparser = subparsers.add_parser(
            name, help=procedure.help, description=procedure.help
        )
        add_common_options(subparser)
        OPTION_BUILDERS[name](subparser)
    return parser


def add_common_options(parser: argparse.ArgumentParser) -> None:
    """Add the options every subcommand has: inventory, extra vars, check mode."""
    group = parser.add_argument_group("ansible-runner options")
    group.add_argument(
        "-i",
        "--inventory",
        action="append",
        default=[],
        metavar="PATH",
        help=(
            "Inventory file or folder, repeatable. Default: the inventory of the "
            "collection's ansible.cfg (inventories/drill)."
        ),
    )
    group.add_argument(
        "-e",
        "--extra-vars",
        action="append",
        default=[],
        metavar="VARS",
        help=(
            "Extra variables as KEY=VALUE, a JSON or YAML mapping, or @FILE, "
            "repeatable. The options of this command take precedence."
        ),
    )
    group.add_argument(
        "--check",
        action="store_true",
        help="Run the playbook in check mode (ansible-playbook --check).",
    )
    group.add_argument(
        "--limit", metavar="PATTERN", help="Limit the run to these hosts (--limit)."
    )
    group.add_argument(
        "--private-data-dir",
        type=Path,
        metavar="DIR",
        help=(
            "ansible-runner private data directory for env/ and artifacts/. "
            "Default: a new folder truebond-rollback-COMMAND-* in the temporary folder."
        ),
    )
    group.add_argument(
        "--project-dir",
        type=Path,
        default=COLLECTION_DIR,
        metavar="DIR",
        help="Folder with the playbooks/ folder. Default: this collection's folder.",
    )
    group.add_argument(
        "-v",
        "--verbose",
        action="count",
        default=0,
        help=(
            "Print the playbook output as it runs. -vv and more also pass -v, -vv... "
            "to ansible-playbook."
        ),
    )


def add_incident_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--severity", choices=SEVERITIES, help="Severity of the incident."
    )
    parser.add_argument("--issue", help="Short description of the incident.")
    parser.add_argument(
        "--symptoms", help="What users see, for the capture and the rollback log."
    )


def add_version_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--version",
        type=release_version,
        help="Release to roll back to (vMAJOR.MINOR.PATCH). Default: the previous one.",
    )
    parser.add_argument(
        "--strategy",
        choices=STRATEGIES,
        help="Recreate the backend directly (default), or stop it first.",
    )


def add_data_options(parser: argparse.ArgumentParser, methods: tuple) -> None:
    parser.add_argument(
        "--method", choices=methods, help="How the database is rolled back."
    )
    parser.add_argument(
        "--backup",
        metavar="DIR",
        help="Backup folder to restore from. Default: the newest usable one.",
    )
    parser.add_argument(
        "--drop-new-collections",
        action="store_true",
        default=None,
        help="Drop collections that the backup does not have (method full).",
    )
    parser.add_argument(
        "--atlas-snapshot-id",
        metavar="ID",
        help="Atlas snapshot to restore (method atlas). Default: the backup's.",
    )
    parser.add_argument(
        "--yes",
        action="store_true",
        help=(
            "Go on without the confirmation prompt (confirm=yes). Without it the run "
            "shows the plan and stops before anything changes."
        ),
    )


def add_app_options(parser: argparse.ArgumentParser) -> None:
    add_version_options(parser)
    parser.add_argument(
        "--no-recover",
        dest="recover",
        action="store_false",
        default=None,
        help=(
            "After a failed switch or verification, keep the failed container instead "
            "of switching the backend back to the release that ran before (recover=false)."
        ),
    )
    add_incident_options(parser)


def add_db_options(parser: argparse.ArgumentParser) -> None:
    add_version_options(parser)
    add_data_options(parser, DB_METHODS)
    parser.add_argument(
        "--undo-spec",
        type=yaml_mapping_file,
        metavar="FILE",
        help="YAML file with what the migration changed (method migration_undo).",
    )
    add_incident_options(parser)


def add_full_options(parser: argparse.ArgumentParser) -> None:
    add_version_options(parser)
    add_data_options(parser, FULL_METHODS)
    add_incident_options(parser)


def add_feature_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--feature",
        action="append",
        required=True,
        type=flag_names,
        metavar="FLAG",
        help=(
            "Feature flag to set, such as REALTIME_MESSAGING_ENABLED. Repeat it or "
            "separate names with commas for several."
        ),
    )
    parser.add_argument(
        "--value",
        help="Value every flag gets. Default: false, which disables the features.",
    )
    parser.add_argument(
        "--apply",
        choices=FEATURE_APPLY,
        help="How the backend picks up the new value. Default: recreate.",
    )
    add_incident_options(parser)


def add_decide_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--prometheus-url", metavar="URL", help="Prometheus to read the metrics from."
    )
    parser.add_argument(
        "--error-rate",
        type=float,
        metavar="RATIO",
        help="Error rate as a ratio (0.05 is 5 %%), instead of reading Prometheus.",
    )
    parser.add_argument(
        "--uptime", type=float, metavar="RATIO", help="Uptime as a ratio (0.999)."
    )
    parser.add_argument(
        "--response-time",
        type=float,
        metavar="SECONDS",
        help="Response time in seconds.",
    )
    parser.add_argument(
        "--auto-rollback",
        action="store_true",
        default=None,
        help="Start the application rollback when the decision is immediate rollback.",
    )


def add_snapshot_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--stores",
        action="append",
        type=store_names,
        metavar="STORE",
        help="Data store to back up (mongodb, redis, atlas). Repeat or separate with commas.",
    )


def add_drill_options(parser: argparse.ArgumentParser) -> None:
    """Add nothing: the drill playbook takes its settings as extra vars."""


OPTION_BUILDERS = {
    "app": add_app_options,
    "db": add_db_options,
    "full": add_full_options,
    "feature": add_feature_options,
    "decide": add_decide_options,
    "snapshot": add_snapshot_options,
    "drill": add_drill_options,
}

# ASCII digits and \Z, because \d also matches other scripts' digits and $ also
# matches before a final line break.
VERSION_PATTERN = re.compile(r"v[0-9]+\.[0-9]+\.[0-9]+\Z")


def release_version(text: str) -> str:
    if not VERSION_PATTERN.match(text):
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a release version; use vMAJOR.MINOR.PATCH, such as v0.9.5"
        )
    return text


def flag_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    if not names:
        raise argparse.ArgumentTypeError(
            f"{text!r} names no feature flag; use a name such as REALTIME_MESSAGING_ENABLED"
        )
    return names


def store_names(text: str) -> list[str]:
    names = [name.strip() for name in text.split(",") if name.strip()]
    for name in names:
        if name not in SNAPSHOT_STORES:
            raise argparse.ArgumentTypeError(
                f"invalid data store {name!r}; choose from {', '.join(SNAPSHOT_STORES)}"
            )
    if not names:
        raise argparse.ArgumentTypeError(f"{text!r} names no data store")
    return names


def yaml_mapping_file(text: str) -> dict:
    path = Path(text)
    try:
        document = yaml.safe_load(path.read_text())
    except OSError as error:
        raise argparse.ArgumentTypeError(
            f"cannot read {text!r}: {error.strerror}"
        ) from error
    except yaml.YAMLError as error:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not valid YAML: {error}"
        ) from error
    if not isinstance(document, dict):
        raise argparse.ArgumentTypeError(f"{text!r} does not contain a YAML mapping")
    return document


def parse_extra_vars(values: list[str]) -> dict:
    """Merge -e values, later ones winning, as ansible-playbook does.

    A value is KEY=VALUE (the value stays a string), a JSON or YAML mapping, or
    @FILE with a YAML or JSON mapping.
    """
    merged = {}
    for value in values:
        if value.startswith("@"):
            path = Path(value[1:])
            try:
                document = yaml.safe_load(path.read_text())
            except OSError as error:
                raise UsageError(
                    f"cannot read extra vars file {str(path)!r}: {error.strerror}"
                ) from error
            except yaml.YAMLError as error:
                raise UsageError(
                    f"extra vars file {str(path)!r} is not valid YAML: {error}"
                ) from error
            if not isinstance(document, dict):
                raise UsageError(
                    f"extra vars file {str(path)!r} does not contain a mapping"
                )
            merged.update(document)
        elif value.lstrip().startswith("{"):
            try:
                document = yaml.safe_load(value)
            except yaml.YAMLError as error:
                raise UsageError(
                    f"extra vars {value!r} are not a valid JSON or YAML mapping: {error}"
                ) from error
            if not isinstance(document, dict):
                raise UsageError(f"extra vars {value!r} are not a mapping")
            merged.update(document)
        elif "=" in value and value.split("=", 1)[0].strip():
            key, text = value.split("=", 1)
            merged[key.strip()] = text
        else:
            raise UsageError(
                f"invalid extra vars {value!r}; use KEY=VALUE, a JSON mapping or @FILE"
            )
    return merged


# Options that map one to one onto a playbook argument of the same name.
DIRECT_OPTIONS = (
    "version",
    "strategy",
    "severity",
    "issue",
    "symptoms",
    "method",
    "backup",
    "atlas_snapshot_id",
    "apply",
    "value",
    "undo_spec",
)


def option_extravars(args: argparse.Namespace) -> dict:
    """Return the extra vars that the subcommand's options set.

    Only options given on the command line are included, so that the playbook's
    defaults apply to the rest.
    """
    extravars = {}
    for name in DIRECT_OPTIONS:
        value = getattr(args, name, None)
        if value is not None:
            extravars[name] = value
    if getattr(args, "recover", None) is False:
        extravars["recover"] = False
    if getattr(args, "drop_new_collections", None):
        extravars["drop_new_collections"] = True
    if getattr(args, "yes", False):
        extravars["confirm"] = "yes"
    if getattr(args, "feature", None):
        extravars["feature"] = [name for names in args.feature for name in names]
    if getattr(args, "stores", None):
        extravars["stores"] = [name for names in args.stores for name in names]

    if args.command == "decide":
        for option, variable in (
            ("prometheus_url", "prometheus_url"),
            ("error_rate", "error_rate"),
            ("uptime", "uptime"),
            ("response_time", "response_time"),
        ):
            value = getattr(args, option)
            if value is not None:
                extravars[variable] = value
        if args.auto_rollback:
            extravars["decide_auto_rollback"] = True
        # The run has a pseudo-terminal but no operator to answer a prompt, as in AWX.
        extravars["decide_interactive"] = False
    return extravars


@dataclass
class RunRequest:
    """Everything one run needs, worked out from the command line."""

    command: str
    playbook: str
    project_dir: Path
    extravars: dict
    inventory: list[str]
    check: bool
    limit: str | None
    private_data_dir: Path | None
    verbose: int
    passwords: dict = field(default_factory=dict)

    def cmdline(self) -> str:
        """Return the ansible-playbook options that ansible-runner adds."""
        options = []
        if self.check:
            options.append("--check")
        return " ".join(options)


def build_request(args: argparse.Namespace) -> RunRequest:
    """Turn parsed arguments into a RunRequest, raising UsageError on bad values."""
    procedure = PROCEDURES[args.command]
    extravars = parse_extra_vars(args.extra_vars)
    extravars.update(option_extravars(args))

    project_dir = args.project_dir.resolve()
    playbook_path = project_dir / procedure.playbook
    if not playbook_path.is_file():
        raise UsageError(
            f"playbook {procedure.playbook} not found in {project_dir}; "
            "check --project-dir, or update the collection"
        )

    inventory = []
    for entry in args.inventory:
        path = Path(entry)
        if not path.exists():
            raise UsageError(f"inventory {entry!r} not found")
        inventory.append(str(path.resolve()))

    passwords = {}
    if args.command in ("db", "full") and extravars.get("confirm") != "yes":
        passwords[CONFIRM_PROMPT] = "no"

    return RunRequest(
        command=args.command,
        playbook=procedure.playbook,
        project_dir=project_dir,
        extravars=extravars,
        inventory=inventory,
        check=args.check,
        limit=args.limit,
        private_data_dir=args.private_data_dir,
        verbose=args.verbose,
        passwords=passwords,
    )


# ---------------------------------------------------------------------------
# Running


def new_private_data_dir(command: str) -> Path:
    return Path(tempfile.mkdtemp(prefix=f"{PROG}-{command}-"))


def write_private_data_dir(request: RunRequest, folder: Path) -> None:
    """Write env/extravars and env/envvars the way AWX prepares a job.

    The files may contain secrets given as extra vars, so they are readable by the
    owner only.
    """
    env_dir = folder / "env"
    env_dir.mkdir(parents=True, exist_ok=True)
    os.chmod(folder, 0o700)
    envvars = {}
    # ansible-runner finds ansible-playbook on PATH. Put the folder of this Python
    # first, so that a virtualenv's ansible-playbook is used even when the
    # virtualenv is not activated.
    bin_dir = Path(sys.executable).parent
    if (bin_dir / "ansible-playbook").is_file():
        envvars["PATH"] = os.pathsep.join([str(bin_dir), os.environ.get("PATH", "")])
    config = request.project_dir / "ansible.cfg"
    if config.is_file():
        envvars["ANSIBLE_CONFIG"] = str(config)
    for name, content in (("extravars", request.extravars), ("envvars", envvars)):
        path = env_dir / name
        path.write_text(json.dumps(content, indent=2, sort_keys=True) + "\n")
        os.chmod(path, 0o600)


def run_request(request: RunRequest, stream=None) -> int:
    """Run the playbook with ansible_runner.run and return the exit code."""
    import ansible_runner

    printer = ProgressPrinter(stream=stream, verbose=request.verbose)
    folder = request.private_data_dir or new_private_data_dir(request.command)
    folder = folder.resolve()
    write_private_data_dir(request, folder)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S%fZ")
    ident = f"{request.command}-{stamp}"

    printer.write(
        f"{PROG} {request.command}: running {request.playbook} with ansible-runner"
        f"{' in check mode' if request.check else ''}"
    )
    printer.write(f"Private data directory: {folder}")
    runner = ansible_runner.run(
        private_data_dir=str(folder),
        project_dir=str(request.project_dir),
        playbook=request.playbook,
        inventory=request.inventory or None,
        limit=request.limit,
        cmdline=request.cmdline() or None,
        verbosity=max(request.verbose - 1, 0) or None,
        passwords=request.passwords or None,
        ident=ident,
        event_handler=printer.handle,
        quiet=True,
    )
    printer.finish(runner.status)
    artifact_dir = Path(runner.config.artifact_dir)
    report_logs(printer, artifact_dir)
    printer.write(f"Artifacts: {artifact_dir} (job_events/, stdout)")

    rc = runner.rc
    if runner.status == "successful" and rc == 0:
        printer.write(f"{PROG} {request.command}: {request.playbook} succeeded.")
        return 0
    exit_code = rc if isinstance(rc, int) and rc != 0 else 1
    printer.write(
        f"{PROG} {request.command}: {request.playbook} failed "
        f"(ansible-playbook exit code {rc}, runner status {runner.status})."
    )
    if printer.failures and printer.failures[-1].task == NOT_CONFIRMED_TASK:
        failure = printer.failures[-1]
        printer.write(
            f"The rollback of {failure.host} was not confirmed, so nothing changed."
        )
        for line in printer.plans.get(failure.host, []):
            printer.write(f"  {line}")
        printer.write(
            "Read the plan above, then run the same command again with --yes."
        )
    elif printer.failures:
        failure = printer.failures[-1]
        printer.write(f'Failed task "{failure.task}" on {failure.host}:')
        for line in failure.message.splitlines():
            printer.write(f"  {line}")
    else:
        # No task failed, so the error came before the first task (a syntax error,
        # an unknown host pattern, a missing command): show the end of the output.
        stdout_file = artifact_dir / "stdout"
        if stdout_file.is_file():
            for line in stdout_file.read_text(errors="replace").splitlines()[-15:]:
                printer.write(f"  {line}")
    printer.write(f"Full output: {artifact_dir / 'stdout'}")
    return exit_code


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    try:
        request = build_request(args)
    except UsageError as error:
        parser.error(str(error))
    return run_request(request)


if __name__ == "__main__":
    sys.exit(main())
