# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)

from __future__ import annotations

DOCUMENTATION = r"""
module: critical_path_probe
short_description: Check the application's critical user paths in one run
description:
  - Checks the application's critical user paths (sign-up, login, sending a message,
    search and real-time delivery over a WebSocket) through the backend's HTTP API.
    All listed paths run in one module run, so that a check during an incident costs
    one task only.
  - C(signup) creates a probe account with C(POST /api/auth/signup), using a new
    e-mail address under O(email_domain) and the name C(rollback probe). It passes
    with 201, and with 409 too when O(account) is set, because that account may
    exist already.
  - C(login) logs in with C(POST /api/auth/login) and passes with 200 and a token in
    the JSON body.
  - C(message) posts a message with a unique marker to O(room) with
    C(POST /api/messages) and the token, and passes with 201 and an C(id).
  - C(search) sends C(GET /api/search) for the marker in O(room) and passes when
    the results contain the message just posted.
  - C(websocket) opens C(/api/ws) as an RFC 6455 WebSocket client, checks the
    C(Sec-WebSocket-Accept) header of the handshake, reads the C(hello) frame, posts
    another message and passes when its C(message) frame arrives. It then closes the
    connection with a close frame.
  - The paths run in the order C(signup), C(login), C(message), C(search),
    C(websocket), whatever their order in O(paths). A path whose prerequisite failed
    is not run and counts as failed.
  - The password and the token never appear in the result or in messages.
version_added: 0.2.0
author: TrueBond SRE team (@truebond)
extends_documentation_fragment:
  - ansible.builtin.action_common_attributes
attributes:
  check_mode:
    support: partial
    details:
      - The probe writes data (a probe account and messages), so in check mode it
        sends no request. It returns each path in RV(paths) with RV(paths[].ok=null)
        and a RV(paths[].detail) that says what it would check.
      - With O(run_in_check_mode=true) it runs in check mode exactly as in a normal
        run. It still reports no change, because the probe data is not state that a
        playbook manages.
  diff_mode:
    support: none
  platform:
    platforms: posix
options:
  base_url:
    description:
      - Scheme, host and port of the backend that the API paths are appended to.
      - Only C(http) and C(https) URLs are accepted. The WebSocket uses C(ws) for
        C(http) and C(wss) for C(https).
    type: str
    default: http://127.0.0.1:18080
  paths:
    description:
      - Critical paths to check.
      - C(login) needs C(signup) unless O(account) is set. C(message) and
        C(websocket) need C(login), and C(search) needs C(message).
    type: list
    elements: str
    choices: [signup, login, message, search, websocket]
    default: [signup, login, message, search, websocket]
  account:
    description:
      - Existing probe account to use instead of a new one per run.
      - When set, C(signup) accepts 409 (address taken), and C(login) may be listed
        without C(signup).
      - When not set, C(signup) creates an account with a random password that is
        used for this run only.
    type: dict
    suboptions:
      email:
        description:
          - E-mail address of the probe account.
        type: str
        required: true
      password:
        description:
          - Password of the probe account. It is not logged.
        type: str
        required: true
  email_domain:
    description:
      - Domain of the e-mail address of a new probe account, which is
        C(rollback-probe-<UTC time>-<random hex>@<email_domain>).
      - The default is under C(.invalid), a top-level domain reserved by RFC 2606,
        so that no mail for a probe account can ever be delivered.
      - Ignored when O(account) is set.
    type: str
    default: rollback-probe.invalid
  room:
    description:
      - Room that the probe messages are posted to and searched in.
    type: str
    default: rollback-probe
  timeout:
    description:
      - Seconds that one request may take before it fails as timed out.
      - For C(websocket), also the seconds to wait for the hello frame and for the
        broadcast of the posted message.
    type: float
    default: 5.0
  validate_certs:
    description:
      - Whether to verify the server's TLS certificate for C(https) URLs.
    type: bool
    default: true
  run_in_check_mode:
    description:
      - Whether to send the requests in check mode as well.
      - The default V(false) sends nothing in check mode, because the probe writes a
        probe account and messages.
    type: bool
    default: false
notes:
  - Every run without O(account) leaves one probe account behind, and every run
    leaves the probe messages in O(room). The API has no endpoint to delete them.
  - The search path expects the backend to find a message by a word in its text
    (the marker C(probe-<hex>)). It passes when a result has the posted C(id), or
    the posted text when the results have no C(id).
  - The WebSocket client connects directly to the host and port of O(base_url).
    Unlike the HTTP requests, it ignores C(http_proxy) and C(https_proxy).
  - At most 1 MiB of each response body and each WebSocket message is read.
seealso:
  - module: truebond.rollback.health_probe
"""

