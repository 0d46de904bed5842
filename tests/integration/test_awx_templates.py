# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""The AWX objects of playbooks/awx/controller.yml match the playbooks they run.

No AWX is needed: the tests read controller.yml and the playbooks as YAML. Every job
template names a playbook and an inventory file of the repository, and every survey
question sets an argument of the playbook's validate_argument_spec with the same type
and choices. AWX survey types map onto the argument types like this:

  text, textarea       str or raw, or a list of str (the playbook splits on commas)
  multiplechoice       str with choices (the same ones), bool (choices "false" and
                       "true"), or raw
  multiselect          list with choices (the same ones)
  integer, float       int, float

decide.yml checks its input with assert tasks instead of validate_argument_spec, so
its arguments are read from those checks (see decide_arguments).
"""

from __future__ import annotations

import re
import socket
import sys

import pytest
import yaml
from drill_helpers import REPO, VENV_BIN, playbook_environment, run_command

sys.path.insert(0, str(REPO / "tests" / "helpers"))
from playbook_tasks import walk_tasks  # the helper lives outside the test folders

CONTROLLER = yaml.safe_load((REPO / "playbooks" / "awx" / "controller.yml").read_text())
JOB_TEMPLATES = {
    template["name"]: template for template in CONTROLLER["truebond_awx_job_templates"]
}
INVENTORIES = {
    inventory["name"]: inventory for inventory in CONTROLLER["truebond_awx_inventories"]
}
WORKFLOWS = CONTROLLER["truebond_awx_workflows"]

# Survey questions that may offer fewer values than the playbook accepts, and why.
NARROWER_CHOICES = {
    # An AWX job cannot answer the playbook's confirmation prompt, so the survey
    # offers only yes. Not launching the job is the way to say no.
    "confirm": ["yes"],
}
SURVEY_TYPES = {
    "text",
    "textarea",
    "password",
    "multiplechoice",
    "multiselect",
    "integer",
    "float",
}


def load_plays(playbook: str) -> list[dict]:
    return yaml.safe_load((REPO / playbook).read_text())


def validate_spec(playbook: str) -> dict | None:
    """Return the argument_spec of the first play's validate_argument_spec task."""
    for task in walk_tasks(load_plays(playbook)[0].get("tasks", [])):
        if "ansible.builtin.validate_argument_spec" in task:
            return task["ansible.builtin.validate_argument_spec"]["argument_spec"]
    return None


def decide_arguments() -> dict:
    """Return decide.yml's arguments in argument_spec form, read from its checks.

    The metrics are the keys of decide_ranges (numbers with a min and an optional
    max), prometheus_url has its own check, and the switches are the items of the
    task that checks them. decide_auto_rollback is checked against boolean texts.
    """
    play = load_plays("playbooks/decide.yml")[0]
    spec = {}
    for name, bounds in play["vars"]["decide_ranges"].items():
        spec[name] = {"type": "float", "min": bounds["min"], "max": bounds["max"]}
    tasks = {task["name"]: task for task in play["tasks"]}
    assert "Check prometheus_url" in tasks
    spec["prometheus_url"] = {"type": "str"}
    for item in tasks["Check the switches and the Prometheus settings"]["loop"]:
        bool_check = "decide_bool_texts" in item["valid"]
        spec[item["name"]] = {"type": "bool" if bool_check else "raw"}
    return spec


def playbook_arguments(playbook: str) -> dict:
    if playbook == "playbooks/decide.yml":
        return decide_arguments()
    spec = validate_spec(playbook)
    assert spec is not None, f"{playbook} has no validate_argument_spec task"
    return spec


