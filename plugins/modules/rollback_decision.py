# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
---
module: rollback_decision
short_description: Decide whether to roll back from error rate, uptime and response time
version_added: 0.1.0
description:
  - Applies the rollback decision matrix of the TrueBond rollback plan to three
    metrics and returns one of V(immediate_rollback), V(consider_rollback),
    V(monitor), V(continue) or V(unknown), with the severity and one sentence per
    metric that explains it.
  - "The matrix, with the default thresholds: error rate above 10%, uptime below 95%
    or response time above 5 s is critical (V(immediate_rollback)). Error rate above
    5%, uptime below 99% or response time above 2 s is high (V(consider_rollback)).
    Error rate above 1%, uptime below 99.9% or response time above 1 s is medium
    (V(monitor)). Anything else is low (V(continue))."
  - Each metric falls into one band, and the worst band of the three is the decision.
  - "Boundaries: a metric crosses a threshold only when it is strictly worse than it.
    A value equal to a threshold stays in the milder band. So an error rate of
    exactly 10% (V(0.10)) is high, not critical, because the plan calls only an error
    rate above 10% critical. Likewise 5% is medium, 1% is low, an uptime of exactly
    95% is high, 99% is medium and 99.9% is low, and a response time of exactly 5 s
    is high, 2 s is medium and 1 s is low."
  - A metric that is null or listed in O(unavailable) is missing. A missing metric
    never lets the decision be V(continue). When no available metric crossed a
    threshold and any metric is missing, the decision is V(unknown). When an
    available metric crossed a threshold, that band is the decision and the reasons
    still name the missing metrics, because the missing ones could be worse.
  - The module only computes. It never changes anything.
author: TrueBond SRE team (@truebond)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - The module computes the same result in check mode, because it only computes.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  error_rate:
    description:
      - Fraction of requests that failed, from V(0) to V(1). For example V(0.12)
        means 12%.
      - Null when the value could not be read. Give the reason in O(unavailable).
    type: float
  uptime:
    description:
      - Fraction of time the service was up, from V(0) to V(1). For example V(0.999)
        means 99.9%.
      - Null when the value could not be read. Give the reason in O(unavailable).
    type: float
  response_time:
    description:
      - Response time in seconds, zero or more. Usually the 95th percentile, but the
        module compares whatever value it is given.
      - Null when the value could not be read. Give the reason in O(unavailable).
    type: float
  thresholds:
    description:
      - Thresholds that separate the bands. Every key is optional, and a key that
        is left out keeps its default.
      - For O(thresholds.error_rate) and O(thresholds.response_time), higher values
        are worse, so C(monitor <= consider <= immediate) must hold. For
        O(thresholds.uptime), lower values are worse, so C(immediate <= consider <=
        monitor) must hold.
    type: dict
    default: {}
    suboptions:
      error_rate:
        description:
          - Error rate thresholds as fractions from V(0) to V(1). A value above
            C(immediate) is critical, above C(consider) high, above C(monitor)
            medium.
        type: dict
        default: {}
        suboptions:
          immediate:
            description: Error rate above which the decision is V(immediate_rollback).
            type: float
            default: 0.10
          consider:
            description: Error rate above which the decision is V(consider_rollback).
            type: float
            default: 0.05
          monitor:
            description: Error rate above which the decision is V(monitor).
            type: float
            default: 0.01
      uptime:
        description:
          - Uptime thresholds as fractions from V(0) to V(1). A value below
            C(immediate) is critical, below C(consider) high, below C(monitor)
            medium.
        type: dict
        default: {}
        suboptions:
          immediate:
            description: Uptime below which the decision is V(immediate_rollback).
            type: float
            default: 0.95
          consider:
            description: Uptime below which the decision is V(consider_rollback).
            type: float
            default: 0.99
          monitor:
            description: Uptime below which the decision is V(monitor).
            type: float
            default: 0.999
      response_time:
        description:
          - Response time thresholds in seconds. A value above C(immediate) is
            critical, above C(consider) high, above C(monitor) medium.
        type: dict
        default: {}
        suboptions:
          immediate:
            description: Seconds above which the decision is V(immediate_rollback).
            type: float
            default: 5.0
          consider:
            description: Seconds above which the decision is V(consider_rollback).
            type: float
            default: 2.0
          monitor:
            description: Seconds above which the decision is V(monitor).
            type: float
            default: 1.0
  source:
    description:
      - Where the metrics come from, for example V(prometheus) or V(extra vars).
        It appears in RV(msg) and is returned as RV(source).
    type: str
    default: task arguments
  unavailable:
    description:
      - Metrics that could not be read, as a mapping from the metric name
        (C(error_rate), C(uptime) or C(response_time)) to the reason.
      - A metric listed here must be null.
    type: dict
    default: {}