EXAMPLES = r"""
- name: Check sign-up, login, messages, search and the WebSocket on the backend
  truebond.rollback.critical_path_probe:
    base_url: http://127.0.0.1:18080
  register: critical_paths

- name: Check login and messages with the standing probe account
  truebond.rollback.critical_path_probe:
    base_url: http://127.0.0.1:18080
    paths: [login, message, search]
    account:
      email: rollback-probe@truebond.invalid
      password: "{{ vault_probe_password }}"
    room: rollback-probe
    timeout: 3

- name: Show how long each path took
  ansible.builtin.debug:
    msg: "{{ critical_paths.paths | map(attribute='seconds') | list }}"
"""

RETURN = r"""
paths:
  description:
    - Outcome of every path in O(paths), in the order they ran.
  type: list
  elements: dict
  returned: always
  contains:
    name:
      description: The path from O(paths).
      type: str
      sample: login
    ok:
      description:
        - Whether the path passed. V(false) also for a path that did not run because
          a prerequisite failed. Null in check mode without O(run_in_check_mode).
      type: bool
      sample: true
    status:
      description:
        - HTTP status of the path's last response, or null if no response arrived
          or the path did not run. For C(websocket), the status of the handshake
          (101 when it succeeded).
      type: int
      sample: 200
    seconds:
      description: Seconds the path took, or null if it did not run.
      type: float
      sample: 0.012
    detail:
      description:
        - What the path checked and what happened, or why it failed. Response
          bodies are cut to 300 characters.
      type: str
      sample: returned 200 with a token
ok:
  description: Whether every path passed. Null in check mode without O(run_in_check_mode).
  type: bool
  returned: always
  sample: true
elapsed:
  description: Seconds the whole probe took.
  type: float
  returned: always
  sample: 0.094
account_email:
  description:
    - E-mail address of the probe account used, so that it can be found and removed
      later. Null when no path needs an account.
  type: str
  returned: always
  sample: rollback-probe-20261204t173001-3f9a1c@rollback-probe.invalid
room:
  description: The O(room) that was used.
  type: str
  returned: always
  sample: rollback-probe
"""

import base64
import hashlib
import json
import os
import secrets
import socket
import ssl
import struct
import time
import traceback
import urllib.parse

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.urls import Request, make_context
from ansible_collections.truebond.rollback.plugins.module_utils._http import (
    MAX_BODY_BYTES,
    build_url,
    excerpt,
    parse_json_object,
    send_request,
    validate_base_url,
)

PATH_ORDER = ["signup", "login", "message", "search", "websocket"]
USER_AGENT = "truebond.rollback.critical_path_probe"
PROBE_NAME = "rollback probe"
BODY_EXCERPT_CHARS = 300
REDACTED = "********"

# Each path's prerequisite. "login" needs "signup" only when no account is given.
PREREQUISITES = {
    "login": "signup",
    "message": "login",
    "search": "message",
    "websocket": "login",
}

