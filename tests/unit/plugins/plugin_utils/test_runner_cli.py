# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Argument parsing and the command mapping of runner_cli."""

from __future__ import annotations

import json
import stat
import sys
from pathlib import Path

import pytest
import yaml
from ansible_collections.truebond.rollback.plugins.plugin_utils import runner_cli

REPO = Path(__file__).resolve().parents[4]

sys.path.insert(0, str(REPO / "tests" / "helpers"))
from playbook_tasks import walk_tasks  # the helper lives outside the test folders


def parse(*argv: str):
    return runner_cli.build_parser().parse_args(list(argv))


def request_for(*argv: str) -> runner_cli.RunRequest:
    return runner_cli.build_request(parse(*argv))


def playbook_spec(playbook: str) -> dict:
    """Return the argument_spec of the playbook's validate_argument_spec task."""
    plays = yaml.safe_load((REPO / playbook).read_text())
    for play in plays:
        for task in walk_tasks(play.get("tasks", [])):
            if "ansible.builtin.validate_argument_spec" in task:
                return task["ansible.builtin.validate_argument_spec"]["argument_spec"]
    raise AssertionError(f"{playbook} has no validate_argument_spec task")


def parser_error(capsys, *argv: str) -> str:
    with pytest.raises(SystemExit) as raised:
        runner_cli.main(list(argv))
    assert raised.value.code == 2
    return capsys.readouterr().err


@pytest.mark.parametrize(
    ("command", "playbook"),
    [
        ("app", "playbooks/rollback_app.yml"),
        ("db", "playbooks/rollback_db.yml"),
        ("full", "playbooks/rollback_full.yml"),
        ("feature", "playbooks/disable_feature.yml"),
        ("decide", "playbooks/decide.yml"),
        ("snapshot", "playbooks/snapshot.yml"),
        ("drill", "playbooks/drill.yml"),
    ],
)
def test_command_maps_to_playbook(command, playbook):
    assert runner_cli.PROCEDURES[command].playbook == playbook


@pytest.mark.parametrize(
    ("argv", "expected"),
    [
        pytest.param(["app"], {}, id="app-defaults-left-to-playbook"),
        pytest.param(
            [
                "app",
                "--version",
                "v0.9.5",
                "--severity",
                "high",
                "--strategy",
                "stop-first",
                "--issue",
                "login fails",
                "--symptoms",
                "500 on /api/auth/login",
            ],
            {
                "version": "v0.9.5",
                "severity": "high",
                "strategy": "stop-first",
                "issue": "login fails",
                "symptoms": "500 on /api/auth/login",
            },
            id="app-all-options",
        ),
        pytest.param(
            [
                "db",
                "--version",
                "v0.9.5",
                "--method",
                "full",
                "--backup",
                "/backup/backup-20260112T090000Z",
                "--drop-new-collections",
                "--yes",
            ],
            {
                "version": "v0.9.5",
                "method": "full",
                "backup": "/backup/backup-20260112T090000Z",
                "drop_new_collections": True,
                "confirm": "yes",
            },
            id="db-full-restore",
        ),
        pytest.param(
            ["full", "--method", "atlas", "--atlas-snapshot-id", "snap-1", "--yes"],
            {"method": "atlas", "atlas_snapshot_id": "snap-1", "confirm": "yes"},
            id="full-atlas",
        ),
        pytest.param(
            [
                "feature",
                "--feature",
                "A_ENABLED,B_ENABLED",
                "--feature",
                "C_ENABLED",
                "--value",
                "true",
                "--apply",
                "none",
            ],
            {
                "feature": ["A_ENABLED", "B_ENABLED", "C_ENABLED"],
                "value": "true",
                "apply": "none",
            },
            id="feature-several-flags",
        ),
        pytest.param(
            ["decide", "--prometheus-url", "http://127.0.0.1:9090", "--uptime", "0.99"],
            {
                "prometheus_url": "http://127.0.0.1:9090",
                "uptime": 0.99,
                "decide_interactive": False,
            },
            id="decide-never-prompts",
        ),
        pytest.param(
            ["decide", "--error-rate", "0.2", "--auto-rollback"],
            {
                "error_rate": 0.2,
                "decide_auto_rollback": True,
                "decide_interactive": False,
            },
            id="decide-auto-rollback",
        ),
        pytest.param(
            ["snapshot", "--stores", "mongodb,redis"],
            {"stores": ["mongodb", "redis"]},
            id="snapshot-stores",
        ),
        pytest.param(["drill"], {}, id="drill-extra-vars-only"),
    ],
)
def test_options_map_to_extravars(argv, expected):
    assert runner_cli.option_extravars(parse(*argv)) == expected


def test_undo_spec_file_becomes_mapping(tmp_path):
    spec = tmp_path / "undo.yml"
    spec.write_text("unset:\n  users: [email_verified]\n")
    extravars = runner_cli.option_extravars(
        parse("db", "--method", "migration_undo", "--undo-spec", str(spec))
    )
    assert extravars["undo_spec"] == {"unset": {"users": ["email_verified"]}}
    assert extravars["method"] == "migration_undo"


