# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: health_probe
short_description: Probe HTTP health endpoints until they pass several rounds in a row
description:
  - Sends a GET request to every endpoint in O(endpoints) once per round, and repeats
    the rounds until O(consecutive) rounds in a row pass or O(deadline) has passed.
  - A round passes only when every endpoint passes. An endpoint passes when it responds
    with a status in O(expected_status) and, if O(expected_version) is set, with a JSON
    body whose O(version_field) equals O(expected_version).
  - Any failing round resets the streak of passing rounds to zero.
  - Redirects (3xx) are never followed and always fail the endpoint. The result reports
    the C(Location) header, so that a probe aimed at a login page or at the wrong path
    is noticed instead of passing silently.
  - The module only reads, so it never reports a change.
version_added: 0.1.0
author: TrueBond SRE team (@truebond)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: full
    details:
      - The probe runs in check mode exactly as in a normal run, because it only reads.
      - "In check mode the tasks before it have not switched anything, so the probe
        would check the old release. Callers usually skip it in check mode, for example with
        C(when: not ansible_check_mode)."
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  base_url:
    description:
      - Scheme, host and port that the paths in O(endpoints) are appended to.
      - Only C(http) and C(https) URLs are accepted.
    type: str
    default: http://127.0.0.1:18080
  endpoints:
    description:
      - Paths to probe in every round, each starting with C(/). A query string is
        allowed.
    type: list
    elements: str
    default: [/api/health, /api/health/detailed, /api/auth/health]
  expected_version:
    description:
      - Version that every endpoint must report in its JSON body, in the field named by
        O(version_field).
      - When set, a body that is not a JSON object, or that lacks the field, fails the
        endpoint. A value that is not a string is compared as its string form.
      - When not set, the version is reported if the body has one, but not checked.
    type: str
  version_field:
    description:
      - Name of the top-level JSON field that contains the version.
    type: str
    default: version
  expected_status:
    description:
      - HTTP status codes that count as passing.
      - Redirect codes (300-399) are rejected here, because redirects always fail.
    type: list
    elements: int
    default: [200]
  consecutive:
    description:
      - Number of passing rounds in a row needed for success. Must be at least 1.
    type: int
    default: 3
  interval:
    description:
      - Seconds to wait between the end of one round and the start of the next.
    type: float
    default: 1.0
  timeout:
    description:
      - Seconds that one request may take before it fails as timed out.
    type: float
    default: 2.0
  deadline:
    description:
      - Total seconds to keep probing before giving up.
      - The first round always runs. When less than O(interval) is left, the probe
        waits only for the time left and runs one last round at the deadline.
    type: float
    default: 60
  validate_certs:
    description:
      - Whether to verify the server's TLS certificate for C(https) URLs.
    type: bool
    default: true
  headers:
    description:
      - HTTP headers sent with every request.
    type: dict
    default: {}
  fail_on_unhealthy:
    description:
      - Whether the task fails when the deadline passes without success.
      - When V(false), the task succeeds and returns RV(healthy=false) with the same
        details, so that the caller can decide.
    type: bool
    default: true
notes:
  - RV(elapsed) can exceed O(deadline) by up to one round, because a round that has
    started is finished. One round takes at most the number of endpoints times
    O(timeout).
  - Latency is measured from sending the request to reading the whole body, only for
    requests that received an HTTP response. Connection errors and timeouts have no
    latency.
  - At most 1 MiB of each body is read.
  - Proxy settings from the environment (C(http_proxy), C(no_proxy)) apply, as in
    M(ansible.builtin.uri).
seealso:
  - module: ansible.builtin.uri
  - module: ansible.builtin.wait_for
"""

EXAMPLES = r"""
- name: Wait until the rolled-back backend passes three rounds in a row
  truebond.rollback.health_probe:
    base_url: http://127.0.0.1:18080
    expected_version: v0.9.5
    consecutive: 3
    interval: 1
    deadline: 120
  register: backend_health
  when: not ansible_check_mode

- name: Record the health of the current release without failing
  truebond.rollback.health_probe:
    endpoints:
      - /api/health
      - /api/health/detailed
    consecutive: 1
    deadline: 5
    fail_on_unhealthy: false
  register: current_health

