# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""A drill rollback with every notification channel pointed at local receivers.

One successful rollback and one failed one run against the drill stack, with the
chat webhook, the status page and SMTP served on 127.0.0.1 by the peers in
notify_peers.py. The tests check what arrived at each peer and what the rollback
log records about it.
"""

from __future__ import annotations

import json

import pytest
from drill_helpers import (
    FAST_HEALTH_DEADLINE,
    incident_folders,
    new_incident_folder,
    read_rollback_log,
    reset_stack,
    run_playbook,
)
from notify_peers import SlackReceiver, SmtpReceiver, StatuspageReceiver

PAGE_ID = "drillpage01"
API_KEY = "drill-statuspage-key-not-for-output"


@pytest.fixture(scope="module")
def peers():
    slack = SlackReceiver().start()
    statuspage = StatuspageReceiver(PAGE_ID, API_KEY).start()
    smtp = SmtpReceiver().start()
    yield {"slack": slack, "statuspage": statuspage, "smtp": smtp}
    for peer in (slack, statuspage, smtp):
        peer.stop()


def channel_vars(peers, state_dir):
    return {
        "notify_slack_webhook_url": peers["slack"].url,
        "notify_statuspage_api_base": peers["statuspage"].api_base,
        "notify_statuspage_page_id": PAGE_ID,
        "notify_statuspage_api_key": API_KEY,
        "notify_state_dir": str(state_dir),
        "notify_smtp_host": "127.0.0.1",
        "notify_smtp_port": peers["smtp"].port,
        "notify_smtp_secure": "never",
        "notify_email_from_address": "status@truebond.example",
        "notify_email_to": ["users@truebond.example"],
        "notify_retry_delay": 0,
    }


@pytest.fixture(scope="module")
def success_run(drill_stack, peers, tmp_path_factory):
    reset_stack("v1.0.0")
    before = incident_folders()
    extra = {
        "version": "v0.9.5",
        "severity": "high",
        "issue": "Drill: login fails <after> the 1.0.0 deploy & more",
        **channel_vars(peers, tmp_path_factory.mktemp("notify-state")),
    }
    result = run_playbook(extra)
    assert result.rc == 0, result.output[-4000:]
    return result, new_incident_folder(before)


def test_chat_gets_progress_then_complete(success_run, peers):
    texts = [payload["text"] for payload in peers["slack"].payloads()]

    assert "ROLLBACK IN PROGRESS" in texts[0]
    assert "ROLLBACK COMPLETE" in texts[1]
    assert "v0.9.5" in texts[1]


def test_chat_escapes_issue(success_run, peers):
    first = peers["slack"].payloads()[0]["text"]

    assert "&lt;after&gt;" in first
    assert "&amp; more" in first


def test_status_page_created_then_resolved(success_run, peers):
    incidents = list(peers["statuspage"].incidents.values())

    assert len(incidents) == 1
    assert incidents[0]["status"] == "resolved"
    statuses = [
        update["status"] for update in reversed(incidents[0]["incident_updates"])
    ]
    assert statuses == ["investigating", "resolved"]


def test_email_sent_once_to_users(success_run, peers):
    messages = peers["smtp"].messages

    assert len(messages) == 1
    assert messages[0].rcpt_tos == ["users@truebond.example"]
    assert messages[0].message["Subject"] == "TrueBond Service Restored"


def test_log_records_notifications(success_run):
    _, incident = success_run
    log = read_rollback_log(incident)

    sent = {
        (entry["channel"], entry["event"], entry["status"])
        for entry in log["extra"]["notifications"]
    }
    assert ("slack", "rollback_started", "sent") in sent
    assert ("statuspage", "rollback_completed", "sent") in sent
    assert ("email", "rollback_completed", "sent") in sent


def test_api_key_absent_everywhere(success_run):
    result, incident = success_run

    assert API_KEY not in result.output
    for path in incident.rglob("*"):
        if path.is_file():
            assert API_KEY.encode() not in path.read_bytes(), path


def test_failed_rollback_announced(success_run, peers, tmp_path):
    reset_stack("v0.9.5")
    slack_before = len(peers["slack"].payloads())
    extra = {
        "version": "v1.0.0",
        "truebond_health_deadline": FAST_HEALTH_DEADLINE,
        **channel_vars(peers, tmp_path),
    }

    result = run_playbook(extra)

    assert result.rc == 2, result.describe()
    new_texts = [
        payload["text"] for payload in peers["slack"].payloads()[slack_before:]
    ]
    assert any("FAILED" in text.upper() for text in new_texts[1:]), json.dumps(
        new_texts
    )
    reset_stack("v1.0.0")
