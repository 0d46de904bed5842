# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Tests for the rollback_decision module: the matrix, its boundaries and unknowns."""

from __future__ import annotations

import copy
import json
import math

import pytest
from ansible.module_utils.testing import patch_module_args
from ansible_collections.truebond.rollback.plugins.modules import rollback_decision

DEFAULTS = rollback_decision.DEFAULT_THRESHOLDS
REFUSED = "Prometheus at http://127.0.0.1:19090 refused the connection"


def values(error_rate=0.0, uptime=1.0, response_time=0.1):
    return {
        "error_rate": error_rate,
        "uptime": uptime,
        "response_time": response_time,
    }


def run_main(args, capsys):
    with patch_module_args(args), pytest.raises(SystemExit):
        rollback_decision.main()
    return json.loads(capsys.readouterr().out)


# (error_rate, uptime, response_time, decision). A value equal to a threshold stays
# in the milder band.
MATRIX_CASES = [
    pytest.param(0.0, 1.0, 0.1, "continue", id="all-healthy-continue"),
    pytest.param(0.12, 0.999, 0.3, "immediate_rollback", id="error-12pct-immediate"),
    pytest.param(0.1001, 1.0, 0.1, "immediate_rollback", id="error-just-above-10pct"),
    pytest.param(0.10, 1.0, 0.1, "consider_rollback", id="error-exactly-10pct-high"),
    pytest.param(0.07, 1.0, 0.1, "consider_rollback", id="error-7pct-consider"),
    pytest.param(0.05, 1.0, 0.1, "monitor", id="error-exactly-5pct-medium"),
    pytest.param(0.03, 1.0, 0.1, "monitor", id="error-3pct-monitor"),
    pytest.param(0.01, 1.0, 0.1, "continue", id="error-exactly-1pct-low"),
    pytest.param(0.0099, 1.0, 0.1, "continue", id="error-below-1pct-continue"),
    pytest.param(0.0, 0.90, 0.1, "immediate_rollback", id="uptime-90pct-immediate"),
    pytest.param(0.0, 0.9499, 0.1, "immediate_rollback", id="uptime-just-below-95pct"),
    pytest.param(0.0, 0.95, 0.1, "consider_rollback", id="uptime-exactly-95pct-high"),
    pytest.param(0.0, 0.97, 0.1, "consider_rollback", id="uptime-97pct-consider"),
    pytest.param(0.0, 0.99, 0.1, "monitor", id="uptime-exactly-99pct-medium"),
    pytest.param(0.0, 0.995, 0.1, "monitor", id="uptime-99.5pct-monitor"),
    pytest.param(0.0, 0.999, 0.1, "continue", id="uptime-exactly-99.9pct-low"),
    pytest.param(0.0, 0.0, 0.1, "immediate_rollback", id="uptime-zero-immediate"),
    pytest.param(0.0, 1.0, 6.0, "immediate_rollback", id="latency-6s-immediate"),
    pytest.param(0.0, 1.0, 5.0, "consider_rollback", id="latency-exactly-5s-high"),
    pytest.param(0.0, 1.0, 3.0, "consider_rollback", id="latency-3s-consider"),
    pytest.param(0.0, 1.0, 2.0, "monitor", id="latency-exactly-2s-medium"),
    pytest.param(0.0, 1.0, 1.5, "monitor", id="latency-1.5s-monitor"),
    pytest.param(0.0, 1.0, 1.0, "continue", id="latency-exactly-1s-low"),
    pytest.param(0.0, 1.0, 0.0, "continue", id="latency-zero-continue"),
    pytest.param(1.0, 1.0, 0.1, "immediate_rollback", id="error-100pct-immediate"),
    pytest.param(0.03, 0.97, 0.1, "consider_rollback", id="worst-metric-uptime-wins"),
    pytest.param(0.12, 0.97, 1.5, "immediate_rollback", id="worst-metric-error-wins"),
    pytest.param(0.02, 0.995, 3.0, "consider_rollback", id="worst-metric-latency-wins"),
]