- name: Show the endpoints that failed
  ansible.builtin.debug:
    msg: "{{ current_health.failures }}"
  when: not current_health.healthy
"""

RETURN = r"""
healthy:
  description: Whether O(consecutive) rounds in a row passed before the deadline.
  type: bool
  returned: always
  sample: true
rounds:
  description: Number of rounds run.
  type: int
  returned: always
  sample: 5
streak:
  description: Number of passing rounds in a row at the end of the probe.
  type: int
  returned: always
  sample: 3
best_streak:
  description: Maximum number of passing rounds in a row during the probe.
  type: int
  returned: always
  sample: 3
elapsed:
  description: Seconds from the start of the first round to the end of the last.
  type: float
  returned: always
  sample: 2.041
expected_version:
  description: The O(expected_version) that was checked, or null.
  type: str
  returned: always
  sample: v0.9.5
endpoints:
  description: Result of every endpoint in the last round, with latency across rounds.
  type: list
  elements: dict
  returned: always
  contains:
    path:
      description: The path from O(endpoints).
      type: str
      sample: /api/health
    url:
      description: The full URL requested.
      type: str
      sample: http://127.0.0.1:18080/api/health
    status:
      description: HTTP status of the last response, or null if no response arrived.
      type: int
      sample: 200
    ok:
      description: Whether the endpoint passed in the last round.
      type: bool
      sample: true
    version:
      description:
        - Value of O(version_field) in the last JSON body, or null. Usually a string,
          but returned as the JSON value it is.
      type: raw
      sample: v0.9.5
    reason:
      description: The status and version returned in the last round, or why it failed.
      type: str
      sample: returned 200 with version 'v0.9.5'
    location:
      description: C(Location) header of the last response if it was a redirect, else null.
      type: str
      sample: /login
    latency_ms:
      description:
        - Milliseconds per request. C(last) is the last round's request and is null
          if it received no response. C(min), C(max) and C(median) cover every round
          and are null if no request received a response.
      type: dict
      sample: {"last": 1.8, "min": 1.2, "max": 4.9, "median": 1.7}
    body_excerpt:
      description: First 300 characters of the last body, decoded as UTF-8.
      type: str
      sample: '{"status": "ok", "version": "v0.9.5"}'
failures:
  description:
    - One line per failing endpoint of the last failing round, empty if no round failed.
    - Also set on success, so that a flap before recovery stays visible.
  type: list
  elements: str
  returned: always
  sample:
    - '/api/auth/health returned 500, expected 200 - {"status": "error"}'