# Next steps that the failure message gives for each path.
PATH_HINTS = {
    "signup": "check the auth service and its MongoDB connection "
    "(GET /api/auth/health and /api/health/detailed)",
    "login": "check the auth service, its token signing and its session store in "
    "Redis (GET /api/auth/health and /api/health/detailed)",
    "message": "check that POST /api/messages accepts the token and that MongoDB "
    "is writable (GET /api/health/detailed)",
    "search": "check that the search index contains new messages and that "
    "GET /api/search queries the same database the messages are written to",
    "websocket": "check that /api/ws reaches the backend with its Upgrade and "
    "Connection headers (a proxy may drop them) and that messages are broadcast "
    "to connected clients",
}

CHECK_MODE_DETAILS = {
    "signup": "would POST /api/auth/signup for a probe account",
    "login": "would POST /api/auth/login and expect a token",
    "message": "would POST /api/messages to the probe room",
    "search": "would GET /api/search and expect the posted message",
    "websocket": "would open /api/ws, read the hello frame and expect the "
    "broadcast of a posted message",
}

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OPCODE_CONTINUATION = 0x0
OPCODE_TEXT = 0x1
OPCODE_BINARY = 0x2
OPCODE_CLOSE = 0x8
OPCODE_PING = 0x9
OPCODE_PONG = 0xA
MAX_HANDSHAKE_BYTES = 64 * 1024


class PathFailure(Exception):
    """A path failed. status is the HTTP status of the failing response or None."""

    def __init__(self, detail, status=None, body=""):
        super().__init__(detail)
        self.detail = detail
        self.status = status
        self.body = body


class WebSocketError(Exception):
    """The WebSocket peer broke RFC 6455 or closed the connection."""


def validate_params(params):
    """Raise ValueError naming the first invalid option and its value."""
    validate_base_url(params["base_url"])
    paths = params["paths"]
    if not paths:
        raise ValueError(
            "paths is empty; list at least one of " + ", ".join(PATH_ORDER)
        )
    duplicates = sorted({name for name in paths if paths.count(name) > 1})
    if duplicates:
        raise ValueError(f"paths lists {duplicates[0]!r} more than once")
    for name in PATH_ORDER:
        if name not in paths:
            continue
        needed = PREREQUISITES.get(name)
        if needed is None or needed in paths:
            continue
        if name == "login" and params["account"]:
            continue
        if name == "login":
            raise ValueError(
                "path 'login' needs 'signup' or an account; add 'signup' to paths "
                "or set account to an existing probe account"
            )
        raise ValueError(
            f"path {name!r} needs {needed!r}, which paths does not list; "
            f"add {needed!r} to paths"
        )
    if params["timeout"] <= 0:
        raise ValueError(f"timeout must be greater than 0, got {params['timeout']!r}")
    domain = params["email_domain"]
    if not domain or "@" in domain or any(char.isspace() for char in domain):
        raise ValueError(
            f"email_domain {domain!r} is not a domain name; use a domain such as "
            "'rollback-probe.invalid'"
        )


def new_probe_account(email_domain):
    """Return a unique e-mail address and a random password for a new account."""
    stamp = time.strftime("%Y%m%dt%H%M%S", time.gmtime())
    email = f"rollback-probe-{stamp}-{secrets.token_hex(4)}@{email_domain}"
    return email, secrets.token_urlsafe(24)


def new_marker():
    """Return a word that no earlier message contains, for search and broadcast."""
    return "probe-" + secrets.token_hex(8)


class Redactor:
    """Replace the password and the token in any text that leaves the module."""

    def __init__(self):
        self.secrets = []

    def add(self, value):
        if value and value not in self.secrets:
            self.secrets.append(value)

    def __call__(self, text):
        for value in self.secrets:
            text = text.replace(value, REDACTED)
        return text