@pytest.mark.parametrize(
    ("error_rate", "uptime", "response_time", "decision"), MATRIX_CASES
)
def test_decide_matrix(error_rate, uptime, response_time, decision):
    result = rollback_decision.decide(
        values(error_rate, uptime, response_time), DEFAULTS, {}
    )
    assert result["decision"] == decision
    assert result["severity"] == rollback_decision.SEVERITIES[decision]
    assert result["unavailable"] == {}
    assert len(result["reasons"]) == 3


SEVERITY_CASES = [
    pytest.param("immediate_rollback", "critical", id="immediate-critical"),
    pytest.param("consider_rollback", "high", id="consider-high"),
    pytest.param("monitor", "medium", id="monitor-medium"),
    pytest.param("continue", "low", id="continue-low"),
    pytest.param("unknown", "unknown", id="unknown-unknown"),
]


@pytest.mark.parametrize(("decision", "severity"), SEVERITY_CASES)
def test_severity_of_decision(decision, severity):
    assert rollback_decision.SEVERITIES[decision] == severity


# (metric, value, reason) for one metric, the others healthy.
REASON_CASES = [
    pytest.param(
        "error_rate",
        0.12,
        "error_rate is 12%, which is above the immediate rollback threshold of 10% "
        "(critical).",
        id="error-immediate",
    ),
    pytest.param(
        "error_rate",
        0.10,
        "error_rate is 10%, which is above the consider rollback threshold of 5% but "
        "not above the immediate rollback threshold of 10% (high).",
        id="error-boundary-10pct",
    ),
    pytest.param(
        "error_rate",
        0.03,
        "error_rate is 3%, which is above the monitor threshold of 1% but not above "
        "the consider rollback threshold of 5% (medium).",
        id="error-monitor",
    ),
    pytest.param(
        "error_rate",
        0.0,
        "error_rate is 0%, which is not above the monitor threshold of 1% (low).",
        id="error-continue",
    ),
    pytest.param(
        "error_rate",
        0.07,
        "error_rate is 7%, which is above the consider rollback threshold of 5% but "
        "not above the immediate rollback threshold of 10% (high).",
        id="error-float-noise-hidden",
    ),
    pytest.param(
        "uptime",
        0.93,
        "uptime is 93%, which is below the immediate rollback threshold of 95% "
        "(critical).",
        id="uptime-immediate",
    ),
    pytest.param(
        "uptime",
        0.9995,
        "uptime is 99.95%, which is not below the monitor threshold of 99.9% (low).",
        id="uptime-continue",
    ),
    pytest.param(
        "uptime",
        0.999,
        "uptime is 99.9%, which is not below the monitor threshold of 99.9% (low).",
        id="uptime-boundary-99.9pct",
    ),
    pytest.param(
        "response_time",
        6.25,
        "response_time is 6.25 s, which is above the immediate rollback threshold of "
        "5 s (critical).",
        id="latency-immediate",
    ),
    pytest.param(
        "response_time",
        1.5,
        "response_time is 1.5 s, which is above the monitor threshold of 1 s but not "
        "above the consider rollback threshold of 2 s (medium).",
        id="latency-monitor",
    ),
]


@pytest.mark.parametrize(("metric", "value", "reason"), REASON_CASES)
def test_reason_names_value_and_threshold(metric, value, reason):
    metrics = values()
    metrics[metric] = value
    result = rollback_decision.decide(metrics, DEFAULTS, {})
    assert reason in result["reasons"]


def test_reasons_put_deciding_metric_first():
    result = rollback_decision.decide(values(0.03, 0.97, 6.0), DEFAULTS, {})
    assert [reason.split(" ")[0] for reason in result["reasons"]] == [
        "response_time",
        "uptime",
        "error_rate",
    ]


def test_metric_decisions_per_metric():
    result = rollback_decision.decide(values(0.03, 0.97, 0.1), DEFAULTS, {})
    assert result["metric_decisions"] == {
        "error_rate": "monitor",
        "uptime": "consider_rollback",
        "response_time": "continue",
    }


def test_metrics_returns_values_used():
    result = rollback_decision.decide(values(0.03, None, 0.1), DEFAULTS, {})
    assert result["metrics"] == {
        "error_rate": 0.03,
        "uptime": None,
        "response_time": 0.1,
    }


