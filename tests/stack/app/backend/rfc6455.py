"""Server side of the WebSocket protocol (RFC 6455) for the TrueBond-like backend.

It covers what the real-time messages need: the opening handshake, unfragmented text
frames from the server, and ping, pong and close from clients. Fragmented messages
from clients are read and ignored, like any other data a client sends.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import struct
import threading

# Fixed by RFC 6455 section 1.3 for computing Sec-WebSocket-Accept.
HANDSHAKE_GUID = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
OPCODE_TEXT = 0x1
OPCODE_CLOSE = 0x8
OPCODE_PING = 0x9
OPCODE_PONG = 0xA
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_PROTOCOL_ERROR = 1002
CLOSE_TOO_BIG = 1009
# Client frames larger than this close the connection with 1009 (message too big).
MAX_CLIENT_PAYLOAD = 65536


class ProtocolError(Exception):
    """A client broke RFC 6455. close_code is the status code to close with."""

    def __init__(self, close_code: int, reason: str):
        super().__init__(reason)
        self.close_code = close_code


def handshake_error(headers) -> str | None:
    """Return why headers are not a valid WebSocket opening request, or None."""
    if headers.get("Upgrade", "").strip().lower() != "websocket":
        return "the Upgrade header must be websocket"
    connection = [
        token.strip().lower() for token in headers.get("Connection", "").split(",")
    ]
    if "upgrade" not in connection:
        return "the Connection header must contain Upgrade"
    if headers.get("Sec-WebSocket-Version", "").strip() != "13":
        return "Sec-WebSocket-Version must be 13"
    key = headers.get("Sec-WebSocket-Key", "").strip()
    try:
        if len(base64.b64decode(key, validate=True)) != 16:
            return "Sec-WebSocket-Key must be 16 bytes in base64"
    except binascii.Error:
        return "Sec-WebSocket-Key must be 16 bytes in base64"
    return None


def accept_value(key: str) -> str:
    digest = hashlib.sha1((key.strip() + HANDSHAKE_GUID).encode("ascii")).digest()
    return base64.b64encode(digest).decode("ascii")


def encode_frame(opcode: int, payload: bytes) -> bytes:
    """Return one final, unmasked frame, as a server sends them."""
    length = len(payload)
    if length < 126:
        header = struct.pack("!BB", 0x80 | opcode, length)
    elif length < 65536:
        header = struct.pack("!BBH", 0x80 | opcode, 126, length)
    else:
        header = struct.pack("!BBQ", 0x80 | opcode, 127, length)
    return header + payload


def read_exact(stream, count: int) -> bytes:
    data = stream.read(count)
    if len(data) != count:
        raise EOFError("the client closed the connection")
    return data


def read_frame(stream) -> tuple[int, bytes]:
    """Read one client frame and return its opcode and unmasked payload."""
    first, second = read_exact(stream, 2)
    opcode = first & 0x0F
    if not second & 0x80:
        raise ProtocolError(CLOSE_PROTOCOL_ERROR, "client frames must be masked")
    length = second & 0x7F
    if length == 126:
        (length,) = struct.unpack("!H", read_exact(stream, 2))
    elif length == 127:
        (length,) = struct.unpack("!Q", read_exact(stream, 8))
    if length > MAX_CLIENT_PAYLOAD:
        raise ProtocolError(CLOSE_TOO_BIG, f"frame of {length} bytes is too big")
    mask = read_exact(stream, 4)
    payload = read_exact(stream, length)
    return opcode, bytes(byte ^ mask[index % 4] for index, byte in enumerate(payload))


class Connection:
    """One open WebSocket. send_* may be called from any thread."""

    def __init__(self, rfile, wfile, peer: str):
        self.rfile = rfile
        self.wfile = wfile
        self.peer = peer
        self._send_lock = threading.Lock()
        self.closed = False

    def send_frame(self, opcode: int, payload: bytes) -> None:
        with self._send_lock:
            if self.closed and opcode != OPCODE_CLOSE:
                raise OSError("the WebSocket is closed")
            self.wfile.write(encode_frame(opcode, payload))
            self.wfile.flush()

    def send_text(self, text: str) -> None:
        self.send_frame(OPCODE_TEXT, text.encode("utf-8"))

    def close(self, code: int = CLOSE_NORMAL, reason: str = "") -> None:
        """Send a close frame once. Errors are ignored, because the peer may be gone."""
        with self._send_lock:
            if self.closed:
                return
            self.closed = True
            try:
                payload = struct.pack("!H", code) + reason.encode("utf-8")[:120]
                self.wfile.write(encode_frame(OPCODE_CLOSE, payload))
                self.wfile.flush()
            except OSError:
                pass

    def serve(self) -> None:
        """Reply to pings and to the close handshake until the client disconnects."""
        try:
            while True:
                opcode, payload = read_frame(self.rfile)
                if opcode == OPCODE_CLOSE:
                    code = CLOSE_NORMAL
                    if len(payload) >= 2:
                        (code,) = struct.unpack("!H", payload[:2])
                    self.close(code)
                    return
                if opcode == OPCODE_PING:
                    self.send_frame(OPCODE_PONG, payload)
        except ProtocolError as error:
            self.close(error.close_code, str(error))
        except (EOFError, OSError):
            with self._send_lock:
                self.closed = True
