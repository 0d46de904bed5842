# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: timeline_chart
short_description: Draw a rollback's timeline as a PNG chart
description:
  - Draws one horizontal bar per phase of a rollback, placed by its start and end time
    and coloured by its status, with the duration written on each bar. A dashed line
    marks the moment the rollback was verified, and the title gives the RTO against its
    objective.
  - When O(tasks) are given, the slowest tasks are marked as ticks on their phase's bar.
  - The rollback log links the chart, so that people can look at the run instead of
    reading timestamps.
version_added: 0.1.0
options:
  path:
    description:
      - File to write, normally C(timeline.png) in the incident folder. Written with mode
        0600; its folder must exist.
    type: path
    required: true
  timeline:
    description:
      - The phases, in order, as the truebond.rollback.rollback_log role records them.
    type: list
    elements: dict
    required: true
    suboptions:
      phase:
        description: Name of the phase.
        type: str
        required: true
      started:
        description: Start, ISO 8601 UTC (for example C(2026-12-04T14:36:40.000000Z)).
        type: str
        required: true
      ended:
        description: End, ISO 8601 UTC.
        type: str
        required: true
      status:
        description: C(ok), C(failed) or C(skipped).
        type: str
        default: ok
      detail:
        description: One line on the phase; not drawn.
        type: str
  tasks:
    description:
      - Tasks of the run as the truebond.rollback.timeline callback records them (each
        with C(task), C(started) and C(ended)). The ten slowest are drawn as ticks.
    type: list
    elements: dict
    default: []
  title:
    description: First line of the chart's title.
    type: str
    default: Rollback timeline
  verified_at:
    description: When the rollback was verified, ISO 8601 UTC. Omitted for a failed run.
    type: str
  rto_objective_minutes:
    description: The recovery time objective, in minutes, shown in the title.
    type: float
    default: 15
requirements:
  - "matplotlib on the host that runs the module (normally the controller, with
    C(delegate_to: localhost))"
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details: In check mode nothing is drawn or written.
  diff_mode:
    support: none
  platform:
    platforms: posix
notes:
  - The chart is rewritten on every call, so the module always reports C(changed) outside
    check mode.
author:
  - TrueBond SRE team (@truebond-sre)
"""

EXAMPLES = r"""
- name: Draw the timeline chart on the controller
  truebond.rollback.timeline_chart:
    path: /tmp/incident-20261204T143640Z-timeline.png
    title: rollback_app on drill-app
    timeline:
      - {phase: preflight, started: "2026-12-04T14:36:40.000000Z", ended: "2026-12-04T14:36:44.100000Z"}
      - {phase: capture, started: "2026-12-04T14:36:44.100000Z", ended: "2026-12-04T14:36:49.300000Z"}
      - {phase: verify, started: "2026-12-04T14:36:51.000000Z", ended: "2026-12-04T14:36:52.600000Z"}
    verified_at: "2026-12-04T14:36:52.600000Z"
  delegate_to: localhost
"""

RETURN = r"""
path:
  description: The file written.
  returned: success
  type: str
  sample: /backup/incident-20261204T143640Z/timeline.png
rto_seconds:
  description: Seconds from the first phase's start to O(verified_at), or null.
  returned: success
  type: float
  sample: 12.6
"""

import datetime
import os
import traceback

from ansible.module_utils.basic import AnsibleModule, missing_required_lib

try:
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import pyplot

    MATPLOTLIB_ERROR = None
except ImportError:
    MATPLOTLIB_ERROR = traceback.format_exc()

STATUS_COLOURS = {"ok": "#2e7d32", "failed": "#c62828", "skipped": "#9e9e9e"}


class ChartError(ValueError):
    """An option value the chart cannot use."""


def parse_time(field, value):
    text = str(value).strip()
    if text.endswith("Z"):
        text = text[:-1] + "+00:00"
    try:
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise ChartError(
            f"{field} {value!r} is not an ISO 8601 UTC timestamp"
        ) from None
    if moment.tzinfo is None or moment.utcoffset() != datetime.timedelta(0):
        raise ChartError(f"{field} {value!r} must be in UTC (end it with Z or +00:00)")
    return moment


def layout(timeline, tasks, verified_at):
    """Return the bars, ticks and RTO, with times in seconds from the run's start."""
    if not timeline:
        raise ChartError("timeline is empty, so there is nothing to draw")
    origin = parse_time("timeline[0].started", timeline[0]["started"])
    bars = []
    for index, phase in enumerate(timeline):
        start = parse_time(f"timeline[{index}].started", phase["started"])
        end = parse_time(f"timeline[{index}].ended", phase["ended"])
        if end < start:
            raise ChartError(
                f"timeline[{index}] ({phase['phase']!r}) ends before it starts"
            )
        bars.append(
            {
                "phase": phase["phase"],
                "offset": (start - origin).total_seconds(),
                "duration": (end - start).total_seconds(),
                "status": phase.get("status") or "ok",
            }
        )
    ticks = []
    timed = []
    for index, task in enumerate(tasks):
        try:
            start = parse_time(f"tasks[{index}].started", task["started"])
            end = parse_time(f"tasks[{index}].ended", task["ended"])
        except (KeyError, ChartError):
            continue
        timed.append(
            ((end - start).total_seconds(), (start - origin).total_seconds(), task)
        )
    for duration, offset, task in sorted(timed, key=lambda item: -item[0])[:10]:
        ticks.append(
            {"offset": offset, "duration": duration, "task": task.get("task", "")}
        )
    rto = None
    if verified_at:
        rto = (parse_time("verified_at", verified_at) - origin).total_seconds()
    return bars, ticks, rto