def question_problems(question: dict, argument: dict) -> list[str]:
    """Return why a survey question does not fit the playbook argument, if it does not."""
    kind = question["type"]
    arg_type = argument.get("type", "str")
    arg_choices = argument.get("choices")
    choices = question.get("choices")
    problems = []

    if kind in ("text", "textarea", "password"):
        list_of_str = arg_type == "list" and argument.get("elements") == "str"
        if arg_type not in ("str", "raw") and not (list_of_str and not arg_choices):
            problems.append(f"{kind} cannot set an argument of type {arg_type}")
        if arg_choices:
            problems.append(
                f"{kind} allows any text, but the argument has choices {arg_choices}"
            )
    elif kind == "multiplechoice":
        if arg_type == "bool":
            if choices != ["false", "true"]:
                problems.append(
                    f'a bool argument needs the choices ["false", "true"], got {choices}'
                )
        elif arg_type == "str":
            expected = NARROWER_CHOICES.get(question["variable"], arg_choices)
            if arg_choices is None:
                problems.append("the argument has no choices")
            elif choices != expected:
                problems.append(
                    f"choices {choices} differ from the argument's {arg_choices}"
                )
            elif not set(choices) <= set(arg_choices):
                problems.append(f"choices {choices} are not all in {arg_choices}")
        elif arg_type != "raw":
            problems.append(f"multiplechoice cannot set an argument of type {arg_type}")
    elif kind == "multiselect":
        if arg_type != "list":
            problems.append(f"multiselect cannot set an argument of type {arg_type}")
        elif choices != arg_choices:
            problems.append(
                f"choices {choices} differ from the argument's {arg_choices}"
            )
    elif kind == "integer":
        if arg_type != "int":
            problems.append(f"integer cannot set an argument of type {arg_type}")
    elif kind == "float":
        if arg_type != "float":
            problems.append(f"float cannot set an argument of type {arg_type}")
        for bound in ("min", "max"):
            if (
                argument.get(bound) is not None
                and question.get(bound) != argument[bound]
            ):
                problems.append(
                    f"{bound} {question.get(bound)} differs from the argument's {argument[bound]}"
                )
    else:
        problems.append(f"unknown survey type {kind!r}")

    if argument.get("required") and not question.get("required"):
        problems.append("the argument is required, so the question must be required")
    default = question.get("default")
    if choices and default not in (None, ""):
        for value in str(default).split("\n"):
            if value not in choices:
                problems.append(
                    f"default {value!r} is not one of the choices {choices}"
                )
    return problems


def survey_cases():
    for template in CONTROLLER["truebond_awx_job_templates"]:
        for question in template["survey_spec"]["spec"]:
            yield pytest.param(
                template, question, id=f"{template['playbook']}-{question['variable']}"
            )


def workflow_survey_cases():
    for workflow in WORKFLOWS:
        rollback = node_by_id(workflow, "rollback")
        template = JOB_TEMPLATES[rollback["unified_job_template"]["name"]]
        for question in workflow["survey_spec"]["spec"]:
            yield pytest.param(
                template, question, id=f"{workflow['name']}-{question['variable']}"
            )


def node_by_id(workflow: dict, identifier: str) -> dict:
    nodes = [
        node for node in workflow["workflow_nodes"] if node["identifier"] == identifier
    ]
    assert len(nodes) == 1, f"{workflow['name']} has {len(nodes)} nodes {identifier!r}"
    return nodes[0]


def children(node: dict, relation: str) -> list[str]:
    return [
        entry["identifier"] for entry in (node.get("related") or {}).get(relation) or []
    ]


def test_every_playbook_has_template():
    playbooks = {template["playbook"] for template in JOB_TEMPLATES.values()}
    expected = {
        "playbooks/rollback_app.yml",
        "playbooks/rollback_db.yml",
        "playbooks/rollback_full.yml",
        "playbooks/disable_feature.yml",
        "playbooks/decide.yml",
        "playbooks/snapshot.yml",
        "playbooks/awx/notify.yml",
    }
    assert playbooks == expected


@pytest.mark.parametrize("template", JOB_TEMPLATES.values(), ids=list(JOB_TEMPLATES))
def test_template_playbook_exists(template):
    assert (REPO / template["playbook"]).is_file()


@pytest.mark.parametrize("template", JOB_TEMPLATES.values(), ids=list(JOB_TEMPLATES))
def test_template_inventory_exists(template):
    inventory = INVENTORIES.get(template["inventory"])
    assert inventory is not None, f"inventory {template['inventory']!r} is not defined"
    assert (REPO / inventory["source_path"]).is_file()


def test_inventory_files_exist():
    for inventory in INVENTORIES.values():
        assert (REPO / inventory["source_path"]).is_file(), inventory


@pytest.mark.parametrize("template", JOB_TEMPLATES.values(), ids=list(JOB_TEMPLATES))
def test_survey_variables_unique(template):
    variables = [question["variable"] for question in template["survey_spec"]["spec"]]
    assert len(variables) == len(set(variables)), variables