def test_no_recover_sets_recover_false():
    assert runner_cli.option_extravars(parse("app", "--no-recover")) == {
        "recover": False
    }
    assert "recover" not in runner_cli.option_extravars(parse("app"))


def test_recover_option_names_playbook_argument():
    spec = playbook_spec(runner_cli.PROCEDURES["app"].playbook)
    assert spec["recover"]["type"] == "bool"


@pytest.mark.parametrize(
    ("command", "option", "spec_name"),
    [
        ("app", "--severity", "severity"),
        ("app", "--strategy", "strategy"),
        ("db", "--method", "method"),
        ("db", "--severity", "severity"),
        ("db", "--strategy", "strategy"),
        ("full", "--method", "method"),
        ("full", "--severity", "severity"),
        ("full", "--strategy", "strategy"),
        ("feature", "--apply", "apply"),
        ("feature", "--severity", "severity"),
    ],
)
def test_option_choices_match_playbook(command, option, spec_name):
    parser = runner_cli.build_parser()
    subparser = parser._subparsers._group_actions[0].choices[command]
    action = next(a for a in subparser._actions if option in a.option_strings)
    spec = playbook_spec(runner_cli.PROCEDURES[command].playbook)
    assert list(action.choices) == spec[spec_name]["choices"]


def test_snapshot_stores_match_playbook():
    spec = playbook_spec("playbooks/snapshot.yml")
    assert list(runner_cli.SNAPSHOT_STORES) == spec["stores"]["choices"]


@pytest.mark.parametrize(
    "argv",
    [
        pytest.param(
            [
                "app",
                "--version",
                "v1.0.0",
                "--strategy",
                "recreate",
                "--severity",
                "low",
                "--issue",
                "x",
                "--symptoms",
                "y",
            ],
            id="app",
        ),
        pytest.param(
            [
                "db",
                "--version",
                "v1.0.0",
                "--method",
                "full",
                "--backup",
                "/b",
                "--drop-new-collections",
                "--atlas-snapshot-id",
                "s",
                "--yes",
                "--strategy",
                "recreate",
                "--severity",
                "low",
                "--issue",
                "x",
                "--symptoms",
                "y",
            ],
            id="db",
        ),
        pytest.param(
            [
                "full",
                "--version",
                "v1.0.0",
                "--method",
                "full",
                "--backup",
                "/b",
                "--drop-new-collections",
                "--atlas-snapshot-id",
                "s",
                "--yes",
                "--strategy",
                "recreate",
                "--severity",
                "low",
                "--issue",
                "x",
                "--symptoms",
                "y",
            ],
            id="full",
        ),
        pytest.param(
            [
                "feature",
                "--feature",
                "A_ENABLED",
                "--value",
                "false",
                "--apply",
                "recreate",
                "--severity",
                "low",
                "--issue",
                "x",
                "--symptoms",
                "y",
            ],
            id="feature",
        ),
        pytest.param(["snapshot", "--stores", "redis"], id="snapshot"),
    ],
)
def test_every_option_is_playbook_argument(argv):
    extravars = runner_cli.option_extravars(parse(*argv))
    spec = playbook_spec(runner_cli.PROCEDURES[argv[0]].playbook)
    assert extravars
    assert set(extravars) <= set(spec), set(extravars) - set(spec)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        pytest.param(["severity=high"], {"severity": "high"}, id="key-value"),
        pytest.param(["issue=a = b"], {"issue": "a = b"}, id="value-with-equals"),
        pytest.param(
            ['{"confirm": "yes", "n": 2}'], {"confirm": "yes", "n": 2}, id="json"
        ),
        pytest.param(["a=1", "a=2"], {"a": "2"}, id="later-wins"),
    ],
)
def test_parse_extra_vars(values, expected):
    assert runner_cli.parse_extra_vars(values) == expected


def test_parse_extra_vars_reads_file(tmp_path):
    path = tmp_path / "vars.yml"
    path.write_text("truebond_rto_objective_minutes: 10\n")
    assert runner_cli.parse_extra_vars([f"@{path}"]) == {
        "truebond_rto_objective_minutes": 10
    }


@pytest.mark.parametrize(
    ("values", "message"),
    [
        pytest.param(
            ["severity"],
            "invalid extra vars 'severity'; use KEY=VALUE, a JSON mapping or @FILE",
            id="no-equals",
        ),
        pytest.param(
            ["=high"],
            "invalid extra vars '=high'; use KEY=VALUE, a JSON mapping or @FILE",
            id="empty-key",
        ),
        pytest.param(
            ["@/nonexistent/vars.yml"],
            "cannot read extra vars file '/nonexistent/vars.yml': No such file or directory",
            id="missing-file",
        ),
    ],
)
def test_parse_extra_vars_rejects(values, message):
    with pytest.raises(runner_cli.UsageError) as raised:
        runner_cli.parse_extra_vars(values)
    assert str(raised.value) == message


def test_options_override_extra_vars():
    request = request_for("app", "-e", "severity=low", "--severity", "critical")
    assert request.extravars == {"severity": "critical"}