def draw(path, title, bars, ticks, rto, objective_minutes):
    height = 1.2 + 0.45 * len(bars)
    figure, axes = pyplot.subplots(figsize=(9, height), dpi=100)
    names = [bar["phase"] for bar in bars]
    for row, bar in enumerate(bars):
        colour = STATUS_COLOURS.get(bar["status"], "#1565c0")
        axes.barh(row, bar["duration"], left=bar["offset"], color=colour, height=0.6)
        axes.text(
            bar["offset"] + bar["duration"],
            row,
            f" {bar['duration']:.1f} s",
            va="center",
            fontsize=8,
        )
    for tick in ticks:
        row = next(
            (
                index
                for index, bar in enumerate(bars)
                if bar["offset"]
                <= tick["offset"]
                < bar["offset"] + bar["duration"] + 1e-6
            ),
            None,
        )
        if row is not None:
            axes.plot(
                [tick["offset"]] * 2, [row - 0.3, row + 0.3], color="black", lw=0.6
            )
    if rto is not None:
        axes.axvline(rto, color="#1565c0", linestyle="--", lw=1)
        met = "met" if rto <= objective_minutes * 60 else "MISSED"
        subtitle = f"RTO {rto:.1f} s (objective {objective_minutes:g} min): {met}"
    else:
        subtitle = "not verified: no RTO"
    axes.set_yticks(range(len(bars)), labels=names)
    axes.invert_yaxis()
    axes.set_xlabel("seconds since the start of the run")
    axes.set_title(f"{title}\n{subtitle}", fontsize=10)
    axes.grid(axis="x", alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, format="png")
    pyplot.close(figure)
    os.chmod(path, 0o600)


def main():
    module = AnsibleModule(
        argument_spec={
            "path": {"type": "path", "required": True},
            "timeline": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "phase": {"type": "str", "required": True},
                    "started": {"type": "str", "required": True},
                    "ended": {"type": "str", "required": True},
                    "status": {"type": "str", "default": "ok"},
                    "detail": {"type": "str"},
                },
            },
            "tasks": {"type": "list", "elements": "dict", "default": []},
            "title": {"type": "str", "default": "Rollback timeline"},
            "verified_at": {"type": "str"},
            "rto_objective_minutes": {"type": "float", "default": 15.0},
        },
        supports_check_mode=True,
    )
    params = module.params
    try:
        bars, ticks, rto = layout(
            params["timeline"], params["tasks"], params["verified_at"]
        )
    except ChartError as error:
        module.fail_json(msg=str(error))
    result = {
        "changed": not module.check_mode,
        "path": params["path"],
        "rto_seconds": rto,
    }
    if module.check_mode:
        module.exit_json(**result)
    if MATPLOTLIB_ERROR is not None:
        module.fail_json(
            msg=missing_required_lib("matplotlib"), exception=MATPLOTLIB_ERROR
        )
    folder = os.path.dirname(params["path"]) or "."
    if not os.path.isdir(folder):
        module.fail_json(
            msg=f"folder {folder!r} of path does not exist; create it first"
        )
    try:
        draw(
            params["path"],
            params["title"],
            bars,
            ticks,
            rto,
            params["rto_objective_minutes"],
        )
    except Exception as error:  # noqa: BLE001 - report any drawing failure with its traceback
        module.fail_json(
            msg=f"drawing the chart {params['path']!r} failed: {error}",
            exception=traceback.format_exc(),
        )
    module.exit_json(**result)


if __name__ == "__main__":
    main()