class CriticalPathProbe:
    """Run the critical paths against one backend and collect their outcomes."""

    def __init__(self, params, redactor):
        self.params = params
        self.redact = redactor
        self.base_url = params["base_url"]
        self.timeout = params["timeout"]
        self.request = Request(
            http_agent=USER_AGENT,
            follow_redirects="none",
            context=make_context(validate_certs=params["validate_certs"]),
        )
        account = params["account"]
        if account:
            self.email = account["email"]
            self.password = account["password"]
        else:
            self.email, self.password = new_probe_account(params["email_domain"])
        self.redact.add(self.password)
        self.token = None
        self.message = None

    # HTTP helpers

    def call(self, method, path, data=None, token=None):
        headers = {"Accept": "application/json"}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        fetched = send_request(
            self.request,
            method,
            build_url(self.base_url, path),
            self.timeout,
            data=data,
            headers=headers,
        )
        if fetched["error"] is not None:
            raise PathFailure(f"{method} {path} failed: {fetched['error']}")
        return fetched

    def body_text(self, fetched):
        text = fetched["body"].decode("utf-8", errors="replace")
        return self.redact(excerpt(text, BODY_EXCERPT_CHARS)) or "(empty body)"

    def fail_status(self, method, path, fetched, expected):
        body = self.body_text(fetched)
        raise PathFailure(
            f"{method} {path} returned {fetched['status']}, expected {expected} - "
            f"{body}",
            status=fetched["status"],
            body=body,
        )

    def post_message(self, text):
        """Post text to the room and return (status, message id)."""
        fetched = self.call(
            "POST",
            "/api/messages",
            data={"room": self.params["room"], "text": text},
            token=self.token,
        )
        if fetched["status"] != 201:
            self.fail_status("POST", "/api/messages", fetched, 201)
        document = parse_json_object(fetched["body"])
        if document is None or document.get("id") in (None, ""):
            body = self.body_text(fetched)
            raise PathFailure(
                f"POST /api/messages returned 201 without an 'id' in its JSON body - "
                f"{body}",
                status=201,
                body=body,
            )
        return fetched["status"], document["id"]

    # The paths. Each returns (status, detail) or raises PathFailure.

    def check_signup(self):
        data = {"email": self.email, "password": self.password, "name": PROBE_NAME}
        fetched = self.call("POST", "/api/auth/signup", data=data)
        status = fetched["status"]
        if status == 201:
            return status, f"returned 201, created {self.email}"
        if status == 409 and self.params["account"]:
            return status, f"returned 409, {self.email} exists already"
        self.fail_status("POST", "/api/auth/signup", fetched, 201)

    def check_login(self):
        data = {"email": self.email, "password": self.password}
        fetched = self.call("POST", "/api/auth/login", data=data)
        if fetched["status"] != 200:
            self.fail_status("POST", "/api/auth/login", fetched, 200)
        document = parse_json_object(fetched["body"])
        token = document.get("token") if document else None
        if not isinstance(token, str) or not token:
            body = self.body_text(fetched)
            raise PathFailure(
                "POST /api/auth/login returned 200 without a 'token' string in its "
                f"JSON body - {body}",
                status=200,
                body=body,
            )
        self.token = token
        self.redact.add(token)
        return 200, f"returned 200 with a token for {self.email}"

    def check_message(self):
        marker = new_marker()
        text = f"{PROBE_NAME} {marker}"
        status, message_id = self.post_message(text)
        self.message = {"id": message_id, "text": text, "marker": marker}
        return (
            status,
            f"returned 201, posted message {message_id!r} to {self.params['room']!r}",
        )

    def check_search(self):
        query = urllib.parse.urlencode(
            {"q": self.message["marker"], "room": self.params["room"]}
        )
        path = "/api/search?" + query
        fetched = self.call("GET", path, token=self.token)
        if fetched["status"] != 200:
            self.fail_status("GET", path, fetched, 200)
        document = parse_json_object(fetched["body"])
        results = document.get("results") if document else None
        if not isinstance(results, list):
            body = self.body_text(fetched)
            raise PathFailure(
                f"GET {path} returned 200 without a 'results' list in its JSON body "
                f"- {body}",
                status=200,
                body=body,
            )
        if any(self.is_posted_message(item) for item in results):
            return 200, (
                f"returned 200, found message {self.message['id']!r} among "
                f"{len(results)} results"
            )
        body = self.body_text(fetched)
        raise PathFailure(
            f"GET {path} returned 200 with {len(results)} results, but not message "
            f"{self.message['id']!r} posted just before - {body}",
            status=200,
            body=body,
        )

    def is_posted_message(self, item):
        if not isinstance(item, dict):
            return False
        if "id" in item:
            return str(item["id"]) == str(self.message["id"])
        return item.get("text") == self.message["text"]

    def check_websocket(self):
        path = "/api/ws?" + urllib.parse.urlencode({"token": self.token})
        shown_path = "/api/ws?token=" + REDACTED
        connection = WebSocketClient(
            self.base_url, path, self.timeout, self.params["validate_certs"]
        )
        try:
            try:
                status, headers, rest = connection.connect()
            except (OSError, WebSocketError) as error:
                raise PathFailure(
                    f"WebSocket handshake on {shown_path} failed: "
                    f"{describe_socket_error(error, self.timeout)}"
                ) from error
            if status != 101:
                body = self.redact(
                    excerpt(rest.decode("utf-8", errors="replace"), BODY_EXCERPT_CHARS)
                )
                raise PathFailure(
                    f"WebSocket handshake on {shown_path} rejected: returned {status}, "
                    f"expected 101 - {body or '(empty body)'}",
                    status=status,
                    body=body,
                )
            try:
                connection.check_handshake(headers)
                hello = connection.receive_json(lambda message: True)
            except (OSError, WebSocketError) as error:
                raise PathFailure(
                    f"WebSocket on {shown_path} accepted the handshake, but "
                    f"{describe_socket_error(error, self.timeout)}",
                    status=status,
                ) from error
            if hello.get("type") != "hello":
                body = self.redact(excerpt(json.dumps(hello), BODY_EXCERPT_CHARS))
                raise PathFailure(
                    f"WebSocket on {shown_path} sent a first message that is not "
                    f"of type 'hello' - {body}",
                    status=status,
                    body=body,
                )

            text = f"{PROBE_NAME} {new_marker()}"
            _status, message_id = self.post_message(text)
            try:
                connection.receive_json(
                    lambda message: (
                        message.get("type") == "message"
                        and str(message.get("id")) == str(message_id)
                    )
                )
            except (OSError, WebSocketError) as error:
                raise PathFailure(
                    f"WebSocket on {shown_path} did not deliver message "
                    f"{message_id!r} posted after the hello frame: "
                    f"{describe_socket_error(error, self.timeout)}",
                    status=status,
                ) from error
            connection.close()
        finally:
            connection.abort()
        version = hello.get("version")
        shown_version = f" (version {version!r})" if version is not None else ""
        return status, (
            f"handshake returned 101, received hello{shown_version} and the "
            f"broadcast of message {message_id!r}"
        )

    def run(self):
        """Run every listed path and return the result dict of the module."""
        listed = [name for name in PATH_ORDER if name in self.params["paths"]]
        outcomes = []
        passed = set()
        failed = set()
        started = time.perf_counter()
        for name in listed:
            needed = PREREQUISITES.get(name)
            if name == "login" and self.params["account"] and "signup" not in listed:
                needed = None
            if needed in failed:
                failed.add(name)
                outcomes.append(
                    {
                        "name": name,
                        "ok": False,
                        "status": None,
                        "seconds": None,
                        "detail": f"not run, because {needed!r} failed",
                    }
                )
                continue
            path_started = time.perf_counter()
            try:
                status, detail = getattr(self, "check_" + name)()
                ok = True
                passed.add(name)
            except PathFailure as failure:
                status, detail, ok = failure.status, failure.detail, False
                failed.add(name)
            outcomes.append(
                {
                    "name": name,
                    "ok": ok,
                    "status": status,
                    "seconds": round(time.perf_counter() - path_started, 3),
                    "detail": self.redact(detail),
                }
            )
        return {
            "paths": outcomes,
            "ok": not failed,
            "elapsed": round(time.perf_counter() - started, 3),
            "account_email": self.email,
            "room": self.params["room"],
        }