notes:
  - The values must be finite numbers. A caller that reads NaN or infinity, for
    example from a Prometheus query with no requests in its window, passes null and
    gives the reason in O(unavailable).
  - The playbook C(playbooks/decide.yml) reads the metrics from Prometheus or from
    extra vars and acts on the decision. C(docs/procedures/decision-matrix.md)
    describes it.
"""

EXAMPLES = r"""
- name: Decide from metrics that the operator read on a dashboard
  truebond.rollback.rollback_decision:
    error_rate: 0.12
    uptime: 0.999
    response_time: 0.3
    source: extra vars
  register: rollback_decision

- name: Show the decision and why
  ansible.builtin.debug:
    msg: "{{ rollback_decision.msg }}"

- name: Decide with an uptime that could not be read and a stricter error rate
  truebond.rollback.rollback_decision:
    error_rate: 0.004
    uptime:
    response_time: 0.2
    thresholds:
      error_rate:
        monitor: 0.002
    source: prometheus
    unavailable:
      uptime: the query returned no series
  register: rollback_decision
"""

RETURN = r"""
decision:
  description:
    - V(immediate_rollback), V(consider_rollback), V(monitor), V(continue), or
      V(unknown) when no available metric crossed a threshold and a metric is
      missing.
  type: str
  returned: always
  sample: immediate_rollback
severity:
  description: Severity of the decision, V(critical), V(high), V(medium), V(low) or V(unknown).
  type: str
  returned: always
  sample: critical
reasons:
  description:
    - One sentence per metric with its value and the threshold it crossed, or the
      reason it is missing. The metrics that decided come first, then the missing
      ones, then the ones in the V(continue) band.
  type: list
  elements: str
  returned: always
  sample:
    - error_rate is 12%, which is above the immediate rollback threshold of 10% (critical).
    - uptime is 99.9%, which is not below the monitor threshold of 99.9% (low).
    - response_time is 0.3 s, which is not above the monitor threshold of 1 s (low).
metrics:
  description: The values used, null for a missing metric.
  type: dict
  returned: always
  sample: {"error_rate": 0.12, "uptime": 0.999, "response_time": 0.3}
metric_decisions:
  description: The band of each metric as a decision, V(unknown) for a missing metric.
  type: dict
  returned: always
  sample: {"error_rate": "immediate_rollback", "uptime": "continue", "response_time": "continue"}
unavailable:
  description: Reason for each missing metric, including a null metric without a reason given.
  type: dict
  returned: always
  sample: {"uptime": "the query returned no series"}
thresholds:
  description: The thresholds used, after defaults were applied.
  type: dict
  returned: always
  sample:
    error_rate: {"immediate": 0.1, "consider": 0.05, "monitor": 0.01}
    uptime: {"immediate": 0.95, "consider": 0.99, "monitor": 0.999}
    response_time: {"immediate": 5.0, "consider": 2.0, "monitor": 1.0}
source:
  description: The O(source) given.
  type: str
  returned: always
  sample: prometheus
msg:
  description: The decision, its severity, the source and every reason, in one text.
  type: str
  returned: always
  sample: >-
    Decision immediate_rollback (severity critical) from extra vars. error_rate is 12%,
    which is above the immediate rollback threshold of 10% (critical). ...