def test_request_resolves_inventory(tmp_path):
    inventory = tmp_path / "hosts.yml"
    inventory.write_text("all: {}\n")
    request = request_for("app", "-i", str(inventory), "--check", "--limit", "web")
    assert request.inventory == [str(inventory)]
    assert request.cmdline() == "--check"
    assert request.limit == "web"
    assert request.project_dir == REPO
    assert request.playbook == "playbooks/rollback_app.yml"


@pytest.mark.parametrize(
    ("argv", "passwords"),
    [
        pytest.param(["db"], {runner_cli.CONFIRM_PROMPT: "no"}, id="db-answers-no"),
        pytest.param(["full"], {runner_cli.CONFIRM_PROMPT: "no"}, id="full-answers-no"),
        pytest.param(["db", "--yes"], {}, id="db-yes-no-prompt"),
        pytest.param(["db", "-e", "confirm=yes"], {}, id="db-confirm-extra-var"),
        pytest.param(["app"], {}, id="app-has-no-prompt"),
    ],
)
def test_confirmation_prompt_answer(argv, passwords):
    assert request_for(*argv).passwords == passwords


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        pytest.param(
            ["app", "--version", "0.9.5"],
            "argument --version: '0.9.5' is not a release version; use "
            "vMAJOR.MINOR.PATCH, such as v0.9.5",
            id="version-without-v",
        ),
        pytest.param(
            ["app", "--version", "v0.9.5\n"],
            "argument --version: 'v0.9.5\\n' is not a release version; use "
            "vMAJOR.MINOR.PATCH, such as v0.9.5",
            id="version-trailing-newline",
        ),
        pytest.param(
            ["app", "--version", "v\u0660.9.5"],
            "argument --version: 'v\u0660.9.5' is not a release version; use "
            "vMAJOR.MINOR.PATCH, such as v0.9.5",
            id="version-non-ascii-digit",
        ),
        pytest.param(
            ["app", "--severity", "urgent"],
            "argument --severity: invalid choice: 'urgent' (choose from 'critical', "
            "'high', 'medium', 'low', 'unknown')",
            id="severity-choice",
        ),
        pytest.param(
            ["db", "--method", "restore"],
            "argument --method: invalid choice: 'restore' (choose from 'full', "
            "'migration_undo', 'atlas')",
            id="db-method-choice",
        ),
        pytest.param(
            ["full", "--method", "migration_undo"],
            "argument --method: invalid choice: 'migration_undo' (choose from 'full', "
            "'atlas')",
            id="full-has-no-migration-undo",
        ),
        pytest.param(
            ["feature"],
            "the following arguments are required: --feature",
            id="feature-required",
        ),
        pytest.param(
            ["feature", "--feature", " , "],
            "argument --feature: ' , ' names no feature flag; use a name such as "
            "REALTIME_MESSAGING_ENABLED",
            id="feature-empty",
        ),
        pytest.param(
            ["snapshot", "--stores", "mongodb,postgres"],
            "argument --stores: invalid data store 'postgres'; choose from mongodb, redis",
            id="store-unknown",
        ),
        pytest.param(
            ["app", "-e", "severity"],
            "invalid extra vars 'severity'; use KEY=VALUE, a JSON mapping or @FILE",
            id="extra-vars-invalid",
        ),
        pytest.param(
            ["app", "-i", "/nonexistent/inventory"],
            "inventory '/nonexistent/inventory' not found",
            id="inventory-missing",
        ),
        pytest.param(
            ["rollback"],
            "argument COMMAND: invalid choice: 'rollback'",
            id="unknown-command",
        ),
        pytest.param(
            [], "the following arguments are required: COMMAND", id="no-command"
        ),
    ],
)
def test_bad_input_gives_argparse_error(capsys, argv, message):
    error = parser_error(capsys, *argv)
    assert message in error
    assert error.startswith("usage: truebond-rollback")


def test_missing_playbook_gives_error(capsys, tmp_path):
    error = parser_error(capsys, "drill", "--project-dir", str(tmp_path))
    assert f"playbook playbooks/drill.yml not found in {tmp_path}" in error


def test_undo_spec_must_be_mapping(capsys, tmp_path):
    spec = tmp_path / "undo.yml"
    spec.write_text("- not a mapping\n")
    error = parser_error(capsys, "db", "--undo-spec", str(spec))
    assert (
        f"argument --undo-spec: {str(spec)!r} does not contain a YAML mapping" in error
    )


def test_private_data_dir_files(tmp_path):
    request = request_for("app", "--version", "v0.9.5", "--check")
    runner_cli.write_private_data_dir(request, tmp_path)
    extravars = tmp_path / "env" / "extravars"
    envvars = tmp_path / "env" / "envvars"
    assert json.loads(extravars.read_text()) == {"version": "v0.9.5"}
    assert json.loads(envvars.read_text())["ANSIBLE_CONFIG"] == str(
        REPO / "ansible.cfg"
    )
    assert stat.S_IMODE(extravars.stat().st_mode) == 0o600
    assert stat.S_IMODE(envvars.stat().st_mode) == 0o600
    assert stat.S_IMODE(tmp_path.stat().st_mode) == 0o700
