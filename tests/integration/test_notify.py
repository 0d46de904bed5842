# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Integration tests of the notify role against real peers on 127.0.0.1.

Each scenario runs tests/integration/notify/send.yml through ansible-playbook -v
against its own Slack webhook receiver, Statuspage API and SMTP server (see
notify_peers.py). The scenarios are independent, so the module fixture runs them
in parallel, which keeps this file at about 20 s instead of a minute.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from notify_peers import (
    SlackReceiver,
    SmtpReceiver,
    StatuspageReceiver,
    closed_port,
)

REPO = Path(__file__).resolve().parents[2]
PLAYBOOK = REPO / "tests" / "integration" / "notify" / "send.yml"
ROLE_TEMPLATES = REPO / "roles" / "notify" / "templates"
ANSIBLE_PLAYBOOK = Path(sys.executable).with_name("ansible-playbook")

PAGE_ID = "pg7x2k9q"
API_KEY = "sp-key-7c1f0e9a-not-for-output"
WRONG_API_KEY = "sp-key-wrong-51d2-not-for-output"
SMTP_USER = "mailer"
SMTP_PASSWORD = "smtp-pass-3b8d-not-for-output"
WRONG_SMTP_PASSWORD = "smtp-pass-wrong-90aa-not-for-output"
SECRETS = [
    API_KEY,
    WRONG_API_KEY,
    SMTP_PASSWORD,
    WRONG_SMTP_PASSWORD,
    SlackReceiver.path.rsplit("/", 1)[-1],
]

ISSUE = "Login fails <script>& after v1.0.0"
PUBLIC_ISSUE = 'errors on "Sign in" <script>&'
INJECTED_SUBJECT = "TrueBond Service Restored\r\nBcc: x@y"
INJECTED_SENDER_NAME = "The TrueBond Team\r\nBcc: sender@y"

# Settings every scenario shares: message content, and retries that are quick.
MESSAGE = {
    "notify_issue": ISSUE,
    "notify_public_issue": PUBLIC_ISSUE,
    "notify_severity": "high",
    "notify_version": "v0.9.5",
    "notify_from_version": "v1.0.0",
    "notify_duration_minutes": 12.5,
    "notify_lead": "Dana Ops",
    "notify_eta": "20 minutes",
    "notify_updates_at": "#incident-4711",
    "notify_failed_task": "Switch image | Recreate the backend",
    "notify_log_path": "/backup/incident-4711/rollback-log.md",
    "notify_next_steps": ["Root cause analysis", "Post-mortem on Friday"],
    "notify_start_time": "14:05 UTC",
    "notify_end_time": "14:19 UTC",
    "notify_email_impact": "login and messaging",
    "notify_email_subject": INJECTED_SUBJECT,
    "notify_email_from_name": INJECTED_SENDER_NAME,
    "notify_email_from_address": "noreply@truebond.example",
    "notify_email_to": ["Support <support@truebond.example>"],
    "notify_email_bcc": ["user1@example.com", "user2@example.com"],
    "notify_attempts": 3,
    "notify_retry_delay": 1,
    "notify_timeout": 5,
}


@dataclass
class PlaybookRun:
    """One ansible-playbook run: its exit code, its -v output and what it wrote."""

    returncode: int
    output: str
    results: list[dict]
    incident: dict


@dataclass
class Scenario:
    """The peers of one scenario and the runs made against them."""

    slack: SlackReceiver | None = None
    statuspage: StatuspageReceiver | None = None
    smtp: SmtpReceiver | None = None
    state_dir: Path | None = None
    runs: list[PlaybookRun] = field(default_factory=list)

    def channel_settings(self) -> dict:
        settings = {}
        if self.slack is not None:
            settings["notify_slack_webhook_url"] = self.slack.url
        if self.statuspage is not None:
            settings.update(
                notify_statuspage_api_base=self.statuspage.api_base,
                notify_statuspage_page_id=PAGE_ID,
                notify_statuspage_api_key=API_KEY,
            )
        if self.smtp is not None:
            settings.update(
                notify_smtp_host="127.0.0.1",
                notify_smtp_port=self.smtp.port,
                notify_smtp_username=SMTP_USER,
                notify_smtp_password=SMTP_PASSWORD,
                notify_smtp_secure="never",
            )
        return settings


