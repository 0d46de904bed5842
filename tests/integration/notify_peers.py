# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""Protocol peers for the notify role's integration tests, all on 127.0.0.1.

SlackReceiver plays a Slack incoming webhook, StatuspageReceiver the incident
endpoints of the Statuspage REST API v1, and SmtpReceiver an SMTP server. Each
one records what it receives so that a test can assert on it.
"""

from __future__ import annotations

import email
import email.policy
import itertools
import json
import re
import socket
import threading
from dataclasses import dataclass, field
from email.message import EmailMessage
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult, LoginPassword

HOST = "127.0.0.1"


def closed_port() -> int:
    """Return a port on 127.0.0.1 that nothing listens on, so connections are refused."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.bind((HOST, 0))
        return probe.getsockname()[1]


@dataclass
class HttpRequest:
    """One request as a receiver got it."""

    method: str
    path: str
    headers: dict[str, str]
    body: bytes

    def json(self):
        return json.loads(self.body)


class _HttpReceiver:
    """Threaded HTTP server that records every request; a subclass builds each response."""

    def __init__(self) -> None:
        self.requests: list[HttpRequest] = []
        self._lock = threading.Lock()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                request = HttpRequest(
                    method=self.command,
                    path=self.path,
                    headers={key.lower(): value for key, value in self.headers.items()},
                    body=self.rfile.read(length),
                )
                with receiver._lock:
                    receiver.requests.append(request)
                    status, content_type, body = receiver.respond(request)
                self.send_response(status)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = do_PATCH = do_PUT = _handle

            def log_message(self, format, *args):
                pass

        self._server = ThreadingHTTPServer((HOST, 0), Handler)
        self.port = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)

    def respond(self, request: HttpRequest) -> tuple[int, str, bytes]:
        raise NotImplementedError

    def start(self):
        self._thread.start()
        return self

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()


class SlackReceiver(_HttpReceiver):
    """Slack incoming webhook: accepts a JSON body with "text" and responds `ok`.

    The first `fail_first` requests get HTTP 503, to exercise the role's retries.
    """

    path = "/services/T0000/B0000/webhook-token-not-for-output"

    def __init__(self, fail_first: int = 0) -> None:
        super().__init__()
        self.fail_first = fail_first
        self.url = f"http://{HOST}:{self.port}{self.path}"

    def respond(self, request: HttpRequest) -> tuple[int, str, bytes]:
        if len(self.requests) <= self.fail_first:
            return HTTPStatus.SERVICE_UNAVAILABLE, "text/plain", b"service_unavailable"
        if request.method != "POST" or request.path != self.path:
            return HTTPStatus.NOT_FOUND, "text/plain", b"no_service"
        try:
            payload = request.json()
        except ValueError:
            return HTTPStatus.BAD_REQUEST, "text/plain", b"invalid_payload"
        if not isinstance(payload.get("text"), str):
            return HTTPStatus.BAD_REQUEST, "text/plain", b"no_text"
        return HTTPStatus.OK, "text/plain", b"ok"

    def payloads(self) -> list[dict]:
        return [request.json() for request in self.requests if request.method == "POST"]


class StatuspageReceiver(_HttpReceiver):
    """Incident endpoints of the Statuspage REST API v1 for one page.

    POST /v1/pages/<page>/incidents creates an incident (201) and
    PATCH /v1/pages/<page>/incidents/<id> updates it (200). Every request needs
    the header "Authorization: OAuth <api_key>", or gets 401 with an error that
    repeats the header.
    """

    def __init__(self, page_id: str, api_key: str) -> None:
        super().__init__()
        self.page_id = page_id
        self.api_key = api_key
        self.api_base = f"http://{HOST}:{self.port}/v1"
        self.incidents: dict[str, dict] = {}
        self._ids = (f"inc{number:06d}" for number in itertools.count(1))

    def _reply(self, status: int, document: dict) -> tuple[int, str, bytes]:
        return status, "application/json", json.dumps(document).encode()

    def respond(self, request: HttpRequest) -> tuple[int, str, bytes]:
        authorization = request.headers.get("authorization", "")
        if authorization != f"OAuth {self.api_key}":
            # The error repeats the header it got, which tests the role's masking.
            error = f"Could not authenticate with {authorization}"
            return self._reply(HTTPStatus.UNAUTHORIZED, {"error": error})
        match = re.fullmatch(
            rf"/v1/pages/{re.escape(self.page_id)}/incidents(?:/(?P<id>[^/]+))?",
            request.path,
        )
        if match is None:
            return self._reply(HTTPStatus.NOT_FOUND, {"error": "Not found"})
        try:
            fields = request.json()["incident"]
        except (ValueError, KeyError, TypeError):
            return self._reply(HTTPStatus.BAD_REQUEST, {"error": "incident is missing"})
        incident_id = match["id"]
        if request.method == "POST" and incident_id is None:
            incident_id = next(self._ids)
            self.incidents[incident_id] = {
                "id": incident_id,
                "page_id": self.page_id,
                "name": fields["name"],
                "status": fields["status"],
                "shortlink": f"https://stspg.io/{incident_id}",
                "incident_updates": [],
            }
            status = HTTPStatus.CREATED
        elif request.method == "PATCH" and incident_id in self.incidents:
            self.incidents[incident_id].update(
                {key: fields[key] for key in ("name", "status") if key in fields}
            )
            status = HTTPStatus.OK
        else:
            return self._reply(HTTPStatus.NOT_FOUND, {"error": "Incident not found"})
        incident = self.incidents[incident_id]
        incident["incident_updates"].insert(
            0, {"status": fields["status"], "body": fields.get("body", "")}
        )
        return self._reply(status, incident)


@dataclass
class ReceivedMail:
    """One message as the SMTP server got it."""

    mail_from: str
    rcpt_tos: list[str]
    data: bytes
    message: EmailMessage = field(init=False)

    def __post_init__(self) -> None:
        self.message = email.message_from_bytes(self.data, policy=email.policy.default)

    def body(self) -> str:
        return self.message.get_body(preferencelist=("plain",)).get_content()


class SmtpReceiver:
    """aiosmtpd server that stores each message.

    With `username` and `password` it offers AUTH over plain text (the tests have no
    TLS) and records each login attempt's credentials in `logins`.
    """

    def __init__(self, username: str = "", password: str = "") -> None:
        self.messages: list[ReceivedMail] = []
        self.logins: list[tuple[str, str]] = []
        self.username = username
        self.password = password
        receiver = self

        class Handler:
            async def handle_DATA(self, server, session, envelope):
                receiver.messages.append(
                    ReceivedMail(
                        mail_from=envelope.mail_from,
                        rcpt_tos=list(envelope.rcpt_tos),
                        data=envelope.original_content or envelope.content,
                    )
                )
                return "250 Message accepted for delivery"

        def authenticate(server, session, envelope, mechanism, auth_data):
            if not isinstance(auth_data, LoginPassword):
                return AuthResult(success=False, handled=False)
            login = (auth_data.login.decode(), auth_data.password.decode())
            receiver.logins.append(login)
            return AuthResult(success=login == (receiver.username, receiver.password))

        options = {}
        if username:
            options = {"authenticator": authenticate, "auth_require_tls": False}
        self.port = closed_port()
        self._controller = Controller(
            Handler(), hostname=HOST, port=self.port, **options
        )

    def start(self):
        self._controller.start()
        return self

    def stop(self) -> None:
        self._controller.stop()
