# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""health_probe checks base_url with the shared _http check, ports included."""

from __future__ import annotations

import socket

import pytest
from ansible_collections.truebond.rollback.plugins.modules import health_probe


def make_params(base_url):
    return {
        "base_url": base_url,
        "endpoints": ["/api/health"],
        "expected_version": None,
        "version_field": "version",
        "expected_status": [200],
        "consecutive": 1,
        "interval": 0.0,
        "timeout": 1.0,
        "deadline": 1.0,
        "validate_certs": True,
        "headers": {},
        "fail_on_unhealthy": True,
    }


@pytest.fixture
def unused_port_url():
    """Return an http URL of a loopback port that nothing listens on."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.mark.parametrize(
    ("base_url", "reason"),
    [
        pytest.param(
            "http://127.0.0.1:99999",
            "Port out of range 0-65535",
            id="port-out-of-range",
        ),
        pytest.param(
            "http://127.0.0.1:abc",
            "Port could not be cast to integer value as 'abc'",
            id="port-not-a-number",
        ),
        pytest.param("http://[::1", "Invalid IPv6 URL", id="unclosed-ipv6"),
    ],
)
def test_validate_params_rejects_invalid_url(base_url, reason):
    with pytest.raises(ValueError) as error:
        health_probe.validate_params(make_params(base_url))

    assert str(error.value) == (
        f"base_url {base_url!r} is not a valid URL ({reason}); use a URL such as"
        " 'http://127.0.0.1:18080'"
    )


def test_fetch_without_response_has_no_latency(unused_port_url):
    request = health_probe.Request(follow_redirects="none")

    fetched = health_probe.fetch(request, unused_port_url + "/api/health", 1.0)

    assert fetched["status"] is None
    assert fetched["error"] is not None
    assert fetched["latency_ms"] is None
    assert "seconds" not in fetched