# (values, unavailable, decision, expected unavailable reasons)
UNKNOWN_CASES = [
    pytest.param(
        values(error_rate=None),
        {"error_rate": REFUSED},
        "unknown",
        {"error_rate": REFUSED},
        id="healthy-others-missing-error-rate-unknown",
    ),
    pytest.param(
        values(None, None, None),
        {"error_rate": REFUSED, "uptime": REFUSED, "response_time": REFUSED},
        "unknown",
        {"error_rate": REFUSED, "uptime": REFUSED, "response_time": REFUSED},
        id="all-missing-unknown",
    ),
    pytest.param(
        values(uptime=None),
        {},
        "unknown",
        {"uptime": "no value was given"},
        id="null-without-reason-unknown",
    ),
    pytest.param(
        values(error_rate=0.01, response_time=None),
        {"response_time": "the query returned no series"},
        "unknown",
        {"response_time": "the query returned no series"},
        id="boundary-low-with-missing-unknown",
    ),
    pytest.param(
        values(error_rate=0.03, uptime=None),
        {"uptime": REFUSED},
        "monitor",
        {"uptime": REFUSED},
        id="monitor-stays-with-missing",
    ),
    pytest.param(
        values(error_rate=None, response_time=6.0),
        {"error_rate": REFUSED},
        "immediate_rollback",
        {"error_rate": REFUSED},
        id="immediate-stays-with-missing",
    ),
]


@pytest.mark.parametrize(
    ("metrics", "unavailable", "decision", "missing"), UNKNOWN_CASES
)
def test_missing_metric_never_continue(metrics, unavailable, decision, missing):
    result = rollback_decision.decide(metrics, DEFAULTS, unavailable)
    assert result["decision"] == decision
    assert result["unavailable"] == missing
    for metric, reason in missing.items():
        assert f"{metric} unavailable: {reason}" in result["reasons"]
        assert result["metric_decisions"][metric] == "unknown"


def test_missing_reason_follows_deciding_reason():
    result = rollback_decision.decide(
        values(error_rate=0.03, uptime=None), DEFAULTS, {"uptime": REFUSED}
    )
    assert result["reasons"][0].startswith("error_rate is 3%")
    assert result["reasons"][1] == f"uptime unavailable: {REFUSED}"
    assert result["reasons"][2].startswith("response_time is 0.1 s")


def test_unknown_message_explains_missing():
    result = rollback_decision.decide(
        values(error_rate=None), DEFAULTS, {"error_rate": REFUSED}
    )
    message = rollback_decision.build_message(result, "prometheus")
    assert message == (
        "Decision unknown (severity unknown) from prometheus. "
        f"error_rate unavailable: {REFUSED}. "
        "uptime is 100%, which is not below the monitor threshold of 99.9% (low). "
        "response_time is 0.1 s, which is not above the monitor threshold of 1 s "
        "(low). No available metric crossed a threshold, but error_rate could not be "
        "read, so the decision is unknown instead of continue."
    )


def test_custom_thresholds_move_bands():
    thresholds = rollback_decision.merge_thresholds(
        {"error_rate": {"immediate": 0.2}, "response_time": {"monitor": 0.5}}
    )
    assert thresholds["error_rate"] == {
        "immediate": 0.2,
        "consider": 0.05,
        "monitor": 0.01,
    }
    assert thresholds["uptime"] == DEFAULTS["uptime"]
    result = rollback_decision.decide(values(0.15, 1.0, 0.6), thresholds, {})
    assert result["decision"] == "consider_rollback"
    assert result["metric_decisions"]["response_time"] == "monitor"


def test_merge_thresholds_fills_null():
    thresholds = rollback_decision.merge_thresholds(
        {"error_rate": None, "uptime": {"monitor": None}}
    )
    assert thresholds == DEFAULTS


