# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration tests of playbooks/decide.yml, the rollback decision matrix.

The Prometheus tests start their own backend from tests/stack/app/backend/server.py
with induced errors or latency, a load generator and a real Prometheus that scrapes
the backend once a second, then run the playbook against that Prometheus. Each test
gets a fresh backend and a Prometheus with empty storage, so that no window mixes
the samples of two cases. The drill stack is not used.

The extra-vars tests run the playbook without Prometheus. The tests that open the
gate of the application rollback point it at a throwaway inventory host and pass an
invalid strategy, so that rollback_app.yml stops at its input check before it
reads or changes anything.
"""

from __future__ import annotations

import json
import os
import re
import socket
import subprocess
import sys
from pathlib import Path

import pexpect
import pytest
from decide.processes import (
    MESSAGES_SHARE,
    PROMETHEUS_PORTS,
    Backend,
    LoadGenerator,
    Prometheus,
    ensure_prometheus,
    free_port,
    http_get,
    wait_until,
)

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "playbooks" / "decide.yml"
ANSIBLE_PLAYBOOK = Path(sys.executable).parent / "ansible-playbook"
# Short windows keep each case to a few seconds of samples.
WINDOW = "15s"
WINDOW_VARS = [
    "-e",
    f"decide_rate_window={WINDOW}",
    "-e",
    f"decide_uptime_window={WINDOW}",
]
ROLLBACK_PLAY = "PLAY [Roll the TrueBond backend back to a previous release]"
ROLLBACK_FIRST_TASK = "TASK [Validate the input]"
ROLLBACK_STOPPED_AT_INPUT = (
    "value of strategy must be one of: recreate, stop-first, got: bogus"
)
IMMEDIATE_MANUAL_MESSAGE = (
    "Immediate rollback: roll back now. Nothing was started, because "
    "decide_auto_rollback is false. Run ansible-playbook playbooks/rollback_app.yml "
    "-e severity=critical (with -e version=vX.Y.Z for a release other than the "
    "previous one), or run this playbook again with -e decide_auto_rollback=true."
)
NONINTERACTIVE_MESSAGE = (
    "Consider rollback: a person has to decide, and this run is not interactive "
    "(decide_interactive is false, or this is an AWX job), so nothing was rolled "
    "back. In AWX, follow this job template with an approval node and then the "
    "rollback job template (rollback_app.yml). From a terminal, run this playbook "
    "again and answer the prompt."
)
# A failed task result line of the default callback with JSON results.
_FAILED_RESULT = re.compile(
    r"^(?:fatal|failed): \[[^\]]+\](?:: FAILED!)?(?: \(item=[^)]*\))? => (\{.*\})$"
)


def playbook_environment(tmp_path):
    environment = dict(os.environ)
    environment.update(
        {
            "PATH": f"{ANSIBLE_PLAYBOOK.parent}:{environment.get('PATH', '/usr/bin:/bin')}",
            "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
            "ANSIBLE_NOCOLOR": "1",
            "ANSIBLE_FORCE_COLOR": "0",
            # One JSON object per result line, so that messages can be read back.
            "ANSIBLE_CALLBACK_RESULT_FORMAT": "json",
            "TRUEBOND_TIMELINE_DIR": str(tmp_path / "timelines"),
        }
    )
    # ansible.builtin.uri honours proxy variables. The test servers are local.
    for name in ("no_proxy", "NO_PROXY"):
        local = "127.0.0.1,localhost"
        environment[name] = (
            f"{environment[name]},{local}" if environment.get(name) else local
        )
    return environment


def decide_command(tmp_path, *extra_args, inventory=None):
    command = [str(ANSIBLE_PLAYBOOK), str(PLAYBOOK)]
    if inventory is not None:
        command += ["-i", str(inventory)]
    command += ["-e", f"decide_result_file={tmp_path / 'decision.json'}"]
    return command + list(extra_args)


def run_decide(tmp_path, *extra_args, inventory=None):
    """Run decide.yml without a terminal and return (process, decision or None)."""
    result_file = tmp_path / "decision.json"
    result_file.unlink(missing_ok=True)
    process = subprocess.run(
        decide_command(tmp_path, *extra_args, inventory=inventory),
        check=False,
        cwd=REPO,
        env=playbook_environment(tmp_path),
        stdin=subprocess.DEVNULL,
        capture_output=True,
        text=True,
        timeout=120,
    )
    decision = json.loads(result_file.read_text()) if result_file.exists() else None
    return process, decision


def failure_messages(stdout):
    """Return the msg of every failed task result in the output."""
    messages = []
    for line in stdout.splitlines():
        match = _FAILED_RESULT.match(line)
        if match:
            messages.append(json.loads(match.group(1)).get("msg"))
    return messages


def describe(process):
    return f"exit code {process.returncode}\n{process.stdout[-6000:]}\n{process.stderr[-2000:]}"


def metric_args(error_rate, uptime, response_time):
    return [
        "-e",
        f"error_rate={error_rate}",
        "-e",
        f"uptime={uptime}",
        "-e",
        f"response_time={response_time}",
    ]


@pytest.fixture(scope="module")
def prometheus_binary():
    return ensure_prometheus()


@pytest.fixture
def live_stack(tmp_path, prometheus_binary):
    """Return a function that starts backend, load and Prometheus, stopped at the end."""
    started = []

    def start(error_rate=0.0, latency=0.0):
        backend = Backend(tmp_path / "backend", error_rate=error_rate, latency=latency)
        started.append(backend)
        backend.start()
        # Slow requests need more threads to keep the rate up. Staggered starts
        # spread their completions over the scrape intervals.
        threads = 8 if latency else 4
        load = LoadGenerator(backend.url, threads=threads, stagger=latency / threads)
        started.append(load)
        load.start()
        prometheus = Prometheus(
            prometheus_binary, tmp_path / "prometheus", backend.port
        )
        started.append(prometheus)
        prometheus.start()
        return backend, prometheus

    yield start
    for item in reversed(started):
        item.stop()


@pytest.fixture
def target_inventory(tmp_path):
    """Write an inventory whose truebond_app group is one local throwaway host.

    rollback_app.yml takes the host's rollback lock before its input check, so the
    tests with this inventory carry the drill_machine marker.
    """
    inventory = tmp_path / "inventory.yml"
    inventory.write_text(
        "all:\n"
        "  children:\n"
        "    truebond_app:\n"
        "      hosts:\n"
        "        decide-target:\n"
        "          ansible_connection: local\n"
        '          ansible_python_interpreter: "{{ ansible_playbook_python }}"\n'
    )
    return inventory


# (induced error rate, induced latency in s, decision, exit code). The load sends
# 4 of 5 requests to /api/messages, so the error rate that Prometheus computes is 0.8 times
# the induced one: 0, 3.2% (monitor) and 40% (immediate). All requests to
# /api/messages taking 3 s put the p95 inside the (2, 5] bucket, so
# histogram_quantile returns a value between 2 and 5 (consider).
LIVE_CASES = [
    pytest.param(0.0, 0.0, "continue", 0, id="healthy-continue"),
    pytest.param(0.04, 0.0, "monitor", 0, id="errors-3pct-monitor"),
    pytest.param(0.0, 3.0, "consider_rollback", 2, id="latency-3s-consider"),
    pytest.param(0.5, 0.0, "immediate_rollback", 2, id="errors-40pct-immediate"),
]


@pytest.mark.parametrize(("error_rate", "latency", "decision", "exit_code"), LIVE_CASES)
def test_prometheus_decision(
    tmp_path, live_stack, error_rate, latency, decision, exit_code
):
    _backend, prometheus = live_stack(error_rate=error_rate, latency=latency)
    prometheus.wait_for_samples(WINDOW)

    process, result = run_decide(
        tmp_path,
        "-e",
        f"prometheus_url={prometheus.url}",
        "-e",
        "decide_interactive=false",
        *WINDOW_VARS,
    )

    assert process.returncode == exit_code, describe(process)
    assert result["decision"] == decision, describe(process)
    assert result["source"] == f"Prometheus at {prometheus.url}"
    assert result["unavailable"] == {}
    metrics = result["metrics"]
    assert metrics["error_rate"] == pytest.approx(error_rate * MESSAGES_SHARE, abs=0.01)
    assert metrics["uptime"] == 1.0
    if latency:
        assert 2 < metrics["response_time"] < 5
    else:
        assert metrics["response_time"] <= 0.1
    assert ROLLBACK_FIRST_TASK not in process.stdout
    if exit_code == 0:
        # The imported play is there, and its hosts expression is empty.
        assert f"{ROLLBACK_PLAY} ***" in process.stdout
        assert "skipping: no hosts matched" in process.stdout


def test_prometheus_backend_down_uptime_immediate(tmp_path, live_stack):
    backend, prometheus = live_stack()
    prometheus.wait_for_samples(WINDOW)
    backend.stop()
    uptime_query = f'avg(avg_over_time(up{{job="truebond-backend"}}[{WINDOW}]))'
    wait_until(
        lambda: (prometheus.query_value(uptime_query) or 1) < 0.9,
        20,
        "the uptime to drop below 90% after the backend stopped",
    )

    process, result = run_decide(
        tmp_path, "-e", f"prometheus_url={prometheus.url}", *WINDOW_VARS
    )

    assert process.returncode == 2, describe(process)
    assert result["decision"] == "immediate_rollback"
    assert result["metric_decisions"]["uptime"] == "immediate_rollback"
    assert result["metrics"]["uptime"] < 0.9
    assert result["reasons"][0].startswith("uptime is ")
    assert result["reasons"][0].endswith(
        "below the immediate rollback threshold of 95% (critical)."
    )


def test_prometheus_stopped_unknown(tmp_path, live_stack):
    _backend, prometheus = live_stack()
    prometheus.stop()
    status, _body = http_get(prometheus.url + "/-/ready")
    assert status is None, f"another process listens on {prometheus.url} already"

    process, result = run_decide(
        tmp_path, "-e", f"prometheus_url={prometheus.url}", *WINDOW_VARS
    )

    assert process.returncode == 2, describe(process)
    assert result["decision"] == "unknown"
    assert result["severity"] == "unknown"
    refused = f"Prometheus at {prometheus.url} refused the connection"
    assert result["unavailable"] == {
        "error_rate": refused,
        "uptime": refused,
        "response_time": refused,
    }
    assert result["reasons"] == [
        f"error_rate unavailable: {refused}",
        f"uptime unavailable: {refused}",
        f"response_time unavailable: {refused}",
    ]
    assert failure_messages(process.stdout) == [result["message"]]
    assert result["message"].startswith(
        "The decision is unknown, because error_rate and uptime and response_time "
        "are unavailable"
    )


def test_prometheus_query_results_checked(tmp_path, live_stack):
    """Check every kind of unusable query result, and metrics from both sources."""
    _backend, prometheus = live_stack()
    prometheus.wait_for_samples(WINDOW)
    url_arg = f"prometheus_url={prometheus.url}"

    rejected_empty_nan = {
        "decide_error_rate_query": "sum(rate(",
        "decide_uptime_query": 'up{job="no-such-job"}',
        "decide_response_time_query": "vector(0) / vector(0)",
    }
    process, result = run_decide(
        tmp_path, "-e", url_arg, "-e", json.dumps(rejected_empty_nan)
    )
    assert process.returncode == 2, describe(process)
    assert result["decision"] == "unknown"
    assert result["unavailable"]["error_rate"].startswith(
        f"Prometheus at {prometheus.url} rejected the query sum(rate( with HTTP 400 "
        "(bad_data: "
    )
    assert (
        result["unavailable"]["uptime"]
        == 'the query up{job="no-such-job"} returned no series'
    )
    assert result["unavailable"]["response_time"] == (
        "the query vector(0) / vector(0) returned NaN, which is not a finite number "
        "(NaN usually means no requests in the window)"
    )

    several_out_of_range = {
        "decide_error_rate_query": "http_requests_total",
        "decide_uptime_query": "vector(2)",
    }
    process, result = run_decide(
        tmp_path, "-e", url_arg, "-e", json.dumps(several_out_of_range), *WINDOW_VARS
    )
    assert process.returncode == 2, describe(process)
    assert result["decision"] == "unknown"
    assert re.fullmatch(
        r"the query http_requests_total returned \d+ series instead of one; "
        r"aggregate it, for example with sum\(\) or avg\(\)",
        result["unavailable"]["error_rate"],
    )
    assert result["unavailable"]["uptime"] == (
        "the query vector(2) returned 2, which is not a fraction from 0 to 1 "
        "(0.999 for 99.9%)"
    )
    assert result["metric_decisions"]["response_time"] == "continue"

    process, result = run_decide(
        tmp_path, "-e", url_arg, "-e", "uptime=0.97", *WINDOW_VARS
    )
    assert result["decision"] == "consider_rollback", describe(process)
    assert result["source"] == (
        f"extra vars (uptime) and Prometheus at {prometheus.url} "
        "(error_rate, response_time)"
    )
    assert result["metrics"]["uptime"] == 0.97
    assert result["metrics"]["error_rate"] == 0.0


def test_prometheus_url_silent_times_out(tmp_path):
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as listener:
        # A listening socket that never accepts: connections open, nothing responds.
        listener.bind(("127.0.0.1", free_port(PROMETHEUS_PORTS)))
        listener.listen(8)
        url = f"http://127.0.0.1:{listener.getsockname()[1]}"

        process, result = run_decide(
            tmp_path,
            "-e",
            f"prometheus_url={url}",
            "-e",
            "decide_prometheus_timeout=1",
        )

    assert process.returncode == 2, describe(process)
    assert result["unavailable"] == {
        metric: f"Prometheus at {url} did not respond within 1 s"
        for metric in ("error_rate", "uptime", "response_time")
    }


def test_prometheus_url_not_prometheus(tmp_path):
    backend = Backend(tmp_path / "backend", induced=False)
    backend.start()
    try:
        process, result = run_decide(
            tmp_path,
            "-e",
            f"prometheus_url={backend.url}",
            "-e",
            "error_rate=0.01",
            "-e",
            "uptime=1",
        )
    finally:
        backend.stop()

    assert process.returncode == 2, describe(process)
    assert result["unavailable"] == {
        "response_time": (
            f"Prometheus at {backend.url} returned HTTP 404 without a query result "
            "for histogram_quantile(0.95, sum by (le) "
            '(rate(http_request_duration_seconds_bucket{job="truebond-backend"}[1m]))); '
            "check that prometheus_url points at Prometheus"
        )
    }


# (error_rate, uptime, response_time, decision, exit code, action)
EXTRA_VARS_CASES = [
    pytest.param(
        0.10,
        1,
        0.2,
        "consider_rollback",
        2,
        "approval_required",
        id="errors-exactly-10pct-consider",
    ),
    pytest.param(0.02, 1, 0.1, "monitor", 0, "none", id="errors-2pct-monitor"),
    pytest.param(0.002, 0.9995, 0.1, "continue", 0, "none", id="healthy-continue"),
    pytest.param(
        0.01, 0.999, 1, "continue", 0, "none", id="all-on-monitor-threshold-continue"
    ),
]


@pytest.mark.parametrize(
    ("error_rate", "uptime", "response_time", "decision", "exit_code", "action"),
    EXTRA_VARS_CASES,
)
def test_extra_vars_decision(
    tmp_path, error_rate, uptime, response_time, decision, exit_code, action
):
    process, result = run_decide(
        tmp_path,
        *metric_args(error_rate, uptime, response_time),
        "-e",
        "decide_interactive=false",
    )

    assert process.returncode == exit_code, describe(process)
    assert result["decision"] == decision
    assert result["action"] == action
    assert result["source"] == "extra vars"
    assert result["metrics"] == {
        "error_rate": float(error_rate),
        "uptime": float(uptime),
        "response_time": float(response_time),
    }


def test_extra_vars_immediate_names_command(tmp_path):
    process, result = run_decide(tmp_path, *metric_args(0.12, 0.999, 0.3))

    assert process.returncode == 2, describe(process)
    assert result["reasons"][0] == (
        "error_rate is 12%, which is above the immediate rollback threshold of 10% (critical)."
    )
    assert failure_messages(process.stdout) == [IMMEDIATE_MANUAL_MESSAGE]
    assert ROLLBACK_PLAY not in process.stdout


def test_extra_vars_missing_metric_unknown(tmp_path):
    process, result = run_decide(tmp_path, "-e", "error_rate=0.001", "-e", "uptime=1")

    assert process.returncode == 2, describe(process)
    assert result["decision"] == "unknown"
    assert result["unavailable"] == {
        "response_time": "not given: pass -e response_time=VALUE or set prometheus_url"
    }


def test_consider_noninteractive_asks_approval_node(tmp_path):
    process, result = run_decide(
        tmp_path, *metric_args(0.07, 1, 0.1), "-e", "awx_job_id=42"
    )

    assert process.returncode == 2, describe(process)
    assert result["answer"] is None
    assert failure_messages(process.stdout) == [NONINTERACTIVE_MESSAGE]


def test_consider_without_terminal_stops(tmp_path):
    process, result = run_decide(tmp_path, *metric_args(0.07, 1, 0.1))

    assert process.returncode == 2, describe(process)
    assert (
        "Not waiting for response to prompt as stdin is not interactive"
        in process.stderr
    )
    assert result["answer"] == ""
    assert result["action"] == "approval_required"
    assert failure_messages(process.stdout)[0].startswith(
        "Consider rollback: no answer was given, so nothing was rolled back."
    )


def interact(tmp_path, answer, *extra_args, inventory=None):
    """Run decide.yml on a terminal, answer the prompt and return (output, exit code)."""
    command = decide_command(tmp_path, *extra_args, inventory=inventory)
    child = pexpect.spawn(
        command[0],
        command[1:],
        cwd=str(REPO),
        env=playbook_environment(tmp_path),
        encoding="utf-8",
        timeout=60,
    )
    child.expect("Type yes to start the application rollback now")
    child.expect(":")
    child.sendline(answer)
    child.expect(pexpect.EOF)
    child.close()
    return child.before, child.exitstatus


@pytest.mark.drill_machine
def test_consider_answer_no_keeps_release(tmp_path, target_inventory):
    output, exit_code = interact(
        tmp_path, "no", *metric_args(0.07, 1, 0.1), inventory=target_inventory
    )

    assert exit_code == 0, output
    result = json.loads((tmp_path / "decision.json").read_text())
    assert result["answer"] == "no"
    assert (
        result["message"]
        == "Consider rollback: the operator answered no, so the current release stays."
    )
    assert "skipping: no hosts matched" in output


@pytest.mark.drill_machine
def test_consider_answer_yes_starts_rollback(tmp_path, target_inventory):
    output, exit_code = interact(
        tmp_path,
        "yes",
        *metric_args(0.07, 1, 0.1),
        "-e",
        "strategy=bogus",
        inventory=target_inventory,
    )

    result = json.loads((tmp_path / "decision.json").read_text())
    assert result["action"] == "rollback"
    assert ROLLBACK_PLAY in output
    # rollback_app.yml ran on the throwaway host and stopped at its input check.
    assert ROLLBACK_STOPPED_AT_INPUT in output
    assert exit_code == 2, output


@pytest.mark.drill_machine
def test_immediate_auto_rollback_starts_rollback(tmp_path, target_inventory):
    process, result = run_decide(
        tmp_path,
        *metric_args(0.2, 1, 0.1),
        "-e",
        "decide_auto_rollback=true",
        "-e",
        "strategy=bogus",
        inventory=target_inventory,
    )

    assert result["action"] == "rollback"
    assert f"{ROLLBACK_PLAY} ***" in process.stdout
    assert ROLLBACK_FIRST_TASK in process.stdout
    assert ROLLBACK_STOPPED_AT_INPUT in process.stdout
    assert process.returncode == 2, describe(process)


@pytest.mark.drill_machine
def test_gate_holds_with_rollback_hosts_override(tmp_path, target_inventory):
    process, result = run_decide(
        tmp_path,
        *metric_args(0.002, 1, 0.1),
        "-e",
        "rollback_hosts=decide-target",
        "-e",
        "strategy=bogus",
        inventory=target_inventory,
    )

    assert process.returncode == 0, describe(process)
    assert result["action"] == "none"
    # The extra var overrides the hosts expression, but the when condition of the
    # import skips every task of the rollback.
    assert ROLLBACK_FIRST_TASK in process.stdout
    assert "skipping: [decide-target]" in process.stdout
    assert ROLLBACK_STOPPED_AT_INPUT not in process.stdout


# (extra vars, failure message)
INVALID_INPUT_CASES = [
    pytest.param(
        ["-e", "error_rate=12"],
        'error_rate="12" is invalid: it must be a fraction from 0 to 1 (0.12 for 12%).',
        id="error-rate-percent",
    ),
    pytest.param(
        ["-e", "uptime=abc"],
        'uptime="abc" is invalid: it must be a fraction from 0 to 1 (0.999 for 99.9%).',
        id="uptime-not-number",
    ),
    pytest.param(
        ["-e", "response_time=-1"],
        'response_time="-1" is invalid: it must be a number of seconds, 0 or more.',
        id="latency-negative",
    ),
    pytest.param(
        ["-e", "response_time=1e400"],
        'response_time="1e400" is invalid: it must be a number of seconds, 0 or more.',
        id="latency-infinite",
    ),
    pytest.param(
        ["-e", "prometheus_url=ftp://127.0.0.1:9090"],
        'prometheus_url="ftp://127.0.0.1:9090" is invalid: give an http or https URL '
        "with a host, such as http://127.0.0.1:9090.",
        id="prometheus-url-scheme",
    ),
    pytest.param(
        ["-e", "prometheus_url=127.0.0.1:9090"],
        'prometheus_url="127.0.0.1:9090" is invalid: give an http or https URL with a '
        "host, such as http://127.0.0.1:9090.",
        id="prometheus-url-without-scheme",
    ),
    pytest.param(
        [],
        "No metrics were given. Pass -e prometheus_url=http://HOST:9090 to read them "
        "from Prometheus, or give them as extra vars: -e error_rate=0.12 -e "
        "uptime=0.999 -e response_time=0.3",
        id="nothing-given",
    ),
    pytest.param(
        ["-e", "error_rate=0.01", "-e", "decide_auto_rollback=maybe"],
        'decide_auto_rollback="maybe" is invalid: it must be true or false.',
        id="auto-rollback-not-bool",
    ),
    pytest.param(
        ["-e", "error_rate=0.01", "-e", "decide_rate_window=1min"],
        'decide_rate_window="1min" is invalid: it must be a Prometheus duration such as '
        "30s or 5m.",
        id="window-not-duration",
    ),
    pytest.param(
        ["-e", "error_rate=0.01", "-e", "decide_prometheus_timeout=0"],
        'decide_prometheus_timeout="0" is invalid: it must be a whole number of '
        "seconds, 1 or more.",
        id="timeout-zero",
    ),
    pytest.param(
        [
            "-e",
            '{"error_rate": 0.01, "decide_thresholds": {"uptime": {"immediate": 0.999}}}',
        ],
        "thresholds.uptime must satisfy immediate <= consider <= monitor, got "
        "immediate=0.999, consider=0.99, monitor=0.999; reorder the thresholds",
        id="thresholds-order",
    ),
]


@pytest.mark.parametrize(("extra_args", "message"), INVALID_INPUT_CASES)
def test_invalid_input_rejected(tmp_path, extra_args, message):
    process, result = run_decide(tmp_path, *extra_args)

    assert process.returncode == 2, describe(process)
    assert result is None
    assert failure_messages(process.stdout) == [message]


def test_backend_unchanged_without_settings(tmp_path):
    backend = Backend(tmp_path / "backend", induced=False)
    backend.start()
    try:
        status, body = http_get(backend.url + "/api/messages")
        _status, metrics = http_get(backend.url + "/metrics")
    finally:
        backend.stop()

    assert status == 404
    assert json.loads(body) == {"status": "not found", "path": "/api/messages"}
    assert b"http_requests_total" in metrics
    assert b"http_request_duration_seconds" not in metrics
    assert b"process_start_time_seconds" not in metrics