"""

import math
import traceback

from ansible.module_utils.basic import AnsibleModule

METRICS = ("error_rate", "uptime", "response_time")

# Bands from worst to mildest, each with its decision and severity.
BANDS = ("immediate", "consider", "monitor")
BAND_DECISIONS = {
    "immediate": "immediate_rollback",
    "consider": "consider_rollback",
    "monitor": "monitor",
}
SEVERITIES = {
    "immediate_rollback": "critical",
    "consider_rollback": "high",
    "monitor": "medium",
    "continue": "low",
    "unknown": "unknown",
}
DECISION_RANKS = {
    "continue": 0,
    "monitor": 2,
    "consider_rollback": 3,
    "immediate_rollback": 4,
}
# Reasons of missing metrics sort after the crossed thresholds and before the
# metrics in the continue band.
MISSING_RANK = 1
BAND_LABELS = {
    "immediate": "immediate rollback",
    "consider": "consider rollback",
    "monitor": "monitor",
}

# True where a higher value is worse.
HIGHER_IS_WORSE = {"error_rate": True, "uptime": False, "response_time": True}
FRACTION_METRICS = ("error_rate", "uptime")

DEFAULT_THRESHOLDS = {
    "error_rate": {"immediate": 0.10, "consider": 0.05, "monitor": 0.01},
    "uptime": {"immediate": 0.95, "consider": 0.99, "monitor": 0.999},
    "response_time": {"immediate": 5.0, "consider": 2.0, "monitor": 1.0},
}


def format_value(metric, value):
    """Format a metric value for a sentence: a percentage or seconds."""
    if metric in FRACTION_METRICS:
        # Rounding to 4 decimals of a percent hides float noise such as
        # 0.07 * 100 = 7.000000000000001.
        return f"{round(value * 100, 4):g}%"
    return f"{round(value, 4):g} s"


def fraction_message(name, value):
    """Return the error for a fraction out of range, with a hint for a percentage."""
    message = f"{name} must be a fraction from 0 to 1, got {value!r}"
    if 1 < value <= 100:
        message += f"; for {value:g}% give {round(value / 100, 6)!r}"
    return message


def validate_thresholds(thresholds):
    """Raise ValueError naming the first threshold that is out of range or order."""
    for metric in METRICS:
        limits = thresholds[metric]
        for band in BANDS:
            value = limits[band]
            name = f"thresholds.{metric}.{band}"
            if not math.isfinite(value):
                raise ValueError(f"{name} must be a finite number, got {value!r}")
            if metric in FRACTION_METRICS and not 0 <= value <= 1:
                raise ValueError(fraction_message(name, value))
            if value < 0:
                raise ValueError(f"{name} must not be negative, got {value!r}")

        limits_text = ", ".join(f"{band}={limits[band]!r}" for band in BANDS)
        if HIGHER_IS_WORSE[metric]:
            ordered = limits["monitor"] <= limits["consider"] <= limits["immediate"]
            rule = "monitor <= consider <= immediate"
        else:
            ordered = limits["immediate"] <= limits["consider"] <= limits["monitor"]
            rule = "immediate <= consider <= monitor"
        if not ordered:
            raise ValueError(
                f"thresholds.{metric} must satisfy {rule}, got {limits_text}; "
                "reorder the thresholds"
            )


def validate_metrics(values, unavailable):
    """Raise ValueError naming the first metric value or unavailable entry that is invalid."""
    for name in unavailable:
        if name not in METRICS:
            raise ValueError(
                f"unavailable names {name!r}, which is not a metric; "
                f"use {', '.join(METRICS)}"
            )
        if values[name] is not None:
            raise ValueError(
                f"{name} has the value {values[name]!r} and is also listed in "
                "unavailable; pass either a value or a reason, not both"
            )

    for name in METRICS:
        value = values[name]
        if value is None:
            continue
        if not math.isfinite(value):
            raise ValueError(
                f"{name} must be a finite number, got {value!r}; pass null and give "
                "the reason in unavailable when the value could not be read"
            )
        if name in FRACTION_METRICS and not 0 <= value <= 1:
            raise ValueError(fraction_message(name, value))
        if value < 0:
            raise ValueError(f"{name} must not be negative, got {value!r} s")


def is_worse(metric, value, threshold):
    """Return whether value is strictly worse than threshold for this metric."""
    if HIGHER_IS_WORSE[metric]:
        return value > threshold
    return value < threshold


def classify_metric(metric, value, limits):
    """Return (decision, reason) for one available metric value."""
    direction = "above" if HIGHER_IS_WORSE[metric] else "below"
    value_text = format_value(metric, value)

    for index, band in enumerate(BANDS):
        if not is_worse(metric, value, limits[band]):
            continue
        decision = BAND_DECISIONS[band]
        crossed = (
            f"{direction} the {BAND_LABELS[band]} threshold of "
            f"{format_value(metric, limits[band])}"
        )
        if index > 0:
            # Name the next worse threshold too, so that a value on it reads as
            # deliberately in this band.
            worse = BANDS[index - 1]
            crossed += (
                f" but not {direction} the {BAND_LABELS[worse]} threshold of "
                f"{format_value(metric, limits[worse])}"
            )
        reason = (
            f"{metric} is {value_text}, which is {crossed} ({SEVERITIES[decision]})."
        )
        return decision, reason

    reason = (
        f"{metric} is {value_text}, which is not {direction} the monitor threshold of "
        f"{format_value(metric, limits['monitor'])} (low)."
    )
    return "continue", reason


def decide(values, thresholds, unavailable):
    """Apply the decision matrix and return the result keys of the module.

    values maps each metric name to a float or None. thresholds has every metric
    and band filled in. unavailable maps missing metric names to their reasons.
    """
    ranked_reasons = []
    metric_decisions = {}
    missing = {}

    for position, metric in enumerate(METRICS):
        value = values[metric]
        if value is None:
            reason = unavailable.get(metric) or "no value was given"
            missing[metric] = reason
            metric_decisions[metric] = "unknown"
            ranked_reasons.append(
                (MISSING_RANK, position, f"{metric} unavailable: {reason}")
            )
            continue
        decision, reason = classify_metric(metric, value, thresholds[metric])
        metric_decisions[metric] = decision
        ranked_reasons.append((DECISION_RANKS[decision], position, reason))

    known = [d for d in metric_decisions.values() if d != "unknown"]
    worst = max(known, key=DECISION_RANKS.get, default="continue")
    if worst == "continue" and missing:
        decision = "unknown"
    else:
        decision = worst

    ranked_reasons.sort(key=lambda item: (-item[0], item[1]))
    return {
        "decision": decision,
        "severity": SEVERITIES[decision],
        "reasons": [reason for _rank, _position, reason in ranked_reasons],
        "metrics": {metric: values[metric] for metric in METRICS},
        "metric_decisions": metric_decisions,
        "unavailable": missing,
    }


def build_message(result, source):
    """Return one text with the decision, its source and every reason."""
    # The reasons of missing metrics end without a period, so that they read as
    # "error_rate unavailable: <cause>" when listed one per line.
    sentences = [
        reason if reason.endswith(".") else reason + "." for reason in result["reasons"]
    ]
    message = (
        f"Decision {result['decision']} (severity {result['severity']}) from "
        f"{source}. " + " ".join(sentences)
    )
    if result["decision"] == "unknown":
        names = ", ".join(result["unavailable"])
        message += (
            f" No available metric crossed a threshold, but {names} could not be "
            "read, so the decision is unknown instead of continue."
        )
    return message


def merge_thresholds(given):
    """Fill in the default of every threshold that given leaves out or sets to null."""
    merged = {}
    for metric in METRICS:
        limits = (given or {}).get(metric) or {}
        merged[metric] = {}
        for band in BANDS:
            value = limits.get(band)
            merged[metric][band] = (
                DEFAULT_THRESHOLDS[metric][band] if value is None else float(value)
            )
    return merged


def threshold_options(metric):
    return {
        "type": "dict",
        "default": {},
        "options": {
            band: {"type": "float", "default": DEFAULT_THRESHOLDS[metric][band]}
            for band in BANDS
        },
    }


def main():
    module = AnsibleModule(
        argument_spec={
            "error_rate": {"type": "float"},
            "uptime": {"type": "float"},
            "response_time": {"type": "float"},
            "thresholds": {
                "type": "dict",
                "default": {},
                "options": {
                    "error_rate": threshold_options("error_rate"),
                    "uptime": threshold_options("uptime"),
                    "response_time": threshold_options("response_time"),
                },
            },
            "source": {"type": "str", "default": "task arguments"},
            "unavailable": {"type": "dict", "default": {}},
        },
        supports_check_mode=True,
    )
    params = module.params
    values = {metric: params[metric] for metric in METRICS}
    unavailable = {
        str(name): str(reason) if reason not in (None, "") else "no reason was given"
        for name, reason in params["unavailable"].items()
    }

    try:
        thresholds = merge_thresholds(params["thresholds"])
        validate_thresholds(thresholds)
        validate_metrics(values, unavailable)
    except ValueError as error:
        module.fail_json(msg=str(error), changed=False)

    try:
        result = decide(values, thresholds, unavailable)
        message = build_message(result, params["source"])
    except Exception as error:  # noqa: BLE001 - report any bug with its traceback
        module.fail_json(
            msg=f"rollback decision failed unexpectedly: {type(error).__name__}: {error}",
            exception=traceback.format_exc(),
        )

    module.exit_json(
        changed=False,
        msg=message,
        thresholds=thresholds,
        source=params["source"],
        **result,
    )


if __name__ == "__main__":
    main()
