# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Property-based tests of the base_url, email_domain and room of critical_path_probe.

main() runs in check mode only, so no request is sent: a generated base_url could
name any host, and only loopback addresses may be contacted from tests.
"""

from __future__ import annotations

import pytest
from ansible_collections.truebond.rollback.plugins.modules import critical_path_probe
from fuzz_support import assert_no_traceback, run_module_main
from hypothesis import example, given, settings
from hypothesis import strategies as st

FAST = settings(max_examples=200, derandomize=True, deadline=None)
MODULE_RUNS = settings(max_examples=50, derandomize=True, deadline=None)

URL_CHARACTERS = "htps:/[]@%#?.:1270 \n\x00\\é"
base_urls = st.one_of(
    st.text(max_size=30),
    st.text(alphabet=URL_CHARACTERS, max_size=20),
    st.builds("http://{}".format, st.text(alphabet=URL_CHARACTERS, max_size=15)),
)


def probe_params(**overrides):
    params = {
        "base_url": "http://127.0.0.1:18080",
        "paths": list(critical_path_probe.PATH_ORDER),
        "account": None,
        "email_domain": "rollback-probe.invalid",
        "room": "rollback-probe",
        "timeout": 5.0,
    }
    params.update(overrides)
    return params


@FAST
@given(base_urls)
@example("ftp://127.0.0.1")
@example("http://")
@example("127.0.0.1:18080")
def test_base_url_error_names_value(base_url):
    try:
        critical_path_probe.validate_params(probe_params(base_url=base_url))
    except ValueError as error:
        assert repr(base_url) in str(error)
    else:
        assert base_url.startswith(("http://", "https://"))


def test_base_url_invalid_ipv6():
    with pytest.raises(ValueError, match=r"base_url 'http://\['"):
        critical_path_probe.validate_params(probe_params(base_url="http://["))


@FAST
@given(st.text(max_size=30) | st.text(alphabet="@ \n\t.a-", max_size=8))
@example("rollback-probe.invalid\n")
@example("a@b")
@example("")
def test_email_domain_error_names_value(domain):
    try:
        critical_path_probe.validate_params(probe_params(email_domain=domain))
    except ValueError as error:
        assert repr(domain) in str(error)
        return
    assert domain
    assert "@" not in domain
    assert not any(char.isspace() for char in domain)
    email, password = critical_path_probe.new_probe_account(domain)
    assert email.count("@") == 1
    assert email.endswith("@" + domain)
    assert password


@MODULE_RUNS
@given(
    base_url=base_urls,
    email_domain=st.text(max_size=20),
    room=st.text(max_size=20),
)
@example(base_url="http://127.0.0.1:18080", email_domain="x", room="a\nb\x00")
def test_probe_main_check_mode(base_url, email_domain, room):
    result = run_module_main(
        critical_path_probe.main,
        {
            "base_url": base_url,
            "email_domain": email_domain,
            "room": room,
            "_ansible_check_mode": True,
        },
    )
    assert_no_traceback(result)
    if result.get("failed"):
        assert repr(base_url) in result["msg"] or repr(email_domain) in result["msg"]
    else:
        assert result["room"] == room
        assert result["ok"] is None