THRESHOLD_ERROR_CASES = [
    pytest.param(
        {"error_rate": {"immediate": 10}},
        "thresholds.error_rate.immediate must be a fraction from 0 to 1, got 10.0; "
        "for 10% give 0.1",
        id="error-rate-percent",
    ),
    pytest.param(
        {"uptime": {"immediate": -0.5}},
        "thresholds.uptime.immediate must be a fraction from 0 to 1, got -0.5",
        id="uptime-negative",
    ),
    pytest.param(
        {"response_time": {"monitor": -1}},
        "thresholds.response_time.monitor must not be negative, got -1.0",
        id="latency-negative",
    ),
    pytest.param(
        {"response_time": {"immediate": math.inf}},
        "thresholds.response_time.immediate must be a finite number, got inf",
        id="latency-infinite",
    ),
    pytest.param(
        {"error_rate": {"monitor": 0.2}},
        "thresholds.error_rate must satisfy monitor <= consider <= immediate, got "
        "immediate=0.1, consider=0.05, monitor=0.2; reorder the thresholds",
        id="error-rate-order",
    ),
    pytest.param(
        {"uptime": {"immediate": 0.999}},
        "thresholds.uptime must satisfy immediate <= consider <= monitor, got "
        "immediate=0.999, consider=0.99, monitor=0.999; reorder the thresholds",
        id="uptime-order",
    ),
]


@pytest.mark.parametrize(("given", "message"), THRESHOLD_ERROR_CASES)
def test_validate_thresholds_rejects(given, message):
    thresholds = rollback_decision.merge_thresholds(given)
    with pytest.raises(ValueError) as error:
        rollback_decision.validate_thresholds(thresholds)
    assert str(error.value) == message


def test_validate_thresholds_accepts_defaults():
    rollback_decision.validate_thresholds(copy.deepcopy(DEFAULTS))


METRIC_ERROR_CASES = [
    pytest.param(
        values(error_rate=12.0),
        {},
        "error_rate must be a fraction from 0 to 1, got 12.0; for 12% give 0.12",
        id="error-rate-percent",
    ),
    pytest.param(
        values(error_rate=-0.1),
        {},
        "error_rate must be a fraction from 0 to 1, got -0.1",
        id="error-rate-negative",
    ),
    pytest.param(
        values(uptime=99.9),
        {},
        "uptime must be a fraction from 0 to 1, got 99.9; for 99.9% give 0.999",
        id="uptime-percent",
    ),
    pytest.param(
        values(response_time=-0.5),
        {},
        "response_time must not be negative, got -0.5 s",
        id="latency-negative",
    ),
    pytest.param(
        values(response_time=math.nan),
        {},
        "response_time must be a finite number, got nan; pass null and give the "
        "reason in unavailable when the value could not be read",
        id="latency-nan",
    ),
    pytest.param(
        values(error_rate=math.inf),
        {},
        "error_rate must be a finite number, got inf; pass null and give the reason "
        "in unavailable when the value could not be read",
        id="error-rate-infinite",
    ),
    pytest.param(
        values(),
        {"latency": "down"},
        "unavailable names 'latency', which is not a metric; use error_rate, "
        "uptime, response_time",
        id="unavailable-unknown-metric",
    ),
    pytest.param(
        values(error_rate=0.2),
        {"error_rate": "down"},
        "error_rate has the value 0.2 and is also listed in unavailable; pass either "
        "a value or a reason, not both",
        id="unavailable-with-value",
    ),
]


@pytest.mark.parametrize(("metrics", "unavailable", "message"), METRIC_ERROR_CASES)
def test_validate_metrics_rejects(metrics, unavailable, message):
    with pytest.raises(ValueError) as error:
        rollback_decision.validate_metrics(metrics, unavailable)
    assert str(error.value) == message


FORMAT_CASES = [
    pytest.param("error_rate", 0.1, "10%", id="ten-percent"),
    pytest.param("error_rate", 0.07, "7%", id="float-noise"),
    pytest.param("error_rate", 0.00012, "0.012%", id="small-fraction"),
    pytest.param("uptime", 0.99951, "99.951%", id="uptime-three-decimals"),
    pytest.param("response_time", 4.8125, "4.8125 s", id="seconds"),
    pytest.param("response_time", 0.30000000000000004, "0.3 s", id="seconds-noise"),
]


@pytest.mark.parametrize(("metric", "value", "text"), FORMAT_CASES)
def test_format_value(metric, value, text):
    assert rollback_decision.format_value(metric, value) == text