@pytest.mark.parametrize(("template", "question"), list(survey_cases()))
def test_survey_question_matches_argument(template, question):
    arguments = playbook_arguments(template["playbook"])
    assert question["variable"] in arguments, (
        f"{question['variable']} is not an argument of {template['playbook']}"
    )
    assert question["type"] in SURVEY_TYPES
    assert question["question_name"]
    assert question_problems(question, arguments[question["variable"]]) == []


@pytest.mark.parametrize("template", JOB_TEMPLATES.values(), ids=list(JOB_TEMPLATES))
def test_required_arguments_in_survey(template):
    arguments = playbook_arguments(template["playbook"])
    asked = {question["variable"] for question in template["survey_spec"]["spec"]}
    required = {
        name for name, argument in arguments.items() if argument.get("required")
    }
    assert required <= asked


@pytest.mark.parametrize(
    ("argument", "question", "problem"),
    [
        pytest.param(
            {"type": "str", "choices": ["a", "b"]},
            {"variable": "x", "type": "multiplechoice", "choices": ["a", "c"]},
            "choices ['a', 'c'] differ from the argument's ['a', 'b']",
            id="other-choices",
        ),
        pytest.param(
            {"type": "str", "choices": ["a", "b"]},
            {"variable": "x", "type": "text"},
            "text allows any text, but the argument has choices ['a', 'b']",
            id="text-for-choices",
        ),
        pytest.param(
            {"type": "int"},
            {"variable": "x", "type": "text"},
            "text cannot set an argument of type int",
            id="text-for-int",
        ),
        pytest.param(
            {"type": "str"},
            {"variable": "x", "type": "integer"},
            "integer cannot set an argument of type str",
            id="integer-for-str",
        ),
        pytest.param(
            {"type": "bool"},
            {"variable": "x", "type": "multiplechoice", "choices": ["yes", "no"]},
            "a bool argument needs the choices [\"false\", \"true\"], got ['yes', 'no']",
            id="bool-choices",
        ),
        pytest.param(
            {"type": "str", "required": True},
            {"variable": "x", "type": "text", "required": False},
            "the argument is required, so the question must be required",
            id="required",
        ),
        pytest.param(
            {"type": "str", "choices": ["a", "b"]},
            {
                "variable": "x",
                "type": "multiplechoice",
                "choices": ["a", "b"],
                "default": "c",
            },
            "default 'c' is not one of the choices ['a', 'b']",
            id="default-not-a-choice",
        ),
    ],
)
def test_question_check_rejects(argument, question, problem):
    """The consistency check itself finds each kind of mismatch."""
    assert problem in question_problems(question, argument)


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w["name"] for w in WORKFLOWS])
def test_workflow_nodes_reference_templates(workflow):
    identifiers = [node["identifier"] for node in workflow["workflow_nodes"]]
    assert len(identifiers) == len(set(identifiers)), identifiers
    for node in workflow["workflow_nodes"]:
        template = node["unified_job_template"]
        if template["type"] == "workflow_approval":
            assert template["timeout"] > 0, node
        else:
            assert template["type"] == "job_template", node
            assert template["name"] in JOB_TEMPLATES, node
        for relation in ("success_nodes", "failure_nodes", "always_nodes"):
            for child in children(node, relation):
                assert child in identifiers, (
                    f"{node['identifier']} {relation} -> {child}"
                )


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w["name"] for w in WORKFLOWS])
def test_workflow_order(workflow):
    """capture -> approval -> rollback -> verify -> notify, on success."""
    playbook = {}
    for node in workflow["workflow_nodes"]:
        template = node["unified_job_template"]
        if template["type"] == "job_template":
            playbook[node["identifier"]] = JOB_TEMPLATES[template["name"]]["playbook"]
    parents = {
        child
        for node in workflow["workflow_nodes"]
        for r in ("success_nodes", "failure_nodes", "always_nodes")
        for child in children(node, r)
    }
    roots = [
        node["identifier"]
        for node in workflow["workflow_nodes"]
        if node["identifier"] not in parents
    ]
    assert roots == ["capture"]

    path = ["capture"]
    while children(node_by_id(workflow, path[-1]), "success_nodes"):
        successors = children(node_by_id(workflow, path[-1]), "success_nodes")
        assert len(successors) == 1, successors
        path.append(successors[0])
    assert path == ["capture", "approve", "rollback", "verify", "notify-completed"]
    assert playbook["capture"] == "playbooks/snapshot.yml"
    assert (
        node_by_id(workflow, "approve")["unified_job_template"]["type"]
        == "workflow_approval"
    )
    assert playbook["rollback"] in {
        "playbooks/rollback_app.yml",
        "playbooks/rollback_db.yml",
        "playbooks/rollback_full.yml",
        "playbooks/disable_feature.yml",
    }
    assert playbook["verify"] == "playbooks/decide.yml"
    assert playbook["notify-completed"] == "playbooks/awx/notify.yml"
    assert node_by_id(workflow, "notify-completed")["extra_data"] == {
        "event": "rollback_completed"
    }


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w["name"] for w in WORKFLOWS])
def test_workflow_failure_path_notifies(workflow):
    for node in workflow["workflow_nodes"]:
        template = node["unified_job_template"]
        if (
            template["type"] != "job_template"
            or template["name"] == "TrueBond | Notify"
        ):
            continue
        failures = children(node, "failure_nodes")
        assert failures, f"{node['identifier']} has no failure path"
        for identifier in failures:
            target = node_by_id(workflow, identifier)
            assert target["unified_job_template"]["name"] == "TrueBond | Notify"
            assert target["extra_data"] == {"event": "rollback_failed"}


