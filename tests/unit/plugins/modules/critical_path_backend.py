# Copyright: Contributors to the truebond.rollback collection
# GNU General Public License v3.0+ (see https://www.gnu.org/licenses/gpl-3.0.txt)
"""In-memory stand-in for the drill backend's critical-path API, for the tests.

It implements /api/health and the signup, login, message, search and WebSocket endpoints with the
request and response shapes of the drill backend, and can break each of them on
request through the names in faults:

- auth_500: signup and login return 500.
- login_echo: login returns 500 with a body that repeats the e-mail and password.
- search_misses: search returns 200 with results that never include new messages.
- ws_404: /api/ws is a plain 404, as from a proxy that does not route it.
- ws_bad_accept: the handshake returns a wrong Sec-WebSocket-Accept.
- ws_silent: the WebSocket sends the hello frame but no broadcasts.
- ws_big_hello: the hello frame carries 70,000 bytes of padding (64-bit length).
- ws_ping_fragmented: a ping comes before the hello frame, which is sent in two
  fragments.
- slow_login: login waits slow_seconds before it responds.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
import struct
import sys
import threading
import time
import urllib.parse
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

WEBSOCKET_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
PORT_RANGE = range(18180, 18190)


def server_frame(opcode, payload, fin=True):
    """Return an unmasked frame, as a server sends it."""
    first = (0x80 if fin else 0) | opcode
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", first, length)
    elif length < 1 << 16:
        header = struct.pack("!BBH", first, 126, length)
    else:
        header = struct.pack("!BBQ", first, 127, length)
    return header + payload


def read_client_frame(stream):
    """Read one frame from a client and return (masked, opcode, payload)."""
    first, second = stream.read(2)
    opcode = first & 0x0F
    masked = bool(second & 0x80)
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", stream.read(2))
    elif length == 127:
        (length,) = struct.unpack("!Q", stream.read(8))
    mask_key = stream.read(4) if masked else b""
    payload = stream.read(length)
    if masked:
        payload = bytes(
            byte ^ mask_key[index % 4] for index, byte in enumerate(payload)
        )
    return masked, opcode, payload


class BackendHandler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def record(self, body=None):
        with self.server.lock:
            self.server.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "headers": dict(self.headers),
                    "body": body,
                }
            )

    def send_json(self, code, body):
        payload = json.dumps(body).encode("utf-8")
        self.send_response(code)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(payload)))
        self.end_headers()
        self.wfile.write(payload)

    def read_json(self):
        length = int(self.headers.get("Content-Length") or 0)
        try:
            return json.loads(self.rfile.read(length) or b"{}")
        except ValueError:
            return None

    def token_user(self, token=None):
        if token is None:
            header = self.headers.get("Authorization", "")
            if not header.startswith("Bearer "):
                return None
            token = header[len("Bearer ") :]
        return self.server.tokens.get(token)

    def do_POST(self):
        body = self.read_json()
        self.record(body)
        faults = self.server.faults
        path = self.path.split("?")[0]
        if body is None:
            self.send_json(400, {"status": "error", "error": "body is not JSON"})
        elif path == "/api/auth/signup":
            if "auth_500" in faults:
                self.send_json(500, {"status": "error", "error": "users unavailable"})
                return
            email = body.get("email")
            with self.server.lock:
                if email in self.server.users:
                    email_taken = True
                else:
                    email_taken = False
                    self.server.users[email] = {
                        "password": body.get("password"),
                        "name": body.get("name"),
                    }
            if email_taken:
                self.send_json(409, {"status": "error", "error": "email taken"})
            else:
                self.send_json(201, {"status": "ok", "user_id": secrets.token_hex(12)})
        elif path == "/api/auth/login":
            if "slow_login" in faults:
                time.sleep(self.server.slow_seconds)
            if "auth_500" in faults:
                self.send_json(
                    500,
                    {
                        "status": "error",
                        "error": "token signing key could not be loaded",
                    },
                )
                return
            if "login_echo" in faults:
                self.send_json(500, {"status": "error", "request": body})
                return
            user = self.server.users.get(body.get("email"))
            if user is None or user["password"] != body.get("password"):
                self.send_json(401, {"status": "error", "error": "bad credentials"})
                return
            token = secrets.token_urlsafe(24)
            with self.server.lock:
                self.server.tokens[token] = body.get("email")
            self.send_json(200, {"status": "ok", "token": token})
        elif path == "/api/messages":
            sender = self.token_user()
            if sender is None:
                self.send_json(401, {"status": "error", "error": "invalid token"})
                return
            message = {
                "id": secrets.token_hex(12),
                "room": body.get("room"),
                "text": body.get("text"),
                "sender": sender,
            }
            with self.server.lock:
                self.server.messages.append(message)
            self.send_json(201, {"status": "ok", "id": message["id"]})
            self.server.broadcast(dict(message, type="message"))
        else:
            self.send_json(404, {"status": "not found", "path": path})

    def do_GET(self):
        self.record()
        parsed = urllib.parse.urlsplit(self.path)
        query = dict(urllib.parse.parse_qsl(parsed.query))
        if parsed.path == "/api/health":
            self.send_json(200, {"status": "ok", "version": "v0.9.5"})
        elif parsed.path == "/api/search":
            if self.token_user() is None:
                self.send_json(401, {"status": "error", "error": "invalid token"})
                return
            words = query.get("q", "")
            with self.server.lock:
                results = [
                    message
                    for message in self.server.messages
                    if message["room"] == query.get("room") and words in message["text"]
                ]
            if "search_misses" in self.server.faults:
                results = [{"id": "old", "room": query.get("room"), "text": "old"}]
            self.send_json(200, {"status": "ok", "results": results})
        elif parsed.path == "/api/ws" and "ws_404" not in self.server.faults:
            self.serve_websocket(query.get("token"))
        else:
            self.send_json(404, {"status": "not found", "path": parsed.path})

    def serve_websocket(self, token):
        key = self.headers.get("Sec-WebSocket-Key")
        if (
            self.headers.get("Upgrade", "").lower() != "websocket"
            or not key
            or self.headers.get("Sec-WebSocket-Version") != "13"
        ):
            self.send_json(400, {"status": "error", "error": "not a WebSocket request"})
            return
        if self.token_user(token) is None:
            self.send_json(401, {"status": "error", "error": "invalid token"})
            return
        accept = base64.b64encode(
            hashlib.sha1((key + WEBSOCKET_GUID).encode("ascii")).digest()
        ).decode("ascii")
        if "ws_bad_accept" in self.server.faults:
            accept = base64.b64encode(b"wrong").decode("ascii")
        self.send_response(101)
        self.send_header("Upgrade", "websocket")
        self.send_header("Connection", "Upgrade")
        self.send_header("Sec-WebSocket-Accept", accept)
        self.end_headers()
        self.wfile.flush()

        client = {"wfile": self.wfile, "lock": threading.Lock()}
        hello = {"type": "hello", "version": "v0.9.5"}
        if "ws_big_hello" in self.server.faults:
            hello["padding"] = "x" * 70000
        payload = json.dumps(hello).encode("utf-8")
        with client["lock"]:
            if "ws_ping_fragmented" in self.server.faults:
                self.wfile.write(server_frame(0x9, b"are you there"))
                self.wfile.write(server_frame(0x1, payload[:5], fin=False))
                self.wfile.write(server_frame(0x0, payload[5:]))
            else:
                self.wfile.write(server_frame(0x1, payload))
            self.wfile.flush()
        if "ws_silent" not in self.server.faults:
            with self.server.lock:
                self.server.ws_clients.append(client)
        try:
            while True:
                masked, opcode, frame_payload = read_client_frame(self.rfile)
                with self.server.lock:
                    self.server.client_frames.append((masked, opcode, frame_payload))
                if opcode == 0x8:
                    with client["lock"]:
                        self.wfile.write(server_frame(0x8, frame_payload[:2]))
                        self.wfile.flush()
                    break
        except (OSError, ValueError):
            pass
        finally:
            with self.server.lock:
                if client in self.server.ws_clients:
                    self.server.ws_clients.remove(client)
        self.close_connection = True


class StandInBackend(ThreadingHTTPServer):
    daemon_threads = True

    def __init__(self, address, faults=(), slow_seconds=1.0):
        super().__init__(address, BackendHandler)
        self.faults = set(faults)
        self.slow_seconds = slow_seconds
        self.lock = threading.Lock()
        self.users = {}
        self.tokens = {}
        self.messages = []
        self.requests = []
        self.ws_clients = []
        self.client_frames = []
        host, port = self.server_address
        self.base_url = f"http://{host}:{port}"

    def handle_error(self, request, client_address):
        # The timeout tests close their connection before the slow response is
        # written, so a broken pipe there is expected and not worth a traceback.
        if isinstance(sys.exc_info()[1], (BrokenPipeError, ConnectionResetError)):
            return
        super().handle_error(request, client_address)

    def broadcast(self, message):
        frame = server_frame(0x1, json.dumps(message).encode("utf-8"))
        with self.lock:
            clients = list(self.ws_clients)
        for client in clients:
            with client["lock"]:
                try:
                    client["wfile"].write(frame)
                    client["wfile"].flush()
                except OSError:
                    pass


def start_stand_in(faults=(), slow_seconds=1.0):
    """Start a stand-in backend on a free port in PORT_RANGE and return it."""
    for port in PORT_RANGE:
        try:
            server = StandInBackend(("127.0.0.1", port), faults, slow_seconds)
        except OSError:
            continue
        thread = threading.Thread(
            target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True
        )
        thread.start()
        return server
    raise RuntimeError("no free port in 18180-18189 for the stand-in backend")


def stop_stand_in(server):
    server.shutdown()
    server.server_close()
