"""WebSocket framing (RFC 6455) for the test backend and the e2e tests: just
enough to exchange whole messages over any byte stream, written here from
the RFC so the tests depend on no WebSocket library."""

import base64
import hashlib
import os
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

TEXT, BINARY, CLOSE, PING, PONG = 0x1, 0x2, 0x8, 0x9, 0xA


def accept_for(key):
    """The Sec-WebSocket-Accept a server answers to Sec-WebSocket-Key `key` (str)."""
    return base64.b64encode(hashlib.sha1(key.encode() + GUID).digest()).decode()


def new_key():
    return base64.b64encode(os.urandom(16)).decode()


def frame(opcode, payload, mask):
    """One final frame; clients mask (`mask` True), servers do not."""
    head = bytes([0x80 | opcode])
    n = len(payload)
    bit = 0x80 if mask else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 65536:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    if not mask:
        return head + payload
    key = os.urandom(4)
    return head + key + _masked(payload, key)


def _masked(payload, key):
    n = len(payload)
    keys = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(payload, "big") ^ int.from_bytes(keys, "big")).to_bytes(n, "big")


def read_frame(read_exact):
    """(opcode, payload) of the next frame; `read_exact(n)` returns n bytes or raises."""
    b0, b1 = read_exact(2)
    n = b1 & 0x7F
    if n == 126:
        n = struct.unpack("!H", read_exact(2))[0]
    elif n == 127:
        n = struct.unpack("!Q", read_exact(8))[0]
    key = read_exact(4) if b1 & 0x80 else None
    payload = read_exact(n)
    if key:
        payload = _masked(payload, key)
    return b0 & 0x0F, payload