def test_main_decides_from_arguments(capsys):
    result = run_main(
        {
            "error_rate": 0.12,
            "uptime": 0.999,
            "response_time": 0.3,
            "source": "extra vars",
        },
        capsys,
    )
    assert result["changed"] is False
    assert result["decision"] == "immediate_rollback"
    assert result["severity"] == "critical"
    assert result["source"] == "extra vars"
    assert result["metrics"] == {
        "error_rate": 0.12,
        "uptime": 0.999,
        "response_time": 0.3,
    }
    assert result["thresholds"] == DEFAULTS
    assert result["msg"].startswith(
        "Decision immediate_rollback (severity critical) from extra vars. "
        "error_rate is 12%, which is above the immediate rollback threshold of 10% "
        "(critical)."
    )


def test_main_accepts_numbers_as_strings(capsys):
    result = run_main(
        {"error_rate": "0.10", "uptime": "1", "response_time": "0.2"}, capsys
    )
    assert result["decision"] == "consider_rollback"
    assert result["source"] == "task arguments"


def test_main_unknown_with_unavailable(capsys):
    result = run_main(
        {
            "error_rate": None,
            "uptime": 1.0,
            "response_time": 0.1,
            "source": "prometheus",
            "unavailable": {"error_rate": REFUSED},
        },
        capsys,
    )
    assert result["decision"] == "unknown"
    assert result["severity"] == "unknown"
    assert result["reasons"][0] == f"error_rate unavailable: {REFUSED}"
    assert result["unavailable"] == {"error_rate": REFUSED}


def test_main_without_metrics_unknown(capsys):
    result = run_main({}, capsys)
    assert result["decision"] == "unknown"
    assert result["unavailable"] == {
        "error_rate": "no value was given",
        "uptime": "no value was given",
        "response_time": "no value was given",
    }


def test_main_empty_reason_gets_placeholder(capsys):
    result = run_main({"uptime": 1.0, "unavailable": {"error_rate": ""}}, capsys)
    assert result["unavailable"]["error_rate"] == "no reason was given"


def test_main_partial_thresholds_keep_defaults(capsys):
    result = run_main(
        {
            "error_rate": 0.15,
            "uptime": 1.0,
            "response_time": 0.1,
            "thresholds": {"error_rate": {"immediate": 0.2}},
        },
        capsys,
    )
    assert result["decision"] == "consider_rollback"
    assert result["thresholds"]["error_rate"] == {
        "immediate": 0.2,
        "consider": 0.05,
        "monitor": 0.01,
    }
    assert result["thresholds"]["uptime"] == DEFAULTS["uptime"]


def test_main_check_mode_same_result(capsys):
    args = {"error_rate": 0.07, "uptime": 1.0, "response_time": 0.1}
    normal = run_main(args, capsys)
    checked = run_main({**args, "_ansible_check_mode": True}, capsys)
    assert checked["changed"] is False
    assert checked["decision"] == normal["decision"] == "consider_rollback"
    assert checked["reasons"] == normal["reasons"]


MAIN_ERROR_CASES = [
    pytest.param(
        {"error_rate": 12},
        "error_rate must be a fraction from 0 to 1, got 12.0; for 12% give 0.12",
        id="error-rate-percent",
    ),
    pytest.param(
        {"thresholds": {"uptime": {"immediate": 0.999}}},
        "thresholds.uptime must satisfy immediate <= consider <= monitor, got "
        "immediate=0.999, consider=0.99, monitor=0.999; reorder the thresholds",
        id="threshold-order",
    ),
    pytest.param(
        {"error_rate": 0.2, "unavailable": {"error_rate": "down"}},
        "error_rate has the value 0.2 and is also listed in unavailable; pass either "
        "a value or a reason, not both",
        id="value-and-unavailable",
    ),
]


@pytest.mark.parametrize(("args", "message"), MAIN_ERROR_CASES)
def test_main_rejects_invalid(args, message, capsys):
    result = run_main(args, capsys)
    assert result["failed"] is True
    assert result["changed"] is False
    assert result["msg"] == message


def test_main_rejects_non_number(capsys):
    # ansible-core's float conversion writes this message, without the value.
    result = run_main({"uptime": "99.9%"}, capsys)
    assert result["failed"] is True
    assert result["msg"] == (
        "argument 'uptime' is of type str and we were unable to convert to float: "
        "<class 'str'> cannot be converted to a float"
    )
