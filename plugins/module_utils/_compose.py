# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

"""Read Docker Compose files for the modules that edit what a service uses."""

from __future__ import annotations

import traceback

from ansible.module_utils.basic import missing_required_lib

try:
    import yaml
except ImportError:
    yaml = None
    YAML_IMPORT_ERROR = traceback.format_exc()
else:
    YAML_IMPORT_ERROR = None


class ComposeFileError(Exception):
    """A failure to report with fail_json. The message is the whole report."""


if yaml is not None:

    class ComposeLoader(yaml.SafeLoader):
        """SafeLoader that also accepts the !reset and !override tags of Compose.

        Compose uses these tags in override files. They are loaded as the plain
        value that they tag.
        """

    def _construct_untagged(loader, node):
        if isinstance(node, yaml.MappingNode):
            return loader.construct_mapping(node, deep=True)
        if isinstance(node, yaml.SequenceNode):
            return loader.construct_sequence(node, deep=True)
        return loader.construct_scalar(node)

    for _compose_tag in ("!reset", "!override"):
        ComposeLoader.add_constructor(_compose_tag, _construct_untagged)


def read_text(path: str, what: str) -> str:
    """Return the UTF-8 text of ``path``. ``what`` names the file in errors."""
    try:
        with open(path, "rb") as stream:
            data = stream.read()
    except FileNotFoundError:
        raise ComposeFileError(f"{what} {path!r} was not found") from None
    except OSError as exc:
        raise ComposeFileError(
            f"failed to read {what} {path!r}: {exc.strerror}"
        ) from None
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ComposeFileError(
            f"{what} {path!r} is not valid UTF-8 (byte {exc.start}); save it as UTF-8"
        ) from None


def load_compose(path: str, with_nodes: bool = False):
    """Return (text, document, root node or None) of the Compose file at ``path``.

    The document must have a non-empty top-level ``services`` mapping. The root node
    (PyYAML's node tree, for edits that keep the text's layout) is only composed
    when ``with_nodes`` is true.
    """
    text = read_text(path, "compose file")
    try:
        document = yaml.load(text, Loader=ComposeLoader)
        root = yaml.compose(text, Loader=ComposeLoader) if with_nodes else None
    except yaml.YAMLError as exc:
        location = ""
        mark = getattr(exc, "problem_mark", None)
        if mark is not None:
            location = f" at line {mark.line + 1}, column {mark.column + 1}"
        problem = getattr(exc, "problem", None) or str(exc)
        raise ComposeFileError(
            f"compose file {path!r} is not valid YAML{location}: {problem}"
        ) from None

    services = document.get("services") if isinstance(document, dict) else None
    if not isinstance(services, dict) or not services:
        raise ComposeFileError(
            f"compose file {path!r} has no services: expected a top-level 'services'"
            " mapping with one entry per service"
        )
    return text, document, root


def run_and_exit(module, run_module) -> None:
    """Call ``run_module(module)`` and exit with its result, or fail with the reason.

    A missing PyYAML and a ComposeFileError fail with their message; any other
    exception is a bug and fails with its traceback.
    """
    if yaml is None:
        module.fail_json(
            msg=missing_required_lib("PyYAML"), exception=YAML_IMPORT_ERROR
        )
    try:
        result = run_module(module)
    except ComposeFileError as exc:
        module.fail_json(msg=str(exc))
    except Exception as exc:  # noqa: BLE001 - report any bug with its traceback
        module.fail_json(
            msg=f"unexpected error: {type(exc).__name__}: {exc}",
            exception=traceback.format_exc(),
        )
    module.exit_json(**result)