def run_playbook(workdir: Path, name: str, events: list[str], variables: dict, *args):
    """Run send.yml for `events` with `variables` as extra vars."""
    vars_file = workdir / f"{name}-vars.json"
    results_file = workdir / f"{name}-results.json"
    extra_vars = {
        **variables,
        "test_events": events,
        "test_results_path": str(results_file),
    }
    vars_file.write_text(json.dumps(extra_vars))
    environment = {
        **os.environ,
        "ANSIBLE_CONFIG": str(REPO / "ansible.cfg"),
        "ANSIBLE_NOCOLOR": "1",
    }
    completed = subprocess.run(
        [ANSIBLE_PLAYBOOK, "-i", "localhost,", "-v", str(PLAYBOOK)]
        + ["-e", f"@{vars_file}", *args],
        cwd=REPO,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    written = json.loads(results_file.read_text()) if results_file.exists() else {}
    return PlaybookRun(
        returncode=completed.returncode,
        output=completed.stdout + completed.stderr,
        results=written.get("results", []),
        incident=written.get("incident", {}),
    )


def run_incident(workdir: Path, scenario: Scenario) -> None:
    """Two runs for one incident that share notify_state_dir, all channels up."""
    scenario.state_dir = workdir / "incident-state"
    settings = {
        **MESSAGE,
        **scenario.channel_settings(),
        "notify_state_dir": str(scenario.state_dir),
    }
    scenario.runs.append(
        run_playbook(workdir, "incident-1", ["rollback_started"], settings)
    )
    scenario.runs.append(
        run_playbook(
            workdir,
            "incident-2",
            ["rollback_failed", "rollback_completed"],
            settings,
        )
    )


def run_in_one_run(workdir: Path, scenario: Scenario) -> None:
    """Status page only, two events in one run, no state folder, own templates."""
    templates = workdir / "templates"
    shutil.copytree(ROLE_TEMPLATES, templates)
    (templates / "statuspage_investigating.j2").write_text(
        "Custom template: looking into {{ msg.public_issue }}.\n"
    )
    settings = {
        **MESSAGE,
        **scenario.channel_settings(),
        "notify_template_dir": str(templates),
    }
    scenario.runs.append(
        run_playbook(
            workdir, "in-one-run", ["rollback_started", "rollback_completed"], settings
        )
    )


def run_down(workdir: Path, scenario: Scenario) -> None:
    """Every channel points at a port that nothing listens on."""
    settings = {
        **MESSAGE,
        "notify_slack_webhook_url": f"http://127.0.0.1:{closed_port()}/services/x",
        "notify_statuspage_api_base": f"http://127.0.0.1:{closed_port()}/v1",
        "notify_statuspage_page_id": PAGE_ID,
        "notify_statuspage_api_key": API_KEY,
        "notify_smtp_host": "127.0.0.1",
        "notify_smtp_port": closed_port(),
        "notify_smtp_username": SMTP_USER,
        "notify_smtp_password": SMTP_PASSWORD,
        "notify_smtp_secure": "never",
    }
    scenario.runs.append(
        run_playbook(workdir, "down", ["rollback_completed"], settings)
    )


def run_rejected(workdir: Path, scenario: Scenario) -> None:
    """Slack returns 503 once, and Statuspage and SMTP get wrong credentials."""
    settings = {
        **MESSAGE,
        **scenario.channel_settings(),
        "notify_statuspage_api_key": WRONG_API_KEY,
        "notify_smtp_password": WRONG_SMTP_PASSWORD,
    }
    scenario.runs.append(
        run_playbook(workdir, "rejected", ["rollback_completed"], settings)
    )


def run_check_mode(workdir: Path, scenario: Scenario) -> None:
    settings = {**MESSAGE, **scenario.channel_settings()}
    scenario.runs.append(
        run_playbook(workdir, "check", ["rollback_completed"], settings, "--check")
    )


@pytest.fixture(scope="module")
def scenarios(tmp_path_factory):
    """Start each scenario's peers, run all scenarios in parallel, stop the peers."""
    built = {
        "incident": Scenario(
            slack=SlackReceiver(),
            statuspage=StatuspageReceiver(PAGE_ID, API_KEY),
            smtp=SmtpReceiver(SMTP_USER, SMTP_PASSWORD),
        ),
        "in_one_run": Scenario(statuspage=StatuspageReceiver(PAGE_ID, API_KEY)),
        "down": Scenario(),
        "rejected": Scenario(
            slack=SlackReceiver(fail_first=1),
            statuspage=StatuspageReceiver(PAGE_ID, API_KEY),
            smtp=SmtpReceiver(SMTP_USER, SMTP_PASSWORD),
        ),
        "check_mode": Scenario(
            slack=SlackReceiver(),
            statuspage=StatuspageReceiver(PAGE_ID, API_KEY),
            smtp=SmtpReceiver(SMTP_USER, SMTP_PASSWORD),
        ),
    }
    runners = {
        "incident": run_incident,
        "in_one_run": run_in_one_run,
        "down": run_down,
        "rejected": run_rejected,
        "check_mode": run_check_mode,
    }
    peers = [
        peer
        for scenario in built.values()
        for peer in (scenario.slack, scenario.statuspage, scenario.smtp)
        if peer is not None
    ]
    for peer in peers:
        peer.start()
    try:
        with ThreadPoolExecutor(max_workers=len(runners)) as pool:
            futures = [
                pool.submit(runner, tmp_path_factory.mktemp(name), built[name])
                for name, runner in runners.items()
            ]
            for future in futures:
                future.result()
    finally:
        for peer in peers:
            peer.stop()
    return built


def result_of(run: PlaybookRun, channel: str, event: str) -> dict:
    matches = [
        result
        for result in run.results
        if result["channel"] == channel and result["event"] == event
    ]
    assert len(matches) == 1, run.results
    return matches[0]


def raw_header_lines(mail) -> list[str]:
    headers = re.split(rb"\r?\n\r?\n", mail.data, maxsplit=1)[0]
    return headers.decode().splitlines()


# Every play succeeds, whatever happened to its notifications.


@pytest.mark.parametrize(
    "name", ["incident", "in_one_run", "down", "rejected", "check_mode"]
)
def test_play_succeeds(scenarios, name):
    for run in scenarios[name].runs:
        assert run.returncode == 0, run.output[-3000:]
        assert run.results, "send.yml did not write notify_results"


def test_results_have_documented_shape(scenarios):
    for scenario in scenarios.values():
        for run in scenario.runs:
            for result in run.results:
                assert set(result) == {
                    "channel",
                    "event",
                    "status",
                    "attempts",
                    "detail",
                }
                assert result["status"] in {"sent", "skipped", "failed"}
                assert isinstance(result["attempts"], int)


@pytest.mark.parametrize(
    "name", ["incident", "in_one_run", "down", "rejected", "check_mode"]
)
def test_secrets_absent_from_output_and_results(scenarios, name):
    for run in scenarios[name].runs:
        recorded = json.dumps(run.results) + json.dumps(run.incident)
        for secret in SECRETS:
            assert secret not in run.output
            assert secret not in recorded


# Internal chat.


def test_slack_gets_one_message_per_event(scenarios):
    payloads = scenarios["incident"].slack.payloads()
    assert len(payloads) == 3
    for payload in payloads:
        assert payload["blocks"][0]["type"] == "section"
        assert payload["blocks"][0]["text"] == {
            "type": "mrkdwn",
            "text": payload["text"],
        }


def test_slack_started_message(scenarios):
    text = scenarios["incident"].slack.payloads()[0]["text"]
    assert text.startswith("🚨 *ROLLBACK IN PROGRESS* 🚨\n")
    for line in [
        "Severity: High",
        "ETA: 20 minutes",
        "Lead: Dana Ops",
        "Status: In Progress",
        "Updates: #incident-4711",
    ]:
        assert f"\n{line}\n" in f"{text}\n"


def test_slack_escapes_mrkdwn_control_characters(scenarios):
    text = scenarios["incident"].slack.payloads()[0]["text"]
    assert "Issue: Login fails &lt;script&gt;&amp; after v1.0.0\n" in text
    assert "<script>" not in text


def test_slack_failed_message(scenarios):
    text = scenarios["incident"].slack.payloads()[1]["text"]
    assert text.startswith("❌ *ROLLBACK FAILED* ❌\n")
    assert 'Failed at task "Switch image | Recreate the backend"' in text
    assert "Log: /backup/incident-4711/rollback-log.md\n" in text
    assert "• Post-mortem on Friday" in text


def test_slack_completed_message(scenarios):
    text = scenarios["incident"].slack.payloads()[2]["text"]
    assert text.startswith("✅ *ROLLBACK COMPLETE* ✅\n")
    for line in [
        "Duration: 12.5 minutes",
        "Version: Rolled back to v0.9.5 (from v1.0.0) on localhost",
        "Status: Services healthy",
        "Next Steps: Root cause analysis; Post-mortem on Friday",
    ]:
        assert f"\n{line}\n" in text
    assert text.endswith("\nAll clear to resume normal operations.")


# Status page.


def test_statuspage_creates_once_then_updates_across_runs(scenarios):
    statuspage = scenarios["incident"].statuspage
    calls = [(request.method, request.path) for request in statuspage.requests]
    incident_id = next(iter(statuspage.incidents))
    incidents = f"/v1/pages/{PAGE_ID}/incidents"
    assert calls == [
        ("POST", incidents),
        ("PATCH", f"{incidents}/{incident_id}"),
        ("PATCH", f"{incidents}/{incident_id}"),
    ]
    assert len(statuspage.incidents) == 1


def test_statuspage_status_follows_events(scenarios):
    requests = scenarios["incident"].statuspage.requests
    statuses = [request.json()["incident"]["status"] for request in requests]
    assert statuses == ["investigating", "identified", "resolved"]


def test_statuspage_bodies_are_plan_texts_in_json(scenarios):
    requests = scenarios["incident"].statuspage.requests
    fields = [request.json()["incident"] for request in requests]
    assert fields[0]["name"] == PUBLIC_ISSUE
    assert fields[0]["body"].startswith(
        f"We're investigating reports of {PUBLIC_ISSUE}.\n"
        "Updates will be posted here.\n\nPosted: "
    )
    assert fields[1]["body"].startswith(
        "We've identified the issue and are implementing a fix.\n"
        "Expected resolution: 20 minutes\n\nUpdated: "
    )
    assert fields[2]["body"].startswith(
        "The issue has been resolved. All systems are operational.\n"
        "We apologize for any inconvenience.\n\nResolved: "
    )
    for request in requests:
        assert request.headers["content-type"].startswith("application/json")


def test_statuspage_state_file_keeps_incident(scenarios):
    scenario = scenarios["incident"]
    run = scenario.runs[-1]
    state = json.loads((scenario.state_dir / "notify-statuspage.json").read_text())
    assert state["id"] == run.incident["id"]
    assert state["page_id"] == PAGE_ID
    assert state["status"] == "resolved"


def test_statuspage_results_name_the_incident(scenarios):
    first, second = scenarios["incident"].runs
    incident_id = second.incident["id"]
    created = result_of(first, "statuspage", "rollback_started")
    resolved = result_of(second, "statuspage", "rollback_completed")
    assert created["status"] == "sent"
    assert (
        created["detail"]
        == f"created incident {incident_id} as investigating (HTTP 201)"
    )
    assert (
        resolved["detail"] == f"updated incident {incident_id} as resolved (HTTP 200)"
    )


def test_statuspage_updates_incident_of_same_run(scenarios):
    statuspage = scenarios["in_one_run"].statuspage
    calls = [(request.method, request.path) for request in statuspage.requests]
    incident_id = scenarios["in_one_run"].runs[0].incident["id"]
    incidents = f"/v1/pages/{PAGE_ID}/incidents"
    assert calls == [("POST", incidents), ("PATCH", f"{incidents}/{incident_id}")]


def test_statuspage_uses_template_dir(scenarios):
    first = scenarios["in_one_run"].statuspage.requests[0].json()["incident"]
    assert first["body"] == f"Custom template: looking into {PUBLIC_ISSUE}."


# Email.


def test_email_only_for_completed(scenarios):
    first, second = scenarios["incident"].runs
    assert len(scenarios["incident"].smtp.messages) == 1
    for run, event in [(first, "rollback_started"), (second, "rollback_failed")]:
        result = result_of(run, "email", event)
        assert result["status"] == "skipped"
        assert result["detail"] == (
            f"no user email for {event} (notify_email_events: rollback_completed)"
        )
    assert result_of(second, "email", "rollback_completed")["status"] == "sent"


def test_email_body_is_plan_text(scenarios):
    body = scenarios["incident"].smtp.messages[0].body()
    assert body.startswith(
        "Hi,\n\nWe experienced a technical issue from 14:05 UTC to 14:19 UTC\n"
        "that affected login and messaging.\n"
    )
    assert f"What happened:\n{PUBLIC_ISSUE}\n" in body
    assert "\nThe TrueBond Team\n" in body


def test_email_subject_injection_stays_one_header(scenarios):
    mail = scenarios["incident"].smtp.messages[0]
    assert mail.message["Subject"] == "TrueBond Service Restored Bcc: x@y"
    assert "Bcc" not in mail.message
    # The raw header is one line; the mail module would fold a subject with CR or LF.
    lines = raw_header_lines(mail)
    subject_at = lines.index(
        "Subject: =?utf-8?q?TrueBond_Service_Restored_Bcc=3A_x=40y?="
    )
    assert not lines[subject_at + 1][:1].isspace()
    assert not [line for line in lines if line.lower().startswith("bcc")]


def test_email_sender_name_injection_stays_one_header(scenarios):
    mail = scenarios["incident"].smtp.messages[0]
    assert mail.message["From"] == (
        '"The TrueBond Team Bcc: sender@y" <noreply@truebond.example>'
    )
    from_at = raw_header_lines(mail).index(
        'From: "The TrueBond Team Bcc: sender@y" <noreply@truebond.example>'
    )
    assert not raw_header_lines(mail)[from_at + 1][:1].isspace()
    assert mail.mail_from == "noreply@truebond.example"


def test_email_goes_only_to_configured_recipients(scenarios):
    mail = scenarios["incident"].smtp.messages[0]
    assert sorted(mail.rcpt_tos) == [
        "support@truebond.example",
        "user1@example.com",
        "user2@example.com",
    ]
    assert mail.message["To"] == "Support <support@truebond.example>"


def test_email_logs_in_with_password(scenarios):
    assert scenarios["incident"].smtp.logins == [(SMTP_USER, SMTP_PASSWORD)]


# Failures, retries and skipped channels.


@pytest.mark.parametrize("channel", ["slack", "statuspage", "email"])
def test_channel_down_fails_after_all_attempts(scenarios, channel):
    result = result_of(scenarios["down"].runs[0], channel, "rollback_completed")
    assert result["status"] == "failed"
    assert result["attempts"] == 3
    assert "Connection refused" in result["detail"]


def test_channel_down_retries_are_logged(scenarios):
    output = scenarios["down"].runs[0].output
    assert output.count("FAILED - RETRYING") == 6


def test_slack_retries_after_503(scenarios):
    scenario = scenarios["rejected"]
    result = result_of(scenario.runs[0], "slack", "rollback_completed")
    assert result["status"] == "sent"
    assert result["attempts"] == 2
    assert len(scenario.slack.requests) == 2


def test_statuspage_wrong_key_fails_without_retry(scenarios):
    scenario = scenarios["rejected"]
    result = result_of(scenario.runs[0], "statuspage", "rollback_completed")
    assert result["status"] == "failed"
    assert result["attempts"] == 1
    assert "401" in result["detail"]
    assert result["detail"].endswith(
        "(Statuspage: Could not authenticate with OAuth ********)"
    )
    assert len(scenario.statuspage.requests) == 1
    assert scenario.runs[0].incident == {}


def test_email_wrong_password_fails_without_retry(scenarios):
    scenario = scenarios["rejected"]
    result = result_of(scenario.runs[0], "email", "rollback_completed")
    assert result["status"] == "failed"
    assert result["attempts"] == 1
    assert scenario.smtp.logins == [(SMTP_USER, WRONG_SMTP_PASSWORD)]
    assert scenario.smtp.messages == []


@pytest.mark.parametrize(
    ("channel", "detail"),
    [
        ("slack", "notify_slack_webhook_url is empty"),
        ("email", "notify_smtp_host is empty"),
    ],
)
def test_unconfigured_channel_is_skipped(scenarios, channel, detail):
    run = scenarios["in_one_run"].runs[0]
    for event in ["rollback_started", "rollback_completed"]:
        result = result_of(run, channel, event)
        assert result["status"] == "skipped"
        assert result["attempts"] == 0
        assert result["detail"] == detail


@pytest.mark.parametrize("channel", ["slack", "statuspage", "email"])
def test_check_mode_sends_nothing(scenarios, channel):
    scenario = scenarios["check_mode"]
    result = result_of(scenario.runs[0], channel, "rollback_completed")
    assert result["status"] == "skipped"
    assert result["detail"] == "check mode: nothing is sent"
    assert scenario.slack.requests == []
    assert scenario.statuspage.requests == []
    assert scenario.smtp.messages == []