"""

import json
import statistics
import time
import traceback

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import Request, make_context
from ansible_collections.truebond.rollback.plugins.module_utils._http import (
    build_url,
    excerpt,
    send_request,
    validate_base_url,
)

BODY_EXCERPT_CHARS = 300
MESSAGE_EXCERPT_CHARS = 120
USER_AGENT = "truebond.rollback.health_probe"
DEFAULT_ENDPOINTS = ["/api/health", "/api/health/detailed", "/api/auth/health"]


def validate_params(params):
    """Raise ValueError naming the first invalid option and its value."""
    validate_base_url(params["base_url"])

    if not params["endpoints"]:
        raise ValueError("endpoints is empty; list at least one path to probe")
    for path in params["endpoints"]:
        if not path.startswith("/"):
            raise ValueError(
                f"endpoint {path!r} does not start with '/'; give a path such as "
                "'/api/health'"
            )

    if not params["expected_status"]:
        raise ValueError("expected_status is empty; list at least one status code")
    for code in params["expected_status"]:
        if not 100 <= code <= 599:
            raise ValueError(f"expected_status contains {code!r}, not an HTTP status")
        if 300 <= code <= 399:
            raise ValueError(
                f"expected_status contains {code!r}, but redirects always fail "
                "because they are not followed; remove it and probe the target path"
            )

    consecutive = params["consecutive"]
    interval = params["interval"]
    deadline = params["deadline"]
    if consecutive < 1:
        raise ValueError(f"consecutive must be at least 1, got {consecutive!r}")
    for name in ("interval", "deadline"):
        if params[name] < 0:
            raise ValueError(f"{name} must not be negative, got {params[name]!r}")
    if params["timeout"] <= 0:
        raise ValueError(f"timeout must be greater than 0, got {params['timeout']!r}")

    needed = (consecutive - 1) * interval
    if needed > deadline:
        raise ValueError(
            f"consecutive={consecutive!r} rounds {interval!r} s apart need at least "
            f"{needed!r} s, but deadline is {deadline!r} s; raise deadline or lower "
            "consecutive or interval"
        )


def fetch(request, url, timeout):
    """Send one GET request without following redirects.

    Return a dict with status (None without a response), location, body (bytes),
    error (text or None) and latency_ms (None without a response).
    """
    fetched = send_request(request, "GET", url, timeout)
    seconds = fetched.pop("seconds")
    fetched["latency_ms"] = None if seconds is None else round(seconds * 1000, 1)
    return fetched


def format_status_list(codes):
    if len(codes) == 1:
        return str(codes[0])
    return "one of " + ", ".join(str(code) for code in codes)


def parse_version(text, version_field):
    """Return (document, has_version, version) for a body that may be JSON."""
    try:
        document = json.loads(text)
    except ValueError:
        return None, False, None
    if isinstance(document, dict) and version_field in document:
        return document, True, document[version_field]
    return document, False, None


def evaluate_response(
    fetched, expected_status, expected_version, version_field="version"
):
    """Decide whether one response passes.

    Return a dict with ok, reason, version and body_excerpt. The reason reads as the
    rest of a sentence that starts with the endpoint's path.
    """
    text = fetched["body"].decode("utf-8", errors="replace")
    short_body = excerpt(text, MESSAGE_EXCERPT_CHARS) or "(empty body)"
    document, has_version, version = parse_version(text, version_field)
    result = {
        "ok": False,
        "version": version,
        "body_excerpt": text[:BODY_EXCERPT_CHARS],
    }

    if fetched["error"] is not None:
        result["reason"] = f"failed: {fetched['error']}"
        return result

    status = fetched["status"]
    if 300 <= status <= 399:
        if fetched["location"]:
            result["reason"] = (
                f"returned {status}, a redirect to {fetched['location']} (not followed)"
            )
        else:
            result["reason"] = (
                f"returned {status}, a redirect without a Location header"
            )
        return result

    if status not in expected_status:
        expected = format_status_list(expected_status)
        result["reason"] = f"returned {status}, expected {expected} - {short_body}"
        return result

    if expected_version is None:
        result["ok"] = True
        result["reason"] = f"returned {status}"
        if has_version:
            result["reason"] += f" with version {version!r}"
        return result

    if document is None:
        result["reason"] = (
            f"returned {status} with a body that is not JSON, so its version cannot "
            f"be checked - {short_body}"
        )
    elif not has_version:
        result["reason"] = (
            f"returned {status} without a {version_field!r} field in its JSON body - "
            f"{short_body}"
        )
    elif str(version) != expected_version:
        result["reason"] = (
            f"returned {status} with version {version!r}, expected {expected_version!r}"
        )
    else:
        result["ok"] = True
        result["reason"] = f"returned {status} with version {version!r}"
    return result


def summarize_latency(latencies, last):
    if not latencies:
        return {"last": last, "min": None, "max": None, "median": None}
    return {
        "last": last,
        "min": min(latencies),
        "max": max(latencies),
        "median": round(statistics.median(latencies), 1),
    }


def probe_round(request, params, latencies):
    """Probe every endpoint once and return (passed, endpoint results, failures).

    Appends each received response's latency to latencies[path].
    """
    results = []
    failures = []
    for path in params["endpoints"]:
        url = build_url(params["base_url"], path)
        fetched = fetch(request, url, params["timeout"])
        verdict = evaluate_response(
            fetched,
            params["expected_status"],
            params["expected_version"],
            params["version_field"],
        )
        if fetched["latency_ms"] is not None:
            latencies[path].append(fetched["latency_ms"])
        results.append(
            {
                "path": path,
                "url": url,
                "status": fetched["status"],
                "ok": verdict["ok"],
                "version": verdict["version"],
                "reason": verdict["reason"],
                "location": fetched["location"],
                "latency_ms": summarize_latency(latencies[path], fetched["latency_ms"]),
                "body_excerpt": verdict["body_excerpt"],
            }
        )
        if not verdict["ok"]:
            failures.append(f"{path} {verdict['reason']}")
    return not failures, results, failures


def run_probe(params, clock=time.monotonic, sleep=time.sleep):
    """Run rounds until the streak reaches consecutive or the deadline passes.

    clock and sleep are parameters so that tests can drive the deadline with a fake
    clock while the requests still go to real servers.
    """
    # Without a prepared context, Request.open builds a TLS context on every call,
    # even for http URLs. That took about 20 ms per request on a 2-core test machine
    # (ansible-core 2.19), which would dominate the measured latency of a local
    # backend.
    request = Request(
        headers=params["headers"],
        http_agent=USER_AGENT,
        follow_redirects="none",
        context=make_context(validate_certs=params["validate_certs"]),
    )
    latencies = {path: [] for path in params["endpoints"]}
    started = clock()
    deadline_at = started + params["deadline"]
    rounds = 0
    streak = 0
    best_streak = 0
    last_failures = []

    while True:
        passed, results, failures = probe_round(request, params, latencies)
        rounds += 1
        if passed:
            streak += 1
            best_streak = max(best_streak, streak)
        else:
            streak = 0
            last_failures = failures
        if streak >= params["consecutive"]:
            break
        remaining = deadline_at - clock()
        if remaining <= 0:
            break
        sleep(min(params["interval"], remaining))

    return {
        "healthy": streak >= params["consecutive"],
        "rounds": rounds,
        "streak": streak,
        "best_streak": best_streak,
        "elapsed": round(clock() - started, 3),
        "expected_version": params["expected_version"],
        "endpoints": results,
        "failures": last_failures,
    }


def build_unhealthy_message(params, result):
    """Return the failure message that names every endpoint failing at the end."""
    current = [
        f"{endpoint['path']} {endpoint['reason']}"
        for endpoint in result["endpoints"]
        if not endpoint["ok"]
    ]
    if not current:
        # The last round passed, but the streak was still too short.
        current = ["last failing round: " + "; ".join(result["failures"])]
    rounds = f"{result['rounds']} round" + ("" if result["rounds"] == 1 else "s")
    return (
        f"{params['base_url']} not healthy after {result['elapsed']:.1f} s "
        f"({rounds}, best streak {result['best_streak']} of {params['consecutive']}): "
        + "; ".join(current)
    )


def main():
    module = AnsibleModule(
        argument_spec={
            "base_url": {"type": "str", "default": "http://127.0.0.1:18080"},
            "endpoints": {
                "type": "list",
                "elements": "str",
                "default": DEFAULT_ENDPOINTS,
            },
            "expected_version": {"type": "str"},
            "version_field": {"type": "str", "default": "version"},
            "expected_status": {"type": "list", "elements": "int", "default": [200]},
            "consecutive": {"type": "int", "default": 3},
            "interval": {"type": "float", "default": 1.0},
            "timeout": {"type": "float", "default": 2.0},
            "deadline": {"type": "float", "default": 60.0},
            "validate_certs": {"type": "bool", "default": True},
            "headers": {"type": "dict", "default": {}},
            "fail_on_unhealthy": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    params = module.params

    try:
        validate_params(params)
    except ValueError as error:
        module.fail_json(msg=str(error))

    try:
        result = run_probe(params)
    except Exception as error:  # noqa: BLE001 - report any bug with its traceback
        module.fail_json(
            msg=f"health probe of {params['base_url']} failed unexpectedly: {error}",
            exception=traceback.format_exc(),
        )

    if not result["healthy"]:
        message = build_unhealthy_message(params, result)
        if params["fail_on_unhealthy"]:
            module.fail_json(msg=message, changed=False, **result)
        result["msg"] = message
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