def describe_socket_error(error, timeout):
    if isinstance(error, TimeoutError):
        return f"timed out after {timeout} s"
    if isinstance(error, ssl.SSLError):
        return f"TLS error: {error}"
    return str(error) or type(error).__name__


def websocket_accept(key):
    """Return the Sec-WebSocket-Accept value for key (RFC 6455, section 4.2.2)."""
    digest = hashlib.sha1((key + WEBSOCKET_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def encode_frame(opcode, payload, mask_key=None):
    """Return one final frame. Client frames are masked with a 4-byte mask_key."""
    first = 0x80 | opcode
    length = len(payload)
    mask_bit = 0x80 if mask_key is not None else 0
    if length < 126:
        header = struct.pack("!BB", first, mask_bit | length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, mask_bit | 126, length)
    else:
        header = struct.pack("!BBQ", first, mask_bit | 127, length)
    if mask_key is None:
        return header + payload
    return header + mask_key + apply_mask(payload, mask_key)


def apply_mask(payload, mask_key):
    """XOR payload with the repeated 4-byte mask_key (masking and unmasking)."""
    repeated = (mask_key * (len(payload) // 4 + 1))[: len(payload)]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(repeated, "big")).to_bytes(
        len(payload), "big"
    )


class WebSocketClient:
    """Minimal RFC 6455 client over a blocking socket, for text messages."""

    def __init__(self, base_url, path, timeout, validate_certs):
        parsed = urllib.parse.urlsplit(base_url)
        self.secure = parsed.scheme == "https"
        self.host = parsed.hostname
        self.port = parsed.port or (443 if self.secure else 80)
        self.netloc = parsed.netloc
        self.path = parsed.path.rstrip("/") + path
        self.timeout = timeout
        self.validate_certs = validate_certs
        self.key = base64.b64encode(os.urandom(16)).decode("ascii")
        self.sock = None
        self.buffer = b""

    def connect(self):
        """Send the opening handshake and return (status, headers, rest).

        headers maps lower-case names to values. rest is what followed the headers:
        the start of the body for a rejected handshake, else the first frame bytes.
        """
        self.sock = socket.create_connection((self.host, self.port), self.timeout)
        if self.secure:
            context = ssl.create_default_context()
            if not self.validate_certs:
                context.check_hostname = False
                context.verify_mode = ssl.CERT_NONE
            self.sock = context.wrap_socket(self.sock, server_hostname=self.host)
        request = (
            f"GET {self.path} HTTP/1.1\r\n"
            f"Host: {self.netloc}\r\n"
            "Upgrade: websocket\r\n"
            "Connection: Upgrade\r\n"
            f"Sec-WebSocket-Key: {self.key}\r\n"
            "Sec-WebSocket-Version: 13\r\n"
            f"User-Agent: {USER_AGENT}\r\n"
            "\r\n"
        )
        self.sock.sendall(request.encode("latin-1"))

        data = b""
        while b"\r\n\r\n" not in data:
            if len(data) > MAX_HANDSHAKE_BYTES:
                raise WebSocketError(
                    f"handshake response headers exceed {MAX_HANDSHAKE_BYTES} bytes"
                )
            chunk = self.sock.recv(4096)
            if not chunk:
                raise WebSocketError("connection closed during the handshake")
            data += chunk
        head, rest = data.split(b"\r\n\r\n", 1)
        lines = head.decode("latin-1").split("\r\n")
        parts = lines[0].split(" ", 2)
        if len(parts) < 2 or not parts[0].startswith("HTTP/") or not parts[1].isdigit():
            raise WebSocketError(f"invalid status line {lines[0]!r}")
        headers = {}
        for line in lines[1:]:
            name, _sep, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
        status = int(parts[1])
        if status != 101:
            rest = self.read_rejection_body(headers, rest)
        else:
            self.buffer = rest
        return status, headers, rest

    def read_rejection_body(self, headers, rest):
        """Read up to a few KiB of the body of a rejected handshake."""
        try:
            expected_length = min(int(headers.get("content-length", "0")), 4096)
        except ValueError:
            expected_length = 0
        try:
            while len(rest) < expected_length:
                chunk = self.sock.recv(4096)
                if not chunk:
                    break
                rest += chunk
        except OSError:
            pass
        return rest[:4096]

    def check_handshake(self, headers):
        if headers.get("upgrade", "").lower() != "websocket":
            raise WebSocketError(
                f"the handshake response has Upgrade {headers.get('upgrade')!r}, "
                "expected 'websocket'"
            )
        tokens = [
            token.strip().lower() for token in headers.get("connection", "").split(",")
        ]
        if "upgrade" not in tokens:
            raise WebSocketError(
                f"the handshake response has Connection "
                f"{headers.get('connection')!r}, expected 'Upgrade'"
            )
        expected = websocket_accept(self.key)
        accept = headers.get("sec-websocket-accept")
        if accept != expected:
            raise WebSocketError(
                f"the handshake response has Sec-WebSocket-Accept {accept!r}, "
                f"expected {expected!r} for the key sent"
            )

    def read_exact(self, count, deadline):
        while len(self.buffer) < count:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("timed out")
            self.sock.settimeout(remaining)
            chunk = self.sock.recv(65536)
            if not chunk:
                raise WebSocketError("the server closed the connection")
            self.buffer += chunk
        data, self.buffer = self.buffer[:count], self.buffer[count:]
        return data

    def read_frame(self, deadline):
        """Return (fin, opcode, payload) of the next frame."""
        first, second = self.read_exact(2, deadline)
        fin = bool(first & 0x80)
        if first & 0x70:
            raise WebSocketError("the server set reserved bits without an extension")
        opcode = first & 0x0F
        if second & 0x80:
            raise WebSocketError(
                "the server sent a masked frame, which RFC 6455 forbids"
            )
        length = second & 0x7F
        if length == 126:
            (length,) = struct.unpack("!H", self.read_exact(2, deadline))
        elif length == 127:
            (length,) = struct.unpack("!Q", self.read_exact(8, deadline))
        if length > MAX_BODY_BYTES:
            raise WebSocketError(
                f"the server sent a frame of {length} bytes, more than the "
                f"{MAX_BODY_BYTES} accepted"
            )
        return fin, opcode, self.read_exact(length, deadline)

    def send_frame(self, opcode, payload):
        self.sock.sendall(encode_frame(opcode, payload, os.urandom(4)))

    def receive_message(self, deadline):
        """Return the next text or binary message, replying to each ping with a pong."""
        fragments = []
        while True:
            fin, opcode, payload = self.read_frame(deadline)
            if opcode == OPCODE_PING:
                self.send_frame(OPCODE_PONG, payload)
                continue
            if opcode == OPCODE_PONG:
                continue
            if opcode == OPCODE_CLOSE:
                code = (
                    struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
                )
                reason = payload[2:].decode("utf-8", errors="replace")
                raise WebSocketError(
                    f"the server closed the connection (code {code}, reason {reason!r})"
                )
            if opcode not in (OPCODE_TEXT, OPCODE_BINARY, OPCODE_CONTINUATION):
                raise WebSocketError(f"the server sent unknown opcode {opcode:#x}")
            fragments.append(payload)
            if sum(len(part) for part in fragments) > MAX_BODY_BYTES:
                raise WebSocketError(
                    f"the server sent a message of more than {MAX_BODY_BYTES} bytes"
                )
            if fin:
                return b"".join(fragments)

    def receive_json(self, matches):
        """Read messages until one is a JSON object that matches() accepts, and return it.

        Other messages, such as broadcasts of other users' messages, are skipped.
        Waits at most the timeout in all.
        """
        deadline = time.monotonic() + self.timeout
        while True:
            payload = self.receive_message(deadline)
            document = parse_json_object(payload)
            if document is not None and matches(document):
                return document

    def close(self):
        """Send a close frame with code 1000 and wait briefly for the reply."""
        self.send_frame(OPCODE_CLOSE, struct.pack("!H", 1000))
        deadline = time.monotonic() + min(self.timeout, 1.0)
        try:
            while True:
                _fin, opcode, _payload = self.read_frame(deadline)
                if opcode == OPCODE_CLOSE:
                    return
        except (OSError, WebSocketError):
            # The probe has passed, so a server that drops the connection instead
            # of replying to the close frame does not fail it.
            return

    def abort(self):
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None


def check_mode_result(params):
    listed = [name for name in PATH_ORDER if name in params["paths"]]
    return {
        "paths": [
            {
                "name": name,
                "ok": None,
                "status": None,
                "seconds": None,
                "detail": "check mode: " + CHECK_MODE_DETAILS[name],
            }
            for name in listed
        ],
        "ok": None,
        "elapsed": 0.0,
        "account_email": params["account"]["email"] if params["account"] else None,
        "room": params["room"],
    }


def build_failure_message(base_url, result):
    """Return the message naming each path's outcome and the first failure's fix."""
    outcomes = []
    first_failure = None
    for outcome in result["paths"]:
        if outcome["ok"]:
            outcomes.append(f"{outcome['name']} ok ({outcome['status']})")
        elif outcome["seconds"] is None:
            outcomes.append(f"{outcome['name']} not run")
        else:
            shown_status = (
                outcome["status"] if outcome["status"] is not None else "no response"
            )
            outcomes.append(f"{outcome['name']} failed ({shown_status})")
            if first_failure is None:
                first_failure = outcome
    message = f"critical paths of {base_url} failed: " + ", ".join(outcomes) + "."
    if first_failure is not None:
        message += (
            f" First failure, {first_failure['name']}: {first_failure['detail']}."
            f" Next: {PATH_HINTS[first_failure['name']]}."
        )
    return message


def main():
    module = AnsibleModule(
        argument_spec={
            "base_url": {"type": "str", "default": "http://127.0.0.1:18080"},
            "paths": {
                "type": "list",
                "elements": "str",
                "choices": PATH_ORDER,
                "default": PATH_ORDER,
            },
            "account": {
                "type": "dict",
                "options": {
                    "email": {"type": "str", "required": True},
                    "password": {"type": "str", "required": True, "no_log": True},
                },
            },
            "email_domain": {"type": "str", "default": "rollback-probe.invalid"},
            "room": {"type": "str", "default": "rollback-probe"},
            "timeout": {"type": "float", "default": 5.0},
            "validate_certs": {"type": "bool", "default": True},
            "run_in_check_mode": {"type": "bool", "default": False},
        },
        supports_check_mode=True,
    )
    params = module.params

    try:
        validate_params(params)
    except ValueError as error:
        module.fail_json(msg=str(error))

    if module.check_mode and not params["run_in_check_mode"]:
        module.exit_json(changed=False, **check_mode_result(params))

    redactor = Redactor()
    try:
        probe = CriticalPathProbe(params, redactor)
        # The generated password and the token are secrets as well, so Ansible
        # masks them even where a value slips past the redactor.
        module.no_log_values.add(probe.password)
        result = probe.run()
        if probe.token:
            module.no_log_values.add(probe.token)
    except Exception as error:  # noqa: BLE001 - report any bug with its traceback
        module.fail_json(
            msg=redactor(
                f"critical path probe of {params['base_url']} failed unexpectedly: "
                f"{error}"
            ),
            exception=redactor(traceback.format_exc()),
        )

    if not result["ok"]:
        module.fail_json(
            msg=build_failure_message(params["base_url"], result),
            changed=False,
            **result,
        )
    module.exit_json(changed=False, **result)


if __name__ == "__main__":
    main()