@pytest.mark.parametrize("workflow", WORKFLOWS, ids=[w["name"] for w in WORKFLOWS])
def test_node_extra_data_is_survey_variable(workflow):
    """AWX accepts a node's extra_data only for variables the template prompts for."""
    for node in workflow["workflow_nodes"]:
        template = node["unified_job_template"]
        if template["type"] != "job_template":
            continue
        job_template = JOB_TEMPLATES[template["name"]]
        asked = {
            question["variable"]: question
            for question in job_template["survey_spec"]["spec"]
        }
        for name, value in (node.get("extra_data") or {}).items():
            assert name in asked, f"{node['identifier']}: {name} is not in the survey"
            choices = asked[name].get("choices")
            if choices:
                assert value in choices, f"{node['identifier']}: {name}={value!r}"


@pytest.mark.parametrize(("template", "question"), list(workflow_survey_cases()))
def test_workflow_survey_matches_rollback(template, question):
    arguments = playbook_arguments(template["playbook"])
    assert question["variable"] in arguments
    assert question_problems(question, arguments[question["variable"]]) == []


@pytest.mark.parametrize(
    "playbook", ["playbooks/awx_configure.yml", "playbooks/awx/notify.yml"]
)
def test_playbook_syntax_check(playbook):
    result = run_command(
        [str(VENV_BIN / "ansible-playbook"), "--syntax-check", playbook], timeout=120
    )
    assert result.rc == 0, result.describe()


def test_configure_without_host_fails():
    result = run_command(
        [str(VENV_BIN / "ansible-playbook"), "playbooks/awx_configure.yml"],
        environment=playbook_environment(CONTROLLER_HOST=None),
        timeout=120,
    )
    assert result.rc == 2, result.describe()
    assert "No AWX address was given." in result.flat_output
    assert "Nothing was changed." in result.flat_output


def test_configure_reaches_modules():
    """With an address where nothing listens, the first awx.awx module fails to connect."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    result = run_command(
        [
            str(VENV_BIN / "ansible-playbook"),
            "playbooks/awx_configure.yml",
            "-e",
            f"controller_host=http://127.0.0.1:{port}",
            "-e",
            "controller_username=admin",
            "-e",
            "controller_password=not-a-real-password",
        ],
        timeout=120,
    )
    assert result.rc == 2, result.describe()
    assert "TASK [Create the execution environment]" in result.output
    assert re.search(r"Connection refused", result.output), result.describe()
    assert "not-a-real-password" not in result.output


def test_notify_playbook_rejects_event():
    result = run_command(
        [
            str(VENV_BIN / "ansible-playbook"),
            "playbooks/awx/notify.yml",
            "-e",
            "event=rollback_done",
        ],
        timeout=120,
    )
    assert result.rc == 2, result.describe()
    assert (
        "value of event must be one of: rollback_started, rollback_completed, rollback_failed, got: rollback_done"
        in result.flat_output
    )


def test_notify_playbook_without_channels():
    result = run_command(
        [
            str(VENV_BIN / "ansible-playbook"),
            "playbooks/awx/notify.yml",
            "-e",
            "event=rollback_completed",
            "-e",
            "severity=high",
        ],
        timeout=120,
    )
    assert result.rc == 0, result.describe()
    assert result.recap()["failed"] == 0
