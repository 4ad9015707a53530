"""End to end: ambiguous and malformed requests (SPEC.md, docs/security.md).

Each raw request goes on its own connection; it must be answered with the
expected status, the connection closed, and nothing of it, in particular the
request hidden in its body ("/smuggled"), may reach the server."""

import socket
import unittest

from harness import CrestTestCase

H = b"Host: a\r\n"
SMUGGLED = b"GET /smuggled HTTP/1.1\r\nHost: a\r\n\r\n"

# (raw request, expected status, what it is)
CASES = [
    # Content-Length and Transfer-Encoding together, in every order and spelling.
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 4\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n" + SMUGGLED, 400, "CL.TE"),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-Length: 4\r\n\r\n5c\r\n" + SMUGGLED, 400, "TE.CL"),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "CL 0 with TE"),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nContent-length: 4\r\n\r\n0\r\n\r\n", 400, "TE with lower-case CL"),
    # Content-Length that differs, repeats as a list, or is not a number.
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5\r\nContent-Length: 6\r\n\r\nhello" + SMUGGLED, 400, "differing CL"),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 6\r\n\r\nhello" + SMUGGLED, 400, "comma-listed differing CL"),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5, 5\r\n\r\nhello", 400, "comma-listed CL"),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: -5\r\n\r\nhello", 400, "negative CL"),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: +5\r\n\r\nhello", 400, "signed CL"),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 0x5\r\n\r\nhello", 400, "hex CL"),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 5 5\r\n\r\nhello", 400, "CL with inner space"),
    (b"POST / HTTP/1.1\r\n" + H + b"Content-Length: 99999999999999999999999\r\n\r\nhello", 400, "overflowing CL"),
    # Transfer-Encoding other than exactly chunked, last.
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked, identity\r\n\r\n0\r\n\r\n", 400, "chunked, identity"),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: identity, chunked\r\n\r\n0\r\n\r\n", 400, "identity, chunked"),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: xchunked\r\n\r\n0\r\n\r\n", 400, "xchunked"),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunkedx\r\n\r\n0\r\n\r\n", 400, "chunkedx"),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip\r\n\r\n0\r\n\r\n", 400, "gzip"),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: gzip, chunked\r\n\r\n0\r\n\r\n", 400, "gzip, chunked"),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "second TE"),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\nTransfer-Encoding: identity\r\n\r\n0\r\n\r\n", 400, "TE then identity"),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding:\x0bchunked\r\n\r\n0\r\n\r\n", 400, "TE with vertical tab"),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: \"chunked\"\r\n\r\n0\r\n\r\n", 400, "quoted chunked"),
    (b"POST / HTTP/1.0\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n0\r\n\r\n", 400, "TE in HTTP/1.0"),
    # Header syntax.
    (b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n folded\r\n\r\n", 400, "obs-fold with space"),
    (b"GET / HTTP/1.1\r\n" + H + b"X-A: b\r\n\tfolded\r\n\r\n", 400, "obs-fold with tab"),
    (b"GET / HTTP/1.1\r\n" + H + b"Transfer-Encoding : chunked\r\n\r\n0\r\n\r\n", 400, "space before colon"),
    (b"GET / HTTP/1.1\r\n" + H + b"Transfer-Encoding\t: chunked\r\n\r\n0\r\n\r\n", 400, "tab before colon"),
    (b"GET / HTTP/1.1\r\n" + H + b"X-\x00A: b\r\n\r\n", 400, "NUL in a name"),
    (b"GET / HTTP/1.1\r\n" + H + b"X-\x01A: b\r\n\r\n", 400, "CTL in a name"),
    (b"GET / HTTP/1.1\r\n" + H + b"X-A: b\x00c\r\n\r\n", 400, "NUL in a value"),
    (b"GET / HTTP/1.1\r\n" + H + b"X-A: b\x7fc\r\n\r\n", 400, "DEL in a value"),
    (b"GET / HTTP/1.1\r\n" + H + b"X-A: b\rc\r\n\r\n", 400, "bare CR in a value"),
    (b"GET / HTTP/1.1\r\n" + H + b"X A: b\r\n\r\n", 400, "space in a name"),
    (b"GET / HTTP/1.1\r\n" + H + b": b\r\n\r\n", 400, "empty name"),
    # Chunked bodies.
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nzz\r\n", 400, "non-hex chunk size"),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n+5\r\nhello\r\n0\r\n\r\n", 400, "signed chunk size"),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n-5\r\nhello\r\n0\r\n\r\n", 400, "negative chunk size"),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\nfffffffffffffffff1\r\nhello\r\n", 400, "overflowing chunk size"),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\r\nhelloXX0\r\n\r\n", 400, "no CRLF after chunk data"),
    (b"POST / HTTP/1.1\r\n" + H + b"Transfer-Encoding: chunked\r\n\r\n5\nhello\r\n0\r\n\r\n", 400, "bare LF after chunk size"),
    # Request line.
    (b"GET  / HTTP/1.1\r\n" + H + b"\r\n", 400, "two spaces after the method"),
    (b"GET /  HTTP/1.1\r\n" + H + b"\r\n", 400, "two spaces before the version"),
    (b" GET / HTTP/1.1\r\n" + H + b"\r\n", 400, "leading space"),
    (b"G(T / HTTP/1.1\r\n" + H + b"\r\n", 400, "invalid method"),
    (b"GET / HTTP/1.2\r\n" + H + b"\r\n", 400, "HTTP/1.2"),
    (b"GET / HTTP/2.0\r\n" + H + b"\r\n", 400, "HTTP/2.0 line"),
    (b"GET / HTTQ/1.1\r\n" + H + b"\r\n", 400, "bad protocol name"),
    (b"GET / HTTP/1.1 extra\r\n" + H + b"\r\n", 400, "junk after the version"),
    (b"CONNECT a:443 HTTP/1.1\r\nHost: a:443\r\n\r\n", 400, "CONNECT"),
    # Host.
    (b"GET / HTTP/1.1\r\n\r\n", 400, "no Host"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: b\r\n\r\n", 400, "two Host headers"),
    (b"GET / HTTP/1.1\r\nHost: a\r\nHost: a\r\n\r\n", 400, "the same Host twice"),
    (b"GET http://b/ HTTP/1.1\r\nHost: a\r\n\r\n", 400, "absolute form naming another host"),
]


class SmugglingTest(CrestTestCase):
    def test_ambiguous_requests_are_refused_and_never_reach_the_server(self):
        self.assertGreaterEqual(len(CASES), 40)
        web = self.backend("web")
        self.crest(self.simple_config({"web": [web]}), self.port)
        for raw, expected, what in CASES:
            with self.subTest(what=what):
                s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
                s.sendall(raw)
                data = b""
                try:
                    while True:  # crest closes after refusing
                        chunk = s.recv(65536)
                        if not chunk:
                            break
                        data += chunk
                except ConnectionResetError:
                    pass
                s.close()
                status_line = data.split(b"\r\n", 1)[0]
                self.assertTrue(status_line.startswith(b"HTTP/1.1 %d " % expected), (what, data[:200]))
                self.assertEqual(data.count(b"HTTP/1.1 "), 1, what)  # one answer, nothing smuggled back
        # A valid request afterwards is the first thing the server ever saw.
        s = socket.create_connection(("127.0.0.1", self.port), timeout=5)
        s.sendall(b"GET /after HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
        self.assertTrue(s.recv(65536).startswith(b"HTTP/1.1 200 "))
        s.close()
        self.assertEqual(web.requests_seen(), ["GET /after"])


if __name__ == "__main__":
    unittest.main()
